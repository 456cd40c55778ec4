import {
  Admin,
  type CompressionAlgorithmValue,
  Consumer,
  compatibilityPartitioner,
  type GroupAssignment,
  type Message as KafkaMessage,
  type MessagesStream,
  ProduceAcks,
  Producer,
  stringDeserializer
} from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { fetchChannel } from '../instrumentation/channels.ts'
import {
  type OutboundRecord,
  type Publisher,
  partitionKey,
  type RecordPosition,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionListener,
  type TopicPartition,
  type Transport
} from '../transport/types.ts'
import { clientOptions, hasApiId, type KafkaConnection, translateKafkaError } from './connection.ts'

export type Compression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'

export interface KafkaTransportOptions {
  connection: KafkaConnection
  /** Compression of produced batches (DLQ records, handler output). */
  compression?: Compression
  /** Upper bound on records fetched but not yet delivered, per subscription. */
  highWaterMark?: number
  /**
   * Most bytes one fetch returns (all partitions). A consumer at its `maxBuffered` bound
   * still takes the response being delivered, so this bounds the overshoot. Default 1 MiB.
   */
  fetchMaxBytes?: number
  /** Most bytes one fetch returns per partition. Default 256 KiB. */
  fetchMaxBytesPerPartition?: number
  /** Longest a fetch waits for new data on an idle topic, ms. */
  maxWaitTime?: number
}

type RawConsumer = Consumer<Buffer, Buffer, string, Buffer>
type RawStream = MessagesStream<Buffer, Buffer, string, Buffer>
type RawMessage = KafkaMessage<Buffer, Buffer, string, Buffer>

/** Conveyor's transport over `@platformatic/kafka`. */
export class KafkaTransport implements Transport {
  readonly #options: KafkaTransportOptions
  #admin: Admin | undefined
  readonly #publishers = new Set<KafkaPublisher>()

  constructor(options: KafkaTransportOptions) {
    clientOptions(options.connection) // validates now, not at the first message
    this.#options = options
  }

