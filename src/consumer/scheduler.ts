/**
 * Scheduling: which accepted record runs next, and how many run at once.
 *
 * Records wait in *lanes*. A lane runs one record at a time, in the order records were
 * added, so the lane decides what stays in order: one lane per partition (`partition`
 * ordering), per partition and key (`key`), or per record (`unordered`). At most
 * `concurrency` lanes run at once; lanes with work and no slot wait in a ready queue, in
 * the order they became ready, so lanes with backlogs take turns.
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
}

export interface SchedulerOptions {
  ordering: Ordering
  concurrency: number
  /** Handles one record; a string outcome means it finished synchronously. */
  process(record: InboundRecord, partition: PartitionState): Outcome | Promise<Outcome>
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
      lane = { key: laneKey, partition, queue: [], head: 0, running: false, scheduled: false }
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
  }

  /** Ends a `hold`: every lane with queued records is scheduled again. */
  unhold(): void {
    if (!this.#held) return
    this.#held = false
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
    if (this.#ready.length === 0 && this.#active < this.#options.concurrency) {
      this.#run(lane) // what #pump would do, without the round trip through the ready queue
      return
    }
    lane.scheduled = true
    this.#ready.push(lane)
    this.#pump()
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
