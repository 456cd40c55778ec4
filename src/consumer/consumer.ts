import { setTimeout as sleep } from 'node:timers/promises'
import { type Codec, jsonCodec } from '../codec/json.ts'
import { type Envelope, readEnvelope } from '../core/envelope.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { HandlerContext, Message, Middleware } from '../core/message.ts'
import { deadLetterRecord } from '../dead-letter/record.ts'
import {
  assignedChannel,
  commitChannel,
  deadLetteredChannel,
  deadLetterFailedChannel,
  errorChannel,
  handlerChannel,
  lifecycleChannel,
  messageHandledChannel,
  messageRetryChannel,
  pausedChannel,
  resumedChannel,
  revokedChannel
} from '../instrumentation/channels.ts'
import { PartitionProgress } from '../offsets/partition-progress.ts'
import type { ConveyorProducer } from '../producer/producer.ts'
import { backoff, decide, forever, reasonOf } from '../retry/policy.ts'
import {
  type CompiledRoute,
  check,
  checkTypeSource,
  compileRoutes,
  type Routes,
  type RouteTable,
  readType,
  readVersion,
  type TypeSource
} from '../routing/routes.ts'
import {
  type InboundRecord,
  type Publisher,
  partitionKey,
  type RecordPosition,
  type Subscription,
  type TopicPartition,
  type Transport
} from '../transport/types.ts'
import { wait } from '../util/wait.ts'

/** What a consumer keeps in order: a partition's messages, a key's, or none (see `ConsumerOptions`). */
export type Ordering = 'partition' | 'key' | 'unordered'

/** Options of `createConsumer`; `transport`, `groupId`, `topics` and `routes` are required. */
export interface ConsumerOptions {
  /** Broker the consumer reads from and writes dead letters to. */
  transport: Transport
  /** Consumer group to join; the committed offsets are the group's. */
  groupId: string
  /** Topics to consume (at least one). */
  topics: string[]
  /** Message type → route. */
  routes: Routes
  /** Lets handlers produce through `context.send`, with the envelope's causation set. */
  producer?: ConveyorProducer
  /** Middleware applied to every route, outside the route's own (tracing, logging, metrics). */
  middleware?: Middleware[]
  /** Where the type is read. Default: the payload field `message_type`. */
  typeFrom?: TypeSource
  /** Decodes values. Default: JSON objects. */
  codec?: Codec
  /**
   * `partition` (default): one message at a time per partition. `key`: one at a time per
   * key, keys in parallel. `unordered`: everything in parallel. All bounded by `concurrency`.
   */
  ordering?: Ordering
  /** Most messages handled at the same time. Default 16. */
  concurrency?: number
  /** A message whose type has no route: to the DLQ (default, reason `unknown_message_type`) or ignored. */
  unknownType?: 'dead-letter' | 'ignore'
  /** Dead-letter topic for a source topic, when the route names none. Default `<topic>.dlq`. */
  deadLetterTopic?: (topic: string) => string
  /** Create missing dead-letter topics at start. Default true. */
  createDeadLetterTopics?: boolean
  /** Where a group without committed offsets starts. Default true (the oldest record). */
  fromBeginning?: boolean
  /** How often finished offsets are committed, ms. Default 1000. */
  commitInterval?: number
  /** How long `stop()` and a revocation wait for in-flight handlers, ms. Default 30 000. */
  drainTimeout?: number
  /**
   * Messages queued or in flight in the whole consumer. Past it, a partition holding its
   * fair share (`maxBuffered` / assigned partitions) is paused: its further records are set
   * aside and read again once it has drained a quarter. Records of the fetch response being
   * delivered can overshoot by at most one fetch (the transport's `fetchMaxBytes`).
   * Default 10 000.
   */
  maxBuffered?: number
  /**
   * Messages a partition may hold (queued or in flight) while one of its messages waits
   * to be retried. Past it, the partition's further records are set aside (not kept in
   * memory) and read again when the retry succeeds or a quarter of these finished, so a
   * blocked partition — or, in key mode, a blocked key with up to three quarters of this
   * — never stops the others. Default 1 000.
   */
  maxBufferedPerPartition?: number
  /** Static membership: a stable id per instance (KIP-345). */
  groupInstanceId?: string
  /** `consumer` for the KIP-848 protocol; default `classic`. */
  groupProtocol?: 'classic' | 'consumer'
  /** Classic protocol: how long the broker keeps a member without heartbeats, ms. Default 30 000. */
  sessionTimeout?: number
  /** Classic protocol: how often the member sends a heartbeat, ms. Default 3 000. */
  heartbeatInterval?: number
  /** Classic protocol: how long a rebalance waits for members to join again, ms. Default 60 000. */
  rebalanceTimeout?: number
}

interface Lane {
  readonly key: string
  readonly partition: PartitionState
  readonly queue: InboundRecord[]
  head: number
  running: boolean
  scheduled: boolean
}

