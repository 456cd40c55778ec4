import { type Envelope, readEnvelope } from '../core/envelope.ts'
import type { Message } from '../core/message.ts'
import { readVersion } from '../routing/routes.ts'
import type { InboundRecord } from '../transport/types.ts'

/**
 * The message a handler sees for a delivered record. `keyString` and `envelope` are
 * computed on first read (most handlers never read the envelope), so they live on the
 * prototype: a spread copy (`{ ...message }`) does not carry them.
 */
export class DeliveredMessage implements Message {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: Buffer | null
  readonly headers: ReadonlyMap<string, Buffer>
  readonly timestamp: number
  readonly rawValue: Buffer | null
  readonly type: string
  readonly version: number | undefined
  readonly value: unknown
  readonly attempt: number
  readonly #record: InboundRecord
  #keyString: string | null | undefined
  #envelope: Envelope | undefined

  constructor(
    record: InboundRecord,
    type: string,
    value: unknown,
    attempt: number,
    version = readVersion(value)
  ) {
    this.#record = record
    this.topic = record.topic
    this.partition = record.partition
    this.offset = record.offset
    this.key = record.key
    this.headers = record.headers
    this.timestamp = record.timestamp
    this.rawValue = record.value
    this.type = type
    this.version = version
    this.value = value
    this.attempt = attempt
  }

  get keyString(): string | null {
    if (this.#keyString === undefined) this.#keyString = this.key === null ? null : this.key.toString('utf8')
    return this.#keyString
  }

  get envelope(): Envelope {
    this.#envelope ??= readEnvelope(this.headers, {
      id: `${this.topic}-${this.partition}-${this.offset}`,
      type: this.type,
      version: this.version
    })
    return this.#envelope
  }

  /** The same message for another attempt. */
  withAttempt(attempt: number): DeliveredMessage {
    const next = new DeliveredMessage(this.#record, this.type, this.value, attempt, this.version)
    next.#keyString = this.#keyString
    next.#envelope = this.#envelope
    return next
  }
}
