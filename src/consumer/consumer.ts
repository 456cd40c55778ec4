/**
 * The consumer runtime's front: options, lifecycle (`start`, `stop`), status, and the
 * first step of every record's path. The path of one message through the parts:
 *
 *   subscription ─► Membership.stateOf (owned? preparing?) ─► PartitionProgress.admit
 *     ─► FlowControl.isFull (park when over a bound) ─► Scheduler.add (lane, slot)
 *     ─► Processor.handle (decode, route, middleware, handler) ─► FailurePath (retry, DLQ)
 *     ─► Scheduler settles the outcome in the progress ─► Committer (CommitStrategy)
 *
 * docs/architecture.md shows the parts and where each feature plugs in.
 */
import type { Codec } from '../codec/json.ts'
import { jsonCodec } from '../codec/json.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { errorChannel, lifecycleChannel } from '../instrumentation/channels.ts'
import { inRuns } from '../offsets/finished-metadata.ts'
import { compileRoutes, type RouteTable, type TypeSource } from '../routing/routes.ts'
import type { InboundRecord, Publisher, TopicPartition } from '../transport/types.ts'
import { type CommitStrategy, Committer, groupOffsets } from './commits.ts'
import { FlowControl } from './flow.ts'
import { type AssignmentListener, Membership } from './membership.ts'
import {
  type ConsumerOptions,
  type ConsumerState,
  type ConsumerStatus,
  type ResolvedOptions,
  validate
} from './options.ts'
import type { PartitionState } from './partition.ts'
import { Processor } from './processor.ts'
import { type Ordering, Scheduler, type SchedulerOptions } from './scheduler.ts'
import { Transactions } from './transactions.ts'

export type { CommitStrategy } from './commits.ts'
export { groupOffsets } from './commits.ts'
export type { AssignmentListener, PartitionStart } from './membership.ts'
export type { ConsumerOptions, ConsumerState, ConsumerStatus } from './options.ts'
export type { RetryWait } from './partition.ts'
export type { Ordering } from './scheduler.ts'
export type { TransactionalOptions } from './transactions.ts'

/** A transactional consumer's offsets commit in its transactions: the periodic commit has nothing to do. */
const transactionalOffsets: CommitStrategy = { commit: async () => {} }

/** Commits brought forward by `commitAfter` are at least this far apart, ms. */
const minCommitSpacing = 100

const defaults = {
  typeFrom: { field: 'message_type' } as TypeSource,
  codec: jsonCodec as Codec,
  ordering: 'partition' as Ordering,
  concurrency: 16,
  unknownType: 'dead-letter' as const,
  createDeadLetterTopics: true,
  fromBeginning: true,
  commitInterval: 1_000,
  commitAfter: 200,
  drainTimeout: 30_000,
  maxBuffered: 10_000,
  maxBufferedPerPartition: 1_000,
  assignmentListeners: [] as AssignmentListener[],
  finishedMetadata: true,
  commitStrategy: groupOffsets
}

/**
 * Runs routes on a consumer group.
 *
 * Guarantees:
 * - A committed offset never passes a message that has not finished (processed or
 *   dead-lettered): a crash at any moment loses nothing; after a restart the messages of
 *   the uncommitted window are handled again (at least once).
 * - `partition` ordering handles the messages of a partition one at a time in offset
 *   order; `key` ordering does so per key; a message being retried blocks only its
 *   partition (or key) while the others keep flowing.
 * - Memory stays bounded: a partition over its bound (see `maxBuffered` and
 *   `maxBufferedPerPartition`) is paused on its own — its further records are set aside
 *   and read again later (docs/consumer.md) — while the others keep flowing.
 */
