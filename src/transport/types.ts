/**
 * The seam between Conveyor's runtime and a message broker. Kafka is one implementation
 * (src/kafka/transport.ts); an in-memory one (src/testing/memory-transport.ts) passes the
 * same contract tests and lets users unit-test their handlers without a broker.
 */

/** One partition of a topic. */
export interface TopicPartition {
  /** Topic name. */
  topic: string
  /** Partition number, from 0. */
  partition: number
}

/** A record as the broker delivered it: bytes untouched. */
export interface InboundRecord {
  /** Topic the record was read from. */
  topic: string
  /** Partition the record was read from. */
  partition: number
  /** Offset of the record in its partition. */
  offset: bigint
  /** Key bytes, or `null` when the record has none. */
  key: Buffer | null
  /** Value bytes, or `null` when the record has none (a tombstone). */
  value: Buffer | null
  /** Headers, values as bytes. */
  headers: Map<string, Buffer>
  /** Milliseconds since the epoch. */
  timestamp: number
}

/** A record to write; strings are written as UTF-8 bytes. */
export interface OutboundRecord {
  /** Topic to write to. */
  topic: string
  /** Key; without `partition`, it picks the partition (murmur2, as Kafka's Java client). Default: none. */
  key?: Buffer | string | null
  /** Value; `null` writes a record without one (a tombstone). */
  value: Buffer | string | null
  /** Headers, as a map or a plain object. */
  headers?: Map<string, Buffer | string> | Record<string, Buffer | string>
  /** Chosen by the transport from the key when absent. */
  partition?: number
}

/** A place in a partition: a record written, or (in `Subscription.commit`) the next offset to read. */
export interface RecordPosition {
  /** Topic name. */
  topic: string
  /** Partition number, from 0. */
  partition: number
  /** Offset in the partition. */
  offset: bigint
}

/** A position to commit: the next offset to read, and text the group keeps beside it. */
export interface CommitPosition extends RecordPosition {
  /**
   * Kept with the offset (Kafka's commit metadata, at most `offset.metadata.max.bytes`).
   * The runtime writes which offsets above this one have already finished
   * (src/offsets/finished-metadata.ts). Transports that cannot store it ignore it.
   */
  metadata?: string
}

/** What a group has committed for a partition (`Subscription.committed`). */
export interface CommittedPosition {
  /** Topic name. */
  topic: string
  /** Partition number, from 0. */
  partition: number
  /** The committed offset; `undefined` when the group has none. */
  offset: bigint | undefined
  /** The metadata committed with it, if any. */
  metadata: string | undefined
}

/** How a subscription joins its consumer group. */
export interface SubscribeOptions {
  /** Consumer group to join. */
  groupId: string
  /** Topics to consume. */
  topics: string[]
  /** Where a group without a committed offset starts. */
  fromBeginning: boolean
  /** Static membership (KIP-345): a stable id per instance avoids rebalances on restart. */
  groupInstanceId?: string
  /** `consumer` selects the KIP-848 protocol where the broker supports it. */
  groupProtocol?: 'classic' | 'consumer'
  /** Classic protocol: how long the broker keeps a member without heartbeats, ms. Kafka: 30 000. */
  sessionTimeout?: number
  /** Classic protocol: how often the member sends a heartbeat, ms. Kafka: 3 000. */
  heartbeatInterval?: number
  /** Classic protocol: how long a rebalance waits for members to join again, ms. Kafka: 60 000. */
  rebalanceTimeout?: number
}

/**
 * What a subscription tells the runtime. `record` is called in offset order per
 * partition and synchronously: the runtime decides at once whether it takes the record.
 */
