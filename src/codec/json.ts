import { ConveyorError, ErrorCodes } from '../core/errors.ts'

/** Turns a record's value bytes into a value and back; Avro and JSON Schema plug in here. */
export interface Codec {
  /** Short name of the format, e.g. `json` or `avro`. */
  readonly name: string
  /** Throws a `DecodeError` when the bytes cannot be decoded. */
  decode(
    bytes: Buffer | null,
    context: { topic: string; headers: ReadonlyMap<string, Buffer> }
  ): unknown | Promise<unknown>
  /** Turns a payload into a record's value bytes; schema codecs pick the schema by `type`. */
  encode(value: unknown, context: { topic: string; type: string }): Buffer | Promise<Buffer>
}

/** A value that cannot be decoded: it goes to the DLQ at once with `reason`. */
export class DecodeError extends ConveyorError {
  /** Why the value cannot be decoded, e.g. `invalid_json`; the DLQ reason (`dlq_reason` header). */
  readonly reason: string

  constructor(reason: string, message: string, cause?: unknown) {
    super(ErrorCodes.DECODE, message, { cause, retryable: false })
    this.name = 'DecodeError'
    this.reason = reason
  }
}

/**
 * What `JSON.parse` found wrong, without the copy of the input V8 puts in its message
 * (`Unexpected token 'h', "hello" is not valid JSON`): the input is shown once, by `preview`.
 */
function parseProblem(error: Error): string {
  const message = error.message.replace(/,? ".*"(\.\.\.)? is not valid JSON$/s, '')
  let escaped = ''
  for (const c of message) escaped += isControl(c) ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c
  return escaped
}

/** C0 and C1 control characters (tab and line breaks included). */
function isControl(c: string): boolean {
  const code = c.charCodeAt(0)
  return code < 0x20 || (code >= 0x7f && code <= 0x9f)
}

/** The first bytes of a value for an error message: escaped text when it is text, else hex. */
export function preview(bytes: Buffer, max = 32): string {
  const head = bytes.subarray(0, max)
  const more = bytes.length > max ? ` … (${bytes.length} bytes)` : ''
  const text = head.toString('utf8')
  // Text (whitespace allowed, and one character that a cut at `max` broke): show it escaped.
  let unreadable = 0
  for (const c of text) if (c === '\ufffd' || (isControl(c) && !'\t\n\r'.includes(c))) unreadable++
  if (unreadable <= 1 && text.length > unreadable) return `${JSON.stringify(text)}${more}`
  return `with bytes ${head.toString('hex').replace(/(..)(?!$)/g, '$1 ')}${more}`
}

/**
 * JSON objects (UTF-8). Anything else is a `DecodeError`: an empty value
 * (`empty_value`), text that is not JSON (`invalid_json`), JSON that is not an object
 * (`not_an_object`).
 */
export const jsonCodec: Codec = Object.freeze({
  name: 'json',
  decode(bytes: Buffer | null) {
    if (bytes === null || bytes.length === 0) throw new DecodeError('empty_value', 'the message has no value')
    let value: unknown
    try {
      value = JSON.parse(bytes.toString('utf8'))
    } catch (error) {
      throw new DecodeError(
        'invalid_json',
        `the value is not valid JSON: ${parseProblem(error as Error)}; it starts ${preview(bytes)}`
      )
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`
      throw new DecodeError('not_an_object', `expected a JSON object, got ${kind}`)
    }
    return value
  },
  encode(value: unknown) {
    return Buffer.from(JSON.stringify(value))
  }
})
