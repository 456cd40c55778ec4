/**
 * UTF-8 bytes of strings that repeat (header names, envelope values), made once and
 * shared. Bounded: past `limit` distinct strings it starts afresh, so text that does not
 * repeat costs a little and never accumulates. The bytes are shared: never write to them.
 */
export class Utf8Cache {
  readonly #bytes = new Map<string, Buffer>()
  readonly #limit: number

  constructor(limit = 1_024) {
    this.#limit = limit
  }

  bytes(text: string): Buffer {
    let bytes = this.#bytes.get(text)
    if (bytes === undefined) {
      if (this.#bytes.size >= this.#limit) this.#bytes.clear()
      bytes = Buffer.from(text)
      this.#bytes.set(text, bytes)
    }
    return bytes
  }
}
