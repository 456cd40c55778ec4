/**
 * OffsetCommit with metadata. `@platformatic/kafka` 2.x commits offsets with no metadata
 * (`Consumer.commit` writes `committedMetadata: null`), so this sends the request itself,
 * the way the client does — to the group coordinator, with the member's generation and id
 * — through the client's own connection pool and API table.
 *
 * Classic protocol only: a KIP-848 member commits with its member epoch, which the client
 * keeps private; there, callers commit without metadata.
 */
import { type Callback, type Connection, type Consumer, kGetApi, kGetConnection } from '@platformatic/kafka'

/** A committed position with the text kept beside it (Kafka's `offset.metadata.max.bytes` bounds it). */
export interface PositionWithMetadata {
  topic: string
  partition: number
  /** The next offset to read. */
  offset: bigint
  /** Stored with the offset; read back by `listConsumerGroupOffsets`. */
  metadata: string | null
}

interface OffsetCommitPartition {
  partitionIndex: number
  committedOffset: bigint
  committedLeaderEpoch: number
  committedMetadata: string | null
}

type OffsetCommitApi = (
  connection: Connection,
  groupId: string,
  generationId: number,
  memberId: string,
  groupInstanceId: string | null,
  topics: Array<{ name: string; partitions: OffsetCommitPartition[] }>,
  callback: Callback<unknown>
) => void

/** The client's internals this module reaches, by the symbols the package exports. */
interface ClientInternals {
  [kGetApi](name: string, callback: Callback<OffsetCommitApi>): void
  [kGetConnection](broker: unknown, callback: Callback<Connection>): void
}

function call<T>(run: (callback: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    run((error, value) => (error ? reject(error) : resolve(value as T)))
  )
}

/**
 * Commits `positions` for the consumer's group, each with its metadata. Rejects as the
 * client's own commit does (a rebalance in progress, an old generation, metadata too large).
 */
export async function commitWithMetadata(
  consumer: Consumer,
  positions: PositionWithMetadata[]
): Promise<void> {
  if (positions.length === 0) return
  const memberId = consumer.memberId
  if (memberId === null) throw new Error('the consumer is not a member of its group yet')
  const coordinator = await consumer.findGroupCoordinator()
  const cluster = await consumer.metadata({ topics: [...new Set(positions.map((p) => p.topic))] })
  const internals = consumer as unknown as ClientInternals
  const connection = await call<Connection>((done) =>
    internals[kGetConnection](cluster.brokers.get(coordinator), done)
  )
  const api = await call<OffsetCommitApi>((done) => internals[kGetApi]('OffsetCommit', done))
  const topics = new Map<string, OffsetCommitPartition[]>()
  for (const { topic, partition, offset, metadata } of positions) {
    const partitions = topics.get(topic) ?? []
    topics.set(topic, partitions)
    partitions.push({
      partitionIndex: partition,
      committedOffset: offset,
      committedLeaderEpoch: -1,
      committedMetadata: metadata
    })
  }
  await call((done) =>
    api(
      connection,
      consumer.groupId,
      consumer.generationId,
      memberId,
      null,
      [...topics].map(([name, partitions]) => ({ name, partitions })),
      done
    )
  )
}
