import {
  Admin,
  type CompressionAlgorithmValue,
  compatibilityPartitioner,
  findErrorBy,
  ProduceAcks,
  Producer
} from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import {
  type CommitPosition,
  type OutboundRecord,
  type Publisher,
  partitionKey,
  type RecordPosition,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionListener,
  type Transaction,
  type TransactionalPublisher,
  type Transport
} from '../transport/types.ts'
import { Utf8Cache } from '../util/utf8-cache.ts'
import { clientOptions, hasApiId, type KafkaConnection, translateKafkaError } from './connection.ts'
import { type FetchSettings, KafkaSubscription, type RawTransaction } from './subscription.ts'

/** Compression codec of produced record batches. */
export type Compression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'

/** Options of a `KafkaTransport`: the connection, fetch sizes and compression. */
export interface KafkaTransportOptions extends FetchSettings {
  /** Compression of produced batches (DLQ records, handler output). */
  compression?: Compression
}

/** Conveyor's transport over `@platformatic/kafka`. */
export class KafkaTransport implements Transport {
  readonly #options: KafkaTransportOptions
  #admin: Admin | undefined
  readonly #publishers = new Set<{ close(): Promise<void> }>()

  constructor(options: KafkaTransportOptions) {
    clientOptions(options.connection) // validates now, not at the first message
    this.#options = options
  }