  async subscribe(options: SubscribeOptions, listener: SubscriptionListener): Promise<Subscription> {
    const subscription = new KafkaSubscription(this.#options, options, listener)
    await subscription.start()
    return subscription
  }

  publisher(): Publisher {
    const publisher = new KafkaPublisher(
      this.#options,
      (topics) => this.#partitionCounts(topics),
      () => this.#publishers.delete(publisher)
    )
    this.#publishers.add(publisher)
    return publisher
  }

  /**
   * Partition counts of topics, through the admin client (cached by it for
   * `metadataMaxAge`). A topic that does not exist is a `CONVEYOR_PUBLISH` error.
   * (Asked here rather than of the idempotent producer: in @platformatic/kafka 2.12 its
   * metadata request for an unknown topic never settles.)
   */
  async #partitionCounts(topics: string[]): Promise<Map<string, number>> {
    this.#admin ??= new Admin(clientOptions(this.#options.connection))
    let metadata: Awaited<ReturnType<Admin['metadata']>>
    try {
      metadata = await this.#admin.metadata({ topics })
    } catch (error) {
      const translated = translateKafkaError(error, this.#options.connection)
      if (translated !== error) throw translated
      throw new ConveyorError(
        ErrorCodes.PUBLISH,
        `could not write to ${topics.join(', ')}: ${(error as Error).message}`,
        {
          cause: error,
          retryable: true
        }
      )
    }
    return new Map(topics.map((topic) => [topic, metadata.topics.get(topic)?.partitionsCount ?? 1]))
  }

  async ensureTopics(topics: { topic: string; partitions?: number }[]): Promise<void> {
    if (topics.length === 0) return
    this.#admin ??= new Admin(clientOptions(this.#options.connection))
    const existing = new Set(await this.#admin.listTopics({ includeInternals: false }))
    for (const { topic, partitions } of topics) {
      if (existing.has(topic)) continue
      try {
        await this.#admin.createTopics({ topics: [topic], partitions: partitions ?? -1, replicas: -1 })
      } catch (error) {
        if (!hasApiId(error, 'TOPIC_ALREADY_EXISTS'))
          throw translateKafkaError(error, this.#options.connection)
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#publishers].map((p) => p.close()))
    await this.#admin?.close()
  }
}

/** Where a suppressed partition must start again, and how the resync is going. */
interface Resync {
  offset: bigint
  since: number
}

/**
 * One consumer-group membership delivering records to a listener.
 *
 * `seek` is how the runtime pauses a single partition: `@platformatic/kafka` fetches all
 * assigned partitions together and has no per-partition pause, so the runtime drops the
 * records of a partition it cannot take now and later asks for them again from the first
 * dropped offset. The new fetch position is written into the stream's own
 * `offsetsToFetch` map; records of the partition that were already on their way (an
 * in-flight fetch, the stream buffer) are suppressed until the record at the seek offset
 * comes back, and any stale record after it sets the position back again.
 */
class KafkaSubscription implements Subscription {
  readonly #transport: KafkaTransportOptions
  readonly #options: SubscribeOptions
  readonly #listener: SubscriptionListener
  readonly #consumer: RawConsumer
  #stream: RawStream | undefined
  readonly #resyncs = new Map<string, Resync>()
  /** Parked partitions → the end offset their fetch position is held at (undefined while looking it up). */
  readonly #parked = new Map<string, bigint | undefined>()
  #closed = false
  #pauseRequested = false

  constructor(transport: KafkaTransportOptions, options: SubscribeOptions, listener: SubscriptionListener) {
    this.#transport = transport
    this.#options = options
    this.#listener = listener
    const group =
      options.groupProtocol === 'consumer'
        ? { groupProtocol: 'consumer' as const }
        : {
            sessionTimeout: options.sessionTimeout ?? 30_000,
            heartbeatInterval: options.heartbeatInterval ?? 3_000,
            rebalanceTimeout: options.rebalanceTimeout ?? 60_000
          }
    this.#consumer = new Consumer({
      ...clientOptions(transport.connection),
      ...group,
      groupId: options.groupId,
      ...(options.groupInstanceId ? { groupInstanceId: options.groupInstanceId } : {}),
      deserializers: { headerKey: stringDeserializer },
      autocommit: false,
      maxWaitTime: transport.maxWaitTime ?? 500,
      maxBytes: transport.fetchMaxBytes ?? 1024 * 1024,
      maxBytesPerPartition: transport.fetchMaxBytesPerPartition ?? 256 * 1024,
      highWaterMark: transport.highWaterMark ?? 1024
    }) as RawConsumer
  }

  async start(): Promise<void> {
    this.#consumer.on('consumer:group:join', ({ assignments }) => this.#assigned(assignments ?? []))
    try {
      this.#stream = await this.#consumer.consume({
        topics: this.#options.topics,
        mode: 'committed',
        fallbackMode: this.#options.fromBeginning ? 'earliest' : 'latest'
      })
    } catch (error) {
      await this.#consumer.close(true).catch(() => {})
      throw translateKafkaError(error, this.#transport.connection)
    }
    this.#assigned(this.#consumer.assignments ?? [])
    this.#stream.on('data', (message: RawMessage) => this.#deliver(message))
    this.#stream.on('fetch', () => {
      this.#rotate()
      if (fetchChannel.hasSubscribers) fetchChannel.publish({ groupId: this.#options.groupId })
    })
    this.#stream.on('error', (error: Error) => {
      if (!this.#closed)
        this.#listener.failed(translateKafkaError(error, this.#transport.connection) as Error)
    })
  }

  /**
   * Fairness across partitions. The stream asks for partitions in assignment order and the
   * broker fills a response (up to `fetchMaxBytes`) in request order, so with a backlog the
   * first partitions would take every response and the last ones starve. Rotating the order
   * after each fetch gives every partition its turn at the front. Only the order changes:
   * the set of assigned partitions, which the group protocol relies on, stays the same.
   */
  #rotate(): void {
    for (const assignment of this.#consumer.assignments ?? []) {
      const { partitions } = assignment
      if (partitions.length > 1) partitions.push(partitions.shift()!)
    }
  }

