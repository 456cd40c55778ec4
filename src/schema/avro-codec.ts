import avro from 'avsc'
import { type Codec, DecodeError } from '../codec/json.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { compiledById } from './by-id.ts'
import type { SchemaRegistryClient } from './registry-client.ts'
import { unframe, wireHeaderSize, withSchemaId } from './wire.ts'

/**
 * How `AvroCodec` names the subject of an encoded value: `topic` is `<topic>-value` (or
 * `<topic>-key`), `record` the schema's full name, `topic-record` `<topic>-<full name>`.
 */
export type SubjectNameStrategy = 'topic' | 'record' | 'topic-record'

/** Options of an `AvroCodec`. */
export interface AvroCodecOptions {
  /** Where schemas are registered (or looked up) when encoding, and fetched by id when decoding. */
  registry: SchemaRegistryClient
  /**
   * Schemas by message type: the writer schema when encoding, and the reader schema
   * when decoding (data written with an older version is resolved into it, defaults
   * filled in). A type without one is decoded with the writer's schema as it is.
   */
  schemas?: Record<string, string | object>
  /** Field of the decoded value that holds the message type. Default `message_type`. */
  typeField?: string
  /** How the subject of an encoded value is named. Default `topic` (`<topic>-value`, or `<topic>-key`). */
  subjectNameStrategy?: SubjectNameStrategy
  /** Whether this codec encodes record keys or values (the `topic` strategy's suffix). Default `value`. */
  target?: 'key' | 'value'
  /** Register schemas when encoding (default) or only look them up. */
  autoRegister?: boolean
  /**
   * Told once per writer schema whose fields the reader schema lacks (Avro's resolution
   * skips them): `fields` are their paths, e.g. `values.comment`.
   */
  onIgnoredFields?: (event: { schemaId: number; type: string; fields: string[] }) => void
}

type AvroType = ReturnType<typeof avro.Type.forSchema>

/**
 * Avro values in the Confluent wire format, through a schema registry. Schemas and
 * resolvers are cached by id, so the hot path makes no HTTP call.
 *
 * Decoding: a value that is not framed (`bad_magic_byte`), names an unknown schema id
 * (`unknown_schema_id`) or does not match its schema (`invalid_avro`) is a `DecodeError`
 * (dead-lettered); an unreachable registry is a retryable error (the message waits).
 */
export class AvroCodec implements Codec {
  /** The format's short name: `avro`. */
  readonly name = 'avro'
  readonly #registry: SchemaRegistryClient
  readonly #typeField: string
  readonly #strategy: SubjectNameStrategy
  readonly #autoRegister: boolean
  readonly #target: 'key' | 'value'
  readonly #readers = new Map<string, AvroType>()
  readonly #writer: (id: number) => Promise<AvroType>
  readonly #resolvers = new Map<string, unknown>()
  readonly #ids = new Map<string, Promise<number>>()
  /** Ids already known, by topic and type: the encoding hot path. */
  readonly #resolved = new Map<string, Map<string, number>>()
  readonly #sources = new Map<string, string>()
  readonly #onIgnoredFields: AvroCodecOptions['onIgnoredFields']

