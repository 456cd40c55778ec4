import { randomUUID } from 'node:crypto'
import {
  Admin,
  Consumer,
  type MessagesStream,
  ProduceAcks,
  Producer,
  stringDeserializers
} from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { clientOptions, hasApiId, type KafkaConnection, translateKafkaError } from '../kafka/connection.ts'
import { waitFor } from '../util/wait.ts'

export interface SchemasLogOptions {
  connection: KafkaConnection
  /** The storage topic. Default `_schemas`, as Confluent Schema Registry. */
  topic?: string
}

/**
 * The registry's storage: one compacted, single-partition topic read from the start in
 * offset order. A write resolves once this process has read its own record back, so what
 * a caller gets next reflects it.
 */
export class SchemasLog {
  readonly topic: string
  readonly #connection: KafkaConnection
  readonly #apply: (key: string, value: string | null) => void
  #consumer: Consumer<string, string, string, string> | undefined
  #stream: MessagesStream<string, string, string, string> | undefined
  #producer: Producer | undefined
  /** The next offset to read. */
  #position = 0n

  constructor(options: SchemasLogOptions, apply: (key: string, value: string | null) => void) {
    this.topic = options.topic ?? '_schemas'
    this.#connection = options.connection
    this.#apply = apply
  }

  /** Creates the topic if needed and reads it to its end. */
  async start(): Promise<void> {
    const admin = new Admin(clientOptions(this.#connection))
    try {
      const topics = await admin.listTopics({ includeInternals: true })
      if (!topics.includes(this.topic)) {
        const metadata = await admin.metadata({ topics: [] })
        await admin
          .createTopics({
            topics: [this.topic],
            partitions: 1,
            replicas: Math.min(3, metadata.brokers.size),
            configs: [{ name: 'cleanup.policy', value: 'compact' }]
          })
          .catch((error: unknown) => {
            // Another registry process created it first.
            if (!hasApiId(error, 'TOPIC_ALREADY_EXISTS')) throw error
          })
      }
    } catch (error) {
      throw translateKafkaError(error, this.#connection)
    } finally {
      await admin.close()
    }
    this.#producer = new Producer({
      ...clientOptions(this.#connection),
      acks: ProduceAcks.ALL,
      idempotent: true
    })
    this.#consumer = new Consumer({
      ...clientOptions(this.#connection),
      groupId: `conveyor-registry-reader-${randomUUID()}`,
      deserializers: stringDeserializers,
      autocommit: false,
      maxWaitTime: 100
    })
    this.#stream = await this.#consumer.consume({ topics: [this.topic], mode: 'earliest' })
    this.#stream.on('data', (message) => {
      this.#apply(
        message.key,
        message.value === undefined || message.value === null ? null : String(message.value)
      )
      this.#position = message.offset + 1n
    })
    const end = await this.#endOffset()
    await this.#readUpTo(end, 60_000)
  }

  /** Appends a record and resolves once it has been read back (and so applied). */
  async write(key: string, value: string | null): Promise<void> {
    if (!this.#producer) throw new ConveyorError(ErrorCodes.STATE, 'the schemas log is not started')
    const result = await this.#producer.send({
      messages: [
        {
          topic: this.topic,
          partition: 0,
          key: Buffer.from(key),
          value: value === null ? undefined : Buffer.from(value)
        }
      ]
    })
    const offset = result.offsets?.find((o) => o.partition === 0)?.offset
    if (offset === undefined)
      throw new ConveyorError(ErrorCodes.PUBLISH, `no offset for the write to ${this.topic}`, {
        retryable: true
      })
    await this.#readUpTo(offset + 1n, 30_000)
  }

  /** Reads up to the current end of the log (what other registry processes wrote). */
  async sync(): Promise<void> {
    await this.#readUpTo(await this.#endOffset(), 30_000)
  }

  async #endOffset(): Promise<bigint> {
    const offsets = await this.#consumer!.listOffsets({ topics: [this.topic], isolationLevel: 0 })
    return offsets.get(this.topic)?.[0] ?? 0n
  }

  async #readUpTo(offset: bigint, timeout: number): Promise<void> {
    if (this.#position >= offset) return
    await waitFor(() => this.#position >= offset, {
      timeout,
      interval: 5,
      description: `${this.topic} read up to offset ${offset}`
    })
  }

  async close(): Promise<void> {
    await this.#stream?.close().catch(() => {})
    await this.#consumer?.close(true).catch(() => {})
    await this.#producer?.close(true).catch(() => {})
  }
}
