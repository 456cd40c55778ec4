/**
 * A slow handler (50 ms) against a large backlog: RSS must stay flat, because the
 * consumer holds at most `maxBuffered` messages whatever the backlog.
 *
 * Baseline: the RSS after the warm-up, in the same run. Reported: RSS over time, the
 * ratio of the final (and the highest) RSS to the baseline, the growth per minute, and
 * the highest number of buffered messages. The run verifies itself: partitions handled in
 * offset order, nothing handled twice, buffered never above its bound.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createConsumer } from '../../src/consumer/consumer.ts'
import { KafkaTransport } from '../../src/kafka/transport.ts'
import { benchConnection, createTopic, deleteTopic, megabytes, produceBacklog, slope } from '../lib.ts'

export const name = 'memory-backlog'

export async function run({ quick = false } = {}) {
  const backlog = Number(process.env.BENCH_BACKLOG ?? (quick ? 50_000 : 200_000))
  const seconds = Number(process.env.BENCH_SECONDS ?? (quick ? 20 : 60))
  const maxBuffered = 2_000
  // One fetch: 64 KiB from each of the 6 partitions. The consumer holds at most
  // maxBuffered messages plus one fetch (records are over 200 bytes on the wire).
  const fetchMaxBytes = 6 * 64 * 1024
  const bound = maxBuffered + Math.ceil(fetchMaxBytes / 200)
  const connection = await benchConnection()
  const topic = await createTopic(connection, 6)
  process.stderr.write(`producing ${backlog} messages of 200 bytes to ${topic}\n`)
  await produceBacklog(connection, topic, { count: backlog, keys: 1_000 })
  global.gc?.()

  const lastOffset = new Map<number, bigint>()
  let handled = 0
  const perPartition: number[] = []
  let violations = 0
  const transport = new KafkaTransport({ connection, fetchMaxBytes, fetchMaxBytesPerPartition: 64 * 1024 })
  const consumer = createConsumer({
    transport,
    groupId: `${topic}-group`,
    topics: [topic],
    ordering: 'partition',
    concurrency: 16,
    maxBuffered,
    routes: {
      work: {
        handler: async (message) => {
          const last = lastOffset.get(message.partition)
          if (last !== undefined && message.offset <= last) violations++
          lastOffset.set(message.partition, message.offset)
          perPartition[message.partition] = (perPartition[message.partition] ?? 0) + 1
          handled++
          await sleep(50)
        }
      }
    }
  })
  await consumer.start()
  const samples: Array<{ second: number; rssMB: number; heapMB: number; handled: number; buffered: number }> =
    []
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
  await deleteTopic(connection, topic)

  const warmup = Math.min(10, Math.floor(seconds / 3))
  const steady = samples.filter((s) => s.second > warmup)
  const baseline = steady[0]!.rssMB
  const final = steady.at(-1)!.rssMB
  const highest = Math.max(...steady.map((s) => s.rssMB))
  const growthPerMinute = slope(steady.map((s) => [s.second, s.rssMB])) * 60
  const verified = violations === 0 && highestBuffered <= bound && handled > 0
  return {
    name,
    verified,
    checks: { orderViolations: violations, highestBuffered, bufferBound: bound, handled, perPartition },
    parameters: { backlog, seconds, handlerMs: 50, concurrency: 16, partitions: 6 },
    results: {
      baselineRssMB: baseline,
      finalRssMB: final,
      highestRssMB: highest,
      finalOverBaseline: Math.round((final / baseline) * 1000) / 1000,
      highestOverBaseline: Math.round((highest / baseline) * 1000) / 1000,
      rssGrowthMBPerMinute: Math.round(growthPerMinute * 100) / 100,
      handledPerSecond: Math.round(handled / seconds)
    },
    samples: samples.filter((s) => s.second % 5 === 0)
  }
}