export interface SubscriptionListener {
  /** A record of an owned partition, as delivered (see above). */
  record(record: InboundRecord): void
  /** The partitions this member owns now (after a join or rebalance), all of them. */
  assigned(partitions: TopicPartition[]): void
  /** A fatal error: the subscription stopped. */
  failed(error: Error): void
  /**
   * A rebalance begins and this member is about to join again, after which its partitions
   * may be another member's. Commits made before the promise resolves still count (the
   * member's generation is current); the transport joins once it resolves, or after a bound
   * of its own. The runtime stops starting records, lets running ones finish and commits.
   * Optional for transports: without it, work finished during a rebalance on a partition
   * that moves is handled again by its new owner.
   */
  rebalancing?(): Promise<void>
}

/** A membership of a consumer group, delivering records to its listener (made by `Transport.subscribe`). */
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
  /** Starts fetching again after `pause`. */
  resume(): void
  /**
   * Commits the offsets (the next offset to read, per partition) for the group, with their
   * metadata. Positions of partitions this member does not own now are left out: the group
   * gave them to another member, whose commits they would overwrite.
   */
  commit(offsets: CommitPosition[]): Promise<void>
  /**
   * What the group has committed for these partitions, with the metadata. Optional: without
   * it the runtime cannot skip work finished above a commit point by an earlier member.
   * `stable`: fail (retryably) while a transaction's offsets for them are pending, rather
   * than answer the offsets before it.
   */
  committed?(partitions: TopicPartition[], options?: { stable?: boolean }): Promise<CommittedPosition[]>
  /** Leaves the group and closes the connection. */
  close(): Promise<void>
}

/** Writes records to topics (made by `Transport.publisher`). */
export interface Publisher {
  /** Resolves when every record is acknowledged (acks=all on Kafka), with their positions. */
  send(records: OutboundRecord[]): Promise<RecordPosition[]>
  /** Closes the publisher; resolves once it is closed. */
  close(): Promise<void>
}

/**
 * A transaction of a transactional publisher: the records it sends and the group offsets
 * it commits become visible together when it commits (to `read_committed` readers), or
 * never. Its methods reject with `CONVEYOR_FENCED` once another publisher with the same
 * transactional id has begun (this one is a zombie: nothing of it will be seen).
 */
export interface Transaction {
  /** Sends records in the transaction; resolves with their positions once written (not yet visible). */
  send(records: OutboundRecord[]): Promise<RecordPosition[]>
  /**
   * Commits the group's offsets with the transaction. The broker checks the subscription's
   * membership (its generation), so a member the group has moved on from cannot commit.
   */
  commitOffsets(subscription: Subscription, offsets: CommitPosition[]): Promise<void>
  /** Commits: the records and offsets become visible together. */
  commit(): Promise<void>
  /** Aborts: none of it is ever visible. */
  abort(): Promise<void>
}

/** Writes records in transactions, under one transactional id (made by `Transport.transactional`). */
export interface TransactionalPublisher {
  /**
   * Begins a transaction. The first `begin` takes the transactional id: every earlier
   * publisher with this id is fenced, and a transaction it left open is aborted first.
   */
  begin(): Promise<Transaction>
  /** Closes the publisher (a transaction still open is aborted by the broker). */
  close(): Promise<void>
}

/** A broker behind Conveyor: `KafkaTransport` for Kafka, `MemoryTransport` for tests. */
export interface Transport {
  /** Joins a consumer group and delivers its records to `listener`; resolves with the subscription. */
  subscribe(options: SubscribeOptions, listener: SubscriptionListener): Promise<Subscription>
  /** A new publisher, for writing records. */
  publisher(): Publisher
  /**
   * A transactional publisher with this transactional id, where the broker supports
   * transactions. `timeout`: how long the broker lets a transaction stay open before it
   * aborts it, ms.
   */
  transactional?(transactionalId: string, options?: { timeout?: number }): TransactionalPublisher
  /** Creates topics that do not exist yet (DLQ topics, for instance). */
  ensureTopics(topics: { topic: string; partitions?: number }[]): Promise<void>
  /** Closes the transport's connections; resolves once they are closed. */
  close(): Promise<void>
}

/** The `topic:partition` string that names a partition in maps (made once per partition, then reused). */
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
