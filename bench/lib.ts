/** Shared pieces of the benchmarks: the broker, topics, bulk production, Kafka's tools, statistics. */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Admin, Consumer, ProduceAcks, Producer, stringDeserializer } from '@platformatic/kafka'
import { defaultHome, LocalKafka, resolveJars } from '../src/dev/kafka/index.ts'
import { clientOptions, type KafkaConnection } from '../src/kafka/connection.ts'

/** kafka-tools reaches Maven Central after the broker; this is the newest release there. */
export const kafkaToolsVersion = process.env.CONVEYOR_KAFKA_TOOLS_VERSION ?? '4.3.1'

/** The broker the benchmarks use: KAFKA_BROKERS, or a local single broker started (and kept) for them. */
export async function benchConnection({ quiet = false } = {}): Promise<KafkaConnection> {
  if (process.env.KAFKA_BROKERS)
    return { brokers: process.env.KAFKA_BROKERS.split(','), clientId: 'conveyor-bench' }
  const kafka = new LocalKafka({
    name: 'bench',
    port: Number(process.env.CONVEYOR_BENCH_KAFKA_PORT ?? 29492),
    heap: '1g',
    log: quiet ? () => {} : (line) => process.stderr.write(`[kafka] ${line}\n`)
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
  // Idempotent: a retried batch must not leave duplicates, or the scenarios' counts would be off.
  const producer = new Producer({
    ...clientOptions(connection),
    idempotent: true,
    acks: ProduceAcks.ALL,
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
  const produced = await topicSize(connection, topic)
  if (produced !== count) throw new Error(`${topic} holds ${produced} records after producing ${count}`)
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

/** The sum of a topic's end offsets: how many records it holds (it is never compacted here). */
export async function topicSize(connection: KafkaConnection, topic: string): Promise<number> {
  const consumer = new Consumer({
    ...clientOptions(connection),
    groupId: `bench-size-${randomBytes(4).toString('hex')}`
  })
  try {
    const ends = await consumer.listOffsets({ topics: [topic] })
    return (ends.get(topic) ?? []).reduce((sum, offset) => sum + Number(offset), 0)
  } finally {
    await consumer.close(true)
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The value at quantile q (0–1) of already sorted numbers, nearest rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/** The classpath directory of Kafka's own perf tools (kafka-tools), resolved once into the cache. */
export function kafkaToolsClasspath(log: (line: string) => void = () => {}): string {
  const libs = resolveJars({
    pom: new URL('./java/pom.xml', import.meta.url).pathname,
    properties: { 'kafka.tools.version': kafkaToolsVersion },
    into: join(process.env.CONVEYOR_HOME ?? defaultHome(), 'kafka-tools', kafkaToolsVersion, 'libs'),
    expect: `kafka-tools-${kafkaToolsVersion}`,
    describe: `Apache Kafka tools ${kafkaToolsVersion}`,
    log
  })
  return `${libs}/*`
}

/** Runs one of Kafka's tool classes with `java -cp` and resolves with its standard output. */
export function runKafkaTool(mainClass: string, args: string[]): Promise<string> {
  const classpath = kafkaToolsClasspath((line) => process.stderr.write(`[kafka-tools] ${line}\n`))
  return new Promise((resolve, reject) => {
    const child = spawn('java', ['-Xmx1g', '-cp', classpath, mainClass, ...args], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    child.stderr.on('data', (chunk) => {
      err += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${mainClass} exited ${code}:\n${err.slice(-2000)}`))
    )
  })
}

/**
 * The bare `@platformatic/kafka` consumer the baselines use, with the fetch settings of
 * Conveyor's Kafka transport (so both read the same way), reading its stream from the
 * committed offset or the earliest. Resolves with the consumer and its stream.
 */
export async function bareConsumerStream(connection: KafkaConnection, groupId: string, topic: string) {
  const consumer = new Consumer({
    ...clientOptions(connection),
    groupId,
    autocommit: false,
    deserializers: { headerKey: stringDeserializer },
    maxWaitTime: 500,
    maxBytes: 1024 * 1024,
    maxBytesPerPartition: 256 * 1024,
    highWaterMark: 1024
  })
  const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
  return { consumer, stream }
}
