import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Admin, Consumer } from '@platformatic/kafka'
import type { ConsumerStatus } from '../../consumer/consumer.ts'
import { clientOptions, type KafkaConnection } from '../../kafka/connection.ts'
import type { Command } from '../command.ts'

const usage = `Usage: conveyor lag <group> [--service URL] [--brokers HOST:PORT,…] [--json]

Per partition of the group's topics: the committed offset, the end of the log, the lag in
offsets, and the lag in time (how old the oldest unconsumed message is). With --service (the
base URL of a running \`conveyor run\`), a partition that is stuck also shows the blocking
offset, its key, the attempt and the time of the next retry. Commits nothing.`

interface LagRow {
  topic: string
  partition: number
  committed: string | null
  end: string
  lag: string
  lagSeconds: number | null
  paused?: boolean
  blocking?: ConsumerStatus['partitions'][number]['retrying']
}

export const lagCommand: Command = {
  name: 'lag',
  summary: 'consumer group lag per partition, in offsets and time, and what blocks a stuck partition',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        service: { type: 'string' },
        brokers: { type: 'string', default: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const [group] = positionals
    if (values.help || !group) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const connection: KafkaConnection = { brokers: values.brokers.split(','), clientId: 'conveyor-lag' }
    const rows = await groupLag(connection, group)
    if (values.service) {
      const status = (await (await fetch(new URL('/status', values.service))).json()) as {
        consumers: ConsumerStatus[]
      }
      const mine = status.consumers.find((c) => c.groupId === group)
      for (const row of rows) {
        const partition = mine?.partitions.find((p) => p.topic === row.topic && p.partition === row.partition)
        if (partition) {
          row.paused = partition.paused
          row.blocking = partition.retrying
        }
      }
    }
    if (values.json) {
      io.out(JSON.stringify({ group, partitions: rows }, null, 2))
      return 0
    }
    for (const r of rows) {
      const stuck = r.blocking?.[0]
      io.out(
        `${r.topic}/${r.partition}  committed ${r.committed ?? '-'}  end ${r.end}  lag ${r.lag}` +
          `${r.lagSeconds === null ? '' : ` (${r.lagSeconds} s)`}` +
          `${stuck ? `  blocked at offset ${stuck.offset} key ${stuck.key ?? '-'} attempt ${stuck.attempt}, next retry ${stuck.nextRetryAt}: ${stuck.error}` : ''}`
      )
    }
    return 0
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