interface PartitionState {
  readonly key: string
  readonly tp: TopicPartition
  readonly progress: PartitionProgress
  /** Queued (not started) plus in flight. */
  buffered: number
  inFlight: number
  /** Every record from the first dropped one on is set aside until the rewind. */
  pausedTail: boolean
  /** Messages of this partition waiting for a retry. */
  retrying: number
  /** What those messages are, for `status()`. */
  readonly retryWaits: Set<RetryWait>
  revoked: boolean
  /** Aborted when the partition is revoked: retry waits end, abandoned work is not committed. */
  readonly revocation: AbortController
  /** Aborted at stop() or revocation: ends retry and DLQ waits. */
  readonly waits: AbortSignal
  /** Handed to handlers: aborted past the drain timeout or at revocation. */
  readonly handlerSignal: AbortSignal
  /** The handler context of this partition's messages (made once when no producer is given). */
  context?: HandlerContext
}

type Outcome = 'processed' | 'dead-lettered' | 'ignored' | 'abandoned'

/** A message waiting to be retried, as `/status` and `conveyor lag --service` show it. */
export interface RetryWait {
  /** The message's offset. */
  offset: bigint
  /** The message's key (text), or null. */
  key: string | null
  /** The message's type. */
  type: string
  /** The attempt that failed last (1 = the first). */
  attempt: number
  /** When the next attempt starts (ISO 8601). */
  nextRetryAt: string
  /** The last attempt's error message. */
  error: string
}

/** What `ConveyorConsumer.status()` reports (served at a service's `/status`). */
export interface ConsumerStatus {
  /** The consumer group. */
  groupId: string
  /** The consumer's {@link ConsumerState}. */
  state: string
  /** Records fetched and not yet finished, over all partitions. */
  buffered: number
  /** Each assigned partition: commit point, backlog, work in progress, and what waits to be retried. */
  partitions: Array<{
    topic: string
    partition: number
    committed: string | null
    buffered: number
    inFlight: number
    paused: boolean
    retrying: Array<Omit<RetryWait, 'offset'> & { offset: string }>
  }>
}

/** Where a consumer is in its life: `new` until `start()`, `stopped` after `stop()`. */
export type ConsumerState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

type ResolvedOptions = ConsumerOptions &
  Required<
    Omit<
      ConsumerOptions,
      | 'groupInstanceId'
      | 'groupProtocol'
      | 'sessionTimeout'
      | 'heartbeatInterval'
      | 'rebalanceTimeout'
      | 'middleware'
    >
  >

const defaults = {
  typeFrom: { field: 'message_type' } as TypeSource,
  codec: jsonCodec as Codec,
  ordering: 'partition' as Ordering,
  concurrency: 16,
  unknownType: 'dead-letter' as const,
  createDeadLetterTopics: true,
  fromBeginning: true,
  commitInterval: 1_000,
  drainTimeout: 30_000,
  maxBuffered: 10_000,
  maxBufferedPerPartition: 1_000
}

/** Decoding that fails for a transient reason (registry down) is retried with this policy. */
const decodeRetry = forever({ initialDelay: 250, maxDelay: 10_000 })

/** Joining the group again after the subscription failed. */
const resubscribeRetry = forever({ initialDelay: 1_000, maxDelay: 30_000 })

/** What #decode answers when the consumer stopped while it waited. */
const abandoned = Symbol('abandoned')

