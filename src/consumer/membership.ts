/**
 * Membership: the consumer's place in its group. It joins (and joins again after the
 * client gave up during a broker outage), learns which partitions this member owns, keeps
 * their states, and runs the two edges of ownership:
 *
 * - **assignment**: a new partition's state is made; when {@link AssignmentListener}s are
 *   given, the partition is *preparing* until they resolve — its records are set aside
 *   (never handled, never committed past) and read again once it is ready, from where a
 *   listener asked (`start.seek`) or where the group left it;
 * - **revocation**: nothing new starts, queued records are dropped, in-flight work gets up
 *   to `drainTimeout`, the listeners' `revoked` hooks run, then what finished is committed.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { ErrorCodes } from '../core/errors.ts'
import { assignedChannel, errorChannel, resumedChannel, revokedChannel } from '../instrumentation/channels.ts'
import { decodeFinished, type FinishedRun } from '../offsets/finished-metadata.ts'
import { PartitionProgress } from '../offsets/partition-progress.ts'
import { backoff, forever } from '../retry/policy.ts'
import {
  type InboundRecord,
  partitionKey,
  type SubscribeOptions,
  type Subscription,
  type TopicPartition,
  type Transport
} from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import type { Committer } from './commits.ts'
import type { FlowControl } from './flow.ts'
import { newPartitionState, type PartitionState } from './partition.ts'
import type { Scheduler } from './scheduler.ts'

/**
 * Hooks around the ownership of a partition, awaited by the runtime. Listeners run in
 * the order given; a listener that throws in `assigned` is called again (capped backoff,
 * from that listener on) until it resolves or the partition is gone, so it must be safe
 * to repeat. `revoked` runs for every partition `assigned` ran for, even one whose
 * `assigned` did not finish.
 */
export interface AssignmentListener {
  /**
   * A partition became this member's. Runs before any of its records is handled (seek to
   * a position kept elsewhere, take a fence, restore state); records that arrive meanwhile
   * are set aside and delivered again afterwards. Runs after the previous ownership's
   * `revoked` of the same partition, when it is taken again.
   */
  assigned?(partition: TopicPartition, start: PartitionStart): void | Promise<void>
  /**
   * The partition is no longer this member's (a rebalance, or the consumer stops). Runs
   * once its in-flight work finished or the drain timeout passed, before its final commit
   * (flush, release).
   */
  revoked?(partition: TopicPartition): void | Promise<void>
}

/** What an `assigned` hook may decide about a partition's start. */
export interface PartitionStart {
  /**
   * Reads the partition from `offset` instead of the group's committed offset: records
   * below it count as finished. The last call of all listeners wins.
   */
  seek(offset: bigint): void
  /** Aborted when the partition is revoked again or the consumer stops before the hooks finished. */
  readonly signal: AbortSignal
}

/** Joining the group again after the subscription failed. */
const resubscribeRetry = forever({ initialDelay: 1_000, maxDelay: 30_000 })

/** How long a new partition waits for the read of what earlier owners finished, ms. */
const finishedReadTimeout = 10_000

/** An `assigned` hook that failed is called again with this policy. */
const assignedRetry = forever({ initialDelay: 500, maxDelay: 30_000 })

export interface MembershipOptions {
  transport: Transport
  subscribe: SubscribeOptions
  drainTimeout: number
  listeners: readonly AssignmentListener[]
  /** Read, for each new partition, the offsets an earlier owner finished above its commit. */
  skipFinished: boolean
  scheduler: Scheduler
  committer: Committer
  /** Aborted at stop(). */
  stopping: AbortSignal
  /** Aborted past the drain timeout at stop(). */
  handlerAbort: AbortSignal
  /** Each record delivered by the subscription. */
  record(record: InboundRecord): void
  running(): boolean
  /** The broker refused the credentials: joining again cannot help. */
  fatal(): void
}

