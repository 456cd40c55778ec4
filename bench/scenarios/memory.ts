/**
 * Memory under a backlog: a slow handler (50 ms) against 1,000,000 waiting messages. The
 * consumer may hold at most `maxBuffered` messages (plus one fetch) whatever the backlog, so
 * its RSS must stay flat. The backlog is produced by the harness before the measuring
 * process starts, so the figures are the consumer's own. Baseline: the RSS after a 10 s
 * warm-up in the same run. The metric is the highest RSS over that baseline; the run also
 * reports the growth per minute (least squares) and verifies partition order, no message
 * handled twice, and the buffer bound.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Scenario } from '../harness.ts'
import { createTopic, deleteTopic, megabytes, produceBacklog, slope } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  topic: string
  backlog: number
  seconds: number
}

const partitions = 6
const maxBuffered = 2_000
const handlerMs = 50
/** One fetch: 64 KiB from each partition; records are over 200 bytes on the wire. */
const fetchMaxBytesPerPartition = 64 * 1024
const bound = maxBuffered + Math.ceil((partitions * fetchMaxBytesPerPartition) / 200)

export const scenario: Scenario<Prepared> = {
  name: 'memory',
  title: 'Memory, 50 ms handler, backlog (highest RSS / RSS after warm-up)',
  metric: { name: 'highest RSS over baseline', unit: '×', higherIsBetter: false },
  contenders: [{ name: 'conveyor', label: 'Conveyor (partition order, maxBuffered 2,000)' }],
  repeats: () => 1,
  parameters: (quick) => ({
    backlog: quick ? 100_000 : 1_000_000,
    seconds: quick ? 20 : 60,
    handlerMs,
    partitions,
    maxBuffered
  }),
  async prepare({ connection, quick, log }) {
    const backlog = quick ? 100_000 : 1_000_000
    const topic = await createTopic(connection, partitions)
    log(`  producing a backlog of ${backlog} messages of 200 bytes to ${topic}`)
    await produceBacklog(connection, topic, { count: backlog, keys: 1_000 })
    return { topic, backlog, seconds: quick ? 20 : 60 }
  },
  async measure(_, { topic, seconds }, { connection }) {
    const { createConsumer } = await runtime('consumer/consumer.ts')
    const { KafkaTransport } = await runtime('kafka/transport.ts')
    global.gc?.()
    const lastOffset = new Map<number, bigint>()
    let handled = 0
    let violations = 0
    const transport = new KafkaTransport({
      connection,
      fetchMaxBytes: partitions * fetchMaxBytesPerPartition,
      fetchMaxBytesPerPartition
    })
    const consumer = createConsumer({
      transport,
      groupId: `bench-memory-${randomBytes(4).toString('hex')}`,
      topics: [topic],
      ordering: 'partition',
      concurrency: 16,
      maxBuffered,
      fromBeginning: true,
      routes: {
        work: {
          handler: async (message) => {
            const last = lastOffset.get(message.partition)
            if (last !== undefined && message.offset <= last) violations++
            lastOffset.set(message.partition, message.offset)
            handled++
            await sleep(handlerMs)
          }
        }
      }
    })
    await consumer.start()
    const samples: Array<{
      second: number
      rssMB: number
      heapMB: number
      handled: number
      buffered: number
    }> = []
    let highestBuffered = 0
    const sampler = setInterval(() => {
      highestBuffered = Math.max(highestBuffered, consumer.buffered)
    }, 10)
    for (let second = 1; second <= seconds; second++) {
      await sleep(1_000)
      const { rss, heapUsed } = process.memoryUsage()
      samples.push({
        second,
        rssMB: megabytes(rss),
        heapMB: megabytes(heapUsed),
        handled,
        buffered: consumer.buffered
      })
    }
    clearInterval(sampler)
    await consumer.stop({ timeout: 5_000 })
    await transport.close()
    const warmup = Math.min(10, Math.floor(seconds / 3))
    const steady = samples.filter((s) => s.second > warmup)
    const baseline = steady[0]!.rssMB
    const highest = Math.max(...steady.map((s) => s.rssMB))
    const growth = slope(steady.map((s) => [s.second, s.rssMB])) * 60
    return {
      value: Math.round((highest / baseline) * 1000) / 1000,
      verified: violations === 0 && highestBuffered <= bound && handled > 0,
      checks: { orderViolations: violations, highestBuffered, bufferBound: bound, handled },
      details: {
        baselineRssMB: baseline,
        finalRssMB: steady.at(-1)!.rssMB,
        highestRssMB: highest,
        rssGrowthMBPerMinute: Math.round(growth * 100) / 100,
        handledPerSecond: Math.round(handled / seconds),
        samples: samples.filter((s) => s.second % 5 === 0)
      }
    }
  },
  async cleanup({ topic }, { connection }) {
    await deleteTopic(connection, topic)
  },
  ratios: [],
  goals: [
    {
      contender: 'conveyor',
      description: 'RSS flat: highest ≤ 1.1 × after warm-up',
      holds: (ratio) => ratio <= 1.1
    }
  ],
  runtimeContenders: ['conveyor']
}
