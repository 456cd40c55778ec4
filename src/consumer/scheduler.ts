/**
 * Scheduling: which accepted record runs next, and how many run at once.
 *
 * Records wait in *lanes*. A lane runs one record at a time, in the order records were
 * added, so the lane decides what stays in order: one lane per partition (`partition`
 * ordering), per partition and key (`key`), or per record (`unordered`). At most
 * `concurrency` lanes run at once; lanes with work and no slot wait in a ready queue, in
 * the order they became ready, so lanes with backlogs take turns.
 *
 * With batch routes, a lane hands its records over in *runs*: up to `run.size` consecutive
 * records at once (waiting up to `run.wait` ms for that many), which the processor splits
 * into batches and settles one by one as each finishes.
 *
 * The scheduler also keeps the counts of what is held (queued plus in flight), per
 * partition and in total, and settles each record's outcome in its partition's progress:
 * finished (processed, dead-lettered, ignored) or abandoned (to be read again).
 */
import type { InboundRecord } from '../transport/types.ts'
import type { Outcome, PartitionState } from './partition.ts'

/** What a consumer keeps in order: a partition's messages, a key's, or none (see `ConsumerOptions`). */
export type Ordering = 'partition' | 'key' | 'unordered'

interface Lane {
  readonly key: string
  readonly partition: PartitionState
  readonly queue: InboundRecord[]
  head: number
  running: boolean
  scheduled: boolean
  /** Runs: the wait for a full run is over (or was not needed); the lane runs with what it has. */
  due: boolean
  /** Runs: ends the wait for a full run early (clears its timer), while one is pending. */
  cancelWait: (() => void) | undefined
}

/** What the processor of a run reports to the scheduler, and asks of it. */
export interface RunControl {
  /** The records at `from` … `to - 1` are handed to a handler (or the DLQ) now. */
  start(from: number, to: number): void
  /** The record at `index` is done with. */
  settle(index: number, outcome: Outcome): void
  /** While a hold (a rebalance) is in force, a promise of its end: start nothing new until then. */
  held(): Promise<void> | undefined
}

export interface SchedulerOptions {
  ordering: Ordering
  concurrency: number
  /** Handles one record; a string outcome means it finished synchronously. */
  process(record: InboundRecord, partition: PartitionState): Outcome | Promise<Outcome>
  /**
   * Set for batch routes: a lane hands over up to `size` consecutive records at once to
   * `run.process`, after waiting up to `wait` ms for that many to arrive.
   */
  run?: {
    size: number
    wait: number
    process(records: InboundRecord[], partition: PartitionState, control: RunControl): Promise<void>
  }
  /** A lane of the partition gave its slot back (flow control may resume reading). */
  released(partition: PartitionState): void
  /** `process` rejected, which it must never do: the record is abandoned, not committed. */
  failed(error: unknown): void
}

/** Records a lane runs back to back while its handlers finish synchronously, before it yields its slot. */
const syncBurst = 64

export class Scheduler {
  readonly #options: SchedulerOptions
  readonly #lanes = new Map<string, Lane>()
  readonly #ready: Lane[] = []
  #active = 0
  #buffered = 0
  #settled = 0
  /** Set at stop: lanes finish the record they run and start no other. */
  #halted = false
  /** Set during `hold`: like `#halted`, until `unhold`. */
  #held = false
  /** Resolved at `unhold`: runs under way wait for it before they start another record. */
  #unheld: PromiseWithResolvers<void> | undefined
  readonly #idle: Array<() => void> = []

  constructor(options: SchedulerOptions) {
    this.#options = options
  }

  /** Records queued or in flight, over all partitions. */
  get buffered(): number {
    return this.#buffered
  }

  /** Records settled since the scheduler was made (processed, dead-lettered, ignored or abandoned). */
  get settled(): number {
    return this.#settled
  }

  /** Lanes running a record now. */
  get active(): number {
    return this.#active
  }

  /** Queues an accepted record in its lane and runs it as soon as the lane and a slot are free. */
  add(partition: PartitionState, record: InboundRecord): void {
    const laneKey = this.#laneKey(partition, record)
    let lane = this.#lanes.get(laneKey)
    if (!lane || lane.partition !== partition) {
      lane = {
        key: laneKey,
        partition,
        queue: [],
        head: 0,
        running: false,
        scheduled: false,
        due: false,
        cancelWait: undefined
      }
      this.#lanes.set(laneKey, lane)
    }
    lane.queue.push(record)
    partition.buffered++
    this.#buffered++
    this.#schedule(lane)
  }

