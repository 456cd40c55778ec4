import { type Codec, jsonCodec } from '../codec/json.ts'
import {
  type Envelope,
  EnvelopeHeaders,
  type EnvelopeInput,
  envelopeHeaders,
  newEnvelope
} from '../core/envelope.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { Message } from '../core/message.ts'
import { type ProducerSendEvent, producerSendChannel } from '../instrumentation/channels.ts'
import { check } from '../routing/routes.ts'
import type { Publisher, RecordPosition, Transport } from '../transport/types.ts'
import { Utf8Cache } from '../util/utf8-cache.ts'

/** Options of `createProducer`; only `transport` is required. */
export interface ProducerOptions {
  /** Where records are written; the producer takes one publisher from it when it is made. */
  transport: Transport
  /** Topic used when `send` names none. */
  topic?: string
  /** The envelope's `source`, e.g. `urn:service:billing`. */
  source?: string
  /** Encodes payloads. Default: JSON. */
  codec?: Codec
  /**
   * Payload field that carries the message type (the consumers' default `typeFrom`), set
   * by `send` when the payload lacks it; `false` leaves payloads alone. Default `message_type`.
   */
  typeField?: string | false
}

/** Options of one message to send. */
export interface SendOptions {
  /** Record key: it picks the partition, so the messages of one key keep their order. Default: none. */
  key?: string | Buffer | null
  /** Topic to write to. Default: the producer's `topic`. */
  topic?: string
  /** Extra headers, besides the envelope's. */
  headers?: Record<string, string | Buffer>
  /** The message being handled: the new one inherits its correlation and names it as cause. */
  parent?: Message | Envelope
  /** Envelope fields to set (id, version, time, correlationId, tenantId, …). */
  envelope?: Omit<EnvelopeInput, 'type'>
}

/** Message type → payload type, so `send` checks payloads at compile time. */
export type MessageTypes = Record<string, object>

/**
 * A producer of typed messages: each `send` encodes the payload, sets the envelope
 * headers and resolves with the record's partition and offset once the broker has
 * acknowledged it (idempotent, acks=all on Kafka). It rejects with a `CONVEYOR_PUBLISH`
 * error (retryable) when the write failed: nothing is dropped silently.
 */
export class ConveyorProducer<Types extends { [K in keyof Types]: object } = MessageTypes> {
  readonly #options: ProducerOptions & { codec: Codec; typeField: string | false }
  readonly #publisher: Publisher
  /** Envelope values that repeat from message to message (see `repeatingHeaders`). */
  readonly #repeating = new Utf8Cache()

  /** `publisher` is for `through`: without it the producer takes one from the transport. */
  constructor(options: ProducerOptions, publisher?: Publisher) {
    check(typeof options.transport === 'object' && options.transport !== null, 'transport', 'is required')
    if (options.topic !== undefined)
      check(typeof options.topic === 'string' && options.topic.length > 0, 'topic', 'must be a topic name')
    this.#options = { codec: jsonCodec, typeField: 'message_type', ...options }
    this.#publisher = publisher ?? options.transport.publisher()
  }