/** Dead-letter writes that fail are retried with this policy until they succeed or the consumer stops. */
const deadLetterRetry = forever({ initialDelay: 500, maxDelay: 30_000 })

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
  readonly #routes: RouteTable
  readonly #partitions = new Map<string, PartitionState>()
  /** The partitions the group gave this member, once it said. */
  #assignment: Set<string> | undefined
  readonly #lanes = new Map<string, Lane>()
  /** The partition of the last record received (see `#stateOf`). */
  #lastState: PartitionState | undefined
  readonly #ready: Lane[] = []
  #active = 0
  #buffered = 0
  #subscription: Subscription | undefined
  /** Fetching is paused because the buffer is full (see #isFull). */
  #streamPaused = false
  #publisher: Publisher | undefined
  #state: ConsumerState = 'new'
  #commitTimer: NodeJS.Timeout | undefined
  #committing: Promise<void> | undefined
  /** Aborted at `stop()`: retry waits end at once. */
  readonly #stopping = new AbortController()
  /** Aborted when the drain timeout passes: handlers should give up. */
  readonly #handlerAbort = new AbortController()
  readonly #idle: Array<() => void> = []
  readonly #stoppedWaiters: Array<() => void> = []

  constructor(options: ConsumerOptions) {
    const merged = { ...defaults, ...options }
    check(typeof merged.transport === 'object' && merged.transport !== null, 'transport', 'is required')
    check(
      typeof merged.groupId === 'string' && merged.groupId.length > 0,
      'groupId',
      'must be a non-empty string'
    )
    check(Array.isArray(merged.topics) && merged.topics.length > 0, 'topics', 'must list at least one topic')
    for (const [i, t] of merged.topics.entries()) {
      check(typeof t === 'string' && t.length > 0, `topics[${i}]`, 'must be a topic name')
    }
    check(
      ['partition', 'key', 'unordered'].includes(merged.ordering),
      'ordering',
      'must be "partition", "key" or "unordered"'
    )
    check(
      ['dead-letter', 'ignore'].includes(merged.unknownType),
      'unknownType',
      'must be "dead-letter" or "ignore"'
    )
    checkTypeSource(merged.typeFrom, 'typeFrom')
    for (const field of [
      'concurrency',
      'commitInterval',
      'drainTimeout',
      'maxBuffered',
      'maxBufferedPerPartition'
    ] as const) {
      check(Number.isInteger(merged[field]) && merged[field] > 0, field, 'must be an integer > 0')
    }
    this.#routes = compileRoutes(merged.routes, 'routes', merged.middleware ?? [])
    this.groupId = merged.groupId
    this.#options = merged as ResolvedOptions
  }

  /** Lifecycle state: `new`, `starting`, `running`, `stopping` or `stopped`. */
  get state(): ConsumerState {
    return this.#state
  }

  /** Messages queued or in flight now. */
  get buffered(): number {
    return this.#buffered
  }

  /**
   * What each owned partition is doing: messages held, whether it is paused, the last
   * committed offset, and the messages waiting for a retry (offset, key, attempt, next try).
   */
  status(): ConsumerStatus {
    return {
      groupId: this.groupId,
      state: this.#state,
      buffered: this.#buffered,
      partitions: [...this.#partitions.values()].map((s) => ({
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
    this.#subscription = await this.#subscribe()
    this.#commitTimer = setInterval(() => void this.commit(), this.#options.commitInterval)
    this.#commitTimer.unref()
    this.#setState('running')
  }

  #subscribe(): Promise<Subscription> {
    let subscription: Subscription | undefined
    return this.#options.transport
      .subscribe(
        {
          groupId: this.groupId,
          topics: this.#options.topics,
          fromBeginning: this.#options.fromBeginning,
          groupInstanceId: this.#options.groupInstanceId,
          groupProtocol: this.#options.groupProtocol,
          sessionTimeout: this.#options.sessionTimeout,
          heartbeatInterval: this.#options.heartbeatInterval,
          rebalanceTimeout: this.#options.rebalanceTimeout
        },
        {
          record: (record) => this.#receive(record),
          assigned: (partitions) => this.#assigned(partitions),
          failed: (error) => void this.#recover(subscription, error)
        }
      )
      .then((created) => {
        subscription = created
        return created
      })
  }

  /**
   * The subscription failed (the broker was gone longer than the client retries): close
   * it and join again, with capped backoff, until it works or the consumer stops. Work in
   * flight goes on; what it finishes is committed through the new membership. Rejected
   * credentials stop the consumer: joining again cannot fix them.
   */
  async #recover(failed: Subscription | undefined, error: Error): Promise<void> {
    if (failed !== this.#subscription || this.#state !== 'running') return
    const fatal = (error as { code?: string }).code === ErrorCodes.KAFKA_AUTHENTICATION
    errorChannel.publish({ groupId: this.groupId, error, fatal, context: 'subscription' })
    await failed?.close().catch(() => {})
    if (fatal) {
      void this.stop()
      return
    }
    for (let attempt = 1; this.#state === 'running'; attempt++) {
      if (!(await wait(backoff(resubscribeRetry, attempt), this.#stopping.signal))) return
      try {
        const subscription = await this.#subscribe()
        if (this.#state !== 'running') {
          await subscription.close()
          return
        }
        this.#subscription = subscription
        this.#streamPaused = false
        return
      } catch (retryError) {
        errorChannel.publish({
          groupId: this.groupId,
          error: retryError,
          fatal: false,
          context: 'subscription'
        })
      }
    }
  }

  /**
   * Stops: no new messages start, retry waits end, in-flight handlers get up to
   * `drainTimeout` ms (then their signal aborts), finished work is committed, the group
   * is left. Messages not finished are not committed: they come again after a restart.
   */
  async stop({ timeout = this.#options.drainTimeout }: { timeout?: number } = {}): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return this.#waitStopped()
    this.#setState('stopping')
    this.#stopping.abort()
    clearInterval(this.#commitTimer)
    this.#subscription?.pause()
    for (const state of this.#partitions.values()) this.#discardQueued(state)
    const drained = await this.#waitIdle(timeout)
    if (!drained) this.#handlerAbort.abort(new ConveyorError(ErrorCodes.TIMEOUT, 'the consumer is stopping'))
    await this.commit().catch(() => {})
    await this.#subscription?.close()
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
    return this.#commitStates([...this.#partitions.values()])
  }

  async #commitStates(states: PartitionState[]): Promise<void> {
    // One commit at a time; a caller that arrives during one waits for it, then commits
    // what it asked for (a revocation's final commit must not be skipped).
    while (this.#committing) await this.#committing.catch(() => {})
    const offsets: RecordPosition[] = []
    const byKey = new Map<string, PartitionState>()
    for (const state of states) {
      const offset = state.progress.committable()
      if (offset !== undefined) {
        offsets.push({ ...state.tp, offset })
        byKey.set(state.key, state)
      }
    }
    if (offsets.length === 0 || !this.#subscription) return
    const started = performance.now()
    this.#committing = this.#subscription
      .commit(offsets)
      .then(
        () => {
          for (const { topic, partition, offset } of offsets) {
            byKey.get(partitionKey(topic, partition))?.progress.committed(offset)
          }
          if (commitChannel.hasSubscribers) {
            commitChannel.publish({ groupId: this.groupId, offsets, duration: performance.now() - started })
          }
        },
        (error: unknown) => {
          commitChannel.publish({
            groupId: this.groupId,
            offsets,
            duration: performance.now() - started,
            error
          })
          throw error
        }
      )
      .finally(() => {
        this.#committing = undefined
      })
    return this.#committing.catch((error) => {
      errorChannel.publish({ groupId: this.groupId, error, fatal: false, context: 'commit' })
    })
  }

  #setState(state: ConsumerState): void {
    this.#state = state
    if (lifecycleChannel.hasSubscribers) lifecycleChannel.publish({ groupId: this.groupId, state })
  }

  #defaultDeadLetterTopic(topic: string): string {
    return this.#options.deadLetterTopic?.(topic) ?? `${topic}.dlq`
  }

  // ── Receiving ────────────────────────────────────────────────────────────────

  #partition(topic: string, partition: number): PartitionState {
    const key = partitionKey(topic, partition)
    let state = this.#partitions.get(key)
    if (!state) {
      const revocation = new AbortController()
      state = {
        key,
        tp: { topic, partition },
        progress: new PartitionProgress(topic, partition),
        buffered: 0,
        inFlight: 0,
        pausedTail: false,
        retrying: 0,
        retryWaits: new Set(),
        revoked: false,
        revocation,
        waits: AbortSignal.any([this.#stopping.signal, revocation.signal]),
        handlerSignal: AbortSignal.any([this.#handlerAbort.signal, revocation.signal])
      }
      this.#partitions.set(key, state)
    }
    return state
  }

  /**
   * The state of the record's partition, `undefined` when this member does not own it.
   * Records come in runs of one partition, so the last one looked up is tried first; a
   * partition let go is marked `revoked` (and its state dropped), so the shortcut never
   * outlives the ownership.
   */
  #stateOf(record: InboundRecord): PartitionState | undefined {
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
    const state = this.#partitions.get(key) ?? this.#partition(record.topic, record.partition)
    this.#lastState = state
    return state
  }

  #laneKey(state: PartitionState, record: InboundRecord): string {
    switch (this.#options.ordering) {
      case 'partition':
        return state.key
      case 'key':
        return record.key === null ? `${state.key}|` : `${state.key}|${record.key.toString('latin1')}`
      default:
        return `${state.key}@${record.offset}`
    }
  }

  /** Called synchronously for each delivered record, in offset order per partition. */
  #receive(record: InboundRecord): void {
    if (this.#state !== 'running' && this.#state !== 'starting') return
    const state = this.#stateOf(record)
    // A record of a partition this member no longer owns (fetched before a rebalance):
    // handling it could commit past work its new owner has not done.
    if (state === undefined || state.revoked) return
    const { progress } = state
    if (progress.admit(record.offset) === 'duplicate') return
    if (state.pausedTail) {
      progress.dropFrom(record.offset)
      return
    }
    if (this.#isFull(state)) {
      this.#pausePartition(state, record.offset)
      return
    }
    const laneKey = this.#laneKey(state, record)
    let lane = this.#lanes.get(laneKey)
    if (!lane || lane.partition !== state) {
      lane = {
        key: laneKey,
        partition: state,
        queue: [],
        head: 0,
        running: false,
        scheduled: false
      }
      this.#lanes.set(laneKey, lane)
    }
    progress.accept(record.offset)
    lane.queue.push(record)
    state.buffered++
    this.#buffered++
    this.#schedule(lane)
  }

  /**
   * Whether a partition may take no more records now. A partition blocked by a retry may
   * hold `maxBufferedPerPartition`. Otherwise the consumer takes records freely until it
   * holds `maxBuffered`; past that, each partition may hold its fair share of it, so the
   * partitions delivered first cannot take the whole budget and starve the others.
   */
  #isFull(state: PartitionState): boolean {
    if (state.retrying > 0) return state.buffered >= this.#options.maxBufferedPerPartition
    if (this.#buffered < this.#options.maxBuffered) return false
    // Partitions blocked by a retry keep to their own bound and must not stop the others.
    const flowing = this.#flowingBuffered()
    if (flowing < this.#options.maxBuffered) return false
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

  /** Messages held by partitions not blocked by a retry. */
  #flowingBuffered(): number {
    let flowing = this.#buffered
    for (const state of this.#partitions.values()) if (state.retrying > 0) flowing -= state.buffered
    return flowing
  }

  #pauseStream(): void {
    if (this.#streamPaused) return
    this.#streamPaused = true
    this.#subscription?.pause()
  }

  /**
   * Fetching resumes once a quarter of the buffer is free again — or, below the bound, as
   * soon as a partition has nothing left to work on, so that it does not idle while the
   * others drain their share. Either way the bound is overshot by at most one fetch.
   */
  #maybeResumeStream(emptied?: PartitionState): void {
    if (!this.#streamPaused || this.#state !== 'running') return
    const flowing = this.#flowingBuffered()
    const starving =
      emptied !== undefined && emptied.buffered === 0 && emptied.retrying === 0 && !emptied.revoked
    if (flowing > (this.#options.maxBuffered * 3) / 4 && !(starving && flowing < this.#options.maxBuffered))
      return
    this.#streamPaused = false
    this.#subscription?.resume()
  }

  #fairShare(): number {
    return Math.max(1, Math.floor(this.#options.maxBuffered / Math.max(1, this.#partitions.size)))
  }

  /**
   * A partition just became blocked by a retry while holding more than its bound (a
   * burst queued before the failure): set aside its queued records from the cut offset
   * on, so it holds at most the bound. Cutting by offset keeps every key's order.
   */
  #shed(state: PartitionState): void {
    const keep = this.#options.maxBufferedPerPartition - state.inFlight
    if (state.buffered <= this.#options.maxBufferedPerPartition || state.pausedTail) return
    const queued: bigint[] = []
    for (const lane of this.#lanes.values()) {
      if (lane.partition !== state) continue
      for (let i = lane.head; i < lane.queue.length; i++) queued.push(lane.queue[i]!.offset)
    }
    if (queued.length <= keep) return
    queued.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const cut = queued[Math.max(0, keep)]!
    for (const [key, lane] of this.#lanes) {
      if (lane.partition !== state) continue
      let write = lane.head
      for (let read = lane.head; read < lane.queue.length; read++) {
        const record = lane.queue[read]!
        if (record.offset >= cut) {
          state.progress.abandon(record.offset)
          state.buffered--
          this.#buffered--
        } else lane.queue[write++] = record
      }
      lane.queue.length = write
      if (!lane.running && lane.head >= lane.queue.length) this.#lanes.delete(key)
    }
    this.#pausePartition(state, cut)
  }

  /** Sets aside the partition's records from `offset` on and parks it (it may stay blocked for long). */
  #pausePartition(state: PartitionState, offset: bigint): void {
    state.pausedTail = true
    state.progress.dropFrom(offset)
    this.#subscription?.park(state.tp)
    if (pausedChannel.hasSubscribers) {
      pausedChannel.publish({ groupId: this.groupId, partition: state.tp, offset })
    }
  }

  /**
   * Reads the set-aside records again once the partition has room: when blocked by a
   * retry, once a quarter of `maxBufferedPerPartition` is free (a blocked key may hold up
   * to three quarters of it while its partition's other keys keep flowing); otherwise once
   * the consumer is under three quarters of `maxBuffered` or the partition under three
   * quarters of its fair share.
   */
  #maybeRewind(state: PartitionState): void {
    if (!state.pausedTail || state.revoked || this.#state !== 'running') return
    if (state.retrying > 0) {
      if (state.buffered > (this.#options.maxBufferedPerPartition * 3) / 4) return
    } else if (
      this.#buffered > (this.#options.maxBuffered * 3) / 4 &&
      state.buffered > (this.#fairShare() * 3) / 4
    ) {
      return
    }
    const from = state.progress.rewindPoint()
    state.pausedTail = false
    if (from === undefined) return
    this.#subscription?.seek(state.tp, from)
    if (resumedChannel.hasSubscribers)
      resumedChannel.publish({ groupId: this.groupId, partition: state.tp, from })
  }

  #assigned(partitions: TopicPartition[]): void {
    const now = new Set(partitions.map((p) => partitionKey(p.topic, p.partition)))
    this.#assignment = now
    const revoked = [...this.#partitions.values()].filter((state) => !now.has(state.key))
    for (const state of revoked) this.#partitions.delete(state.key)
    for (const tp of partitions) this.#partition(tp.topic, tp.partition)
    if (assignedChannel.hasSubscribers) assignedChannel.publish({ groupId: this.groupId, partitions })
    if (revoked.length > 0) void this.#revoke(revoked)
  }

  /**
   * Partitions taken away by a rebalance: nothing new starts, queued records are dropped,
   * in-flight work gets up to `drainTimeout`, then what finished is committed.
   */
  async #revoke(states: PartitionState[]): Promise<void> {
    for (const state of states) {
      state.revoked = true
      state.revocation.abort()
      this.#discardQueued(state)
    }
    const deadline = Date.now() + this.#options.drainTimeout
    while (states.some((s) => s.inFlight > 0) && Date.now() < deadline) await sleep(20)
    await this.#commitStates(states)
    if (revokedChannel.hasSubscribers)
      revokedChannel.publish({ groupId: this.groupId, partitions: states.map((s) => s.tp) })
  }

  /** Forgets queued (not started) records of a partition; they are not committed. */
  #discardQueued(state: PartitionState): void {
    for (const [key, lane] of this.#lanes) {
      if (lane.partition !== state) continue
      for (let i = lane.head; i < lane.queue.length; i++) {
        state.progress.abandon(lane.queue[i]!.offset)
        state.buffered--
        this.#buffered--
      }
      lane.queue.length = 0
      lane.head = 0
      if (!lane.running) this.#lanes.delete(key)
    }
    this.#maybeResumeStream()
    this.#checkIdle()
  }

  // ── Scheduling ───────────────────────────────────────────────────────────────

  #schedule(lane: Lane): void {
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
    while (this.#active < this.#options.concurrency && this.#ready.length > 0) {
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
    const state = lane.partition
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
      state.inFlight++
      const outcome = this.#handle(record, state)
      if (typeof outcome !== 'string') {
        outcome.then(
          (settled) => {
            this.#settle(state, record, settled)
            this.#release(lane)
          },
          (error: unknown) => {
            // #handle contains every error; reaching here is a bug. Never commit past it.
            errorChannel.publish({ groupId: this.groupId, error, fatal: false, context: 'runtime' })
            this.#settle(state, record, 'abandoned')
            this.#release(lane)
          }
        )
        return
      }
      this.#settle(state, record, outcome)
      if (lane.head >= lane.queue.length || burst >= syncBurst || this.#state !== 'running') break
    }
    this.#release(lane)
  }

  /** One record is done with: processed, dead-lettered, ignored or abandoned. */
  #settle(state: PartitionState, record: InboundRecord, outcome: Outcome): void {
    state.inFlight--
    state.buffered--
    this.#buffered--
    if (outcome === 'abandoned') state.progress.abandon(record.offset)
    else state.progress.finish(record.offset)
  }

  /** The lane gives back its concurrency slot; it is scheduled again if records wait in it. */
  #release(lane: Lane): void {
    this.#active--
    lane.running = false
    if (lane.head < lane.queue.length) this.#schedule(lane)
    else if (this.#options.ordering !== 'partition' && this.#lanes.get(lane.key) === lane) {
      // Key and record lanes come and go; a partition's lane stays while the partition does.
      this.#lanes.delete(lane.key)
    }
    this.#maybeRewind(lane.partition)
    this.#maybeResumeStream(lane.partition)
    this.#pump()
    this.#checkIdle()
  }

  #checkIdle(): void {
    if (this.#active === 0 && this.#idle.length > 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  #waitIdle(timeout: number): Promise<boolean> {
    if (this.#active === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeout)
      this.#idle.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  // ── Handling one record ──────────────────────────────────────────────────────

  /**
   * Handles one record. The common case — a synchronous codec, a known type, a handler that
   * succeeds — runs without allocating a promise when the handler returns none; everything
   * else (decode failures, unknown types, handler errors and retries, tracing) takes the
   * general path, `#handleAsync`.
   */
  #handle(record: InboundRecord, state: PartitionState): Outcome | Promise<Outcome> {
    if (handlerChannel.hasSubscribers) return this.#handleAsync(record, state)
    const started = messageHandledChannel.hasSubscribers ? performance.now() : 0
    let value: unknown
    try {
      value = this.#options.codec.decode(record.value, record) // the record is the context: topic, headers
    } catch {
      return this.#handleAsync(record, state) // decoded again there, to wait or dead-letter
    }
    if (isThenable(value)) return this.#handleAsync(record, state, value)
    const type = readType(this.#options.typeFrom, value, record.headers)
    const route = type === undefined ? undefined : this.#routes.get(type)
    if (!route) return this.#handleAsync(record, state, value)
    if (state.revoked || this.#stopping.signal.aborted) return 'abandoned'
    const message = new DeliveredMessage(record, route.type, value, 1)
    let result: unknown
    try {
      result = route.handler(message, this.#contextFor(state, message))
    } catch (error) {
      return this.#attempts(record, state, route, message, started, { error, attempt: 1 })
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        () => this.#handled(record, message, 'processed', 1, started),
        (error: unknown) => this.#attempts(record, state, route, message, started, { error, attempt: 1 })
      )
    }
    return this.#handled(record, message, 'processed', 1, started)
  }

  /** The handler's context: its signal, group and, with a producer, `send` naming the message as cause. */
  #contextFor(state: PartitionState, parent: Message): HandlerContext {
    const producer = this.#options.producer
    if (!producer) {
      state.context ??= { signal: state.handlerSignal, groupId: this.groupId }
      return state.context
    }
    return {
      signal: state.handlerSignal,
      groupId: this.groupId,
      send: (type, payload, options = {}) => producer.send(type, payload, { ...options, parent })
    }
  }

  /** Publishes the outcome (for logs and metrics) and returns it. */
  #handled(
    record: InboundRecord,
    message: Message | undefined,
    outcome: Outcome,
    attempts: number,
    started: number
  ): Outcome {
    if (outcome !== 'abandoned' && messageHandledChannel.hasSubscribers) {
      messageHandledChannel.publish({
        groupId: this.groupId,
        message,
        record,
        outcome,
        attempts,
        duration: performance.now() - started
      })
    }
    return outcome
  }

  async #handleAsync(record: InboundRecord, state: PartitionState, decoded?: unknown): Promise<Outcome> {
    const started = performance.now()
    const signal = state.waits
    let message: DeliveredMessage
    let route: CompiledRoute | undefined
    try {
      const value = await this.#decode(record, signal, decoded as PromiseLike<unknown> | undefined)
      if (value === abandoned) return this.#handled(record, undefined, 'abandoned', 1, started)
      const type = readType(this.#options.typeFrom, value, record.headers)
      route = type === undefined ? undefined : this.#routes.get(type)
      if (!route) {
        if (this.#options.unknownType === 'ignore')
          return this.#handled(record, undefined, 'ignored', 1, started)
        const what =
          type === undefined
            ? `it names no message type (${describeSource(this.#options.typeFrom)})`
            : `no route handles type "${type}" (known: ${knownTypes(this.#routes)})`
        throw new ConveyorError(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `the message cannot be routed: ${what}`)
      }
      message = new DeliveredMessage(record, route.type, value, 1)
    } catch (error) {
      // Decoding and routing failures: repeating cannot help.
      const outcome = await this.#deadLetter(record, state, {
        topic: this.#defaultDeadLetterTopic(record.topic),
        reason: reasonOf(error),
        error,
        attempts: 1,
        firstFailure: new Date(),
        signal
      })
      return this.#handled(record, undefined, outcome, 1, started)
    }
    return this.#attempts(record, state, route, message, started)
  }

  /**
   * Runs the handler until it succeeds or its route's policy gives up (then the DLQ). With
   * `failed`, the first attempt already ran and failed (on the fast path).
   */
  async #attempts(
    record: InboundRecord,
    state: PartitionState,
    route: CompiledRoute,
    first: DeliveredMessage,
    started: number,
    failed?: { error: unknown; attempt: number }
  ): Promise<Outcome> {
    const signal = state.waits
    const context = this.#contextFor(state, first)
    let message = first
    let attempt = failed?.attempt ?? 1
    let firstFailure: Date | undefined
    let known = failed
    for (;;) {
      let error: unknown
      if (known) {
        error = known.error
        known = undefined
      } else {
        if (signal.aborted) return this.#handled(record, message, 'abandoned', attempt, started)
        try {
          const current = message
          if (handlerChannel.hasSubscribers) {
            await handlerChannel.tracePromise(async () => route.handler(current, context), {
              message: current,
              groupId: this.groupId
            })
          } else {
            await route.handler(current, context)
          }
          return this.#handled(record, message, 'processed', attempt, started)
        } catch (thrown) {
          error = thrown
        }
      }
      firstFailure ??= new Date()
      const decision = decide(route.retry, attempt, error)
      if (decision.action === 'dead-letter') {
        const outcome = await this.#deadLetter(record, state, {
          topic: route.deadLetterTopic ?? this.#defaultDeadLetterTopic(record.topic),
          reason: decision.reason,
          error,
          attempts: attempt,
          firstFailure,
          signal
        })
        return this.#handled(record, message, outcome, attempt, started)
      }
      if (messageRetryChannel.hasSubscribers) {
        messageRetryChannel.publish({
          groupId: this.groupId,
          message,
          error,
          attempt,
          delay: decision.delay
        })
      }
      if (state.retrying++ === 0) this.#shed(state)
      const waiting: RetryWait = {
        offset: record.offset,
        key: message.keyString,
        type: message.type,
        attempt,
        nextRetryAt: new Date(Date.now() + decision.delay).toISOString(),
        error: (error as Error)?.message ?? String(error)
      }
      state.retryWaits.add(waiting)
      const waited = await wait(decision.delay, signal)
      state.retryWaits.delete(waiting)
      state.retrying--
      if (!waited) return this.#handled(record, message, 'abandoned', attempt, started)
      attempt++
      message = message.withAttempt(attempt)
    }
  }

  /**
   * Decodes a record. A retryable failure (the schema registry is unreachable) is not the
   * message's fault: it waits with capped backoff and tries again, never dead-letters.
   * `first` is a decode already started (on the fast path): its outcome is the first attempt's.
   */
  async #decode(record: InboundRecord, signal: AbortSignal, first?: PromiseLike<unknown>): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (attempt === 1 && first !== undefined) return await first
        return await this.#options.codec.decode(record.value, {
          topic: record.topic,
          headers: record.headers
        })
      } catch (error) {
        if (!(error instanceof ConveyorError) || !error.retryable) throw error
        errorChannel.publish({ groupId: this.groupId, error, fatal: false, context: 'decode' })
        if (!(await wait(backoff(decodeRetry, attempt), signal))) return abandoned
      }
    }
  }

  /**
   * Writes the record to its dead-letter topic and resolves once the broker acknowledged
   * it. A failed write is retried (capped backoff) until it succeeds; if the consumer
   * stops or loses the partition first, the record is abandoned (not committed), so it
   * comes again: never lost.
   */
  async #deadLetter(
    record: InboundRecord,
    state: PartitionState,
    details: {
      topic: string
      reason: string
      error: unknown
      attempts: number
      firstFailure: Date
      signal: AbortSignal
    }
  ): Promise<Outcome> {
    const dlq = deadLetterRecord(record, {
      topic: details.topic,
      groupId: this.groupId,
      reason: details.reason,
      error: details.error,
      attempts: details.attempts,
      firstFailure: details.firstFailure,
      lastFailure: new Date()
    })
    for (let attempt = 1; ; attempt++) {
      if (details.signal.aborted || state.revoked) return 'abandoned'
      try {
        await this.#publisher!.send([dlq])
        if (deadLetteredChannel.hasSubscribers) {
          deadLetteredChannel.publish({
            groupId: this.groupId,
            record,
            topic: details.topic,
            reason: details.reason,
            error: details.error,
            attempts: details.attempts
          })
        }
        return 'dead-lettered'
      } catch (error) {
        deadLetterFailedChannel.publish({ groupId: this.groupId, record, topic: details.topic, error })
        if (!(await wait(backoff(deadLetterRetry, attempt), details.signal))) return 'abandoned'
      }
    }
  }
}

