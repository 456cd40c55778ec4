import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConveyorError, type ConveyorErrorOptions, ErrorCodes } from '../core/errors.ts'
import { registryRequestChannel } from '../instrumentation/channels.ts'

export type SchemaType = 'AVRO' | 'JSON' | 'PROTOBUF'

export interface SchemaReference {
  name: string
  subject: string
  version: number
}

export interface SchemaInput {
  schema: string
  schemaType?: SchemaType
  references?: SchemaReference[]
}

export interface RegisteredSchema {
  schema: string
  schemaType: SchemaType
  references: SchemaReference[]
}

export interface SubjectVersion extends RegisteredSchema {
  subject: string
  version: number
  id: number
}

export interface RegistryClientOptions {
  /** Base URL of the registry, e.g. `http://127.0.0.1:8081`; several are tried in turn. */
  url: string | string[]
  auth?: { username: string; password: string } | { token: string }
  tls?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean }
  /** Milliseconds per request. Default 10 000. */
  timeout?: number
  /** Retries of a request that failed for a transient reason (unreachable, 5xx). Default 3. */
  retries?: number
}

/** A registry request that failed. `errorCode` is Confluent's (40401, 40403, 409, 42201, …). */
export class RegistryError extends ConveyorError {
  readonly status: number | undefined
  readonly errorCode: number | undefined

  constructor(
    message: string,
    options: ConveyorErrorOptions & { status?: number; errorCode?: number; incompatible?: boolean }
  ) {
    super(options.incompatible ? ErrorCodes.INCOMPATIBLE_SCHEMA : ErrorCodes.REGISTRY, message, options)
    this.name = 'RegistryError'
    this.status = options.status
    this.errorCode = options.errorCode
  }

  /** Why a message cannot be decoded, for the DLQ; undefined when it is not the message's fault. */
  get reason(): string | undefined {
    if (this.errorCode === 40403) return 'unknown_schema_id'
    return undefined
  }
}

const contentType = 'application/vnd.schemaregistry.v1+json'

/**
 * A client of the Confluent Schema Registry REST API (Confluent, Redpanda, Karapace,
 * Apicurio's ccompat API and Conveyor's embedded registry).
 *
 * Schemas by id and ids by subject+schema are cached, so encoding and decoding make no
 * HTTP call once a schema has been seen. An unreachable registry or a 5xx answer is
 * retried (`retries`) and then reported as a retryable error; a 4xx answer is not.
 */
export class SchemaRegistryClient {
  readonly #urls: URL[]
  readonly #headers: Record<string, string>
  readonly #tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean }
  readonly #timeout: number
  readonly #retries: number
  readonly #byId = new Map<number, Promise<RegisteredSchema>>()
  readonly #ids = new Map<string, number>()

