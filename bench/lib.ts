/** Shared pieces of the benchmarks: the broker, topics, bulk production, RSS sampling. */
import { randomBytes } from 'node:crypto'
import { Admin, ProduceAcks, Producer } from '@platformatic/kafka'
import { LocalKafka } from '../src/dev/kafka/index.ts'
import { clientOptions, type KafkaConnection } from '../src/kafka/connection.ts'

/** The broker the benchmarks use: KAFKA_BROKERS, or a local single broker started (and kept) for them. */
export async function benchConnection(): Promise<KafkaConnection> {
  if (process.env.KAFKA_BROKERS)
    return { brokers: process.env.KAFKA_BROKERS.split(','), clientId: 'conveyor-bench' }
  const kafka = new LocalKafka({
    name: 'bench',
    port: Number(process.env.CONVEYOR_BENCH_KAFKA_PORT ?? 29492),
    heap: '1g',
    log: (line) => process.stderr.write(`[kafka] ${line}\n`)
  })
  const info = await kafka.up()
  return { brokers: info.bootstrap, clientId: 'conveyor-bench' }
}

export async function createTopic(connection: KafkaConnection, partitions: number): Promise<string> {
  const topic = `bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`
  const admin = new Admin(clientOptions(connection))
  await admin.createTopics({ topics: [topic], partitions, replicas: 1 })
  await admin.close()
  return topic
}

export async function deleteTopic(connection: KafkaConnection, topic: string): Promise<void> {
  const admin = new Admin(clientOptions(connection))
  await admin.deleteTopics({ topics: [topic] }).catch(() => {})
  await admin.close()
}

/** Produces `count` JSON messages of about `size` bytes over `keys` keys, in batches. */
export async function produceBacklog(
  connection: KafkaConnection,
  topic: string,
  { count, keys, size = 200, type = 'work' }: { count: number; keys: number; size?: number; type?: string }
): Promise<void> {
  const producer = new Producer({
    ...clientOptions(connection),
    acks: ProduceAcks.LEADER,
    compression: 'none'
  })
  const padding = 'x'.repeat(Math.max(0, size - 80))
  const batch = 2_000
  try {
    for (let start = 0; start < count; start += batch) {
      const messages = []
      for (let i = start; i < Math.min(count, start + batch); i++) {
        const key = `key-${i % keys}`
        messages.push({
          topic,
          key: Buffer.from(key),
          value: Buffer.from(JSON.stringify({ message_type: type, key, seq: Math.floor(i / keys), padding }))
        })
      }
      await producer.send({ messages })
    }
  } finally {
    await producer.close()
  }
}

export function megabytes(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10
}

/** Least-squares slope of y over x. */
export function slope(points: Array<[number, number]>): number {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  return den === 0 ? 0 : num / den
}
