import { randomUUID } from 'node:crypto'
import { Admin, Consumer } from '@platformatic/kafka'
import { clientOptions, type KafkaConnection } from '../kafka/connection.ts'

export interface LagRow {
  topic: string
  partition: number
  committed: string | null
  end: string
  lag: string
  /** Age of the oldest unconsumed record; null when nothing is unconsumed. */
  lagSeconds: number | null
}

/** Whether the broker knows the group: it has members now, or keeps offsets for it (else its state is `Dead`). */
export async function groupKnown(connection: KafkaConnection, group: string): Promise<boolean> {
  const admin = new Admin(clientOptions(connection))
  try {
    const state = (await admin.describeGroups({ groups: [group] })).get(group)?.state
    return state !== undefined && state !== 'Dead'
  } finally {
    await admin.close()
  }
}

/** Lag of a group on every partition it has committed on, from the broker alone. */
export async function groupLag(connection: KafkaConnection, group: string): Promise<LagRow[]> {
  const admin = new Admin(clientOptions(connection))
  let committed: Array<{ topic: string; partition: number; offset: bigint }>
  try {
    const [answer] = await admin.listConsumerGroupOffsets({ groups: [group] })
    committed = (answer?.topics ?? []).flatMap((t) =>
      t.partitions.map((p) => ({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset }))
    )
  } finally {
    await admin.close()
  }
  if (committed.length === 0) return []
  const consumer = new Consumer({
    ...clientOptions(connection),
    groupId: `conveyor-lag-${randomUUID()}`,
    autocommit: false,
    maxWaitTime: 200
  })
  try {
    const topics = [...new Set(committed.map((c) => c.topic))]
    const ends = await consumer.listOffsets({ topics })
    const rows: LagRow[] = committed.map((c) => {
      const end = ends.get(c.topic)?.[c.partition] ?? 0n
      const lag = c.offset >= 0n ? end - c.offset : end
      return {
        topic: c.topic,
        partition: c.partition,
        committed: c.offset >= 0n ? String(c.offset) : null,
        end: String(end),
        lag: String(lag),
        lagSeconds: null
      }
    })
    // Lag in time: the age of the first unconsumed record of each lagging partition.
    const lagging = rows.filter((r) => BigInt(r.lag) > 0n)
    if (lagging.length > 0) {
      const stream = await consumer.consume({
        topics,
        mode: 'manual',
        offsets: lagging.map((r) => ({
          topic: r.topic,
          partition: r.partition,
          offset: BigInt(r.committed ?? '0')
        }))
      })
      const waiting = new Set(lagging.map((r) => `${r.topic}/${r.partition}`))
      const deadline = setTimeout(() => void stream.close(), 10_000)
      for await (const message of stream) {
        const row = lagging.find((r) => r.topic === message.topic && r.partition === message.partition)
        const key = `${message.topic}/${message.partition}`
        if (row && waiting.has(key)) {
          row.lagSeconds = Math.max(0, Math.round((Date.now() - Number(message.timestamp)) / 1000))
          waiting.delete(key)
        }
        if (waiting.size === 0) break
      }
      clearTimeout(deadline)
    }
    return rows.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition)
  } finally {
    await consumer.close(true)
  }
}