  constructor(options: AvroCodecOptions) {
    this.#registry = options.registry
    this.#writer = compiledById(options.registry, 'AVRO', (schema) => avro.Type.forSchema(JSON.parse(schema)))
    this.#typeField = options.typeField ?? 'message_type'
    this.#strategy = options.subjectNameStrategy ?? 'topic'
    this.#autoRegister = options.autoRegister ?? true
    this.#target = options.target ?? 'value'
    this.#onIgnoredFields = options.onIgnoredFields
    for (const [type, schema] of Object.entries(options.schemas ?? {})) {
      try {
        this.#readers.set(
          type,
          avro.Type.forSchema(typeof schema === 'string' ? JSON.parse(schema) : (schema as never))
        )
        this.#sources.set(type, typeof schema === 'string' ? schema : JSON.stringify(schema))
      } catch (error) {
        throw new ConveyorError(
          ErrorCodes.INVALID_OPTION,
          `the Avro schema of "${type}" is invalid: ${(error as Error).message}`,
          {
            path: `schemas > ${type}`,
            cause: error
          }
        )
      }
    }
  }

  /**
   * Decodes a framed value with its writer schema (read into its message type's schema in
   * `schemas` when there is one) and resolves with the value. Rejects with a `DecodeError`
   * (`bad_magic_byte`, `unknown_schema_id`, `not_avro`, `invalid_avro`, `incompatible_schema`),
   * or with the `RegistryError` of a failed fetch (retryable when the registry is unreachable
   * or failing).
   */
  async decode(bytes: Buffer | null): Promise<unknown> {
    const { schemaId, payload } = unframe(bytes)
    const writer = await this.#writer(schemaId)
    let value: unknown
    try {
      value = writer.fromBuffer(payload)
    } catch (error) {
      throw new DecodeError(
        'invalid_avro',
        `the value does not match schema ${schemaId}: ${(error as Error).message}`,
        error
      )
    }
    const type = (value as Record<string, unknown> | null)?.[this.#typeField]
    const reader = typeof type === 'string' ? this.#readers.get(type) : undefined
    if (!reader) return value
    const key = `${schemaId}\u0000${type}`
    let resolver = this.#resolvers.get(key)
    if (!resolver) {
      try {
        // Named types match on their short names (as in Avro's Java reader and the
        // registry's compatibility rules): a writer under another namespace is readable.
        resolver = reader.createResolver(writer, { ignoreNamespaces: true } as never)
      } catch (error) {
        throw new DecodeError(
          'incompatible_schema',
          `schema ${schemaId} cannot be read as "${type}": ${(error as Error).message}`,
          error
        )
      }
      this.#resolvers.set(key, resolver)
      const ignored = this.#onIgnoredFields ? fieldsOnlyIn(writer, reader) : []
      if (ignored.length > 0) this.#onIgnoredFields!({ schemaId, type: type as string, fields: ignored })
    }
    return reader.fromBuffer(payload, resolver as never)
  }

  /**
   * Validates and encodes a payload. Synchronous once the schema's id is known (the hot
   * path makes no registry call and allocates no promise); the first payload of a subject
   * waits for the registration or lookup.
   */
  encode(value: unknown, { topic, type }: { topic: string; type: string }): Buffer | Promise<Buffer> {
    const schema = this.#readers.get(type)
    if (!schema)
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `no Avro schema for type "${type}"`, {
        path: `schemas > ${type}`
      })
    let framed: Buffer
    try {
      framed = encodeFramed(schema, value) // avsc's writers check every value as they go
    } catch (error) {
      throw this.#invalid(schema, type, value, error)
    }
    const known = this.#resolved.get(topic)?.get(type)
    if (known !== undefined) return withSchemaId(framed, known)
    return this.#idFor(topic, type, schema).then((id) => withSchemaId(framed, id))
  }

  /** The error for a payload that does not match its schema, naming the fields. */
  #invalid(schema: AvroType, type: string, value: unknown, cause: unknown): ConveyorError {
    const problems: string[] = []
    schema.isValid(value, { errorHook: (path) => problems.push(path.join('.') || '(root)') })
    return new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      problems.length > 0
        ? `the "${type}" payload does not match its schema at ${problems.join(', ')}`
        : `the "${type}" payload cannot be encoded: ${(cause as Error).message}`,
      { path: problems[0] ?? 'payload', cause }
    )
  }

  async #idFor(topic: string, type: string, schema: AvroType): Promise<number> {
    const subject = this.#subject(topic, schema)
    const cacheKey = `${subject}\u0000${type}`
    let id = this.#ids.get(cacheKey)
    if (!id) {
      const input = { schema: this.#sources.get(type)! }
      id = this.#autoRegister
        ? this.#registry.register(subject, input)
        : this.#registry.lookup(subject, input).then((v) => v.id)
      id.catch(() => this.#ids.delete(cacheKey))
      this.#ids.set(cacheKey, id)
    }
    const resolved = await id
    let byType = this.#resolved.get(topic)
    if (!byType) {
      byType = new Map()
      this.#resolved.set(topic, byType)
    }
    byType.set(type, resolved)
    return resolved
  }

  #subject(topic: string, schema: AvroType): string {
    const name = schema.name ?? 'value'
    switch (this.#strategy) {
      case 'record':
        return name
      case 'topic-record':
        return `${topic}-${name}`
      default:
        return `${topic}-${this.#target}`
    }
  }
}

type AvroField = { name: string; type: AvroType; aliases?: string[] }

/** The record inside a type: itself, or the one record branch of a union (e.g. `["null", record]`). */
function recordOf(type: AvroType): { fields: AvroField[] } | undefined {
  const t = type as unknown as { typeName: string; fields?: AvroField[]; types?: AvroType[] }
  if (t.typeName === 'record' || t.typeName === 'error') return t as { fields: AvroField[] }
  const records = (t.types ?? []).map(recordOf).filter((r) => r !== undefined)
  return records.length === 1 ? records[0] : undefined
}

/** Paths of the writer's record fields that the reader has no field (or alias) for. */
export function fieldsOnlyIn(writer: AvroType, reader: AvroType, path = ''): string[] {
  const w = recordOf(writer)
  const r = recordOf(reader)
  if (!w || !r) return []
  const found: string[] = []
  for (const field of w.fields) {
    const match = r.fields.find((f) => f.name === field.name || f.aliases?.includes(field.name))
    const at = path ? `${path}.${field.name}` : field.name
    if (!match) found.push(at)
    else found.push(...fieldsOnlyIn(field.type, match.type, at))
  }
  return found
}

/**
 * Values are encoded into this scratch space (grown when one does not fit), then copied
 * out at their exact size: one allocation and one copy per value, where avsc's
 * `toBuffer` and a separate framing step would make two of each (the first zero-filled).
 */
let scratch = Buffer.allocUnsafe(64 * 1024)

/** The value in the wire format, its 5-byte header left for `withSchemaId`. */
function encodeFramed(schema: AvroType, value: unknown): Buffer {
  let end = schema.encode(value, scratch, wireHeaderSize)
  if (end < 0) {
    // avsc tells how many bytes were missing (as a negative number): make room and write again.
    scratch = Buffer.allocUnsafe(Math.max(2 * scratch.length, scratch.length - end))
    end = schema.encode(value, scratch, wireHeaderSize)
  }
  const framed = Buffer.allocUnsafe(end)
  scratch.copy(framed, wireHeaderSize, wireHeaderSize, end)
  return framed
}
