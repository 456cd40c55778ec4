import { DecodeError } from '../codec/json.ts'
import { RegistryError, type SchemaRegistryClient, type SchemaType } from './registry-client.ts'

const names: Record<SchemaType, string> = { AVRO: 'Avro', JSON: 'JSON Schema', PROTOBUF: 'Protobuf' }
const reasons: Record<SchemaType, string> = {
  AVRO: 'not_avro',
  JSON: 'not_json_schema',
  PROTOBUF: 'not_protobuf'
}

/**
 * Writer schemas by registry id, compiled once (`compile`) and kept: ids never change
 * meaning. An id the registry does not know, or a schema of another type, is a
 * `DecodeError` (the message goes to the DLQ); an unreachable registry is passed on as it
 * is (retryable: the message waits), and that failed fetch is forgotten so it is tried again.
 */
export function compiledById<T>(
  registry: SchemaRegistryClient,
  expected: SchemaType,
  compile: (schema: string) => T
): (id: number) => Promise<T> {
  const compiled = new Map<number, Promise<T>>()
  return (id) => {
    let entry = compiled.get(id)
    if (!entry) {
      entry = registry.getById(id).then(
        (registered) => {
          if (registered.schemaType !== expected) {
            throw new DecodeError(
              reasons[expected],
              `schema ${id} is ${names[registered.schemaType]}, not ${names[expected]}`
            )
          }
          return compile(registered.schema)
        },
        (error: unknown) => {
          if (error instanceof RegistryError && error.errorCode === 40403) {
            throw new DecodeError('unknown_schema_id', `the registry has no schema with id ${id}`, error)
          }
          throw error
        }
      )
      entry.catch(() => compiled.delete(id))
      compiled.set(id, entry)
    }
    return entry
  }
}