export class ConveyorConsumer {
  /** The consumer group this consumer joins. */
  readonly groupId: string
  readonly #options: ResolvedOptions
  readonly #scheduler: Scheduler
  readonly #membership: Membership
  readonly #flow: FlowControl
  readonly #committer: Committer
  readonly #routes: RouteTable
  #publisher: Publisher | undefined
  #state: ConsumerState = 'new'
  #commitTimer: NodeJS.Timeout | undefined
  /** A commit brought forward by `commitAfter`, while it waits for its turn. */
  #earlyCommit: NodeJS.Timeout | undefined
  /** The scheduler's settled count, and the time, when the last commit started. */
  #settledAtCommit = 0
  #lastCommit = 0
  /** Aborted at `stop()`: retry waits end at once. */
  readonly #stopping = new AbortController()
  /** Aborted when the drain timeout passes: handlers should give up. */
  readonly #handlerAbort = new AbortController()
  readonly #stoppedWaiters: Array<() => void> = []

  constructor(options: ConsumerOptions) {
    const merged = { ...defaults, ...options }
    validate(merged as ResolvedOptions)
    const transactions = merged.transactional
      ? new Transactions({
          transport: merged.transport,
          groupId: merged.groupId,
          transactional: merged.transactional === true ? {} : merged.transactional,
          subscription: () => this.#membership.latest,
          reacquire: (tp, options) => this.#membership.reacquire(tp, options)
        })
      : undefined
    if (transactions) {
      // Offsets move only in the transactions; what an earlier owner finished is theirs.
      merged.commitStrategy = transactionalOffsets
      merged.finishedMetadata = false
      merged.assignmentListeners = [transactions.listener, ...merged.assignmentListeners]
    }
    const routes = compileRoutes(merged.routes, 'routes', merged.middleware ?? [])
    for (const route of routes.values()) {
      if (route.batch !== undefined && merged.ordering === 'unordered')
        throw new ConveyorError(
          ErrorCodes.INVALID_OPTION,
          `routes > ${route.type} > batch: a batch is a run of one partition's or one key's messages; ordering "unordered" has none (use "partition" or "key")`,
          { path: 'ordering' }
        )
    }
    this.groupId = merged.groupId
    this.#options = merged as ResolvedOptions
    const running = () => this.#state === 'running'
    const processor = new Processor({
      groupId: this.groupId,
      routes,
      codec: merged.codec,
      typeFrom: merged.typeFrom,
      unknownType: merged.unknownType,
      producer: merged.producer,
      deadLetterTopic: (topic) => this.#defaultDeadLetterTopic(topic),
      publisher: () => this.#publisher!,
      stopping: this.#stopping.signal,
      blocked: (state) => this.#flow.shed(state),
      ...(transactions ? { transactions } : {})
    })
    this.#scheduler = new Scheduler({
      ordering: merged.ordering,
      concurrency: merged.concurrency,
      process: (record, state) => processor.handle(record, state),
      ...runs(routes, (records, state, settle) => processor.handleRun(records, state, settle)),
      released: (state) => {
        this.#flow.released(state)
        if (this.#options.commitAfter > 0) this.#commitIfMuchFinished()
      },
      // Processing contains every error; reaching here is a bug. Never commit past it.
      failed: (error) =>
        errorChannel.publish({ groupId: this.groupId, error, fatal: false, context: 'runtime' })
    })
    this.#committer = new Committer(
      this.groupId,
      merged.commitStrategy,
      () => this.#membership.subscription,
      merged.finishedMetadata
    )
    this.#membership = new Membership({
      transport: merged.transport,
      subscribe: {
        groupId: this.groupId,
        topics: merged.topics,
        fromBeginning: merged.fromBeginning,
        groupInstanceId: merged.groupInstanceId,
        groupProtocol: merged.groupProtocol,
        sessionTimeout: merged.sessionTimeout,
        heartbeatInterval: merged.heartbeatInterval,
        rebalanceTimeout: merged.rebalanceTimeout
      },
      drainTimeout: merged.drainTimeout,
      listeners: [...merged.assignmentListeners],
      // The group's metadata describes the group's offsets: another strategy keeps its own.
      skipFinished: merged.finishedMetadata && merged.commitStrategy === groupOffsets,
      scheduler: this.#scheduler,
      committer: this.#committer,
      stopping: this.#stopping.signal,
      handlerAbort: this.#handlerAbort.signal,
      record: (record) => this.#receive(record),
      running,
      fatal: () => void this.stop()
    })
    this.#flow = new FlowControl({
      groupId: this.groupId,
      ordering: merged.ordering,
      maxBuffered: merged.maxBuffered,
      maxBufferedPerPartition: merged.maxBufferedPerPartition,
      scheduler: this.#scheduler,
      partitions: this.#membership.partitions,
      subscription: () => this.#membership.subscription,
      running
    })
    this.#membership.flow = this.#flow
    this.#routes = routes
  }

  /**
   * For a sink or transaction whose hold on the partition ended (a fence refused its
   * writes): drops the partition's work and takes it again as newly assigned — its
   * `revoked` hooks run (no final commit), then its `assigned` hooks, and it reads from
   * where they say — once the group has given it to this member after the assignment it was
   * taken in (at once when a rejoin kept it since, else at the next assignment that keeps
   * it), so a member that missed a rebalance does not take it back from its new owner.
   * `now`: at once (what the hold is, is unknown rather than refused).
   */
  reacquire(partition: TopicPartition, options?: { now?: boolean }): void {
    this.#membership.reacquire(partition, options)
  }

  /** Lifecycle state: `new`, `starting`, `running`, `stopping` or `stopped`. */
  get state(): ConsumerState {
    return this.#state
  }

  /** Messages queued or in flight now. */
  get buffered(): number {
    return this.#scheduler.buffered
  }

  /**
   * What each owned partition is doing: messages held, whether it is paused, the last
   * committed offset, and the messages waiting for a retry (offset, key, attempt, next try).
   */
  status(): ConsumerStatus {
    return {
      groupId: this.groupId,
      state: this.#state,
      buffered: this.#scheduler.buffered,
      partitions: [...this.#membership.partitions.values()].map((s) => ({
        topic: s.tp.topic,
        partition: s.tp.partition,
        committed: s.progress.lastCommitted === undefined ? null : String(s.progress.lastCommitted),
        buffered: s.buffered,
        inFlight: s.inFlight,
        paused: s.pausedTail,
        retrying: [...s.retryWaits].map((w) => ({ ...w, offset: String(w.offset) }))
      }))
    }
  }

  /** Creates missing dead-letter topics, joins the group and starts handling messages. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ConveyorError(ErrorCodes.STATE, `consumer already ${this.#state}`)
    this.#setState('starting')
    const { transport } = this.#options
    if (this.#options.createDeadLetterTopics) {
      const topics = new Set(this.#options.topics.map((t) => this.#defaultDeadLetterTopic(t)))
      for (const route of this.#routes.values()) if (route.deadLetterTopic) topics.add(route.deadLetterTopic)
      await transport.ensureTopics([...topics].map((topic) => ({ topic })))
    }
    this.#publisher = transport.publisher()
    await this.#membership.join()
    this.#commitTimer = setInterval(() => void this.commit(), this.#options.commitInterval)
    this.#commitTimer.unref()
    this.#setState('running')
  }

  /**
   * Stops: no new messages start, retry waits end, in-flight handlers get up to
   * `drainTimeout` ms (then their signal aborts), the assignment listeners' `revoked`
   * hooks run, finished work is committed, the group is left. Messages not finished are
   * not committed: they come again after a restart.
   */
  async stop({ timeout = this.#options.drainTimeout }: { timeout?: number } = {}): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return this.#waitStopped()
    this.#setState('stopping')
    this.#stopping.abort()
    clearInterval(this.#commitTimer)
    clearTimeout(this.#earlyCommit)
    this.#scheduler.halt()
    this.#membership.subscription?.pause()
    for (const state of this.#membership.partitions.values()) this.#scheduler.discard(state)
    const drained = await this.#scheduler.waitIdle(timeout)
    if (!drained) this.#handlerAbort.abort(new ConveyorError(ErrorCodes.TIMEOUT, 'the consumer is stopping'))
    await this.#membership.release()
    await this.commit().catch(() => {})
    await this.#membership.close()
    await this.#publisher?.close()
    this.#setState('stopped')
    for (const resolve of this.#stoppedWaiters.splice(0)) resolve()
  }

  #waitStopped(): Promise<void> {
    if (this.#state === 'stopped') return Promise.resolve()
    return new Promise((resolve) => this.#stoppedWaiters.push(resolve))
  }

  /** Commits, for every partition, the offset below which everything has finished. */
  commit(): Promise<void> {
    this.#settledAtCommit = this.#scheduler.settled
    this.#lastCommit = performance.now()
    return this.#committer.commit(this.#membership.partitions.values())
  }

  /** `commitAfter` records finished since the last commit: commit now, or once 100 ms passed since it. */
  #commitIfMuchFinished(): void {
    if (this.#scheduler.settled - this.#settledAtCommit < this.#options.commitAfter) return
    if (this.#earlyCommit !== undefined || this.#state !== 'running') return
    const wait = Math.max(0, this.#lastCommit + minCommitSpacing - performance.now())
    this.#earlyCommit = setTimeout(() => {
      this.#earlyCommit = undefined
      if (this.#state === 'running') void this.commit()
    }, wait)
    this.#earlyCommit.unref()
  }

  #setState(state: ConsumerState): void {
    this.#state = state
    if (lifecycleChannel.hasSubscribers) lifecycleChannel.publish({ groupId: this.groupId, state })
  }

  #defaultDeadLetterTopic(topic: string): string {
    return this.#options.deadLetterTopic?.(topic) ?? `${topic}.dlq`
  }

  /**
   * The first step of every record, called synchronously by the subscription in offset
   * order per partition: take it (into its lane), set it aside (to be read again), or
   * ignore it (not owned, or already taken).
   */
  #receive(record: InboundRecord): void {
    if (this.#state !== 'running' && this.#state !== 'starting') return
    const state = this.#membership.stateOf(record)
    // A record of a partition this member no longer owns (fetched before a rebalance):
    // handling it could commit past work its new owner has not done.
    if (state === undefined || state.revoked) return
    const { progress } = state
    if (progress.admit(record.offset) === 'duplicate') return
    if (state.pausedTail) {
      progress.dropFrom(record.offset)
      return
    }
    // Waiting for its assignment listeners, or over a bound: read again later.
    if (state.preparing || this.#flow.isFull(state)) {
      this.#flow.park(state, record.offset)
      return
    }
    // Finished by an earlier owner above its commit point: done already.
    if (state.skip !== undefined && skipFinished(state, record.offset)) return
    progress.accept(record.offset)
    this.#scheduler.add(state, record)
  }
}

/**
 * With batch routes, a lane hands its records over in runs as long as the longest batch,
 * after waiting as long as the most patient route for that many (see `BatchOptions`).
 */
function runs(
  routes: RouteTable,
  process: NonNullable<SchedulerOptions['run']>['process']
): Pick<SchedulerOptions, 'run'> {
  const batches = [...routes.values()].flatMap((route) => (route.batch === undefined ? [] : [route.batch]))
  if (batches.length === 0) return {}
  return {
    run: {
      size: Math.max(...batches.map((batch) => batch.maxSize)),
      wait: Math.max(...batches.map((batch) => batch.maxWait)),
      process
    }
  }
}

/** Whether a record was finished by an earlier owner (`state.skip`); if so it counts as finished now. */
function skipFinished(state: PartitionState, offset: bigint): boolean {
  const runs = state.skip!
  if (offset >= runs[runs.length - 1]!.to) {
    state.skip = undefined // past the last run: nothing more to skip
    return false
  }
  if (!inRuns(runs, offset)) return false
  state.progress.accept(offset)
  state.progress.finish(offset)
  return true
}

/** Creates a consumer; see `ConveyorConsumer`. */
export function createConsumer(options: ConsumerOptions): ConveyorConsumer {
  return new ConveyorConsumer(options)
}
