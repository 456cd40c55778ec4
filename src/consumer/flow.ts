/**
 * Flow control: keeps what the consumer holds in memory bounded, without letting one
 * blocked or flooded partition stop the others.
 *
 * Two tools, both on the subscription: **pausing the stream** (no more fetches, for all
 * partitions, until `resume`) when the whole consumer is full, and **parking a partition**
 * (its further records are dropped and set aside; the commit point never passes the first
 * of them) until it has room again, when it is **rewound**: the subscription seeks back to
 * the first set-aside record and delivers the tail again.
 */
import { pausedChannel, resumedChannel } from '../instrumentation/channels.ts'
import type { Subscription } from '../transport/types.ts'
import type { PartitionState } from './partition.ts'
import type { Ordering, Scheduler } from './scheduler.ts'

export interface FlowOptions {
  groupId: string
  ordering: Ordering
  maxBuffered: number
  maxBufferedPerPartition: number
  scheduler: Scheduler
  /** The owned partitions. */
  partitions: ReadonlyMap<string, PartitionState>
  /** The current subscription (it changes when the consumer joins again). */
  subscription(): Subscription | undefined
  /** Whether the consumer is running (nothing resumes while it stops). */
  running(): boolean
}

export class FlowControl {
  readonly #options: FlowOptions
  /** Fetching is paused because the buffer is full (see `isFull`). */
  #streamPaused = false

  constructor(options: FlowOptions) {
    this.#options = options
  }

  /** A new subscription fetches from the start: it is not paused. */
  subscribed(): void {
    this.#streamPaused = false
  }

  /**
   * Whether a partition may take no more records now. A partition blocked by a retry may
   * hold `maxBufferedPerPartition`. Otherwise the consumer takes records freely until it
   * holds `maxBuffered`; past that, each partition may hold its fair share of it, so the
   * partitions delivered first cannot take the whole budget and starve the others.
   */
  isFull(state: PartitionState): boolean {
    const { maxBuffered, maxBufferedPerPartition } = this.#options
    if (state.retrying > 0) return state.buffered >= maxBufferedPerPartition
    if (this.#options.scheduler.buffered < maxBuffered) return false
    // Partitions blocked by a retry keep to their own bound and must not stop the others.
    if (this.#flowingBuffered() < maxBuffered) return false
    // Full: stop fetching. The response being delivered still arrives (at most one fetch)
    // and is kept — no record is set aside and read again, so a busy consumer costs no
    // re-reads.
    this.#pauseStream()
    // In partition order a partition is one lane: one far over its fair share (a fetch can
    // bring one partition much more than the others) would hold the shared buffer while the
    // other partitions idle, so its further records are set aside. In key and unordered
    // order its records spread over many lanes that use every slot: nothing is set aside.
    return this.#options.ordering === 'partition' && state.buffered >= 2 * this.#fairShare()
  }

  /** Sets aside the partition's records from `offset` on and parks it (it may stay blocked for long). */
  park(state: PartitionState, offset: bigint): void {
    state.pausedTail = true
    state.progress.dropFrom(offset)
    this.#options.subscription()?.park(state.tp)
    if (pausedChannel.hasSubscribers) {
      pausedChannel.publish({ groupId: this.#options.groupId, partition: state.tp, offset })
    }
  }

  /**
   * A partition just became blocked by a retry while holding more than its bound (a
   * burst queued before the failure): set aside its queued records from a cut offset on,
   * so it holds at most the bound.
   */
  shed(state: PartitionState): void {
    const bound = this.#options.maxBufferedPerPartition
    if (state.buffered <= bound || state.pausedTail) return
    const cut = this.#options.scheduler.setAsideFrom(state, bound - state.inFlight)
    if (cut !== undefined) this.park(state, cut)
  }

  /** A lane of the partition finished a record: read its set-aside tail or fetch again if there is room. */
  released(state: PartitionState): void {
    this.maybeRewind(state)
    this.maybeResume(state)
  }

  /**
   * Reads the set-aside records again once the partition has room: when blocked by a
   * retry, once a quarter of `maxBufferedPerPartition` is free (a blocked key may hold up
   * to three quarters of it while its partition's other keys keep flowing); otherwise once
   * the consumer is under three quarters of `maxBuffered` or the partition under three
   * quarters of its fair share.
   */
  maybeRewind(state: PartitionState): void {
    if (!state.pausedTail || state.revoked || state.preparing || !this.#options.running()) return
    if (state.retrying > 0) {
      if (state.buffered > (this.#options.maxBufferedPerPartition * 3) / 4) return
    } else if (
      this.#options.scheduler.buffered > (this.#options.maxBuffered * 3) / 4 &&
      state.buffered > (this.#fairShare() * 3) / 4
    ) {
      return
    }
    this.rewind(state)
  }

  /** Delivers the partition's set-aside records again, from the first one. */
  rewind(state: PartitionState, subscription = this.#options.subscription()): void {
    const from = state.progress.rewindPoint()
    state.pausedTail = false
    if (from === undefined) return
    subscription?.seek(state.tp, from)
    if (resumedChannel.hasSubscribers)
      resumedChannel.publish({ groupId: this.#options.groupId, partition: state.tp, from })
  }

  /**
   * Fetching resumes once a quarter of the buffer is free again — or, below the bound, as
   * soon as a partition has nothing left to work on, so that it does not idle while the
   * others drain their share. Either way the bound is overshot by at most one fetch.
   */
  maybeResume(emptied?: PartitionState): void {
    if (!this.#streamPaused || !this.#options.running()) return
    const { maxBuffered } = this.#options
    const flowing = this.#flowingBuffered()
    const starving =
      emptied !== undefined && emptied.buffered === 0 && emptied.retrying === 0 && !emptied.revoked
    if (flowing > (maxBuffered * 3) / 4 && !(starving && flowing < maxBuffered)) return
    this.#streamPaused = false
    this.#options.subscription()?.resume()
  }

  #pauseStream(): void {
    if (this.#streamPaused) return
    this.#streamPaused = true
    this.#options.subscription()?.pause()
  }

  /** Messages held by partitions not blocked by a retry. */
  #flowingBuffered(): number {
    let flowing = this.#options.scheduler.buffered
    for (const state of this.#options.partitions.values()) if (state.retrying > 0) flowing -= state.buffered
    return flowing
  }

  #fairShare(): number {
    return Math.max(1, Math.floor(this.#options.maxBuffered / Math.max(1, this.#options.partitions.size)))
  }
}