  /**
   * The same producer (options, codec, envelope) writing through `publisher` instead: a
   * transaction's, for instance. Closing it closes that publisher.
   */
  through(publisher: Publisher): ConveyorProducer<Types> {
    return new ConveyorProducer<Types>(this.#options, publisher)
  }

  /**
   * Sends one message; resolves with its topic, partition and offset once the broker has
   * acknowledged it. Rejects with `CONVEYOR_INVALID_OPTION` when no topic is known or the
   * payload is not an object, and with `CONVEYOR_PUBLISH` (retryable) when the write failed.
   */
  async send<K extends keyof Types & string>(
    type: K,
    payload: Types[K],
    options: SendOptions = {}
  ): Promise<RecordPosition> {
    const [position] = await this.sendMany([{ type, payload, ...options }])
    return position!
  }

  /** Sends several messages in one request; positions come back in the same order. */
  async sendMany<K extends keyof Types & string>(
    messages: Array<{ type: K; payload: Types[K] } & SendOptions>
  ): Promise<RecordPosition[]> {
    // One timestamp for the batch (the messages are handed over together); values are
    // encoded synchronously where the codec can, and only awaited where it cannot.
    const time = new Date().toISOString()
    const records: Array<{
      topic: string
      type: string
      key: string | Buffer | null
      value: Buffer
      headers: Map<string, string | Buffer>
    }> = []
    let pending: Array<Promise<void>> | undefined
    for (const { type, payload, key, topic, headers, parent, envelope: fields } of messages) {
      const target = topic ?? this.#options.topic
      if (!target)
        throw new ConveyorError(
          ErrorCodes.INVALID_OPTION,
          `no topic for "${type}": pass { topic } or set the producer's topic`,
          { path: 'topic' }
        )
      if (typeof payload !== 'object' || payload === null) {
        throw new ConveyorError(ErrorCodes.INVALID_OPTION, `the payload of "${type}" must be an object`, {
          path: 'payload'
        })
      }
      const parentEnvelope =
        parent && 'envelope' in parent ? parent.envelope : (parent as Envelope | undefined)
      const envelope = newEnvelope({ source: this.#options.source, time, ...fields, type }, parentEnvelope)
      const field = this.#options.typeField
      const value = field && !(field in payload) ? { [field]: type, ...payload } : payload
      const all: Map<string, string | Buffer> = envelopeHeaders(envelope)
      // Header values go to the transport as bytes (then passed on as they are).
      for (const [name, text] of all)
        all.set(
          name,
          repeatingHeaders.has(name) ? this.#repeating.bytes(text as string) : Buffer.from(text as string)
        )
      if (headers) for (const [name, header] of Object.entries(headers)) all.set(name, header)
      const encoded = this.#options.codec.encode(value, { topic: target, type })
      const record = { topic: target, type, key: key ?? null, value: encoded as Buffer, headers: all }
      records.push(record)
      if (!Buffer.isBuffer(encoded)) {
        pending ??= []
        pending.push(
          Promise.resolve(encoded).then((bytes) => {
            record.value = bytes
          })
        )
      }
    }
    if (pending) await Promise.all(pending)
    if (!producerSendChannel.hasSubscribers) return this.#publisher.send(records)
    // Instrumentation (tracing) sees each record before it is sent and after it is written.
    const events: ProducerSendEvent[] = records.map((r) => ({
      topic: r.topic,
      type: r.type,
      key: r.key,
      headers: r.headers
    }))
    for (const event of events) producerSendChannel.start.publish(event)
    try {
      const positions = await this.#publisher.send(records)
      events.forEach((event, index) => {
        const position = positions[index]
        if (position) event.result = { partition: position.partition, offset: position.offset }
        producerSendChannel.asyncEnd.publish(event)
      })
      return positions
    } catch (error) {
      for (const event of events) {
        event.error = error
        producerSendChannel.error.publish(event)
        producerSendChannel.asyncEnd.publish(event)
      }
      throw error
    }
  }

  /** Closes the producer's publisher; resolves once it is closed. */
  async close(): Promise<void> {
    await this.#publisher.close()
  }
}

/**
 * Envelope headers whose values repeat across messages (one spec version, a few types and
 * sources, one time per batch): their bytes are shared between records instead of encoded
 * for each. Ids (unique per message) are encoded for each.
 */
const repeatingHeaders: ReadonlySet<string> = new Set([
  EnvelopeHeaders.specVersion,
  EnvelopeHeaders.type,
  EnvelopeHeaders.source,
  EnvelopeHeaders.time,
  EnvelopeHeaders.version,
  EnvelopeHeaders.tenantId
])

/** Creates a producer; see `ConveyorProducer`. */
export function createProducer<Types extends { [K in keyof Types]: object } = MessageTypes>(
  options: ProducerOptions
): ConveyorProducer<Types> {
  return new ConveyorProducer<Types>(options)
}
