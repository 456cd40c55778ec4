/**
 * Consume → transform → produce: a backlog over 6 partitions, each record turned into one
 * output record through `context.send`. `at-least-once` is a Conveyor consumer with a
 * producer (partition order, offsets committed every 100 ms); `transactional` the same with
 * `transactional: true`, one Kafka transaction per handler call (its output and its offset);
 * `transactional-batch` a batch route (up to 100 messages per call, so per transaction).
 * Throughput runs from the start to the moment every input offset is committed (the
 * transactions commit offsets with their outputs; the at-least-once consumer's last commit is
 * at most 100 ms late). Each run verifies every input committed and at least as many output
 * records as inputs written.
 */
import { randomBytes } from 'node:crypto'
import { Admin } from '@platformatic/kafka'
import { clientOptions, type KafkaConnection } from '../../src/kafka/connection.ts'
import type { Measurement, Scenario } from '../harness.ts'
import { createTopic, deleteTopic, produceBacklog, topicSize } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  topic: string
  count: number
}

const partitions = 6

/** The group's committed offsets over the topic's partitions, summed. */
async function committed(admin: Admin, topic: string, groupId: string): Promise<number> {
  const [group] = await admin.listConsumerGroupOffsets({
    groups: [
      {
        groupId,
        topics: [{ name: topic, partitionIndexes: Array.from({ length: partitions }, (_, i) => i) }]
      }
    ]
  })
  let sum = 0
  for (const t of group?.topics ?? [])
    for (const p of t.partitions) if (p.committedOffset > 0n) sum += Number(p.committedOffset)
  return sum
}

async function run(
  { topic, count }: Prepared,
  connection: KafkaConnection,
  mode: 'at-least-once' | 'transactional' | 'transactional-batch'
): Promise<Measurement> {
  const { createConsumer } = await runtime('consumer/consumer.ts')
  const { createProducer } = await runtime('producer/producer.ts')
  const { KafkaTransport } = await runtime('kafka/transport.ts')
  const output = await createTopic(connection, partitions)
  const groupId = `bench-pipeline-${randomBytes(4).toString('hex')}`
  const transport = new KafkaTransport({ connection })
  const producer = createProducer({ transport, topic: output })
  type Work = { key: string; seq: number }
  const route =
    mode === 'transactional-batch'
      ? {
          batch: { maxSize: 100 },
          handleBatch: async (
            messages: readonly { value: unknown; key: Buffer | null }[],
            context: {
              send?: (type: string, payload: object, options?: { key?: Buffer | null }) => Promise<unknown>
            }
          ) => {
            await Promise.all(
              messages.map((m) => context.send!('done', { ...(m.value as Work), done: true }, { key: m.key }))
            )
          }
        }
      : {
          handler: async (
            message: { value: unknown; key: Buffer | null },
            context: {
              send?: (type: string, payload: object, options?: { key?: Buffer | null }) => Promise<unknown>
            }
          ) => {
            await context.send!('done', { ...(message.value as Work), done: true }, { key: message.key })
          }
        }
  const consumer = createConsumer({
    transport,
    producer,
    groupId,
    topics: [topic],
    commitInterval: 100,
    ...(mode === 'at-least-once' ? {} : { transactional: true }),
    routes: { work: route as never }
  })
  const admin = new Admin(clientOptions(connection))
  try {
    const started = performance.now()
    await consumer.start()
    const deadline = Date.now() + 900_000
    while ((await committed(admin, topic, groupId)) < count) {
      if (Date.now() > deadline) throw new Error('the pipeline did not finish')
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const seconds = (performance.now() - started) / 1_000
    await consumer.stop()
    const inputs = await committed(admin, topic, groupId)
    // Transaction markers take offsets too: the output holds at least one record per input.
    const outputs = await topicSize(connection, output)
    return {
      value: count / seconds,
      verified: inputs === count && outputs >= count,
      checks: { committed: inputs, expected: count, outputOffsets: outputs }
    }
  } finally {
    await admin.close().catch(() => {})
    await producer.close().catch(() => {})
    await transport.close()
    await deleteTopic(connection, output).catch(() => {})
  }
}

export const scenario: Scenario<Prepared> = {
  name: 'pipeline',
  title: 'Consume → transform → produce (6 partitions, one output per input)',
  metric: { name: 'throughput', unit: 'msg/s', higherIsBetter: true },
  contenders: [
    { name: 'at-least-once', label: 'Conveyor consumer + producer, offsets committed every 100 ms' },
    { name: 'transactional', label: 'Conveyor transactional consumer, a transaction per message' },
    {
      name: 'transactional-batch',
      label: 'Conveyor transactional consumer, a batch route: a transaction per batch of up to 100'
    }
  ],
  repeats: (quick) => (quick ? 1 : 2),
  parameters: (quick) => ({ messages: quick ? 2_000 : 20_000, partitions }),
  async prepare({ connection, quick, log }) {
    const count = quick ? 2_000 : 20_000
    const topic = await createTopic(connection, partitions)
    log(`  producing ${count} messages to ${topic}`)
    await produceBacklog(connection, topic, { count, keys: 1_000, size: 120 })
    return { topic, count }
  },
  async measure(contender, prepared, { connection }) {
    return run(prepared, connection, contender as 'at-least-once' | 'transactional' | 'transactional-batch')
  },
  async cleanup({ topic }, { connection }) {
    await deleteTopic(connection, topic)
  },
  ratios: [
    { numerator: 'transactional', denominator: 'at-least-once' },
    { numerator: 'transactional-batch', denominator: 'at-least-once' },
    { numerator: 'transactional-batch', denominator: 'transactional' }
  ],
  runtimeContenders: ['at-least-once', 'transactional', 'transactional-batch']
}