/** Records a lane runs back to back while its handlers finish synchronously, before it yields its slot. */
const syncBurst = 64

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/**
 * The message a handler sees for a delivered record. `keyString` and `envelope` are
 * computed on first read (most handlers never read the envelope), so they live on the
 * prototype: a spread copy (`{ ...message }`) does not carry them.
 */
class DeliveredMessage implements Message {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: Buffer | null
  readonly headers: ReadonlyMap<string, Buffer>
  readonly timestamp: number
  readonly rawValue: Buffer | null
  readonly type: string
  readonly version: number | undefined
  readonly value: unknown
  readonly attempt: number
  readonly #record: InboundRecord
  #keyString: string | null | undefined
  #envelope: Envelope | undefined

  constructor(
    record: InboundRecord,
    type: string,
    value: unknown,
    attempt: number,
    version = readVersion(value)
  ) {
    this.#record = record
    this.topic = record.topic
    this.partition = record.partition
    this.offset = record.offset
    this.key = record.key
    this.headers = record.headers
    this.timestamp = record.timestamp
    this.rawValue = record.value
    this.type = type
    this.version = version
    this.value = value
    this.attempt = attempt
  }

  get keyString(): string | null {
    if (this.#keyString === undefined) this.#keyString = this.key === null ? null : this.key.toString('utf8')
    return this.#keyString
  }

  get envelope(): Envelope {
    this.#envelope ??= readEnvelope(this.headers, {
      id: `${this.topic}-${this.partition}-${this.offset}`,
      type: this.type,
      version: this.version
    })
    return this.#envelope
  }

  /** The same message for another attempt. */
  withAttempt(attempt: number): DeliveredMessage {
    const next = new DeliveredMessage(this.#record, this.type, this.value, attempt, this.version)
    next.#keyString = this.#keyString
    next.#envelope = this.#envelope
    return next
  }
}

function describeSource(source: TypeSource): string {
  if (typeof source === 'function') return 'the typeFrom function returned nothing'
  return 'header' in source ? `no "${source.header}" header` : `no "${source.field}" field`
}

/** Creates a consumer; see `ConveyorConsumer`. */
export function createConsumer(options: ConsumerOptions): ConveyorConsumer {
  return new ConveyorConsumer(options)
}

/** The types a consumer routes, for an error about one it does not (at most 20 named). */
function knownTypes(routes: ReadonlyMap<string, unknown>): string {
  const types = [...routes.keys()]
  if (types.length === 0) return 'none'
  return types.length > 20
    ? `${types.slice(0, 20).join(', ')} and ${types.length - 20} more`
    : types.join(', ')
}
