/**
 * The chaos run: keyed messages with planted failures, consumed by a group of worker
 * processes (chaos/worker.ts) that the run scales, SIGKILLs and restarts while one broker of
 * the cluster is stopped for a while; then the workers' logs, the dead-letter topic and the
 * group's commits are judged (chaos/analysis.ts).
 *
 * The disturbances are placed by progress, not by time (the share of messages settled:
 * handled or dead-lettered), so a run on a slow machine meets the same situations:
 * scale step j of n at 0.9·j/n, kill k of K at 0.05 + 0.85·(k + ½)/K, the broker stop at 0.4.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Admin, ProduceAcks, Producer, stringSerializers } from '@platformatic/kafka'
import { groupLag } from '../src/admin/lag.ts'
import { readDeadLetters } from '../src/dead-letter/replay.ts'
import type { LocalKafka } from '../src/dev/kafka/index.ts'
import { clientOptions, type KafkaConnection } from '../src/kafka/connection.ts'
import { analyse, type ChaosReport, type WorkerEvent, type WorkerLog } from './analysis.ts'
import { keyOf, type PlanOptions, plannedMessage, plantedPermanent } from './plan.ts'
import type { WorkerConfig } from './worker.ts'

export interface ChaosOptions extends PlanOptions {
  partitions: number
  /** SIGKILLs of a worker (each is restarted at once). */
  kills: number
  /** The group's sizes, in turn: [1, 3, 1] starts one worker, scales to three, then back to one. */
  scale: number[]
  /** Seconds one broker is stopped for (0: none; needs a cluster of more than one broker). */
  brokerStop: number
  /** Handler time per attempt, in ms. */
  delay: number
  concurrency: number
  commitInterval: number
  /** The runtime's `finishedMetadata`: off gives the behaviour before finished work was recorded. */
  finishedMetadata: boolean
  /**
   * The first retry's delay, ms; the rest of the retry policy is the runtime's default
   * (3 retries, doubling, jitter). 100 ms by default: with the runtime's 1 s a record
   * waiting for its retry holds one of the `concurrency` slots that long, and 5% of
   * transient failures bring a worker down to about 200 messages a second.
   */
  retryDelay: number
  /** Runs the workers on this `src/` tree (an earlier commit's) instead of this checkout's. */
  runtime?: string
  /** Give up after this many ms without finishing. */
  timeout: number
}

export const defaultChaosOptions: ChaosOptions = {
  messages: 100_000,
  partitions: 12,
  keys: 2_000,
  transient: 0.05,
  permanent: 0.001,
  seed: 1,
  kills: 3,
  scale: [1, 3, 1],
  brokerStop: 37,
  delay: 2,
  concurrency: 16,
  commitInterval: 1_000,
  finishedMetadata: true,
  retryDelay: 100,
  timeout: 900_000
}

export interface ChaosResult {
  report: ChaosReport
  /** What happened when, for the printout. */
  timeline: string[]
  /** Workers that exited without being told to (each was replaced). */
  crashes: string[]
  seconds: number
}

const workerPath = new URL('./worker.ts', import.meta.url).pathname

interface Worker {
  name: string
  child: ChildProcess
  log: string
  exited: Promise<void>
  /** Set when the run ends the worker, so its exit is not a crash. */
  ending?: 'killed' | 'stopped'
  output: string
}

