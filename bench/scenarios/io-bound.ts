/**
 * I/O-bound handlers: 20,000 messages over 1,000 keys, each handler awaits 5 ms (a call to
 * another service). `partition` mode runs one handler per partition at a time; `key` mode
 * runs different keys in parallel up to `concurrency` while keeping each key's order. The
 * topic has 3 partitions, so partition mode tops out at 3 × 200 = 600 msg/s. Each run
 * verifies that every message was handled once and that no key saw its messages out of order.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Ordering } from '../../src/consumer/consumer.ts'
import type { Measurement, Scenario } from '../harness.ts'
import { createTopic, deleteTopic, produceBacklog } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  topic: string
  count: number
}

const partitions = 3
const keys = 1_000
const handlerMs = 5

async function measure(
  { topic, count }: Prepared,
  connection: Parameters<Scenario['measure']>[2]['connection'],
  ordering: Ordering,
  concurrency: number
): Promise<Measurement> {
  const { createConsumer } = await runtime('consumer/consumer.ts')
  const { KafkaTransport } = await runtime('kafka/transport.ts')
  const lastSeq = new Map<string, number>()
  const seen = new Set<string>()
  let handled = 0
  let duplicates = 0
  let violations = 0
  let first = 0
  let last = 0
  const done = Promise.withResolvers<void>()
  const transport = new KafkaTransport({ connection })
  const consumer = createConsumer({
    transport,
    groupId: `bench-io-${ordering}-${randomBytes(4).toString('hex')}`,
    topics: [topic],
    ordering,
    concurrency,
    maxBuffered: Math.max(2_000, concurrency * 8),
    fromBeginning: true,
    routes: {
      work: {
        handler: async (message) => {
          if (handled === 0 && first === 0) first = performance.now()
          const { key, seq } = message.value as { key: string; seq: number }
          const id = `${key}/${seq}`
          if (seen.has(id)) duplicates += 1
          seen.add(id)
          if ((lastSeq.get(key) ?? -1) >= seq) violations += 1
          lastSeq.set(key, seq)
          await sleep(handlerMs)
          handled += 1
          if (handled === count) {
            last = performance.now()
            done.resolve()
          }
        }
      }
    }
  })
  await consumer.start()
  const timer = setTimeout(() => done.reject(new Error(`only ${handled} of ${count} handled`)), 300_000)
  await done.promise.finally(() => clearTimeout(timer))
  await consumer.stop()
  await transport.close()
  return {
    value: count / ((last - first) / 1000),
    verified: handled === count && duplicates === 0 && violations === 0 && seen.size === count,
    checks: { handled, expected: count, distinct: seen.size, duplicates, keyOrderViolations: violations }
  }
}

export const scenario: Scenario<Prepared> = {
  name: 'io-bound',
  title: 'I/O-bound handler (5 ms)',
  metric: { name: 'throughput', unit: 'msg/s', higherIsBetter: true },
  contenders: [
    { name: 'key-256', label: 'Conveyor key mode, concurrency 256' },
    { name: 'key-64', label: 'Conveyor key mode, concurrency 64' },
    { name: 'partition', label: 'Conveyor partition mode (3 partitions)' }
  ],
  repeats: (quick) => (quick ? 1 : 2),
  parameters: (quick) => ({ messages: quick ? 6_000 : 20_000, keys, partitions, handlerMs }),
  async prepare({ connection, quick, log }) {
    const count = quick ? 6_000 : 20_000
    const topic = await createTopic(connection, partitions)
    log(`  producing ${count} messages over ${keys} keys to ${topic}`)
    await produceBacklog(connection, topic, { count, keys, size: 200 })
    return { topic, count }
  },
  async measure(contender, prepared, { connection }) {
    if (contender === 'partition') return measure(prepared, connection, 'partition', 16)
    return measure(prepared, connection, 'key', contender === 'key-256' ? 256 : 64)
  },
  async cleanup({ topic }, { connection }) {
    await deleteTopic(connection, topic)
  },
  ratios: [
    { numerator: 'key-256', denominator: 'partition', goal: { atLeast: 50 } },
    { numerator: 'key-64', denominator: 'partition' }
  ],
  // Every contender here is Conveyor; key mode at 256 is the one a runtime change moves most.
  runtimeContenders: ['key-256']
}
