/**
 * The seam between Conveyor's runtime and a message broker. Kafka is one implementation
 * (src/kafka/transport.ts); an in-memory one (src/testing/memory-transport.ts) passes the
 * same contract tests and lets users unit-test their handlers without a broker.
 */

export interface TopicPartition {
  topic: string
  partition: number
}

/** A record as the broker delivered it: bytes untouched. */
export interface InboundRecord {
  topic: string
  partition: number
  offset: bigint
  key: Buffer | null
  value: Buffer | null
  headers: Map<string, Buffer>
  /** Milliseconds since the epoch. */
  timestamp: number
}

export interface OutboundRecord {
  topic: string
  key?: Buffer | string | null
  value: Buffer | string | null
  headers?: Map<string, Buffer | string> | Record<string, Buffer | string>
  /** Chosen by the transport from the key when absent. */
  partition?: number
}

export interface RecordPosition {
  topic: string
  partition: number
  offset: bigint
}

export interface SubscribeOptions {
  groupId: string
  topics: string[]
  /** Where a group without a committed offset starts. */
  fromBeginning: boolean
  /** Static membership (KIP-345): a stable id per instance avoids rebalances on restart. */
  groupInstanceId?: string
  /** `consumer` selects the KIP-848 protocol where the broker supports it. */
  groupProtocol?: 'classic' | 'consumer'
  sessionTimeout?: number
  heartbeatInterval?: number
  rebalanceTimeout?: number
}

/**
 * What a subscription tells the runtime. `record` is called in offset order per
 * partition and synchronously: the runtime decides at once whether it takes the record.
 */
export interface SubscriptionListener {
  record(record: InboundRecord): void
  /** The partitions this member owns now (after a join or rebalance), all of them. */
  assigned(partitions: TopicPartition[]): void
  /** A fatal error: the subscription stopped. */
  failed(error: Error): void
}

export interface Subscription {
  /**
   * Delivers `topic`/`partition` again from `offset`. Records of that partition that
   * were already on their way are suppressed, so the next record the listener sees for
   * it is the one at `offset` (or the first after it, if it no longer exists).
   */
  seek(partition: TopicPartition, offset: bigint): void
  /**
   * Says that no record of the partition is wanted until the next `seek`: the transport
   * may stop reading its backlog (an optimisation; records it still delivers are dropped
   * by the runtime).
   */
  park(partition: TopicPartition): void
  /** Stops fetching (all partitions) until `resume`; the batch being delivered may still arrive. */
  pause(): void
  resume(): void
  /** Commits the offsets (the next offset to read, per partition) for the group. */
  commit(offsets: RecordPosition[]): Promise<void>
  /** Leaves the group and closes the connection. */
  close(): Promise<void>
}

export interface Publisher {
  /** Resolves when every record is acknowledged (acks=all on Kafka), with their positions. */
  send(records: OutboundRecord[]): Promise<RecordPosition[]>
  close(): Promise<void>
}

export interface Transport {
  subscribe(options: SubscribeOptions, listener: SubscriptionListener): Promise<Subscription>
  publisher(): Publisher
  /** Creates topics that do not exist yet (DLQ topics, for instance). */
  ensureTopics(topics: { topic: string; partitions?: number }[]): Promise<void>
  close(): Promise<void>
}

export function partitionKey(topic: string, partition: number): string {
  // Called for every record: the strings are made once per partition and reused.
  let keys = partitionKeys.get(topic)
  if (!keys) {
    keys = []
    partitionKeys.set(topic, keys)
  }
  keys[partition] ??= `${topic}:${partition}`
  return keys[partition]
}

const partitionKeys = new Map<string, string[]>()
