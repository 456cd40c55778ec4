/**
 * Consume overhead: a backlog of 200-byte JSON messages over 6 partitions, a no-op
 * handler, partition order, offsets committed every second. Conveyor against the bare
 * `@platformatic/kafka` stream consumer committing the same way, against a KafkaJS
 * `eachMessage` consumer with manual commits, and against Kafka's own Java
 * `ConsumerPerformance` (the ceiling). Every consumer reads from the earliest offset in
 * a fresh group; throughput is counted from the first message to the last, so group joins
 * are left out for all. Each run verifies: every message once, partitions in offset
 * order, and (for the Node consumers) the committed offsets equal the partitions' ends.
 */
import { randomBytes } from 'node:crypto'
import { Consumer } from '@platformatic/kafka'
import { Kafka, logLevel } from 'kafkajs'
import { clientOptions, type KafkaConnection } from '../../src/kafka/connection.ts'
import type { Measurement, Scenario } from '../harness.ts'
import { bareConsumerStream, createTopic, deleteTopic, produceBacklog, runKafkaTool } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  topic: string
  count: number
  partitions: number
}

const partitions = 6
const commitInterval = 1_000
/** Fetch settings of the Node consumers (Conveyor's defaults; `bareConsumerStream` uses the same). */
const fetch = { maxWaitTime: 500, maxBytes: 1024 * 1024, maxBytesPerPartition: 256 * 1024 }

/** Counts deliveries, checks offset order per partition, and times first → last. */
class Tally {
  count = 0
  first = 0
  last = 0
  violations = 0
  readonly next = new Map<number, bigint>()
  readonly #done = Promise.withResolvers<void>()

  readonly expected: number

  constructor(expected: number) {
    this.expected = expected
  }

  see(partition: number, offset: bigint): void {
    if (this.count === 0) this.first = performance.now()
    const next = this.next.get(partition)
    if (next !== undefined && offset < next) this.violations += 1
    this.next.set(partition, offset + 1n)
    this.count += 1
    if (this.count === this.expected) {
      this.last = performance.now()
      this.#done.resolve()
    }
  }

  async done(timeout = 300_000): Promise<void> {
    const timer = setTimeout(
      () => this.#done.reject(new Error(`only ${this.count} of ${this.expected} messages in ${timeout} ms`)),
      timeout
    )
    try {
      await this.#done.promise
    } finally {
      clearTimeout(timer)
    }
  }

  rate(): number {
    return this.expected / ((this.last - this.first) / 1000)
  }
}

async function committedTotal(connection: KafkaConnection, topic: string, groupId: string): Promise<number> {
  const consumer = new Consumer({ ...clientOptions(connection), groupId })
  try {
    const offsets = await consumer.listCommittedOffsets({
      topics: [{ topic, partitions: Array.from({ length: partitions }, (_, i) => i) }]
    })
    return (offsets.get(topic) ?? []).reduce((sum, o) => sum + (o > 0n ? Number(o) : 0), 0)
  } finally {
    await consumer.close(true)
  }
}

function verdict(
  tally: Tally,
  committed: number | undefined,
  extra: Record<string, unknown> = {}
): Measurement {
  const checks = {
    delivered: tally.count,
    expected: tally.expected,
    orderViolations: tally.violations,
    committed,
    ...extra
  }
  return {
    value: tally.rate(),
    verified:
      tally.count === tally.expected &&
      tally.violations === 0 &&
      (committed === undefined || committed === tally.expected),
    checks
  }
}

async function conveyor({ topic, count }: Prepared, connection: KafkaConnection): Promise<Measurement> {
  const { createConsumer } = await runtime('consumer/consumer.ts')
  const { KafkaTransport } = await runtime('kafka/transport.ts')
  const tally = new Tally(count)
  const groupId = `bench-conveyor-${randomBytes(4).toString('hex')}`
  const transport = new KafkaTransport({
    connection,
    maxWaitTime: fetch.maxWaitTime,
    fetchMaxBytes: fetch.maxBytes,
    fetchMaxBytesPerPartition: fetch.maxBytesPerPartition
  })
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    ordering: 'partition',
    fromBeginning: true,
    commitInterval,
    // BENCH_COMMIT_AFTER=<n>: the runtime's commitAfter (a baseline runtime from before it ignores it).
    ...(process.env.BENCH_COMMIT_AFTER === undefined
      ? {}
      : { commitAfter: Number(process.env.BENCH_COMMIT_AFTER) }),
    routes: { work: { handler: (message) => tally.see(message.partition, message.offset) } }
  })
  await consumer.start()
  await tally.done()
  await consumer.stop()
  await transport.close()
  return verdict(tally, await committedTotal(connection, topic, groupId))
}

