/**
 * One consumer of the chaos run, in its own process so the run can SIGKILL it. Configured by
 * CHAOS_WORKER (JSON, `WorkerConfig`). It writes one JSON line per event to its log, with
 * `writeSync` so a line written is a line kept even if the process is killed next:
 *
 * - `h`: message `i` handled (partition `p`, offset `o`), written before the handler returns;
 * - `d`: message `i` dead-lettered (the broker acknowledged the DLQ record);
 * - `c`: a commit the broker acknowledged: per partition the offset and its metadata;
 * - `a`: the member's whole assignment after a rebalance;
 * - `x`: an error the runtime reported (a failed commit, a lost membership, …);
 * - `s`: every 100 ms, the messages queued or running here (`b`), for the in-flight window.
 *
 * Every line has `t`, milliseconds since the epoch with sub-millisecond precision, so lines of
 * different workers merge into one timeline. Prints "running" once it owns partitions.
 */
import { subscribe } from 'node:diagnostics_channel'
import { openSync, writeSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import type * as ConsumerModule from '../src/consumer/consumer.ts'
import type {
  Channels as ChannelNames,
  CommitEvent,
  DeadLetteredEvent,
  ErrorEvent,
  PartitionsEvent
} from '../src/instrumentation/channels.ts'
import type * as TransportModule from '../src/kafka/transport.ts'
import type * as PolicyModule from '../src/retry/policy.ts'
import type * as SignalsModule from '../src/service/signals.ts'
import type { PlannedMessage } from './plan.ts'

export interface WorkerConfig {
  brokers: string[]
  topic: string
  group: string
  log: string
  /** Handler time per attempt, in ms. */
  delay: number
  concurrency: number
  commitInterval: number
  /** The runtime's option; left out for a baseline runtime that predates it. */
  finishedMetadata?: boolean
  /** The first retry's delay, ms (the runtime's default policy otherwise: 3 retries, ×2, jitter). */
  retryDelay: number
  /** The `src/` directory of the runtime to run; this checkout's by default. */
  runtime?: string
}

const config = JSON.parse(process.env.CHAOS_WORKER ?? '') as WorkerConfig
// The runtime under test: this checkout's src/, or an earlier commit's (`--baseline`).
const root = config.runtime ? pathToFileURL(`${config.runtime}/`) : new URL('../src/', import.meta.url)
const load = (path: string) => import(new URL(path, root).href)
const { createConsumer } = (await load('consumer/consumer.ts')) as typeof ConsumerModule
const { Channels } = (await load('instrumentation/channels.ts')) as { Channels: typeof ChannelNames }
const { KafkaTransport } = (await load('kafka/transport.ts')) as typeof TransportModule
const { bounded } = (await load('retry/policy.ts')) as typeof PolicyModule
const { stopOnSignals } = (await load('service/signals.ts')) as typeof SignalsModule

const fd = openSync(config.log, 'a')
const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000
const write = (line: Record<string, unknown>) => writeSync(fd, `${JSON.stringify({ ...line, t: now() })}\n`)

class PlantedFailure extends Error {
  override name = 'PlantedFailure'
}

const transport = new KafkaTransport({
  connection: { brokers: config.brokers, clientId: 'conveyor-chaos' },
  maxWaitTime: 200
})
const consumer = createConsumer({
  transport,
  groupId: config.group,
  topics: [config.topic],
  ordering: 'key',
  concurrency: config.concurrency,
  commitInterval: config.commitInterval,
  ...(config.finishedMetadata === undefined ? {} : { finishedMetadata: config.finishedMetadata }),
  sessionTimeout: 10_000,
  heartbeatInterval: 1_000,
  routes: {
    work: {
      // Four attempts: a transient failure (one or two failed attempts) always recovers.
      retry: bounded({ retries: 3, initialDelay: config.retryDelay }),
      handler: async (message, { signal }) => {
        if (config.delay > 0) await sleep(config.delay, undefined, { signal })
        const planned = message.value as PlannedMessage
        if (planned.permanent) throw new PlantedFailure(`message ${planned.i} always fails`)
        if (message.attempt <= planned.fail)
          throw new PlantedFailure(`message ${planned.i}, attempt ${message.attempt}`)
        write({ e: 'h', i: planned.i, p: message.partition, o: String(message.offset) })
      }
    }
  }
})

/** The partitions owned now: a commit of any other is left out by the transport (see `Subscription.commit`). */
let owned = new Set<number>()
subscribe(Channels.assigned, (event) => {
  const { partitions } = event as PartitionsEvent
  owned = new Set(partitions.map((tp) => tp.partition))
  write({ e: 'a', ps: partitions.map((tp) => tp.partition) })
  if (partitions.length > 0) process.stdout.write('running\n')
})
subscribe(Channels.commit, (event) => {
  const { offsets, error } = event as CommitEvent
  if (error !== undefined) return
  const cs = offsets
    .filter(({ partition }) => owned.has(partition))
    .map(({ partition, offset, metadata }) => ({ p: partition, o: String(offset), m: metadata ?? '' }))
  if (cs.length > 0) write({ e: 'c', cs })
})
subscribe(Channels.deadLettered, (event) => {
  const { record } = event as DeadLetteredEvent
  const { i } = JSON.parse(record.value!.toString()) as PlannedMessage
  write({ e: 'd', i, p: record.partition, o: String(record.offset) })
})
subscribe(Channels.error, (event) => {
  const { error, context, fatal } = event as ErrorEvent
  write({
    e: 'x',
    context,
    fatal,
    error: describe(error)
  })
})
setInterval(() => write({ e: 's', b: consumer.buffered }), 100).unref()

/** An error with what it aggregates (the client's retries) and its cause, in one line. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const inner = (error as { errors?: unknown[] }).errors ?? (error.cause === undefined ? [] : [error.cause])
  const text = `${error.name}: ${error.message}`
  return inner.length === 0 ? text : `${text} [${inner.map(describe).join('; ')}]`
}

stopOnSignals([consumer, { stop: () => transport.close() }])
await consumer.start()