/** Reads a worker's log as it grows. */
class LogTail {
  readonly #file: string
  #position = 0
  #rest = ''
  constructor(file: string) {
    this.#file = file
  }
  read(): WorkerEvent[] {
    let fd: number
    try {
      fd = openSync(this.#file, 'r')
    } catch {
      return []
    }
    const events: WorkerEvent[] = []
    const buffer = Buffer.alloc(1 << 20)
    try {
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, this.#position)
        if (n === 0) break
        this.#position += n
        const lines = (this.#rest + buffer.toString('utf8', 0, n)).split('\n')
        this.#rest = lines.pop()!
        for (const line of lines) if (line) events.push(JSON.parse(line) as WorkerEvent)
      }
    } finally {
      closeSync(fd)
    }
    return events
  }
}

export async function runChaos(
  options: ChaosOptions,
  kafka: { connection: KafkaConnection; cluster?: LocalKafka; brokers: number },
  say: (line: string) => void = () => {}
): Promise<ChaosResult> {
  const started = Date.now()
  const { connection } = kafka
  const timeline: string[] = []
  const note = (line: string) => {
    const entry = `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${line}`
    timeline.push(entry)
    say(entry)
  }
  const run = `chaos-${Date.now().toString(36)}`
  const topic = run
  const group = `${run}-group`
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-chaos-'))

  const admin = new Admin(clientOptions(connection))
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: options.partitions,
      replicas: Math.min(3, kafka.brokers)
    })
  } finally {
    await admin.close()
  }
  await produce(connection, topic, options)
  note(`produced ${options.messages} messages over ${options.keys} keys to ${options.partitions} partitions`)

  const workers: Worker[] = []
  const ended: WorkerLog[] = []
  const crashes: string[] = []
  const tails = new Map<string, LogTail>()
  const settled = new Set<number>()
  let serial = 0

  const startWorker = async (): Promise<Worker> => {
    const name = `worker-${++serial}`
    const log = join(dir, `${name}.jsonl`)
    const config: WorkerConfig = {
      brokers: connection.brokers,
      topic,
      group,
      log,
      delay: options.delay,
      concurrency: options.concurrency,
      commitInterval: options.commitInterval,
      retryDelay: options.retryDelay,
      ...(options.runtime === undefined
        ? { finishedMetadata: options.finishedMetadata }
        : { runtime: options.runtime })
    }
    const child = spawn(process.execPath, [workerPath], {
      env: { ...process.env, CHAOS_WORKER: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const worker: Worker = { name, child, log, output: '', exited: Promise.resolve() }
    worker.exited = new Promise((resolve) => child.on('exit', () => resolve()))
    const keep = (chunk: Buffer) => {
      worker.output = (worker.output + chunk.toString()).slice(-4_000)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    child.on('exit', (code, signal) => {
      const index = workers.indexOf(worker)
      if (index >= 0) workers.splice(index, 1)
      ended.push({ name, events: [], ended: worker.ending ?? 'stopped' })
      if (worker.ending === undefined) {
        crashes.push(
          `${name} exited (${signal ?? code}): ${worker.output.trim().split('\n').slice(-3).join(' | ')}`
        )
        note(`${name} exited by itself (${signal ?? code}); starting a replacement`)
        void startWorker()
      }
    })
    tails.set(name, new LogTail(log))
    workers.push(worker)
    // A worker counts once it owns partitions (or the group has none left to give it).
    const until = Date.now() + 60_000
    while (!worker.output.includes('running') && worker.child.exitCode === null && Date.now() < until)
      await sleep(100)
    return worker
  }
  const endWorker = async (worker: Worker, how: 'killed' | 'stopped') => {
    worker.ending = how
    worker.child.kill(how === 'killed' ? 'SIGKILL' : 'SIGTERM')
    const timer = setTimeout(() => worker.child.kill('SIGKILL'), 30_000)
    await worker.exited
    clearTimeout(timer)
  }
  const buffered = new Map<string, number>()
  const owned = new Map<string, number>()
  const poll = () => {
    for (const [name, tail] of tails)
      for (const event of tail.read()) {
        if (event.e === 'h' || event.e === 'd') settled.add(event.i)
        else if (event.e === 's') buffered.set(name, event.b)
        else if (event.e === 'a') owned.set(name, event.ps.length)
      }
    return settled.size / options.messages
  }

  // The disturbances, by progress.
  type Step = { at: number; what: string; act: () => Promise<void> }
  const steps: Step[] = []
  const random = seeded(options.seed)
  options.scale.slice(1).forEach((size, j) => {
    steps.push({
      at: (0.9 * (j + 1)) / options.scale.length,
      what: `scale to ${size}`,
      act: async () => {
        while (workers.length < size) await startWorker()
        const leaving = workers.slice(size)
        await Promise.all(leaving.map((w) => endWorker(w, 'stopped')))
        note(
          `scaled to ${size} (${leaving.length > 0 ? `stopped ${leaving.map((w) => w.name).join(', ')}` : 'started'})`
        )
      }
    })
  })
  for (let k = 0; k < options.kills; k++)
    steps.push({
      at: 0.05 + (0.85 * (k + 0.5)) / options.kills,
      what: `kill ${k + 1}`,
      act: async () => {
        poll()
        const owners = workers.filter((w) => (owned.get(w.name) ?? 0) > 0)
        const victim = owners[Math.floor(random() * owners.length)]
        if (victim === undefined) return
        const detail = `${owned.get(victim.name) ?? 0} partitions, ${buffered.get(victim.name) ?? 0} queued or running`
        await endWorker(victim, 'killed')
        note(`SIGKILLed ${victim.name} (${detail}); restarting it`)
        await startWorker()
      }
    })
  let outage: Promise<void> | undefined
  if (options.brokerStop > 0 && kafka.cluster && kafka.brokers > 1) {
    const cluster = kafka.cluster
    steps.push({
      at: 0.4,
      what: 'broker stop',
      act: async () => {
        const id = cluster.status().brokers.at(-1)!.id
        await cluster.stopBroker(id)
        note(`stopped broker ${id} for ${options.brokerStop} s`)
        outage = sleep(options.brokerStop * 1_000).then(async () => {
          await cluster.startBroker(id)
          note(`broker ${id} is back`)
        })
      }
    })
  }
  steps.sort((a, b) => a.at - b.at)

  const deadline = started + options.timeout
  let timedOut = false
  try {
    for (let j = 0; j < (options.scale[0] ?? 1); j++) await startWorker()
    note(`started ${workers.length} worker(s)`)
    let lastReport = Date.now()
    let lastSettled = 0
    while (poll() < 1) {
      if (Date.now() > deadline) {
        timedOut = true
        break
      }
      const progress = settled.size / options.messages
      if (steps.length > 0 && progress >= steps[0]!.at) {
        const step = steps.shift()!
        note(`${(100 * progress).toFixed(0)}% settled: ${step.what}`)
        await step.act()
      }
      if (Date.now() - lastReport > 10_000) {
        const rate = ((settled.size - lastSettled) * 1_000) / (Date.now() - lastReport)
        lastReport = Date.now()
        lastSettled = settled.size
        note(
          `${settled.size} of ${options.messages} settled (${rate.toFixed(0)}/s), ${workers.length} worker(s)`
        )
      }
      await sleep(200)
    }
    for (const step of steps) note(`not reached: ${step.what} at ${(100 * step.at).toFixed(0)}%`)
    await outage
    if (!timedOut) {
      note('every message settled; waiting for the commits to reach the log end')
      const waitUntil = Date.now() + 60_000
      while (Date.now() < waitUntil) {
        const rows = await groupLag(connection, group).catch(() => [])
        if (rows.length === options.partitions && rows.every((r) => r.lag === '0')) break
        await sleep(500)
      }
    }
  } finally {
    await Promise.all([...workers].map((w) => endWorker(w, 'stopped')))
    await outage?.catch(() => {})
  }

  const lag = await groupLag(connection, group)
  const ends = new Map(lag.map((r) => [r.partition, r]))
  const finalCommits = Array.from({ length: options.partitions }, (_, partition) => {
    const row = ends.get(partition)
    return {
      partition,
      committed: row?.committed == null ? null : BigInt(row.committed),
      end: BigInt(row?.end ?? -1)
    }
  })
  const deadLetters = (await readDeadLetters(connection, `${topic}.dlq`).catch(() => [])).map((record) => {
    let i: number | undefined
    try {
      i = (JSON.parse(record.value?.toString() ?? '') as { i?: number }).i
    } catch {}
    return { id: record.id, i }
  })
  const logs = ended.map((w) => ({ ...w, events: readLog(join(dir, `${w.name}.jsonl`)) }))
  const report = analyse({
    plan: options,
    partitions: options.partitions,
    workers: logs,
    deadLetters,
    finalCommits,
    planted: plantedPermanent(options)
  })
  if (timedOut) note(`timed out: ${settled.size} of ${options.messages} settled`)
  if (process.env.CONVEYOR_CHAOS_KEEP_LOGS) note(`workers' logs kept in ${dir}`)
  else rmSync(dir, { recursive: true, force: true })
  return { report, timeline, crashes, seconds: (Date.now() - started) / 1000 }
}

function readLog(file: string): WorkerEvent[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return []
  }
  const events: WorkerEvent[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      events.push(JSON.parse(line) as WorkerEvent)
    } catch {
      // The last line of a killed worker can be cut short.
    }
  }
  return events
}

async function produce(connection: KafkaConnection, topic: string, options: ChaosOptions): Promise<void> {
  const producer = new Producer({
    ...clientOptions(connection),
    serializers: stringSerializers,
    idempotent: true,
    acks: ProduceAcks.ALL
  })
  try {
    const batch = 2_000
    for (let start = 0; start < options.messages; start += batch) {
      const messages = []
      for (let i = start; i < Math.min(options.messages, start + batch); i++)
        messages.push({
          topic,
          key: keyOf(i, options.keys),
          value: JSON.stringify(plannedMessage(i, options))
        })
      await producer.send({ messages })
    }
  } finally {
    await producer.close()
  }
}

/** A small seeded generator (mulberry32), so the same seed kills the same workers. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}