  constructor(options: RegistryClientOptions) {
    const urls = Array.isArray(options.url) ? options.url : [options.url]
    if (urls.length === 0)
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, 'registry url is required', { path: 'registry.url' })
    this.#urls = urls.map((url) => {
      try {
        return new URL(url.endsWith('/') ? url : `${url}/`)
      } catch (error) {
        throw new ConveyorError(ErrorCodes.INVALID_OPTION, `registry url "${url}" is not a URL`, {
          path: 'registry.url',
          cause: error
        })
      }
    })
    this.#headers = { accept: `${contentType}, application/json`, 'content-type': contentType }
    if (options.auth && 'token' in options.auth) this.#headers.authorization = `Bearer ${options.auth.token}`
    else if (options.auth) {
      this.#headers.authorization = `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`
    }
    const tls = options.tls ?? {}
    this.#tls = {
      ...(tls.caFile ? { ca: readFileSync(tls.caFile) } : {}),
      ...(tls.certFile ? { cert: readFileSync(tls.certFile) } : {}),
      ...(tls.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
      ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized })
    }
    this.#timeout = options.timeout ?? 10_000
    this.#retries = options.retries ?? 3
  }

  /** Registers a schema under a subject (or finds it registered) and returns its id. */
  async register(subject: string, input: SchemaInput, { normalize = false } = {}): Promise<number> {
    const cacheKey = this.#cacheKey(subject, input)
    const cached = this.#ids.get(cacheKey)
    if (cached !== undefined) {
      publishCached('POST', 'subjects/versions')
      return cached
    }
    const { id } = (await this.#call(
      'POST',
      `subjects/${encodeURIComponent(subject)}/versions${normalize ? '?normalize=true' : ''}`,
      body(input)
    )) as { id: number }
    this.#ids.set(cacheKey, id)
    return id
  }

  /** The version and id of a schema already registered under a subject. */
  async lookup(subject: string, input: SchemaInput): Promise<SubjectVersion> {
    const found = (await this.#call(
      'POST',
      `subjects/${encodeURIComponent(subject)}`,
      body(input)
    )) as RawVersion
    const version = normalizeVersion(found)
    this.#ids.set(this.#cacheKey(subject, input), version.id)
    return version
  }

  /** The schema with this id (cached for the life of the client: ids never change meaning). */
  getById(id: number): Promise<RegisteredSchema> {
    let cached = this.#byId.get(id)
    if (cached) publishCached('GET', 'schemas/ids')
    if (!cached) {
      cached = this.#call('GET', `schemas/ids/${id}`).then((raw) => normalizeSchema(raw as RawVersion))
      cached.catch(() => this.#byId.delete(id))
      this.#byId.set(id, cached)
    }
    return cached
  }

  async getVersion(subject: string, version: number | 'latest'): Promise<SubjectVersion> {
    return normalizeVersion(
      (await this.#call('GET', `subjects/${encodeURIComponent(subject)}/versions/${version}`)) as RawVersion
    )
  }

  async listVersions(subject: string): Promise<number[]> {
    return (await this.#call('GET', `subjects/${encodeURIComponent(subject)}/versions`)) as number[]
  }

  async listSubjects(): Promise<string[]> {
    return (await this.#call('GET', 'subjects')) as string[]
  }

  /** Whether a schema is compatible with a version of the subject; `messages` explain why not. */
  async checkCompatibility(
    subject: string,
    input: SchemaInput,
    version: number | 'latest' = 'latest'
  ): Promise<{ compatible: boolean; messages: string[] }> {
    const answer = (await this.#call(
      'POST',
      `compatibility/subjects/${encodeURIComponent(subject)}/versions/${version}?verbose=true`,
      body(input)
    )) as { is_compatible: boolean; messages?: string[] }
    return { compatible: answer.is_compatible, messages: answer.messages ?? [] }
  }

  /** The compatibility level of a subject (falling back to the global one) or the global level. */
  async getCompatibility(subject?: string): Promise<string> {
    const path = subject ? `config/${encodeURIComponent(subject)}?defaultToGlobal=true` : 'config'
    const answer = (await this.#call('GET', path)) as { compatibilityLevel?: string; compatibility?: string }
    return answer.compatibilityLevel ?? answer.compatibility ?? 'BACKWARD'
  }

  async setCompatibility(level: string, subject?: string): Promise<void> {
    await this.#call(
      'PUT',
      subject ? `config/${encodeURIComponent(subject)}` : 'config',
      JSON.stringify({ compatibility: level })
    )
  }

  #cacheKey(subject: string, input: SchemaInput): string {
    return `${subject}\u0000${input.schemaType ?? 'AVRO'}\u0000${input.schema}\u0000${JSON.stringify(input.references ?? [])}`
  }

  async #call(method: string, path: string, payload?: string): Promise<unknown> {
    let lastError: RegistryError | undefined
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      const url = new URL(path, this.#urls[attempt % this.#urls.length])
      try {
        return await this.#send(method, url, payload)
      } catch (error) {
        if (!(error instanceof RegistryError) || !error.retryable) throw error
        lastError = error
        if (attempt < this.#retries) await sleep(Math.min(100 * 2 ** attempt, 2_000))
      }
    }
    throw lastError!
  }

  #send(method: string, url: URL, payload: string | undefined): Promise<unknown> {
    const started = performance.now()
    const answered = (status: number) => {
      if (!registryRequestChannel.hasSubscribers) return
      const endpoint = url.pathname
        .split('/')
        .filter((part) => part && !/^\d+$/.test(part))
        .slice(0, 3)
        .join('/')
      registryRequestChannel.publish({
        method,
        endpoint,
        status,
        duration: performance.now() - started,
        cached: false
      })
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise<unknown>((resolve, reject) => {
      const request = send(
        url,
        {
          method,
          headers: this.#headers,
          timeout: this.#timeout,
          ...(url.protocol === 'https:' ? this.#tls : {})
        },
        (response) => {
          const chunks: Buffer[] = []
          response.on('data', (chunk: Buffer) => chunks.push(chunk))
          response.on('error', (error) => reject(unreachable(method, url, error)))
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            const status = response.statusCode ?? 0
            answered(status)
            let json: unknown
            try {
              json = text.length > 0 ? JSON.parse(text) : undefined
            } catch {
              json = undefined
            }
            if (status >= 200 && status < 300) {
              resolve(json ?? text)
              return
            }
            const { error_code: errorCode, message } = (json ?? {}) as {
              error_code?: number
              message?: string
            }
            const incompatible =
              status === 409 && (errorCode === 409 || errorCode === 40901 || errorCode === undefined)
            reject(
              new RegistryError(
                `registry ${method} ${url.pathname} answered ${status}${errorCode ? ` (${errorCode})` : ''}: ${message ?? text}`,
                {
                  status,
                  errorCode,
                  incompatible,
                  retryable: status >= 500 || status === 429
                }
              )
            )
          })
        }
      )
      request.on('timeout', () => request.destroy(new Error(`no answer within ${this.#timeout} ms`)))
      request.on('error', (error) => {
        answered(0)
        reject(unreachable(method, url, error))
      })
      if (payload !== undefined) request.write(payload)
      request.end()
    })
  }
}

interface RawVersion {
  subject?: string
  version?: number
  id?: number
  schema: string
  schemaType?: SchemaType
  references?: SchemaReference[]
}

function body(input: SchemaInput): string {
  return JSON.stringify({
    schema: input.schema,
    // Older registries reject an explicit AVRO type; AVRO is the default everywhere.
    ...(input.schemaType && input.schemaType !== 'AVRO' ? { schemaType: input.schemaType } : {}),
    ...(input.references && input.references.length > 0 ? { references: input.references } : {})
  })
}

function normalizeSchema(raw: RawVersion): RegisteredSchema {
  return { schema: raw.schema, schemaType: raw.schemaType ?? 'AVRO', references: raw.references ?? [] }
}

function normalizeVersion(raw: RawVersion): SubjectVersion {
  return { ...normalizeSchema(raw), subject: raw.subject ?? '', version: raw.version ?? 0, id: raw.id ?? 0 }
}

function publishCached(method: string, endpoint: string): void {
  if (registryRequestChannel.hasSubscribers)
    registryRequestChannel.publish({ method, endpoint, status: 200, duration: 0, cached: true })
}

function unreachable(method: string, url: URL, cause: Error): RegistryError {
  return new RegistryError(`registry ${method} ${url.origin}${url.pathname} failed: ${cause.message}`, {
    cause,
    retryable: true
  })
}
