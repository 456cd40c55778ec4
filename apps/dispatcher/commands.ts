/**
 * Decoding commands. Producers send them two ways, and both are accepted:
 * - Avro in the Confluent wire format, decoded through the schema registry and resolved
 *   into the newest catalog version of its message type (defaults filled in);
 * - JSON with the same fields, validated against a JSON Schema derived from the type's
 *   Avro schema in the catalog (one source of truth), defaults filled in, and an older
 *   `version` resolved into the newest one as Avro would.
 * A command that fails either way is a `DecodeError` (dead-lettered at once with the reason).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import avro from 'avsc'
import { type Codec, DecodeError, jsonCodec, preview } from '../../src/codec/json.ts'
import { AvroCodec } from '../../src/schema/avro-codec.ts'
import type { CatalogEntry } from '../../src/schema/catalog.ts'
import type { SchemaRegistryClient } from '../../src/schema/registry-client.ts'

type Json = Record<string, unknown>

/** A JSON Schema (draft 2020-12 subset) accepting the JSON form of values of an Avro schema. */
export function avroToJsonSchema(schema: unknown, named = new Map<string, Json>(), namespace?: string): Json {
  if (typeof schema === 'string') {
    switch (schema) {
      case 'null':
        return { type: 'null' }
      case 'boolean':
        return { type: 'boolean' }
      case 'int':
      case 'long':
        return { type: 'integer' }
      case 'float':
      case 'double':
        return { type: 'number' }
      case 'string':
      case 'bytes':
        return { type: 'string' }
      default: {
        const found = named.get(schema) ?? (namespace ? named.get(`${namespace}.${schema}`) : undefined)
        if (!found) throw new Error(`unknown Avro type "${schema}"`)
        return found
      }
    }
  }
  if (Array.isArray(schema))
    return { anyOf: schema.map((branch) => avroToJsonSchema(branch, named, namespace)) }
  const s = schema as Json
  const fullName = (name: unknown, ns: unknown) =>
    typeof name === 'string' && name.includes('.')
      ? name
      : `${(ns as string) ?? namespace ?? ''}.${name}`.replace(/^\./, '')
  switch (s.type) {
    case 'record':
    case 'error': {
      const ns = (s.namespace as string | undefined) ?? namespace
      const properties: Json = {}
      const required: string[] = []
      for (const field of s.fields as Array<{ name: string; type: unknown; default?: unknown }>) {
        const property = avroToJsonSchema(field.type, named, ns)
        properties[field.name] = 'default' in field ? { ...property, default: field.default } : property
        if (!('default' in field)) required.push(field.name)
      }
      const result: Json = { type: 'object', properties, required }
      named.set(fullName(s.name, ns), result)
      return result
    }
    case 'enum': {
      const result = { enum: s.symbols }
      named.set(fullName(s.name, s.namespace), result)
      return result
    }
    case 'fixed': {
      const result = { type: 'string' }
      named.set(fullName(s.name, s.namespace), result)
      return result
    }
    case 'map':
      return { type: 'object', additionalProperties: avroToJsonSchema(s.values, named, namespace) }
    case 'array':
      return { type: 'array', items: avroToJsonSchema(s.items, named, namespace) }
    default:
      return avroToJsonSchema(s.type, named, namespace)
  }
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .filter((e) => e.keyword !== 'anyOf')
    .slice(0, 5)
    .map((e) => {
      const at = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || '(root)'
      if (e.keyword === 'required')
        return `${at === '(root)' ? '' : `${at}.`}${e.params.missingProperty} is required`
      return `${at} ${e.message}`
    })
    .join('; ')
}

type AvroType = ReturnType<typeof avro.Type.forSchema>

/** Whether the first byte that is not JSON whitespace is `{`. */
function startsLikeJsonObject(bytes: Buffer): boolean {
  for (const byte of bytes) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue
    return byte === 0x7b
  }
  return false
}

