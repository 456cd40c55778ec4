import { type Codec, DecodeError, jsonCodec } from '../codec/json.ts'
import { AvroCodec } from './avro-codec.ts'
import { JsonSchemaCodec } from './json-schema-codec.ts'
import type { SchemaRegistryClient } from './registry-client.ts'

/**
 * Decodes whatever a topic holds: values in the wire format by their schema's type (Avro or
 * JSON Schema, looked up in the registry), anything else as plain JSON. For tools such as
 * `conveyor tail`, and for consumers of topics that mix both.
 */
export class AnyCodec implements Codec {
  readonly name = 'any'
  readonly #registry: SchemaRegistryClient | undefined
  readonly #avro: AvroCodec | undefined
  readonly #json: JsonSchemaCodec | undefined

  constructor(registry?: SchemaRegistryClient) {
    this.#registry = registry
    this.#avro = registry ? new AvroCodec({ registry }) : undefined
    this.#json = registry ? new JsonSchemaCodec({ registry }) : undefined
  }

  async decode(
    bytes: Buffer | null,
    context: { topic: string; headers: ReadonlyMap<string, Buffer> }
  ): Promise<unknown> {
    if (bytes && bytes.length >= 5 && bytes[0] === 0) {
      if (!this.#registry)
        throw new DecodeError(
          'no_registry',
          'the value is in the schema registry wire format, and no registry is configured'
        )
      const { schemaType } = await this.#registry.getById(bytes.readInt32BE(1))
      return schemaType === 'JSON' ? this.#json!.decode(bytes) : this.#avro!.decode(bytes)
    }
    return jsonCodec.decode(bytes, context)
  }

  encode(value: unknown, context: { topic: string; type: string }): Buffer | Promise<Buffer> {
    return jsonCodec.encode(value, context)
  }
}
