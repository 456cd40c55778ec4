import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConveyorError, type ConveyorErrorOptions, ErrorCodes } from '../core/errors.ts'
import { registryRequestChannel } from '../instrumentation/channels.ts'

/** A schema's format, as the registry names it. */
export type SchemaType = 'AVRO' | 'JSON' | 'PROTOBUF'

/** A schema that another schema refers to, by the subject and version it is registered under. */
export interface SchemaReference {
  /**
   * The name the referring schema uses for it: in Avro the type's full name, in JSON Schema
   * the `$ref`, in Protobuf the import path.
   */
  name: string
  /** Subject the referenced schema is registered under. */
  subject: string
  /** Version of the referenced schema in that subject. */
  version: number
}

/** A schema to register, look up or check. */
export interface SchemaInput {
  /** The schema's text, e.g. the JSON of an Avro schema. */
  schema: string
  /** The schema's format. Default `AVRO`. */
  schemaType?: SchemaType
  /** Schemas this one refers to. Default none. */
  references?: SchemaReference[]
}

/** A schema as the registry holds it. */
export interface RegisteredSchema {
  /** The schema's text. */
  schema: string
  /** The schema's format; `AVRO` when the registry's answer names none. */
  schemaType: SchemaType
  /** Schemas this one refers to; empty when none. */
  references: SchemaReference[]
}

/** A version of a subject: the schema registered there, its version number and its id. */
export interface SubjectVersion extends RegisteredSchema {
  /** The subject the schema is registered under. */
  subject: string
  /** The version's number in the subject. */
  version: number
  /** The schema's registry-wide id, the one the wire format carries. */
  id: number
}

/** Options of a `SchemaRegistryClient`. */
export interface RegistryClientOptions {
  /** Base URL of the registry, e.g. `http://127.0.0.1:8081`; several are tried in turn. */
  url: string | string[]
  /**
   * Credentials sent with every request: `username` and `password` as HTTP Basic, or `token`
   * as a Bearer token. Default none.
   */
  auth?: { username: string; password: string } | { token: string }
  /**
   * TLS for `https:` URLs: CA, client certificate and key as paths of PEM files (read when the
   * client is created); `rejectUnauthorized` as in Node.js (default true).
   */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean }
  /** Milliseconds per request. Default 10 000. */
  timeout?: number
  /** Retries of a request that failed for a transient reason (unreachable, 5xx). Default 3. */
  retries?: number
}

/** A registry request that failed. `errorCode` is Confluent's (40401, 40403, 409, 42201, …). */
export class RegistryError extends ConveyorError {
  /** HTTP status of the registry's answer; undefined when the registry could not be reached. */
  readonly status: number | undefined
  /** Confluent's `error_code` in the answer, e.g. 40401 (subject not found); undefined when there is none. */
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

  /**
   * A version of a subject (`latest`: the newest) with its schema and id; rejects with a
   * `RegistryError` (`errorCode` 40401 or 40402) when the subject or version does not exist.
   */
  async getVersion(subject: string, version: number | 'latest'): Promise<SubjectVersion> {
    return normalizeVersion(
      (await this.#call('GET', `subjects/${encodeURIComponent(subject)}/versions/${version}`)) as RawVersion
    )
  }

  /**
   * The version numbers registered under a subject; rejects with a `RegistryError`
   * (`errorCode` 40401) when the subject does not exist.
   */
  async listVersions(subject: string): Promise<number[]> {
    return (await this.#call('GET', `subjects/${encodeURIComponent(subject)}/versions`)) as number[]
  }

  /** The names of the registry's subjects. */
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

  /**
   * Sets the compatibility level (one of `CompatibilityLevels`) of a subject, or the global level
   * without one; resolves once the registry accepted it. An unknown level is a `RegistryError` (422).
   */
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