interface Version {
  version: number
  validate: ValidateFunction
  type: AvroType
}

/** Decodes Avro and JSON commands of the catalog's message types (see the file comment). */
export class CommandCodec implements Codec {
  readonly name = 'commands'
  readonly #avro: AvroCodec | undefined
  readonly #versions = new Map<string, Version[]>()
  readonly #resolvers = new Map<string, unknown>()

  constructor({
    registry,
    catalog,
    logger
  }: {
    registry?: SchemaRegistryClient
    catalog: Map<string, CatalogEntry[]>
    /** Told (warn) of writer schemas with fields the catalog does not know, which decoding skips. */
    logger?: { warn(object: object, message: string): void }
  }) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false })
    const latest: Record<string, string> = {}
    for (const [type, entries] of catalog) {
      latest[type] = entries.at(-1)!.source
      this.#versions.set(
        type,
        entries.map((entry) => {
          const parsed = JSON.parse(entry.source)
          return {
            version: entry.version,
            validate: ajv.compile(avroToJsonSchema(parsed)),
            type: avro.Type.forSchema(parsed)
          }
        })
      )
    }
    this.#avro = registry
      ? new AvroCodec({
          registry,
          schemas: latest,
          subjectNameStrategy: 'topic-record',
          onIgnoredFields: ({ schemaId, type, fields }) =>
            logger?.warn(
              { schemaId, messageType: type, fields },
              `commands written with schema ${schemaId} carry fields the ${type} schema does not know; they are ignored`
            )
        })
      : undefined
  }

  /**
   * Avro when the value starts with the wire format's magic byte 0, JSON when it starts
   * with `{` (after whitespace). With a registry, the topic's commands are Avro, so
   * anything else is a framing error (`bad_magic_byte`); without one, it is not JSON.
   */
  async decode(bytes: Buffer | null, context: { topic: string; headers: ReadonlyMap<string, Buffer> }) {
    if (bytes && bytes.length > 0 && bytes[0] === 0) {
      if (!this.#avro)
        throw new DecodeError(
          'no_registry',
          'the command is Avro in the wire format, and no registry.url is set'
        )
      return this.#avro.decode(bytes)
    }
    if (this.#avro && bytes && bytes.length > 0 && !startsLikeJsonObject(bytes))
      throw new DecodeError(
        'bad_magic_byte',
        `the value is neither Avro in the wire format (magic byte 0) nor a JSON object: it starts ${preview(bytes)}`
      )
    const value = jsonCodec.decode(bytes, context) as Json
    const type = value.message_type
    if (typeof type !== 'string' || type.length === 0)
      throw new DecodeError('invalid_command', 'message_type is required (a non-empty string)')
    const versions = this.#versions.get(type)
    if (!versions) return value // not a catalog type: the route decides (or the DLQ, as unknown)
    const asked = value.version ?? versions.at(-1)!.version
    const version = versions.find((v) => v.version === asked)
    if (!version)
      throw new DecodeError(
        'unknown_version',
        `${type} has no version ${JSON.stringify(asked)} (known: ${versions.map((v) => v.version).join(', ')})`
      )
    if (!version.validate(value))
      throw new DecodeError(
        'invalid_command',
        `${type} v${version.version}: ${describeErrors(version.validate.errors)}`
      )
    const newest = versions.at(-1)!
    if (version === newest) return value
    const key = `${type}\u0000${version.version}`
    let resolver = this.#resolvers.get(key)
    if (!resolver) {
      resolver = newest.type.createResolver(version.type)
      this.#resolvers.set(key, resolver)
    }
    return newest.type.fromBuffer(version.type.toBuffer(value), resolver as never)
  }

  encode(value: unknown, context: { topic: string; type: string }): Buffer | Promise<Buffer> {
    return this.#avro ? this.#avro.encode(value, context) : jsonCodec.encode(value, context)
  }
}
