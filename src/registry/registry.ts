import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { KafkaConnection } from '../kafka/connection.ts'
import { type AvroSchema, normalizeAvro, parseAvro } from '../schema/avro/model.ts'
import { type CompatibilityLevel, CompatibilityLevels, checkCompatibility } from '../schema/compatibility.ts'
import type { SchemaReference, SchemaType } from '../schema/registry-client.ts'
import { listen } from '../util/listen.ts'
import { RegistryElection } from './election.ts'
import { SchemasLog } from './kafka-log.ts'
import {
  configKey,
  deleteSubjectKey,
  modeKey,
  RegistryStore,
  type StoredVersion,
  schemaKey,
  schemaValue
} from './store.ts'

/** An error answer in Confluent's shape: HTTP status and `{ error_code, message }`. */
class HttpError extends Error {
  readonly status: number
  readonly errorCode: number

  constructor(status: number, errorCode: number, message: string) {
    super(message)
    this.status = status
    this.errorCode = errorCode
  }
}

const notFound = {
  subject: (subject: string) => new HttpError(404, 40401, `Subject '${subject}' not found.`),
  version: (version: string) => new HttpError(404, 40402, `Version ${version} not found.`),
  schema: (what = 'Schema') => new HttpError(404, 40403, `${what} not found`)
}

export interface RegistryOptions {
  connection: KafkaConnection
  /** Storage topic. Default `_schemas`. */
  topic?: string
  port?: number
  host?: string
  /**
   * Elect one writer among registry processes sharing the topic (default true); the others
   * forward writes to it. Off, this process writes as if it were alone.
   */
  elect?: boolean
}

interface Request {
  method: string
  parts: string[]
  query: URLSearchParams
  body: unknown
}

/**
 * Conveyor's embedded schema registry: the Confluent Schema Registry REST API on a
 * Kafka topic (`_schemas`, Confluent's record format), for local development and tests
 * where no third-party registry can run. Avro and JSON Schema subjects; compatibility is
 * checked with Conveyor's port of Avro's rules at the subject's level.
 */
export class EmbeddedRegistry {
  readonly store = new RegistryStore()
  readonly #log: SchemasLog
  readonly #options: RegistryOptions
  #server: Server | undefined
  #election: RegistryElection | undefined
  /** Writes one at a time: ids and versions are assigned from the state they read. */
  #writing: Promise<unknown> = Promise.resolve()

