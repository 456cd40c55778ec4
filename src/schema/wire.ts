import { DecodeError } from '../codec/json.ts'

/**
 * The Confluent wire format: magic byte 0, the schema id as a 4-byte big-endian integer,
 * then the encoded payload.
 */
export function frame(schemaId: number, payload: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(wireHeaderSize + payload.length)
  payload.copy(framed, wireHeaderSize)
  return withSchemaId(framed, schemaId)
}

/** The magic byte and the schema id. */
export const wireHeaderSize = 5

/** Writes the wire format's header into the first 5 bytes of `framed` (encoded after them). */
export function withSchemaId(framed: Buffer, schemaId: number): Buffer {
  framed[0] = 0
  framed.writeInt32BE(schemaId, 1)
  return framed
}

/** Splits a framed value; anything that is not one is a `DecodeError` (`bad_magic_byte`). */
export function unframe(bytes: Buffer | null): { schemaId: number; payload: Buffer } {
  if (bytes === null || bytes.length < 5) {
    throw new DecodeError(
      'bad_magic_byte',
      bytes === null
        ? 'the record has no value (the schema registry wire format needs at least 5 bytes)'
        : `the value is too short for the schema registry wire format: ${bytes.length} bytes, where the magic byte and schema id alone take 5`
    )
  }
  if (bytes[0] !== 0) {
    throw new DecodeError(
      'bad_magic_byte',
      `the value starts with byte ${bytes[0]}, not the wire format's magic byte 0`
    )
  }
  return { schemaId: bytes.readInt32BE(1), payload: bytes.subarray(5) }
}
