import { compatibilityPartitioner } from '@platformatic/kafka'
import {
  type CommitPosition,
  type CommittedPosition,
  type InboundRecord,
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

/**
 * An in-memory broker for unit tests of handlers and routes: topics with partitions,
 * consumer groups with committed offsets and partitions shared among members, keyed
 * partitioning as Kafka's (murmur2). It passes the same contract tests as the Kafka
 * transport. Not for production: nothing is persisted and everything is one process.
 *
 *   const transport = new MemoryTransport({ topics: { orders: 3 } })
 *   const consumer = createConsumer({ transport, groupId: 'g', topics: ['orders'], routes })
 */
export class MemoryTransport implements Transport {
  readonly #topics = new Map<string, InboundRecord[][]>()
  readonly #defaultPartitions: number
  readonly #subscriptions = new Set<MemorySubscription>()

  constructor({
    topics = {},
    defaultPartitions = 1
  }: { topics?: Record<string, number>; defaultPartitions?: number } = {}) {
    this.#defaultPartitions = defaultPartitions
    for (const [topic, partitions] of Object.entries(topics)) this.createTopic(topic, partitions)
  }

  /**
   * Creates a topic with `partitions` partitions (default: the constructor's `defaultPartitions`,
   * itself 1 by default); an existing topic is left as it is.
   */
  createTopic(topic: string, partitions = this.#defaultPartitions): void {
    if (!this.#topics.has(topic))
      this.#topics.set(
        topic,
        Array.from({ length: partitions }, () => [])
      )
  }

  /** Every record of a topic, partition by partition (for assertions). */
  records(topic: string): InboundRecord[] {
    return (this.#topics.get(topic) ?? []).flat()
  }

  /** The committed offset of a group on a partition. */
  committed(groupId: string, topic: string, partition: number): bigint | undefined {
    return groupOf(this, groupId).committed.get(partitionKey(topic, partition))
  }

  /**
   * The live log of a topic (not a copy): one array of records per partition, in offset order.
   * Throws when the topic does not exist.
   */
  log(topic: string): InboundRecord[][] {
    const log = this.#topics.get(topic)
    if (!log) throw new Error(`topic "${topic}" does not exist`)
    return log
  }

  /**
   * Writes a record as a publisher does and returns its position. The partition is
   * `partition`, else the key's (murmur2, as Kafka), else a random one; throws when the
   * topic or the partition does not exist.
   */
  append(record: OutboundRecord): RecordPosition {
    const partitions = this.log(record.topic)
    const key = record.key === undefined || record.key === null ? null : Buffer.from(record.key)
    const partition =
      record.partition ??
      (key
        ? compatibilityPartitioner(undefined as never, key) % partitions.length
        : Math.floor(Math.random() * partitions.length))
    const log = partitions[partition]
    if (!log) throw new Error(`topic "${record.topic}" has no partition ${partition}`)
    const headers = new Map<string, Buffer>()
    const entries = record.headers instanceof Map ? [...record.headers] : Object.entries(record.headers ?? {})
    for (const [name, value] of entries) headers.set(name, Buffer.from(value))
    const offset = BigInt(log.length)
    log.push({
      topic: record.topic,
      partition,
      offset,
      key,
      value: record.value === null ? null : Buffer.from(record.value),
      headers,
      timestamp: Date.now()
    })
    for (const subscription of this.#subscriptions) subscription.wake()
    return { topic: record.topic, partition, offset }
  }

  /**
   * Joins the group (its partitions are shared again among the members) and delivers records
   * asynchronously, as fetches would; rejects when a topic does not exist.
   */
  async subscribe(options: SubscribeOptions, listener: SubscriptionListener): Promise<Subscription> {
    for (const topic of options.topics) this.log(topic)
    const subscription = new MemorySubscription(this, options, listener, () =>
      this.#subscriptions.delete(subscription)
    )
    this.#subscriptions.add(subscription)
    groupOf(this, options.groupId).join(subscription, this)
    return subscription
  }

  /** A publisher that appends records to this transport's topics (see `append`); its `close` does nothing. */
  publisher(): Publisher {
    return {
      send: async (records) => records.map((record) => this.append(record)),
      close: async () => {}
    }
  }

  /** Creates the topics that do not exist (see `createTopic`). */
  async ensureTopics(topics: { topic: string; partitions?: number }[]): Promise<void> {
    for (const { topic, partitions } of topics) this.createTopic(topic, partitions)
  }

  /** Closes every open subscription (each leaves its group); the topics and their records stay. */
  async close(): Promise<void> {
    await Promise.all([...this.#subscriptions].map((s) => s.close()))
  }
}

/** Each transport's consumer groups, by group id: kept out of the transport's public API. */
const groups = new WeakMap<MemoryTransport, Map<string, MemoryGroup>>()

/** The consumer group `groupId` of `transport` (its members and committed offsets), created on first use. */
function groupOf(transport: MemoryTransport, groupId: string): MemoryGroup {
  let byId = groups.get(transport)
  if (!byId) {
    byId = new Map()
    groups.set(transport, byId)
  }
  let group = byId.get(groupId)
  if (!group) {
    group = new MemoryGroup()
    byId.set(groupId, group)
  }
  return group
}

/** A consumer group: members share the partitions of their topics (round robin). */
class MemoryGroup {
  readonly committed = new Map<string, bigint>()
  /** The metadata committed with each offset. */
  readonly metadata = new Map<string, string>()
  readonly members: MemorySubscription[] = []

  /** The rebalance in progress: rebalances run one after another. */
  #rebalancing: Promise<void> = Promise.resolve()

  join(member: MemorySubscription, transport: MemoryTransport): void {
    this.members.push(member)
    this.rebalance(transport)
  }

  leave(member: MemorySubscription, transport: MemoryTransport): void {
    const index = this.members.indexOf(member)
    if (index >= 0) this.members.splice(index, 1)
    this.rebalance(transport)
  }

  /**
   * Shares the partitions again. As in Kafka's classic protocol, the members that own
   * partitions are told first (`rebalancing`) and the partitions move once they are ready.
   */
  rebalance(transport: MemoryTransport): void {
    this.#rebalancing = this.#rebalancing.then(async () => {
      await Promise.all(this.members.map((m) => m.rebalancing()))
      this.#share(transport)
    })
  }

  #share(transport: MemoryTransport): void {
    const topics = [...new Set(this.members.flatMap((m) => m.topics))].sort()
    const all: TopicPartition[] = []
    for (const topic of topics) {
      transport.log(topic).forEach((_, partition) => {
        all.push({ topic, partition })
      })
    }
    const shares = new Map<MemorySubscription, TopicPartition[]>(this.members.map((m) => [m, []]))
    let next = 0
    for (const tp of all) {
      const candidates = this.members.filter((m) => m.topics.includes(tp.topic))
      if (candidates.length === 0) continue
      shares.get(candidates[next++ % candidates.length]!)!.push(tp)
    }
    for (const [member, partitions] of shares) member.assign(partitions)
  }
}

class MemorySubscription implements Subscription {
  readonly topics: string[]
  readonly #transport: MemoryTransport
  readonly #options: SubscribeOptions
  readonly #listener: SubscriptionListener
  readonly #onClose: () => void
  readonly #positions = new Map<string, bigint>()
  #assigned: TopicPartition[] = []
  #paused = false
  #closed = false
  #scheduled = false

  constructor(
    transport: MemoryTransport,
    options: SubscribeOptions,
    listener: SubscriptionListener,
    onClose: () => void
  ) {
    this.#transport = transport
    this.#options = options
    this.#listener = listener
    this.#onClose = onClose
    this.topics = options.topics
  }

  /** Tells the listener a rebalance begins, if this member owns partitions. */
  async rebalancing(): Promise<void> {
    if (this.#closed || this.#assigned.length === 0) return
    await this.#listener.rebalancing?.().catch(() => {})
  }

  assign(partitions: TopicPartition[]): void {
    const group = groupOf(this.#transport, this.#options.groupId)
    this.#positions.clear()
    for (const tp of partitions) {
      const key = partitionKey(tp.topic, tp.partition)
      const committed = group.committed.get(key)
      const end = BigInt(this.#transport.log(tp.topic)[tp.partition]!.length)
      this.#positions.set(key, committed ?? (this.#options.fromBeginning ? 0n : end))
    }
    this.#assigned = partitions
    queueMicrotask(() => {
      if (!this.#closed) this.#listener.assigned(partitions)
      this.wake()
    })
  }

  /** Schedules a delivery round (records are delivered asynchronously, like a fetch). */
  wake(): void {
    if (this.#scheduled || this.#closed) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#deliver()
    })
  }

  #deliver(): void {
    if (this.#closed || this.#paused) return
    let delivered = 0
    for (const tp of this.#assigned) {
      const key = partitionKey(tp.topic, tp.partition)
      const log = this.#transport.log(tp.topic)[tp.partition]!
      // One "fetch" delivers up to 500 records per partition, then yields.
      for (let n = 0; n < 500; n++) {
        if (this.#paused || this.#closed) return
        const position = this.#positions.get(key)
        if (position === undefined || position >= BigInt(log.length)) break
        this.#positions.set(key, position + 1n)
        delivered++
        this.#listener.record(log[Number(position)]!)
      }
    }
    if (delivered > 0) this.wake()
  }

  seek({ topic, partition }: TopicPartition, offset: bigint): void {
    const key = partitionKey(topic, partition)
    if (this.#positions.has(key)) this.#positions.set(key, offset)
    this.wake()
  }

  park(): void {}

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    this.wake()
  }

  async commit(offsets: CommitPosition[]): Promise<void> {
    const group = groupOf(this.#transport, this.#options.groupId)
    const owned = new Set(this.#assigned.map((tp) => partitionKey(tp.topic, tp.partition)))
    for (const { topic, partition, offset, metadata } of offsets) {
      if (!owned.has(partitionKey(topic, partition))) continue // given to another member
      group.committed.set(partitionKey(topic, partition), offset)
      group.metadata.set(partitionKey(topic, partition), metadata ?? '')
    }
  }

  async committed(partitions: TopicPartition[]): Promise<CommittedPosition[]> {
    const group = groupOf(this.#transport, this.#options.groupId)
    return partitions.map(({ topic, partition }) => ({
      topic,
      partition,
      offset: group.committed.get(partitionKey(topic, partition)),
      metadata: group.metadata.get(partitionKey(topic, partition))
    }))
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#onClose()
    groupOf(this.#transport, this.#options.groupId).leave(this, this.#transport)
  }
}