  #assigned(assignments: GroupAssignment[]): void {
    const partitions: TopicPartition[] = []
    for (const { topic, partitions: numbers } of assignments) {
      for (const partition of numbers) partitions.push({ topic, partition })
    }
    // Seek and park states belong to the runtime's view of a partition it owns; a partition
    // that left (and may come back later) starts clean.
    const owned = new Set(partitions.map((p) => partitionKey(p.topic, p.partition)))
    for (const key of [...this.#resyncs.keys()]) if (!owned.has(key)) this.#resyncs.delete(key)
    for (const key of [...this.#parked.keys()]) if (!owned.has(key)) this.#parked.delete(key)
    this.#listener.assigned(partitions)
  }

  #deliver(message: RawMessage): void {
    if (this.#parked.size > 0 || this.#resyncs.size > 0) {
      if (!this.#admit(message)) return
    }
    this.#listener.record({
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      key: message.key ?? null,
      value: message.value ?? null,
      headers: message.headers,
      timestamp: Number(message.timestamp)
    })
  }

  /** Whether a record of a parked or re-sought partition is to be delivered. */
  #admit(message: RawMessage): boolean {
    const key = partitionKey(message.topic, message.partition)
    if (this.#parked.has(key)) {
      const end = this.#parked.get(key)
      if (end !== undefined && message.offset < end) {
        // Still reading the backlog of a parked partition: jump back to its end.
        this.#stream?.offsetsToFetch.set(key, end)
        return false
      }
    }
    const resync = this.#resyncs.get(key)
    if (resync) {
      if (message.offset < resync.offset) return false // a re-read below the seek point
      if (message.offset > resync.offset && Date.now() - resync.since < 30_000) {
        // Stale: fetched before the seek took effect. Point the fetch back again.
        this.#stream?.offsetsToFetch.set(key, resync.offset)
        return false
      }
      // The record at the seek offset (or, after 30 s without it, the first after it:
      // it was deleted by retention or compaction meanwhile).
      this.#resyncs.delete(key)
    }
    return true
  }

  seek({ topic, partition }: TopicPartition, offset: bigint): void {
    const key = partitionKey(topic, partition)
    this.#parked.delete(key)
    this.#resyncs.set(key, { offset, since: Date.now() })
    this.#stream?.offsetsToFetch.set(key, offset)
  }