export class Membership {
  /** The partitions this member owns, by `topic:partition`. */
  readonly partitions = new Map<string, PartitionState>()
  /** Flow control, made after the membership (it reads the partitions); set before `join`. */
  flow: FlowControl | undefined
  readonly #options: MembershipOptions
  #subscription: Subscription | undefined
  /** The partitions the group gave this member, once it said. */
  #assignment: Set<string> | undefined
  /** Counts assignments: a partition's state records the one it was taken in. */
  #generation = 0
  /** Partitions to take again at the next assignment that keeps them (see `reacquire`). */
  readonly #reacquiring = new Set<string>()
  /** The partition of the last record received (see `stateOf`). */
  #lastState: PartitionState | undefined
  /**
   * The subscription being made, or the last one made: a partition's preparation seeks
   * through it (an announcement can come before `subscribe` resolved).
   */
  #latest: Promise<Subscription | undefined> = Promise.resolve(undefined)
  /** Assignment hooks in progress. */
  readonly #preparing = new Map<PartitionState, Promise<void>>()
  /** How many listeners' `assigned` hooks were called for a partition: their `revoked` are owed. */
  readonly #hooked = new Map<PartitionState, number>()
  /** Resolved when the consumer, stopping, has made its final commit and leaves. */
  readonly #closing = Promise.withResolvers<void>()
  /** Revocations in progress, by partition key: a new ownership of it starts after. */
  readonly #revoking = new Map<string, Promise<void>>()

  constructor(options: MembershipOptions) {
    this.#options = options
  }

  /** The subscription, once the one being made (at start, or joining again) is there. */
  get latest(): Promise<Subscription | undefined> {
    return this.#latest
  }

  get subscription(): Subscription | undefined {
    return this.#subscription
  }

  /** Joins the group; resolves once the subscription exists. */
  async join(): Promise<void> {
    this.#subscription = await this.#subscribe()
  }

