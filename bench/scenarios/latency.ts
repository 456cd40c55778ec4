/**
 * End-to-end latency at a steady rate: a producer in another process sends 10,000 msg/s for
 * 30 s (a batch every 5 ms), each message stamped when handed to its client; the consumer
 * records, at the start of each handler, how long ago that was. Reported: p50, p95, p99 and
 * the maximum; the metric is p99. Conveyor (partition order) against the bare
 * `@platformatic/kafka` stream consumer on the same load. Each run verifies every message
 * arrived once.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { KafkaConnection } from '../../src/kafka/connection.ts'
import type { Measurement, Scenario } from '../harness.ts'
import { bareConsumerStream, createTopic, deleteTopic, quantile } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  rate: number
  seconds: number
}

const partitions = 6

/** Runs the producer process and resolves with how many messages it sent. */
function produce(connection: KafkaConnection, topic: string, rate: number, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        new URL('../latency-producer.ts', import.meta.url).pathname,
        connection.brokers.join(','),
        topic,
        String(rate),
        String(seconds)
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] }
    )
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    child.on('exit', (code) => {
      const sent = Number(/SENT (\d+)/.exec(out)?.[1])
      if (code === 0 && Number.isFinite(sent)) resolve(sent)
      else reject(new Error(`the latency producer exited ${code}`))
    })
  })
}

/** Starts a consumer (through `start`), produces the load, and collects latencies. */
async function run(
  connection: KafkaConnection,
  { rate, seconds }: Prepared,
  start: (topic: string, see: (seq: number, sentAt: number) => void) => Promise<() => Promise<void>>
): Promise<Measurement> {
  const topic = await createTopic(connection, partitions)
  const expected = rate * seconds
  const latencies = new Float64Array(expected + 10_000)
  const seen = new Uint8Array(expected + 10_000)
  let received = 0
  let duplicates = 0
  const stop = await start(topic, (seq, sentAt) => {
    const latency = performance.timeOrigin + performance.now() - sentAt
    if (seen[seq]) duplicates += 1
    seen[seq] = 1
    latencies[received++] = latency
  })
  try {
    // Give the consumer time to join its group and reach the end of the empty topic.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const sent = await produce(connection, topic, rate, seconds)
    const deadline = Date.now() + 30_000
    while (received < sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    const sorted = latencies.slice(0, received).sort()
    const round = (value: number) => Math.round(value * 100) / 100
    return {
      value: round(quantile(sorted, 0.99)),
      verified: received === sent && duplicates === 0,
      checks: { sent, received, duplicates },
      details: {
        p50: round(quantile(sorted, 0.5)),
        p95: round(quantile(sorted, 0.95)),
        p99: round(quantile(sorted, 0.99)),
        max: round(sorted[sorted.length - 1] ?? Number.NaN)
      }
    }
  } finally {
    await stop()
    await deleteTopic(connection, topic)
  }
}

export const scenario: Scenario<Prepared> = {
  name: 'latency',
  title: 'Latency at 10,000 msg/s (p99)',
  metric: { name: 'p99 latency', unit: 'ms', higherIsBetter: false },
  contenders: [
    { name: 'conveyor', label: 'Conveyor (partition order)' },
    { name: 'platformatic', label: '@platformatic/kafka stream' }
  ],
  repeats: () => 1,
  parameters: (quick) => ({ rate: 10_000, seconds: quick ? 10 : 30, partitions, batchEveryMs: 5 }),
  async prepare({ quick }) {
    return { rate: 10_000, seconds: quick ? 10 : 30 }
  },
  async measure(contender, prepared, { connection }) {
    const groupId = `bench-latency-${contender}-${randomBytes(4).toString('hex')}`
    if (contender === 'conveyor') {
      const { createConsumer } = await runtime('consumer/consumer.ts')
      const { KafkaTransport } = await runtime('kafka/transport.ts')
      return run(connection, prepared, async (topic, see) => {
        const transport = new KafkaTransport({ connection })
        const consumer = createConsumer({
          transport,
          groupId,
          topics: [topic],
          ordering: 'partition',
          fromBeginning: true,
          routes: {
            tick: {
              handler: (message) => {
                const { seq, sentAt } = message.value as { seq: number; sentAt: number }
                see(seq, sentAt)
              }
            }
          }
        })
        await consumer.start()
        return async () => {
          await consumer.stop()
          await transport.close()
        }
      })
    }
    return run(connection, prepared, async (topic, see) => {
      const { consumer, stream } = await bareConsumerStream(connection, groupId, topic)
      stream.on('data', (message) => {
        const { seq, sentAt } = JSON.parse(message.value.toString('utf8')) as { seq: number; sentAt: number }
        see(seq, sentAt)
      })
      return async () => {
        await stream.close()
        await consumer.close(true)
      }
    })
  },
  ratios: [{ numerator: 'conveyor', denominator: 'platformatic' }],
  goals: [{ contender: 'conveyor', description: 'Conveyor p99 < 25 ms', holds: (p99) => p99 < 25 }],
  runtimeContenders: ['conveyor']
}