  constructor(options: RegistryOptions) {
    this.#options = options
    this.#log = new SchemasLog({ connection: options.connection, topic: options.topic }, (key, value) =>
      this.store.apply(key, value)
    )
  }

  /** Reads the storage topic, then listens; resolves with the base URL. */
  async start(): Promise<string> {
    await this.#log.start()
    this.#server = createServer((request, response) => void this.#serve(request, response))
    try {
      await listen(
        this.#server,
        this.#options.port ?? 8081,
        this.#options.host ?? '127.0.0.1',
        'registry port'
      )
    } catch (error) {
      await this.#log.close()
      throw error
    }
    const { address, port } = this.#server.address() as AddressInfo
    const url = `http://${address}:${port}`
    if (this.#options.elect !== false) {
      this.#election = new RegistryElection({
        connection: this.#options.connection,
        topic: this.#log.topic,
        url
      })
      await this.#election.start()
    }
    return url
  }

  /** Whether this process is the one that writes (always, without election). */
  get isLeader(): boolean {
    return this.#election?.isLeader ?? true
  }

  async stop(): Promise<void> {
    await this.#election?.stop()
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()))
    this.#server?.closeAllConnections()
    await this.#log.close()
  }

  async #serve(incoming: IncomingMessage, response: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body)
      response.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' })
      response.end(text)
    }
    try {
      const url = new URL(incoming.url ?? '/', 'http://registry')
      const chunks: Buffer[] = []
      for await (const chunk of incoming) chunks.push(chunk as Buffer)
      const text = Buffer.concat(chunks).toString('utf8')
      let body: unknown
      if (text.length > 0) {
        try {
          body = JSON.parse(text)
        } catch {
          throw new HttpError(400, 400, 'Unrecognized JSON body')
        }
      }
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
      const method = incoming.method ?? 'GET'
      const write =
        method === 'PUT' ||
        method === 'DELETE' ||
        (method === 'POST' && parts[0] === 'subjects' && parts[2] === 'versions')
      if (write && this.#election && !this.#election.isLeader) {
        if (incoming.headers['x-conveyor-forwarded'])
          throw new HttpError(500, 50004, 'This registry is not the leader')
        const [status, answer] = await this.#forward(method, incoming.url ?? '/', text)
        send(status, answer)
        return
      }
      const request: Request = { method, parts, query: url.searchParams, body }
      const [status, answer] = await this.#route(request)
      send(status, answer)
    } catch (error) {
      if (error instanceof HttpError)
        send(error.status, { error_code: error.errorCode, message: error.message })
      else
        send(500, {
          error_code: 50001,
          message: `Error in the backend data store: ${(error as Error).message}`
        })
    }
  }

  async #route({ method, parts, query, body }: Request): Promise<[number, unknown]> {
    const [root, a, b, c, d] = parts
    const deleted = query.get('deleted') === 'true'
    if (root === 'subjects') {
      if (a === undefined && method === 'GET') return [200, this.#subjects(deleted)]
      if (a !== undefined && b === undefined && method === 'POST')
        return [200, this.#lookup(a, body, deleted, query.get('normalize') === 'true')]
      if (a !== undefined && b === undefined && method === 'DELETE')
        return [200, await this.#deleteSubject(a, query.get('permanent') === 'true')]
      if (a !== undefined && b === 'versions') {
        if (c === undefined && method === 'GET')
          return [200, this.#versions(a, deleted).map((v) => v.version)]
        if (c === undefined && method === 'POST')
          return [200, { id: await this.#register(a, body, query.get('normalize') === 'true') }]
        if (c !== undefined && d === undefined && method === 'GET')
          return [200, versionAnswer(this.#version(a, c, deleted))]
        if (c !== undefined && d === 'schema' && method === 'GET')
          return [200, this.#version(a, c, deleted).schema]
        if (c !== undefined && d === 'referencedby' && method === 'GET')
          return [200, this.#referencedBy(a, c)]
        if (c !== undefined && d === undefined && method === 'DELETE')
          return [200, await this.#deleteVersion(a, c, query.get('permanent') === 'true')]
      }
    }
    if (root === 'schemas') {
      if (a === 'types' && method === 'GET') return [200, ['JSON', 'AVRO']]
      if (a === 'ids' && b !== undefined && method === 'GET') {
        const id = Number(b)
        const schema = this.store.schemasById.get(id)
        if (!schema) throw notFound.schema()
        if (c === undefined) return [200, schemaAnswer(schema)]
        if (c === 'schema') return [200, schema.schema]
        const uses = [...this.store.subjects.values()]
          .flatMap((versions) => [...versions.values()])
          .filter((v) => v.id === id && (deleted || !v.deleted))
        if (c === 'subjects') return [200, [...new Set(uses.map((v) => v.subject))].sort()]
        if (c === 'versions') return [200, uses.map((v) => ({ subject: v.subject, version: v.version }))]
      }
    }
    if (
      root === 'compatibility' &&
      a === 'subjects' &&
      b !== undefined &&
      c === 'versions' &&
      d !== undefined &&
      method === 'POST'
    ) {
      const verbose = query.get('verbose') === 'true'
      const candidate = this.#parse(body)
      const versions = this.#version(b, d, false)
      const level = this.store.compatibilityLevel(b) as CompatibilityLevel
      const result = check(level, candidate, [versions])
      return [
        200,
        verbose
          ? { is_compatible: result.compatible, messages: result.messages }
          : { is_compatible: result.compatible }
      ]
    }
    if (root === 'config') {
      const subject = a ?? null
      if (method === 'GET') {
        const level =
          subject === null
            ? this.store.compatibilityLevel(null)
            : (this.store.configs.get(subject) ??
              (query.get('defaultToGlobal') === 'true' ? this.store.compatibilityLevel(null) : undefined))
        if (level === undefined)
          throw new HttpError(
            404,
            40408,
            `Subject '${subject}' does not have subject-level compatibility configured`
          )
        return [200, { compatibilityLevel: level }]
      }
      if (method === 'PUT') {
        const requested = (body as { compatibility?: string; compatibilityLevel?: string } | undefined) ?? {}
        const level = requested.compatibility ?? requested.compatibilityLevel
        if (!level || !CompatibilityLevels.includes(level as CompatibilityLevel)) {
          throw new HttpError(
            422,
            42203,
            'Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive'
          )
        }
        await this.#write(configKey(subject), JSON.stringify({ compatibilityLevel: level }))
        return [200, { compatibility: level }]
      }
      if (method === 'DELETE' && subject !== null) {
        const level = this.store.configs.get(subject)
        if (level === undefined) throw notFound.subject(subject)
        await this.#write(configKey(subject), null)
        return [200, { compatibilityLevel: level }]
      }
    }
    if (root === 'mode' && method === 'GET')
      return [200, { mode: this.store.modes.get(a ?? null) ?? this.store.modes.get(null) ?? 'READWRITE' }]
    if (root === 'mode' && method === 'PUT') {
      const mode = (body as { mode?: string } | undefined)?.mode
      if (mode !== 'READWRITE' && mode !== 'READONLY' && mode !== 'IMPORT') {
        throw new HttpError(422, 42204, 'Invalid mode. Valid values are READWRITE, READONLY and IMPORT')
      }
      await this.#write(modeKey(a ?? null), JSON.stringify({ mode }))
      return [200, { mode }]
    }
    if (root === undefined && method === 'GET') return [200, {}]
    throw new HttpError(404, 404, 'HTTP 404 Not Found')
  }

  /** Sends a write to the leader and answers with what it answered, once this process has read the result. */
  async #forward(method: string, path: string, body: string): Promise<[number, string]> {
    let leader = this.#election!.leaderUrl
    if (!leader) {
      await this.#election!.refresh()
      leader = this.#election!.leaderUrl
    }
    if (!leader) throw new HttpError(500, 50004, 'Unknown leader: no registry process has been elected yet')
    let response: Response
    try {
      response = await fetch(new URL(path, leader), {
        method,
        headers: { 'content-type': 'application/vnd.schemaregistry.v1+json', 'x-conveyor-forwarded': '1' },
        ...(body.length > 0 ? { body } : {})
      })
    } catch (error) {
      throw new HttpError(
        500,
        50003,
        `Error while forwarding the request to the leader ${leader}: ${(error as Error).message}`
      )
    }
    const answer = await response.text()
    await this.#log.sync()
    return [response.status, answer]
  }

  #subjects(deleted: boolean): string[] {
    return [...this.store.subjects.keys()]
      .filter((s) => (deleted ? this.store.allVersions(s) : this.store.liveVersions(s)).length > 0)
      .sort()
  }

  #versions(subject: string, deleted: boolean): StoredVersion[] {
    const versions = deleted ? this.store.allVersions(subject) : this.store.liveVersions(subject)
    if (versions.length === 0) throw notFound.subject(subject)
    return versions
  }

  #version(subject: string, version: string, deleted: boolean): StoredVersion {
    const versions = this.#versions(subject, deleted)
    if (version === 'latest' || version === '-1') return versions.at(-1)!
    if (!/^\d+$/.test(version) || Number(version) < 1) {
      throw new HttpError(
        422,
        42202,
        `The specified version '${version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`
      )
    }
    const found = versions.find((v) => v.version === Number(version))
    if (!found) throw notFound.version(version)
    return found
  }

  #referencedBy(subject: string, version: string): number[] {
    const target = this.#version(subject, version, false)
    return [...this.store.subjects.values()]
      .flatMap((versions) => [...versions.values()])
      .filter(
        (v) =>
          !v.deleted && v.references.some((r) => r.subject === target.subject && r.version === target.version)
      )
      .map((v) => v.id)
  }

  #input(body: unknown): { schema: string; schemaType: SchemaType; references: SchemaReference[] } {
    const input = body as { schema?: unknown; schemaType?: unknown; references?: unknown } | undefined
    if (typeof input?.schema !== 'string')
      throw new HttpError(422, 42201, 'Invalid schema: the body needs a "schema" string')
    const schemaType = (input.schemaType ?? 'AVRO') as SchemaType
    if (schemaType !== 'AVRO' && schemaType !== 'JSON')
      throw new HttpError(422, 42201, `Invalid schema: unsupported schema type ${String(schemaType)}`)
    return {
      schema: input.schema,
      schemaType,
      references: Array.isArray(input.references) ? (input.references as SchemaReference[]) : []
    }
  }

  /** Parses an Avro candidate (with its references resolved) or fails with 42201. */
  #parse(body: unknown, normalize = false): Parsed {
    const input = this.#input(body)
    try {
      if (input.schemaType === 'JSON')
        return {
          input,
          avro: undefined,
          canonical: JSON.stringify(JSON.parse(input.schema)),
          normalize: false
        }
      const named = new Map<string, AvroSchema>()
      for (const reference of input.references) {
        const referenced = this.#version(reference.subject, String(reference.version), false)
        const parsed = parseAvro(referenced.schema, named)
        if ('fullName' in parsed) named.set(parsed.fullName, parsed)
      }
      const avro = parseAvro(input.schema, named)
      if (!normalize) return { input, avro, canonical: canonical(input.schema), normalize }
      // normalize=true: the normalized text is what is compared and what is stored.
      const normalized = normalizeAvro(avro)
      return { input: { ...input, schema: normalized }, avro, canonical: normalized, normalize }
    } catch (error) {
      if (error instanceof HttpError) throw error
      throw new HttpError(422, 42201, `Invalid schema ${input.schema}: ${(error as Error).message}`)
    }
  }

  #lookup(subject: string, body: unknown, deleted: boolean, normalize: boolean): unknown {
    const parsed = this.#parse(body, normalize)
    const versions = this.#versions(subject, deleted)
    const found = versions.find((v) => sameSchema(v, parsed))
    if (!found) throw notFound.schema()
    return versionAnswer(found)
  }

  #register(subject: string, body: unknown, normalize: boolean): Promise<number> {
    return this.#serialised(async () => {
      await this.#log.sync()
      const mode = this.store.modes.get(subject) ?? this.store.modes.get(null) ?? 'READWRITE'
      if (mode === 'READONLY') throw new HttpError(422, 42205, `Subject ${subject} is in read-only mode`)
      const parsed = this.#parse(body, normalize)
      const all = this.store.allVersions(subject)
      const live = all.filter((v) => !v.deleted)
      const existing = live.find((v) => sameSchema(v, parsed))
      if (existing) return existing.id
      const level = this.store.compatibilityLevel(subject) as CompatibilityLevel
      const result = check(level, parsed, live)
      if (!result.compatible) {
        throw new HttpError(
          409,
          409,
          `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: [${result.messages.join(', ')}]`
        )
      }
      const sameElsewhere = [...this.store.subjects.values()]
        .flatMap((versions) => [...versions.values()])
        .find((v) => sameSchema(v, parsed))
      const id = sameElsewhere?.id ?? this.store.maxId + 1
      const version = (all.at(-1)?.version ?? 0) + 1
      const stored: StoredVersion = {
        subject,
        version,
        id,
        schemaType: parsed.input.schemaType,
        schema: parsed.input.schema,
        references: parsed.input.references,
        deleted: false
      }
      await this.#log.write(schemaKey(subject, version), schemaValue(stored))
      return id
    })
  }

  #deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.#serialised(async () => {
      const all = this.store.allVersions(subject)
      if (all.length === 0) throw notFound.subject(subject)
      if (permanent) {
        if (all.some((v) => !v.deleted)) {
          throw new HttpError(
            404,
            40405,
            `Subject '${subject}' was not deleted first before being permanently deleted`
          )
        }
        for (const version of all) await this.#log.write(schemaKey(subject, version.version), null)
        return all.map((v) => v.version)
      }
      const live = all.filter((v) => !v.deleted)
      if (live.length === 0)
        throw new HttpError(
          404,
          40404,
          `Subject '${subject}' was soft deleted.Set permanent=true to delete permanently`
        )
      await this.#log.write(
        deleteSubjectKey(subject),
        JSON.stringify({ subject, version: live.at(-1)!.version })
      )
      return live.map((v) => v.version)
    })
  }

  #deleteVersion(subject: string, version: string, permanent: boolean): Promise<number> {
    return this.#serialised(async () => {
      const target = this.#version(subject, version, permanent)
      if (permanent) {
        if (!target.deleted) {
          throw new HttpError(
            404,
            40407,
            `Subject '${subject}' Version ${target.version} was not deleted first before being permanently deleted`
          )
        }
        await this.#log.write(schemaKey(subject, target.version), null)
      } else {
        if (target.deleted)
          throw new HttpError(
            404,
            40406,
            `Subject '${subject}' Version ${target.version} was soft deleted.Set permanent=true to delete permanently`
          )
        await this.#log.write(schemaKey(subject, target.version), schemaValue({ ...target, deleted: true }))
      }
      return target.version
    })
  }

  #write(key: string, value: string | null): Promise<void> {
    return this.#serialised(() => this.#log.write(key, value))
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#writing.then(work, work)
    this.#writing = next.catch(() => {})
    return next
  }
}