  /**
   * The state of the record's partition, `undefined` when this member does not own it.
   * Records come in runs of one partition, so the last one looked up is tried first; a
   * partition let go is marked `revoked` (and its state dropped), so the shortcut never
   * outlives the ownership.
   */
  stateOf(record: InboundRecord): PartitionState | undefined {
    const last = this.#lastState
    if (
      last !== undefined &&
      !last.revoked &&
      last.tp.partition === record.partition &&
      last.tp.topic === record.topic
    )
      return last
    const key = partitionKey(record.topic, record.partition)
    if (this.#assignment && !this.#assignment.has(key)) return undefined
    const state = this.partitions.get(key) ?? this.#partition(record)
    this.#lastState = state
    return state
  }

  /**
   * The consumer stops: with assignment listeners, waits for revocations in progress,
   * then runs the `revoked` hooks of the partitions still owned (their final commit
   * follows, by the consumer). Without listeners there is nothing to wait for.
   */
  async release(): Promise<void> {
    if (this.#options.listeners.length === 0) return
    await Promise.all(this.#revoking.values())
    await this.#revokedHooks([...this.partitions.values()])
  }

  /** Leaves the group. */
  async close(): Promise<void> {
    this.#closing.resolve()
    await this.#subscription?.close()
  }

  #subscribe(): Promise<Subscription> {
    let subscription: Subscription | undefined
    let failedEarly: Error | undefined
    const created = this.#options.transport
      .subscribe(this.#options.subscribe, {
        record: this.#options.record,
        assigned: (partitions) => this.#assigned(partitions),
        // A failure before `subscribe` resolved is acted on once the subscription is this
        // member's (the caller sets it right after).
        failed: (error) => {
          if (subscription === undefined) failedEarly ??= error
          else void this.#recover(subscription, error)
        },
        rebalancing: () => this.#rebalancing()
      })
      .then((made) => {
        subscription = made
        if (failedEarly !== undefined) {
          const error = failedEarly
          setImmediate(() => void this.#recover(made, error))
        }
        return made
      })
    this.#latest = created.catch(() => undefined)
    return created
  }

  /**
   * The subscription failed (the broker was gone longer than the client retries): close
   * it and join again, with capped backoff, until it works or the consumer stops. The
   * partitions are lost, as a Kafka consumer's `onPartitionsLost`: closing leaves the group,
   * and another member may take them at once. So queued records are dropped, running
   * handlers are told to stop (their signal), and nothing is committed: a commit from here
   * could move a partition back behind what its new owner committed. What the new
   * subscription assigns starts afresh from the group's commit. Rejected credentials stop
   * the consumer: joining again cannot fix them.
   */
  async #recover(failed: Subscription | undefined, error: Error): Promise<void> {
    const { groupId } = this.#options.subscribe
    if (failed !== this.#subscription || !this.#options.running()) return
    const fatal = (error as { code?: string }).code === ErrorCodes.KAFKA_AUTHENTICATION
    errorChannel.publish({ groupId, error, fatal, context: 'subscription' })
    // Nothing is owned until the new subscription says (records the failed one still
    // delivers are not this member's to handle).
    this.#assignment = new Set()
    this.#startRevocation([...this.partitions.values()], 'lost')
    this.#options.scheduler.unhold() // a rebalance that never completed; the queues are dropped
    await failed?.close().catch(() => {})
    if (fatal) {
      this.#options.fatal()
      return
    }
    for (let attempt = 1; this.#options.running(); attempt++) {
      if (!(await wait(backoff(resubscribeRetry, attempt), this.#options.stopping))) return
      try {
        const subscription = await this.#subscribe()
        if (!this.#options.running()) {
          await subscription.close()
          return
        }
        this.#subscription = subscription
        this.flow?.subscribed()
        return
      } catch (retryError) {
        errorChannel.publish({ groupId, error: retryError, fatal: false, context: 'subscription' })
      }
    }
  }

  /** `finished`: the read of what earlier owners finished, or `null` to read it once its revocation here ended. */
  #partition(tp: TopicPartition, finished?: Promise<Map<string, FinishedRun[]>> | null): PartitionState {
    const state = newPartitionState(tp, this.#options.stopping, this.#options.handlerAbort)
    state.generation = this.#generation
    this.partitions.set(state.key, state)
    if (this.#options.listeners.length > 0 || finished !== undefined) {
      state.preparing = true
      const preparation = this.#prepare(state, finished)
        .catch((error: unknown) => this.#report(error, 'assignment'))
        .finally(() => this.#preparing.delete(state))
      this.#preparing.set(state, preparation)
    }
    return state
  }

  /**
   * A rebalance begins; this member joins again once this resolves. Like a Kafka consumer's
   * eager revocation: no record starts until the new assignment, running ones get up to
   * `drainTimeout`, and what finished is committed while the commit still counts. The
   * partitions this member keeps then go on where they were; those that move leave nothing
   * finished uncommitted behind for their new owner to handle again. Not with assignment
   * listeners: their `revoked` hooks (a flush, say) must run before a partition's final
   * commit, and which partitions move is known only after the join.
   */
  async #rebalancing(): Promise<void> {
    if (this.partitions.size === 0 || this.#options.listeners.length > 0) return
    // A consumer that is stopping makes its final commit and leaves: the join waits for
    // that, so the commit is not refused by a rebalance this member takes part in.
    if (this.#options.stopping.aborted) return this.#closing.promise
    this.#options.scheduler.hold()
    const states = [...this.partitions.values()]
    // Records waiting for a retry, or in a run and not started, are not running.
    const running = () => states.some((s) => s.inFlight - s.unstarted > s.retrying)
    const deadline = Date.now() + this.#options.drainTimeout
    while (running() && Date.now() < deadline && !this.#options.stopping.aborted) await sleep(5)
    if (this.#options.stopping.aborted) return this.#closing.promise
    // Not the partitions lost meanwhile (the subscription failed): their commit could go
    // behind what a new owner committed.
    await this.#options.committer.commit(states.filter((s) => !s.revoked))
  }

  #assigned(partitions: TopicPartition[]): void {
    const now = new Set(partitions.map((p) => partitionKey(p.topic, p.partition)))
    this.#assignment = now
    this.#generation++
    const revoked = [...this.partitions.values()].filter((state) => !now.has(state.key))
    for (const state of revoked) this.partitions.delete(state.key)
    const fresh = partitions.filter((tp) => !this.partitions.has(partitionKey(tp.topic, tp.partition)))
    // Partitions whose previous ownership here is still being revoked read after its final commit.
    const settled = fresh.filter((tp) => !this.#revoking.has(partitionKey(tp.topic, tp.partition)))
    const finished =
      this.#options.skipFinished && settled.length > 0 ? this.#readFinished(settled) : undefined
    for (const tp of fresh) {
      const later = !settled.includes(tp) && this.#options.skipFinished
      this.#partition(tp, later ? null : finished)
    }
    const { groupId } = this.#options.subscribe
    if (assignedChannel.hasSubscribers) assignedChannel.publish({ groupId, partitions })
    this.#startRevocation(revoked)
    this.#options.scheduler.unhold() // after the revocation dropped the queues of partitions let go
    // Partitions waiting to be taken again, now that the group has given them again.
    for (const key of [...this.#reacquiring]) {
      this.#reacquiring.delete(key)
      const state = this.partitions.get(key)
      // Kept from before this assignment (a partition taken anew meanwhile starts fresh anyway).
      if (state && now.has(key) && state.generation < this.#generation) this.reacquire(state.tp)
    }
  }

  /**
   * A listener's hold on the partition ended (a fence refused its writes: another member had
   * it in between). Its work is dropped and its `revoked` hooks run, with no final commit;
   * it then starts again as newly assigned (its `assigned` hooks run, and it reads from where
   * they say) — once the group has given it to this member in an assignment after the one it
   * was taken in: at once when a rejoin has kept it since, else at the next assignment that
   * keeps it. So a member that missed a rebalance does not take a partition back from its
   * owner; `now` does (when what a listener holds is unknown, not refused).
   */
  reacquire(tp: TopicPartition, { now = false }: { now?: boolean } = {}): void {
    const key = partitionKey(tp.topic, tp.partition)
    const state = this.partitions.get(key)
    if (!state || state.revoked || this.#options.stopping.aborted) return
    if (!now && state.generation === this.#generation) {
      this.#reacquiring.add(key)
      return
    }
    this.#reacquiring.delete(key)
    this.#startRevocation([state], 'lost')
    if (this.#assignment?.has(key)) this.#partition(tp)
  }

  /**
   * Lets the partitions go (see `#revoke`); taking one of them again waits for it.
   * `lost`: the membership ended without a rebalance, so there is no final commit.
   */
  #startRevocation(states: PartitionState[], how: 'revoked' | 'lost' = 'revoked'): void {
    if (states.length === 0) return
    for (const state of states)
      if (this.partitions.get(state.key) === state) this.partitions.delete(state.key)
    const revocation = this.#revoke(states, how).finally(() => {
      for (const state of states)
        if (this.#revoking.get(state.key) === revocation) this.#revoking.delete(state.key)
    })
    for (const state of states) this.#revoking.set(state.key, revocation)
  }

  /**
   * The offsets earlier owners finished above their commit points, per partition, from the
   * commits' metadata. Reading is an optimisation: when it fails, nothing is skipped.
   */
  async #readFinished(partitions: TopicPartition[]): Promise<Map<string, FinishedRun[]>> {
    const found = new Map<string, FinishedRun[]>()
    try {
      const subscription = await this.#latest
      const committed = (await subscription?.committed?.(partitions)) ?? []
      for (const { topic, partition, offset, metadata } of committed) {
        if (offset === undefined) continue
        const runs = decodeFinished(offset, metadata)
        if (runs.length > 0) found.set(partitionKey(topic, partition), runs)
      }
    } catch (error) {
      this.#report(error, 'assignment')
    }
    return found
  }

  /** Reads what an earlier owner finished and runs the `assigned` hooks of a new partition, then lets its records through. */
  async #prepare(
    state: PartitionState,
    finished?: Promise<Map<string, FinishedRun[]>> | null
  ): Promise<void> {
    await this.#revoking.get(state.key) // the previous ownership's `revoked` hooks first
    if (finished !== undefined) {
      const reading = finished ?? this.#readFinished([state.tp])
      // An optimisation: a slow read does not hold the partition for long.
      const found = await Promise.race([
        reading,
        wait(finishedReadTimeout, state.waits).then(() => undefined)
      ])
      state.skip = found?.get(state.key)
    }
    let start: bigint | undefined
    const control: PartitionStart = {
      seek: (offset) => {
        start = offset
      },
      signal: state.waits
    }
    const { listeners } = this.#options
    for (let next = 0, attempt = 1; next < listeners.length; ) {
      if (state.waits.aborted) return
      this.#hooked.set(state, next + 1)
      try {
        await listeners[next]!.assigned?.(state.tp, control)
        next++
        attempt = 1
      } catch (error) {
        this.#report(error, 'assignment')
        if (!(await wait(backoff(assignedRetry, attempt++), state.waits))) return
      }
    }
    // Seek through the subscription that announced the partition, or a later one.
    const subscription = await this.#latest
    if (state.waits.aborted) return
    state.preparing = false
    if (start !== undefined) {
      state.progress = PartitionProgress.startingAt(state.tp.topic, state.tp.partition, start)
      state.skip = undefined // what the group's metadata says is about the group's offset, not this start
      state.pausedTail = false
      subscription?.seek(state.tp, start)
      if (resumedChannel.hasSubscribers) {
        const { groupId } = this.#options.subscribe
        resumedChannel.publish({ groupId, partition: state.tp, from: start })
      }
    } else if (state.pausedTail) {
      this.flow?.rewind(state, subscription)
    }
  }

  /**
   * Partitions taken away by a rebalance: nothing new starts, queued records are dropped,
   * in-flight work gets up to `drainTimeout`, the `revoked` hooks run, then what finished
   * is committed (not when the partitions were `lost` with the membership).
   */
  async #revoke(states: PartitionState[], how: 'revoked' | 'lost'): Promise<void> {
    for (const state of states) {
      state.revoked = true
      state.revocation.abort()
      this.#options.scheduler.discard(state)
    }
    this.flow?.maybeResume()
    const deadline = Date.now() + this.#options.drainTimeout
    while (states.some((s) => s.inFlight > 0) && Date.now() < deadline) await sleep(20)
    await this.#revokedHooks(states)
    if (how === 'revoked') await this.#options.committer.commit(states)
    if (revokedChannel.hasSubscribers) {
      const { groupId } = this.#options.subscribe
      revokedChannel.publish({ groupId, partitions: states.map((s) => s.tp) })
    }
  }

  /**
   * Runs, for each partition, the `revoked` hook of every listener whose `assigned` was
   * called, once its `assigned` hooks ended; never twice for one ownership.
   */
  async #revokedHooks(states: PartitionState[]): Promise<void> {
    const { listeners } = this.#options
    if (listeners.length === 0) return
    for (const state of states) {
      await this.#preparing.get(state)
      const owed = this.#hooked.get(state) ?? 0
      this.#hooked.delete(state)
      for (const listener of listeners.slice(0, owed)) {
        try {
          await listener.revoked?.(state.tp)
        } catch (error) {
          this.#report(error, 'revocation')
        }
      }
    }
  }

  #report(error: unknown, context: string): void {
    errorChannel.publish({ groupId: this.#options.subscribe.groupId, error, fatal: false, context })
  }
}