  /**
   * Moves the partition's fetch position to the end of its log, so a paused partition
   * costs long polls instead of reads of its backlog. The next `seek` brings it back.
   */
  park({ topic, partition }: TopicPartition): void {
    const key = partitionKey(topic, partition)
    if (this.#parked.has(key)) return
    this.#parked.set(key, undefined)
    this.#consumer.listOffsets({ topics: [topic] }).then(
      (offsets) => {
        const end = offsets.get(topic)?.[partition]
        if (end === undefined || !this.#parked.has(key) || this.#parked.get(key) !== undefined) return
        this.#parked.set(key, end)
        this.#stream?.offsetsToFetch.set(key, end)
      },
      () => {} // Parking only saves reads; without it the records are dropped as they come.
    )
  }

  /**
   * Stops fetching once the response being delivered is through. The pause is deferred to
   * the next tick: records of one response are delivered synchronously, partition after
   * partition, so pausing at once would hold back the later partitions of that response
   * and hand the whole budget to the first one.
   */
  pause(): void {
    this.#pauseRequested = true
    process.nextTick(() => {
      if (this.#pauseRequested) this.#stream?.pause()
    })
  }

  resume(): void {
    this.#pauseRequested = false
    // Records buffered while paused arrive now: restart the resync clocks.
    const now = Date.now()
    for (const resync of this.#resyncs.values()) resync.since = now
    this.#stream?.resume()
  }

  async commit(offsets: RecordPosition[]): Promise<void> {
    if (offsets.length === 0) return
    try {
      await this.#consumer.commit({
        offsets: offsets.map(({ topic, partition, offset }) => ({
          topic,
          partition,
          offset,
          leaderEpoch: -1
        }))
      })
    } catch (error) {
      throw translateKafkaError(error, this.#transport.connection)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#stream?.close().catch(() => {})
    await this.#consumer.close(true).catch(() => {})
  }
}

/** An idempotent, acks=all producer. */
class KafkaPublisher implements Publisher {
  readonly #producer: Producer<Buffer, Buffer, string, Buffer>
  readonly #connection: KafkaConnection
  readonly #onClose: () => void
  readonly #partitionCounts: (topics: string[]) => Promise<Map<string, number>>
  #roundRobin = 0

  constructor(
    options: KafkaTransportOptions,
    partitionCounts: (topics: string[]) => Promise<Map<string, number>>,
    onClose: () => void
  ) {
    this.#connection = options.connection
    this.#partitionCounts = partitionCounts
    this.#onClose = onClose
    this.#producer = new Producer({
      ...clientOptions(options.connection),
      idempotent: true,
      acks: ProduceAcks.ALL,
      compression: (options.compression ?? 'none') as CompressionAlgorithmValue,
      serializers: { headerKey: (key?: string) => (key === undefined ? undefined : Buffer.from(key)) }
    })
  }

  /**
   * Partitions are chosen here, Java-compatibly (murmur2 of the key, positive), so that a
   * key lands on the partition every other Kafka client picks for it, and so that each
   * record's offset can be returned (the broker answers per partition batch).
   */
  async send(records: OutboundRecord[]): Promise<RecordPosition[]> {
    if (records.length === 0) return []
    const counts = await this.#partitionCounts([...new Set(records.map((r) => r.topic))])
    try {
      const messages = records.map((record) => {
        const key = toBuffer(record.key)
        const count = counts.get(record.topic) ?? 1
        const partition =
          record.partition ??
          (key ? compatibilityPartitioner(undefined as never, key) % count : this.#roundRobin++ % count)
        return {
          topic: record.topic,
          key,
          value: toBuffer(record.value),
          headers: toHeaderMap(record.headers),
          partition
        }
      })
      const produced = await this.#producer.send({ messages })
      return positions(messages, produced.offsets ?? [])
    } catch (error) {
      const translated = translateKafkaError(error, this.#connection)
      if (translated !== error) throw translated
      const topics = [...new Set(records.map((r) => r.topic))].join(', ')
      throw new ConveyorError(
        ErrorCodes.PUBLISH,
        `could not write to ${topics}: ${(error as Error).message}`,
        {
          cause: error,
          retryable: true
        }
      )
    }
  }

  async close(): Promise<void> {
    this.#onClose()
    await this.#producer.close(true)
  }
}

/** Per-record positions: the broker answers with the base offset of each partition's batch. */
function positions(
  messages: { topic: string; partition: number }[],
  bases: RecordPosition[]
): RecordPosition[] {
  const next = new Map<string, bigint>()
  for (const base of bases) next.set(partitionKey(base.topic, base.partition), base.offset)
  return messages.map(({ topic, partition }) => {
    const key = partitionKey(topic, partition)
    const offset = next.get(key) ?? -1n
    if (offset >= 0n) next.set(key, offset + 1n)
    return { topic, partition, offset }
  })
}

function toBuffer(value: Buffer | string | null | undefined): Buffer | undefined {
  if (value === null || value === undefined) return undefined
  return typeof value === 'string' ? Buffer.from(value) : value
}

function toHeaderMap(headers: OutboundRecord['headers']): Map<string, Buffer> | undefined {
  if (!headers) return undefined
  const map = new Map<string, Buffer>()
  if (headers instanceof Map) {
    for (const [key, value] of headers) map.set(key, typeof value === 'string' ? Buffer.from(value) : value)
  } else {
    for (const key in headers) {
      const value = headers[key]!
      map.set(key, typeof value === 'string' ? Buffer.from(value) : value)
    }
  }
  return map
}
