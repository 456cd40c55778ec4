import { Ajv, type ValidateFunction } from 'ajv'
import { type Codec, DecodeError } from '../codec/json.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { compiledById } from './by-id.ts'
import type { SchemaRegistryClient } from './registry-client.ts'
import { frame, unframe } from './wire.ts'

/** Options of a `JsonSchemaCodec`. */
export interface JsonSchemaCodecOptions {
  /** Where schemas are registered when encoding, and fetched by id when decoding. */
  registry: SchemaRegistryClient
  /** JSON Schemas by message type, for encoding (and validation before anything is sent). */
  schemas?: Record<string, object>
  /** Subject of encoded values: `<topic>-value` (default) or `<topic>-key` with `target: 'key'`. */
  target?: 'key' | 'value'
}

/**
 * JSON Schema values in the Confluent wire format (magic byte, schema id, UTF-8 JSON).
 * Decoding validates the value against the writer's schema: a value that does not match
 * is a `DecodeError` (`schema_validation`) naming the field.
 */
export class JsonSchemaCodec implements Codec {
  /** The format's short name: `json-schema`. */
  readonly name = 'json-schema'
  readonly #registry: SchemaRegistryClient
  readonly #target: 'key' | 'value'
  readonly #ajv = new Ajv({ allErrors: true, strict: false })
  readonly #schemas = new Map<string, { source: string; validate: ValidateFunction }>()
  readonly #validator: (id: number) => Promise<ValidateFunction>
  readonly #ids = new Map<string, Promise<number>>()

  constructor(options: JsonSchemaCodecOptions) {
    this.#registry = options.registry
    this.#validator = compiledById(options.registry, 'JSON', (schema) =>
      this.#ajv.compile(JSON.parse(schema))
    )
    this.#target = options.target ?? 'value'
    for (const [type, schema] of Object.entries(options.schemas ?? {})) {
      try {
        this.#schemas.set(type, { source: JSON.stringify(schema), validate: this.#ajv.compile(schema) })
      } catch (error) {
        throw new ConveyorError(
          ErrorCodes.INVALID_OPTION,
          `the JSON Schema of "${type}" is invalid: ${(error as Error).message}`,
          {
            path: `schemas > ${type}`,
            cause: error
          }
        )
      }
    }
  }

  /**
   * Decodes a framed value, validates it against its writer schema and resolves with it.
   * Rejects with a `DecodeError` (`bad_magic_byte`, `unknown_schema_id`, `not_json_schema`,
   * `invalid_json`, `schema_validation`), or with the `RegistryError` of a failed fetch
   * (retryable when the registry is unreachable or failing).
   */
  async decode(bytes: Buffer | null): Promise<unknown> {
    const { schemaId, payload } = unframe(bytes)
    const validate = await this.#validator(schemaId)
    let value: unknown
    try {
      value = JSON.parse(payload.toString('utf8'))
    } catch (error) {
      throw new DecodeError('invalid_json', `the value is not valid JSON: ${(error as Error).message}`, error)
    }
    if (!validate(value))
      throw new DecodeError(
        'schema_validation',
        `the value does not match schema ${schemaId}: ${describe(validate)}`
      )
    return value
  }

  /**
   * Validates a payload against the schema of its `type`, registers that schema under
   * `<topic>-<target>` (once per subject and type) and resolves with the framed value.
   * Rejects with a `CONVEYOR_INVALID_OPTION` error when the type has no schema or the
   * payload does not match it (`path` names the field), or with the `RegistryError` of a
   * failed registration.
   */
  async encode(value: unknown, { topic, type }: { topic: string; type: string }): Promise<Buffer> {
    const schema = this.#schemas.get(type)
    if (!schema)
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `no JSON Schema for type "${type}"`, {
        path: `schemas > ${type}`
      })
    if (!schema.validate(value)) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `the "${type}" payload does not match its schema: ${describe(schema.validate)}`,
        {
          path: schema.validate.errors?.[0]?.instancePath || 'payload'
        }
      )
    }
    const subject = `${topic}-${this.#target}`
    const key = `${subject}\u0000${type}`
    let id = this.#ids.get(key)
    if (!id) {
      id = this.#registry.register(subject, { schema: schema.source, schemaType: 'JSON' })
      id.catch(() => this.#ids.delete(key))
      this.#ids.set(key, id)
    }
    return frame(await id, Buffer.from(JSON.stringify(value)))
  }
}

function describe(validate: ValidateFunction): string {
  return (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`).join('; ')
}