interface Parsed {
  input: { schema: string; schemaType: SchemaType; references: SchemaReference[] }
  avro: AvroSchema | undefined
  canonical: string
  /** Compare normalized forms (the request said `normalize=true`). */
  normalize: boolean
}

function canonical(schema: string): string {
  try {
    return JSON.stringify(JSON.parse(schema))
  } catch {
    return schema.trim()
  }
}

function sameSchema(version: StoredVersion, parsed: Parsed): boolean {
  const text =
    parsed.normalize && version.schemaType === 'AVRO'
      ? normalizedText(version.schema)
      : canonical(version.schema)
  return (
    version.schemaType === parsed.input.schemaType &&
    text === parsed.canonical &&
    JSON.stringify(version.references) === JSON.stringify(parsed.input.references)
  )
}

/** Normalized texts of stored schemas, computed once each (stored schemas never change). */
const normalizedTexts = new Map<string, string>()

function normalizedText(schema: string): string {
  let text = normalizedTexts.get(schema)
  if (text === undefined) {
    try {
      text = normalizeAvro(parseAvro(schema))
    } catch {
      text = canonical(schema)
    }
    normalizedTexts.set(schema, text)
  }
  return text
}

function check(level: CompatibilityLevel, candidate: Parsed, existing: StoredVersion[]) {
  if (!candidate.avro) return { compatible: true, messages: [] as string[] } // JSON Schema rules: not yet checked
  const older = existing.filter((v) => v.schemaType === 'AVRO').map((v) => parseAvro(v.schema))
  return checkCompatibility(level, candidate.avro, older)
}

function schemaAnswer(schema: { schemaType: SchemaType; schema: string; references: SchemaReference[] }) {
  return {
    ...(schema.schemaType !== 'AVRO' ? { schemaType: schema.schemaType } : {}),
    ...(schema.references.length > 0 ? { references: schema.references } : {}),
    schema: schema.schema
  }
}

function versionAnswer(version: StoredVersion) {
  return { subject: version.subject, version: version.version, id: version.id, ...schemaAnswer(version) }
}