async function platformatic({ topic, count }: Prepared, connection: KafkaConnection): Promise<Measurement> {
  const tally = new Tally(count)
  const groupId = `bench-platformatic-${randomBytes(4).toString('hex')}`
  const { consumer, stream } = await bareConsumerStream(connection, groupId, topic)
  let committed = new Map<number, bigint>()
  const commit = async () => {
    const offsets = [...tally.next]
      .filter(([partition, offset]) => committed.get(partition) !== offset)
      .map(([partition, offset]) => ({ topic, partition, offset, leaderEpoch: -1 }))
    if (offsets.length === 0) return
    committed = new Map(tally.next)
    await consumer.commit({ offsets })
  }
  const timer = setInterval(() => void commit().catch(() => {}), commitInterval)
  stream.on('data', (message) => {
    JSON.parse(message.value.toString('utf8'))
    tally.see(message.partition, message.offset)
  })
  await tally.done()
  clearInterval(timer)
  await commit()
  await stream.close()
  await consumer.close(true)
  return verdict(tally, await committedTotal(connection, topic, groupId))
}

async function kafkajs({ topic, count }: Prepared, connection: KafkaConnection): Promise<Measurement> {
  const tally = new Tally(count)
  const groupId = `bench-kafkajs-${randomBytes(4).toString('hex')}`
  const kafka = new Kafka({
    clientId: 'conveyor-bench-kafkajs',
    brokers: connection.brokers,
    logLevel: logLevel.NOTHING
  })
  const consumer = kafka.consumer({
    groupId,
    maxWaitTimeInMs: fetch.maxWaitTime,
    maxBytes: fetch.maxBytes,
    maxBytesPerPartition: fetch.maxBytesPerPartition
  })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let committed = new Map<number, bigint>()
  const commit = async () => {
    const offsets = [...tally.next]
      .filter(([partition, offset]) => committed.get(partition) !== offset)
      .map(([partition, offset]) => ({ topic, partition, offset: String(offset) }))
    if (offsets.length === 0) return
    committed = new Map(tally.next)
    await consumer.commitOffsets(offsets)
  }
  const timer = setInterval(() => void commit().catch(() => {}), commitInterval)
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      JSON.parse(message.value!.toString('utf8'))
      tally.see(partition, BigInt(message.offset))
    }
  })
  await tally.done()
  clearInterval(timer)
  await commit()
  await consumer.disconnect()
  return verdict(tally, await committedTotal(connection, topic, groupId))
}

/** Kafka's ConsumerPerformance: its `fetch.nMsg.sec` leaves the group join out, as the others do. */
async function java({ topic, count }: Prepared, connection: KafkaConnection): Promise<Measurement> {
  const output = await runKafkaTool('org.apache.kafka.tools.ConsumerPerformance', [
    '--bootstrap-server',
    connection.brokers.join(','),
    '--topic',
    topic,
    '--messages',
    String(count),
    '--group',
    `bench-java-${randomBytes(4).toString('hex')}`,
    '--timeout',
    '60000'
  ])
  const lines = output.trim().split('\n')
  const header = lines
    .find((l) => l.includes('nMsg.sec'))!
    .split(',')
    .map((h) => h.trim())
  const values = lines
    .at(-1)!
    .split(',')
    .map((v) => v.trim())
  const field = (name: string) => Number(values[header.indexOf(name)])
  const consumed = field('data.consumed.in.nMsg')
  return {
    value: field('fetch.nMsg.sec'),
    verified: consumed >= count,
    checks: { delivered: consumed, expected: count },
    details: { nMsgPerSecIncludingJoin: field('nMsg.sec'), rebalanceMs: field('rebalance.time.ms') }
  }
}

export const scenario: Scenario<Prepared> = {
  name: 'consume',
  title: 'Consume, no-op handler',
  metric: { name: 'throughput', unit: 'msg/s', higherIsBetter: true },
  contenders: [
    { name: 'conveyor', label: 'Conveyor (partition order, commits every 1 s)' },
    { name: 'platformatic', label: '@platformatic/kafka stream, same commits' },
    { name: 'kafkajs', label: 'KafkaJS eachMessage, manual commits' },
    { name: 'java', label: 'Kafka ConsumerPerformance (Java)' }
  ],
  // A run lasts about a second: five of them keep one slow run (a busy neighbour, a GC
  // at the wrong moment) from moving the median.
  repeats: (quick) => (quick ? 1 : 5),
  parameters: (quick) => ({
    messages: quick ? 100_000 : 500_000,
    bytes: 200,
    partitions,
    keys: 1_000,
    commitInterval
  }),
  async prepare({ connection, quick, log }) {
    const count = quick ? 100_000 : 500_000
    const topic = await createTopic(connection, partitions)
    log(`  producing ${count} messages of 200 bytes to ${topic}`)
    await produceBacklog(connection, topic, { count, keys: 1_000, size: 200 })
    return { topic, count, partitions }
  },
  async measure(contender, prepared, { connection }) {
    switch (contender) {
      case 'conveyor':
        return conveyor(prepared, connection)
      case 'platformatic':
        return platformatic(prepared, connection)
      case 'kafkajs':
        return kafkajs(prepared, connection)
      default:
        return java(prepared, connection)
    }
  },
  async cleanup({ topic }, { connection }) {
    await deleteTopic(connection, topic)
  },
  ratios: [
    { numerator: 'conveyor', denominator: 'platformatic', goal: { atLeast: 0.9 } },
    { numerator: 'conveyor', denominator: 'kafkajs', goal: { atLeast: 2 } },
    { numerator: 'conveyor', denominator: 'java' }
  ],
  runtimeContenders: ['conveyor']
}