  /**
   * Joins the consumer group and starts consuming; resolves with the subscription once the
   * client consumes, rejects with `CONVEYOR_KAFKA_AUTHENTICATION` when the broker refuses the credentials.
   */
  async subscribe(options: SubscribeOptions, listener: SubscriptionListener): Promise<Subscription> {
    const subscription = new KafkaSubscription(this.#options, options, listener)
    await subscription.start()
    return subscription
  }

  /** A new idempotent, acks=all publisher; the transport's `close` closes it too. */
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
   * A transactional producer (idempotent, acks=all) under `transactionalId`; the
   * transport's `close` closes it too. See `TransactionalPublisher`.
   */
  transactional(transactionalId: string, options: { timeout?: number } = {}): TransactionalPublisher {
    const publisher = new KafkaTransactionalPublisher(
      this.#options,
      transactionalId,
      options.timeout ?? 60_000,
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

  /**
   * Creates the topics that do not exist, with `partitions` (default: the broker's) and the
   * broker's default replication; existing topics are left as they are. Resolves once all exist.
   */
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

  /** Closes the publishers it made and its admin client; subscriptions are closed on their own. */
  async close(): Promise<void> {
    await Promise.all([...this.#publishers].map((p) => p.close()))
    await this.#admin?.close()
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
      serializers: { headerKey: (key?: string) => (key === undefined ? undefined : headerNames.bytes(key)) }
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
      const messages = toMessages(records, counts, () => this.#roundRobin++)
      const produced = await this.#producer.send({ messages })
      return positions(messages, produced.offsets ?? [])
    } catch (error) {
      throw publishError(error, records, this.#connection)
    }
  }

  async close(): Promise<void> {
    this.#onClose()
    await this.#producer.close(true)
  }
}

/**
 * A producer with a transactional id. The client initialises the id at the first
 * transaction (InitProducerId: the broker fences earlier producers of the id and aborts a
 * transaction they left open); a fenced producer refuses every later `begin`, so a zombie
 * never takes the id back from its successor.
 */
class KafkaTransactionalPublisher implements TransactionalPublisher {
  readonly #producer: Producer<Buffer, Buffer, string, Buffer>
  readonly #connection: KafkaConnection
  readonly #id: string
  readonly #onClose: () => void
  readonly #partitionCounts: (topics: string[]) => Promise<Map<string, number>>
  #fenced: ConveyorError | undefined
  #roundRobin = 0

  constructor(
    options: KafkaTransportOptions,
    transactionalId: string,
    timeout: number,
    partitionCounts: (topics: string[]) => Promise<Map<string, number>>,
    onClose: () => void
  ) {
    this.#connection = options.connection
    this.#id = transactionalId
    this.#partitionCounts = partitionCounts
    this.#onClose = onClose
    this.#producer = new Producer({
      ...clientOptions(options.connection),
      // The client sends its timeout as the transaction's: the broker aborts a transaction open longer.
      timeout,
      // A transaction begun right after the last one committed meets CONCURRENT_TRANSACTIONS
      // until the broker has written the last one's markers (milliseconds): retried soon, not
      // after the client's default second.
      retries: 50,
      retryDelay: 20,
      transactionalId,
      idempotent: true,
      acks: ProduceAcks.ALL,
      compression: (options.compression ?? 'none') as CompressionAlgorithmValue,
      serializers: { headerKey: (key?: string) => (key === undefined ? undefined : headerNames.bytes(key)) }
    })
  }

  async begin(): Promise<Transaction> {
    if (this.#fenced) throw this.#fenced
    try {
      // No earlier producer id of ours (-1, -1): the client would send 0, 0, which the broker
      // refuses (PRODUCER_FENCED) once another producer has had the transactional id.
      const raw = await this.#producer.beginTransaction({ producerId: -1n, producerEpoch: -1 })
      return new KafkaTransaction(raw, {
        connection: this.#connection,
        partitionCounts: this.#partitionCounts,
        roundRobin: () => this.#roundRobin++,
        failed: (error) => this.#failed(error)
      })
    } catch (error) {
      // The client keeps a transaction whose preparation failed as its active one: every
      // later begin would be refused ("already an active transaction"). Nothing reached the
      // broker's transaction yet, so it is cleared here.
      await this.#producer.transaction?.cancel().catch(() => {})
      throw this.#failed(error)
    }
  }

  /** Translates a failure; a fencing one fences this publisher for good. */
  #failed(error: unknown): Error {
    if (error instanceof ConveyorError) return error
    if (isFencing(error)) {
      this.#fenced = new ConveyorError(
        ErrorCodes.FENCED,
        `another producer has taken the transactional id "${this.#id}": this one is fenced`,
        { cause: error }
      )
      return this.#fenced
    }
    const translated = translateKafkaError(error, this.#connection)
    if (translated !== error) return translated as Error
    return new ConveyorError(
      ErrorCodes.PUBLISH,
      `transaction of "${this.#id}" failed: ${(error as Error).message}`,
      {
        cause: error,
        retryable: true
      }
    )
  }

  async close(): Promise<void> {
    this.#onClose()
    await this.#producer.close(true)
  }
}

/** What a transaction takes from its publisher. */
interface TransactionContext {
  connection: KafkaConnection
  partitionCounts: (topics: string[]) => Promise<Map<string, number>>
  roundRobin: () => number
  /** Translates a failure (and fences the publisher on a fencing one). */
  failed: (error: unknown) => Error
}

/** One transaction of a `KafkaTransactionalPublisher`. */
class KafkaTransaction implements Transaction {
  readonly #raw: RawTransaction
  readonly #context: TransactionContext
  /** Something reached the broker's transaction (records or offsets). */
  #touched = false

  constructor(raw: RawTransaction, context: TransactionContext) {
    this.#raw = raw
    this.#context = context
  }

  async send(records: OutboundRecord[]): Promise<RecordPosition[]> {
    if (records.length === 0) return []
    const counts = await this.#context.partitionCounts([...new Set(records.map((r) => r.topic))])
    const messages = toMessages(records, counts, this.#context.roundRobin)
    this.#touched = true
    try {
      const produced = await this.#raw.send({ messages })
      return positions(messages, produced.offsets ?? [])
    } catch (error) {
      throw this.#context.failed(error)
    }
  }

  async commitOffsets(subscription: Subscription, offsets: CommitPosition[]): Promise<void> {
    if (!(subscription instanceof KafkaSubscription))
      throw new ConveyorError(
        ErrorCodes.STATE,
        'a Kafka transaction commits the offsets of a Kafka subscription'
      )
    this.#touched = true
    try {
      await subscription.addToTransaction(this.#raw, offsets)
    } catch (error) {
      throw this.#context.failed(error)
    }
  }

  async commit(): Promise<void> {
    try {
      await this.#raw.commit()
    } catch (error) {
      throw this.#context.failed(error)
    }
  }

  /**
   * Aborts. A transaction that sent nothing is only cleared here (the broker has none).
   * Otherwise a failed abort leaves it open on the broker, where the next transaction of
   * this producer would join it: that is a `CONVEYOR_FENCED` error, so that the caller
   * takes the id again (a new producer's fence aborts the open transaction).
   */
  async abort(): Promise<void> {
    if (this.#raw.completed) return
    if (!this.#touched) {
      await this.#raw.cancel().catch(() => {})
      return
    }
    try {
      await this.#raw.abort()
    } catch (error) {
      await this.#raw.cancel().catch(() => {})
      const failure = this.#context.failed(error)
      if (failure instanceof ConveyorError && failure.code === ErrorCodes.FENCED) throw failure
      throw new ConveyorError(ErrorCodes.FENCED, `the transaction could not be aborted: ${failure.message}`, {
        cause: failure
      })
    }
  }
}

/** Whether the broker says another producer has the transactional id (a newer epoch). */
function isFencing(error: unknown): boolean {
  return (
    findErrorBy(error as Error, 'producerFenced', true) !== null ||
    ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH'].some(
      (id) => findErrorBy(error as Error, 'apiId', id) !== null
    )
  )
}

/** The records as the client's messages, on the partitions other Kafka clients pick for their keys. */
function toMessages(records: OutboundRecord[], counts: Map<string, number>, roundRobin: () => number) {
  return records.map((record) => {
    const key = toBuffer(record.key)
    const count = counts.get(record.topic) ?? 1
    const partition =
      record.partition ??
      (key ? compatibilityPartitioner(undefined as never, key) % count : roundRobin() % count)
    return {
      topic: record.topic,
      key,
      value: toBuffer(record.value),
      headers: toHeaderMap(record.headers),
      partition
    }
  })
}

function publishError(error: unknown, records: OutboundRecord[], connection: KafkaConnection): unknown {
  const translated = translateKafkaError(error, connection)
  if (translated !== error) return translated
  const topics = [...new Set(records.map((r) => r.topic))].join(', ')
  return new ConveyorError(ErrorCodes.PUBLISH, `could not write to ${topics}: ${(error as Error).message}`, {
    cause: error,
    retryable: true
  })
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

/** Header names repeat on every record: their bytes are made once. */
const headerNames = new Utf8Cache()

function toBuffer(value: Buffer | string | null | undefined): Buffer | undefined {
  if (value === null || value === undefined) return undefined
  return typeof value === 'string' ? Buffer.from(value) : value
}

/** The headers as a map of bytes: a map already holding only bytes is passed on as it is. */
function toHeaderMap(headers: OutboundRecord['headers']): Map<string, Buffer> | undefined {
  if (!headers) return undefined
  if (headers instanceof Map && onlyBytes(headers)) return headers as Map<string, Buffer>
  const map = new Map<string, Buffer>()
  for (const [key, value] of headers instanceof Map ? headers : Object.entries(headers))
    map.set(key, toBuffer(value)!)
  return map
}

function onlyBytes(headers: Map<string, string | Buffer>): boolean {
  for (const value of headers.values()) if (typeof value === 'string') return false
  return true
}