  /** Lanes finish the record they run and start no other (the consumer is stopping). */
  halt(): void {
    this.#halted = true
  }

  /**
   * Starts no record until `unhold` (a rebalance is about to move partitions): lanes finish
   * the record they run. Unlike `halt`, this ends.
   */
  hold(): void {
    this.#held = true
    this.#unheld ??= Promise.withResolvers()
  }

  /** Ends a `hold`: every lane with queued records is scheduled again. */
  unhold(): void {
    if (!this.#held) return
    this.#held = false
    this.#unheld?.resolve()
    this.#unheld = undefined
    for (const lane of this.#lanes.values()) this.#schedule(lane)
    this.#pump() // lanes that were already waiting for a slot
  }

  /** Forgets the partition's queued (not started) records: they are abandoned, so never committed. */
  discard(partition: PartitionState): void {
    for (const [key, lane] of this.#lanes) {
      if (lane.partition !== partition) continue
      for (let i = lane.head; i < lane.queue.length; i++) this.#abandonQueued(partition, lane.queue[i]!)
      lane.queue.length = 0
      lane.head = 0
      lane.cancelWait?.()
      lane.cancelWait = undefined
      if (!lane.running) this.#lanes.delete(key)
    }
    this.#checkIdle()
  }

  /**
   * Keeps at most `keep` of the partition's queued records, the lowest offsets, and
   * abandons the others. Cutting by offset keeps every key's order. Returns the cut
   * offset (from which records must be read again), or `undefined` when nothing was cut.
   */
  setAsideFrom(partition: PartitionState, keep: number): bigint | undefined {
    const queued: bigint[] = []
    for (const lane of this.#lanes.values()) {
      if (lane.partition !== partition) continue
      for (let i = lane.head; i < lane.queue.length; i++) queued.push(lane.queue[i]!.offset)
    }
    if (queued.length <= keep) return undefined
    queued.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const cut = queued[Math.max(0, keep)]!
    for (const [key, lane] of this.#lanes) {
      if (lane.partition !== partition) continue
      let write = lane.head
      for (let read = lane.head; read < lane.queue.length; read++) {
        const record = lane.queue[read]!
        if (record.offset >= cut) this.#abandonQueued(partition, record)
        else lane.queue[write++] = record
      }
      lane.queue.length = write
      if (!lane.running && lane.head >= lane.queue.length) this.#lanes.delete(key)
    }
    return cut
  }

  /** Resolves `true` once no lane runs, `false` if `timeout` ms pass first. */
  waitIdle(timeout: number): Promise<boolean> {
    if (this.#active === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeout)
      this.#idle.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  #abandonQueued(partition: PartitionState, record: InboundRecord): void {
    partition.progress.abandon(record.offset)
    partition.buffered--
    this.#buffered--
  }

  #laneKey(partition: PartitionState, record: InboundRecord): string {
    switch (this.#options.ordering) {
      case 'partition':
        return partition.key
      case 'key':
        return record.key === null ? `${partition.key}|` : `${partition.key}|${record.key.toString('latin1')}`
      default:
        return `${partition.key}@${record.offset}`
    }
  }

  #schedule(lane: Lane): void {
    if (this.#halted || this.#held) return
    if (lane.running || lane.scheduled || lane.head >= lane.queue.length) return
    if (this.#options.run !== undefined && !this.#filled(lane, this.#options.run)) return
    if (this.#ready.length === 0 && this.#active < this.#options.concurrency) {
      this.#run(lane) // what #pump would do, without the round trip through the ready queue
      return
    }
    lane.scheduled = true
    this.#ready.push(lane)
    this.#pump()
  }

  /**
   * Runs: whether the lane may run now: it holds a full run, or its wait for one is over.
   * Otherwise the wait starts (once): a timer, or with no wait the end of this turn of the
   * event loop, so the records of one fetch, delivered together, run together.
   */
  #filled(lane: Lane, run: { size: number; wait: number }): boolean {
    if (lane.due || lane.queue.length - lane.head >= run.size) {
      lane.cancelWait?.()
      lane.cancelWait = undefined
      return true
    }
    if (lane.cancelWait !== undefined) return false
    const over = () => {
      lane.cancelWait = undefined
      lane.due = true
      this.#schedule(lane)
    }
    if (run.wait > 0) {
      const timer = setTimeout(over, run.wait).unref()
      lane.cancelWait = () => clearTimeout(timer)
    } else {
      const immediate = setImmediate(over).unref()
      lane.cancelWait = () => clearImmediate(immediate)
    }
    return false
  }

  #pump(): void {
    while (
      !this.#halted &&
      !this.#held &&
      this.#active < this.#options.concurrency &&
      this.#ready.length > 0
    ) {
      const lane = this.#ready.shift()!
      lane.scheduled = false
      if (lane.running || lane.head >= lane.queue.length) continue
      this.#run(lane)
    }
  }

  /**
   * Runs a lane: its next record, and — while handlers finish synchronously — the records
   * after it, up to a burst, without a promise per record. An asynchronous outcome releases
   * the lane when it settles, so lanes with backlogs take turns for the concurrency slots.
   */
  #run(lane: Lane): void {
    const partition = lane.partition
    lane.running = true
    this.#active++
    if (this.#options.run !== undefined) {
      this.#runMany(lane, this.#options.run)
      return
    }
    for (let burst = 1; ; burst++) {
      const record = lane.queue[lane.head]!
      lane.queue[lane.head] = undefined as never
      lane.head++
      if (lane.head > 1024 && lane.head * 2 > lane.queue.length) {
        lane.queue.splice(0, lane.head)
        lane.head = 0
      }
      partition.inFlight++
      const outcome = this.#options.process(record, partition)
      if (typeof outcome !== 'string') {
        outcome.then(
          (settled) => {
            this.#settle(partition, record, settled)
            this.#release(lane)
          },
          (error: unknown) => {
            this.#options.failed(error)
            this.#settle(partition, record, 'abandoned')
            this.#release(lane)
          }
        )
        return
      }
      this.#settle(partition, record, outcome)
      if (lane.head >= lane.queue.length || burst >= syncBurst || this.#halted || this.#held) break
    }
    this.#release(lane)
  }

  /** Runs: hands the lane's next records over together; each is settled as the processor says. */
  #runMany(lane: Lane, run: NonNullable<SchedulerOptions['run']>): void {
    const partition = lane.partition
    lane.due = false
    const records = lane.queue.slice(lane.head, lane.head + run.size)
    lane.queue.fill(undefined as never, lane.head, lane.head + records.length)
    lane.head += records.length
    if (lane.head > 1024 && lane.head * 2 > lane.queue.length) {
      lane.queue.splice(0, lane.head)
      lane.head = 0
    }
    partition.inFlight += records.length
    partition.unstarted += records.length
    const started = new Array<boolean>(records.length).fill(false)
    const settled = new Array<boolean>(records.length).fill(false)
    const control: RunControl = {
      start: (from, to) => {
        for (let i = from; i < to; i++) {
          if (started[i] || settled[i]) continue
          started[i] = true
          partition.unstarted--
        }
      },
      settle: (index, outcome) => {
        if (settled[index]) return
        settled[index] = true
        if (!started[index]) partition.unstarted--
        this.#settle(partition, records[index]!, outcome)
        // Flow control and early commits need not wait for the whole run.
        this.#options.released(partition)
      },
      held: () => this.#unheld?.promise
    }
    const end = (error?: unknown) => {
      if (error !== undefined) this.#options.failed(error)
      // What the processor left unsettled (only a bug does) is abandoned: never committed.
      for (let i = 0; i < records.length; i++) control.settle(i, 'abandoned')
      this.#release(lane)
    }
    run.process(records, partition, control).then(
      () => end(),
      (error: unknown) => end(error ?? new Error('the run failed'))
    )
  }

  /** One record is done with: processed, dead-lettered, ignored or abandoned. */
  #settle(partition: PartitionState, record: InboundRecord, outcome: Outcome): void {
    this.#settled++
    partition.inFlight--
    partition.buffered--
    this.#buffered--
    if (outcome === 'abandoned') partition.progress.abandon(record.offset)
    else partition.progress.finish(record.offset)
  }

  /** The lane gives back its slot; it is scheduled again if records wait in it. */
  #release(lane: Lane): void {
    this.#active--
    lane.running = false
    if (lane.head < lane.queue.length) this.#schedule(lane)
    else if (this.#options.ordering !== 'partition' && this.#lanes.get(lane.key) === lane) {
      // Key and record lanes come and go; a partition's lane stays while the partition does.
      this.#lanes.delete(lane.key)
    }
    this.#options.released(lane.partition)
    this.#pump()
    this.#checkIdle()
  }

  #checkIdle(): void {
    if (this.#active === 0 && this.#idle.length > 0) for (const resolve of this.#idle.splice(0)) resolve()
  }
}
