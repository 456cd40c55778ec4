import {
  Admin,
  Consumer,
  findErrorBy,
  type GroupAssignment,
  ListOffsetTimestamps,
  type MessagesStream,
  type Producer
} from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { fetchChannel } from '../instrumentation/channels.ts'
import {
  type CommitPosition,
  type CommittedPosition,
  partitionKey,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionListener,
  type TopicPartition
} from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import { clientOptions, hasApiId, type KafkaConnection, translateKafkaError } from './connection.ts'
import { commitWithMetadata } from './offset-commit.ts'

/** How a subscription reaches the cluster and how much one fetch may bring. */
export interface FetchSettings {
  /** The brokers to reach, and how (client id, SASL, TLS). */
  connection: KafkaConnection
  /**
   * Most bytes one fetch returns (all partitions). A consumer at its `maxBuffered` bound
   * still takes the response being delivered, so this bounds the overshoot. Default 1 MiB.
   */
  fetchMaxBytes?: number
  /** Most bytes one fetch returns per partition. Default 256 KiB. */
  fetchMaxBytesPerPartition?: number
  /** Longest a fetch waits for new data on an idle topic, ms. */
  maxWaitTime?: number
}

type RawConsumer = Consumer<Buffer, Buffer, string, Buffer>

/** A transaction of the client's (its class is not exported). */
export type RawTransaction = Awaited<ReturnType<Producer<Buffer, Buffer, string, Buffer>['beginTransaction']>>

const fetchDefaults = { fetchMaxBytes: 1024 * 1024, fetchMaxBytesPerPartition: 256 * 1024, maxWaitTime: 500 }

/** The options given, without the ones given as `undefined` (so that defaults apply to them). */
function withoutUndefined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T
}
type FetchResponse = Awaited<ReturnType<RawConsumer['fetch']>>
type ClusterMetadata = Awaited<ReturnType<RawConsumer['metadata']>>

/** Kafka's marker for a control batch (transaction commit and abort markers). */
const IS_CONTROL = 1 << 5

/** What the subscription knows of one partition it owns. */
interface Position {
  readonly tp: TopicPartition
  /** The next offset to fetch; `undefined` while the starting offset is being looked up. */
  offset: bigint | undefined
  /** Not fetched until the next `seek`. */
  parked: boolean
  /**
   * Bumped by every `seek` and `park`, and when the partition is let go: a fetch answered
   * after the bump is about an old position, and its records are not delivered.
   */
  generation: number
}

/** What one fetch asked for, per partition: where it read from, at which generation. */
type Requested = Map<string, { position: Position; offset: bigint; generation: number }>

/** A fetch's answer, with what it asked for and the topic names of its metadata. */
interface Answer {
  response: FetchResponse
  requested: Requested
  names: Map<string, string>
}

/** One partition's records of an answer, to be handed to the listener. */
interface Delivery {
  topic: string
  partition: number
  batches: NonNullable<FetchResponse['responses'][number]['partitions'][number]['records']>
  position: Position
  offset: bigint
  generation: number
}

const lookupRetry = { attempts: 5, delay: 500 }

/** Pauses before fetching again from a broker whose fetch failed: doubling, capped. */
const fetchRetry = { initialDelay: 250, maxDelay: 2_000 }

/**
 * One consumer-group membership delivering records to a listener, with its own fetch loop.
 *
 * The group itself (join, heartbeats, rebalances, both group protocols) is
 * `@platformatic/kafka`'s: `consume()` joins it and returns a messages stream, which is
 * kept only to hold the membership and never read. Records come from `consumer.fetch()`
 * instead, one fetch in flight per broker, for the partitions this member owns, from
 * positions this class keeps. That is what makes a per-partition pause exact: a parked
 * partition is simply left out of the next fetch, and a `seek` changes the position and
 * discards whatever an older fetch brings back for it. It also skips the stream's
 * per-record work (a copied record, a diagnostic context, a bound commit function and a
 * Readable push), which is most of the client's cost per message.
 *
 * A fetch that fails (a broker stopped, or no longer leads the partition) is sent again
 * after a pause, with fresh metadata, so partitions go on from their new leaders while the
 * membership stays; only when fetches keep failing for a session timeout does the
 * subscription fail (the runtime then joins again).
 *
 * Offsets: a partition this member is given starts at the group's committed offset, or
 * where `fromBeginning` says when there is none; a partition it keeps across a rebalance
 * keeps its position. A position that fell out of the log (retention) starts again the
 * same way as a partition without a commit.
 */
export class KafkaSubscription implements Subscription {
  readonly #settings: Required<FetchSettings>
  readonly #options: SubscribeOptions
  readonly #listener: SubscriptionListener
  readonly #consumer: RawConsumer
  #stream: MessagesStream<Buffer, Buffer, string, Buffer> | undefined
  readonly #positions = new Map<string, Position>()
  /** The assignment last handed to the listener (the consumer replaces the array when it changes). */
  #assignment: GroupAssignment[] | null = null
  /** Brokers with a fetch in flight. */
  readonly #inflight = new Set<number>()
  /** Answers that came while paused, taken on resume. */
  #held: Answer[] = []
  /** Partitions in the order they are asked for; rotated after each fetch, for fairness. */
  #order: Position[] = []
  #paused = false
  #pauseRequested = false
  #closed = false
  /** The listener was told of a failure (once: it replaces the whole subscription). */
  #failed = false
  #scheduled = false
  /**
   * Per broker (-1: the metadata), since when its fetches have been failing and how often
   * in a row (`performance.now()` ms); none while they work.
   */
  readonly #trouble = new Map<number, { since: number; failures: number }>()
  /** Brokers not fetched from until the time given (their last fetch failed). */
  readonly #resting = new Map<number, number>()
  /** The next fetch round asks for fresh metadata (leaders may have moved). */
  #refreshMetadata = false
  /** The wake-up for the earliest end of a rest, and when it fires. */
  #retryTimer: NodeJS.Timeout | undefined
  #retryAt = Number.POSITIVE_INFINITY
  #assignmentCheck: NodeJS.Timeout | undefined
  readonly #stopped = new AbortController()
  /** Reads committed offsets with their metadata (made on first use). */
  #admin: Admin | undefined

  constructor(settings: FetchSettings, options: SubscribeOptions, listener: SubscriptionListener) {
    this.#settings = { ...fetchDefaults, ...withoutUndefined(settings) }
    this.#options = options
    this.#listener = listener
    const group =
      options.groupProtocol === 'consumer'
        ? { groupProtocol: 'consumer' as const }
        : {
            sessionTimeout: options.sessionTimeout ?? 30_000,
            heartbeatInterval: options.heartbeatInterval ?? 3_000,
            rebalanceTimeout: options.rebalanceTimeout ?? 60_000,
            // Called before every JoinGroup: the moment to commit, while the generation is
            // current and before the partitions may move (see `#beforeJoin`).
            protocolsMetadata: () => this.#beforeJoin()
          }
    this.#consumer = new Consumer({
      ...clientOptions(settings.connection),
      ...group,
      groupId: options.groupId,
      ...(options.groupInstanceId ? { groupInstanceId: options.groupInstanceId } : {}),
      autocommit: false
    }) as RawConsumer
    // The client reports a rejoin that failed (a rebalance whose JoinGroup or SyncGroup lost
    // its connection, say) as an 'error' event on itself; without a listener, Node throws it
    // and the process ends. While open, it is this subscription's failure (the runtime joins
    // again); once closing, it is expected and ignored.
    this.#consumer.on('error', (error: Error) => this.#fail(error))
  }

  /**
   * Before (re)joining the group, lets the listener finish and commit (`rebalancing`).
   * Until this resolves the member is still in its old generation, so its commits count;
   * its heartbeats are off meanwhile, so the wait is cut at half the session timeout.
   * Resolves to the subscription's user data (none).
   */
  async #beforeJoin(): Promise<Buffer> {
    if (!this.#closed && this.#assignment !== null && this.#listener.rebalancing) {
      const bound = (this.#options.sessionTimeout ?? 30_000) / 2
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        this.#listener.rebalancing().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, bound)
        })
      ])
      clearTimeout(timer)
    }
    return Buffer.alloc(0)
  }

  async start(): Promise<void> {
    // Classic rebalances announce themselves; KIP-848 ones only change `assignments`,
    // which the fetch loop also checks before every round.
    this.#consumer.on('consumer:group:join', () => process.nextTick(() => this.#syncAssignment()))
    try {
      this.#stream = await this.#consumer.consume({
        topics: this.#options.topics,
        mode: 'committed',
        fallbackMode: this.#options.fromBeginning ? 'earliest' : 'latest'
      })
    } catch (error) {
      await this.#consumer.close(true).catch(() => {})
      throw translateKafkaError(error, this.#settings.connection)
    }
    this.#holdStream(this.#stream)
    this.#syncAssignment()
    // Also while paused, when no fetch round runs: a KIP-848 revocation must reach the runtime.
    this.#assignmentCheck = setInterval(() => this.#syncAssignment(), 1_000)
    this.#assignmentCheck.unref()
  }

  /**
   * Keeps the membership stream from ever reading: paused, and deaf to the `resume()`
   * the client calls on its streams after a KIP-848 revocation (with no reader, a flowing
   * stream would fetch and drop records forever). `close` gives it back its `resume`.
   */
  #holdStream(stream: MessagesStream<Buffer, Buffer, string, Buffer>): void {
    stream.pause()
    Object.defineProperty(stream, 'resume', { value: () => stream, configurable: true, writable: true })
    stream.on('error', (error: Error) => this.#fail(error))
  }

  /** Hands the listener the consumer's current assignment, if it changed, and starts new partitions. */
  #syncAssignment(): void {
    if (this.#closed) return
    const assignments = this.#consumer.assignments
    if (assignments === null || assignments === this.#assignment) return
    this.#assignment = assignments
    const owned = new Set<string>()
    const fresh: Position[] = []
    for (const { topic, partitions } of assignments) {
      for (const partition of partitions) {
        const key = partitionKey(topic, partition)
        owned.add(key)
        if (this.#positions.has(key)) continue
        const position: Position = {
          tp: { topic, partition },
          offset: undefined,
          parked: false,
          generation: 0
        }
        this.#positions.set(key, position)
        fresh.push(position)
      }
    }
    for (const [key, position] of this.#positions) {
      if (owned.has(key)) continue
      position.generation++ // an answer in flight for it is no longer ours to deliver
      this.#positions.delete(key)
    }
    this.#order = [...this.#positions.values()]
    this.#listener.assigned(this.#order.map((p) => p.tp))
    if (fresh.length > 0) void this.#lookUpStarts(fresh)
    this.#schedule()
  }

  /** Where new partitions start: the group's committed offset, else the log's start or end. */
  async #lookUpStarts(positions: Position[]): Promise<void> {
    const generations = positions.map((p) => p.generation)
    for (let attempt = 1; ; attempt++) {
      try {
        const committed = await this.#consumer.listCommittedOffsets({ topics: byTopic(positions) })
        const missing = positions.filter((p) => (committed.get(p.tp.topic)?.[p.tp.partition] ?? -1n) < 0n)
        const fallback = missing.length > 0 ? await this.#logBounds(missing) : new Map<string, bigint>()
        positions.forEach((position, i) => {
          if (position.generation !== generations[i] || position.offset !== undefined) return
          const key = partitionKey(position.tp.topic, position.tp.partition)
          const offset = committed.get(position.tp.topic)?.[position.tp.partition] ?? -1n
          position.offset = offset >= 0n ? offset : fallback.get(key)
        })
        this.#schedule()
        return
      } catch (error) {
        if (this.#closed) return
        if (attempt >= lookupRetry.attempts) {
          this.#fail(error as Error)
          return
        }
        if (!(await wait(lookupRetry.delay * attempt, this.#stopped.signal))) return
      }
    }
  }

  /** The log start (or end, without `fromBeginning`) of each partition. */
  async #logBounds(positions: Position[]): Promise<Map<string, bigint>> {
    const topics = byTopic(positions)
    const offsets = await this.#consumer.listOffsets({
      topics: topics.map((t) => t.topic),
      partitions: Object.fromEntries(topics.map((t) => [t.topic, t.partitions])),
      timestamp: this.#options.fromBeginning ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST
    })
    const bounds = new Map<string, bigint>()
    for (const { tp } of positions) {
      const offset = offsets.get(tp.topic)?.[tp.partition]
      if (offset !== undefined && offset >= 0n) bounds.set(partitionKey(tp.topic, tp.partition), offset)
    }
    return bounds
  }

  /** Runs a fetch round soon (once per tick, however many reasons there are). */
  #schedule(): void {
    if (this.#scheduled || this.#closed) return
    this.#scheduled = true
    process.nextTick(() => {
      this.#scheduled = false
      this.#fetchRound()
    })
  }

  /**
   * Sends one fetch to each broker that leads a fetchable partition and has none in flight.
   * Synchronous while the client's metadata is cached (it answers its callback at once), so
   * a fetch sent before a response is delivered is on the wire while the records are handled.
   */
  #fetchRound(): void {
    // Held answers come first: their partitions' positions move only when they are taken.
    if (this.#closed || this.#failed || this.#paused || this.#held.length > 0) return
    this.#syncAssignment()
    if (!this.#order.some((p) => p.offset !== undefined && !p.parked)) return
    const forceUpdate = this.#refreshMetadata
    this.#refreshMetadata = false
    this.#consumer.metadata({ topics: this.#options.topics, forceUpdate }, (error, metadata) => {
      if (error || !metadata) {
        this.#fetchFailed(error ?? new Error('no metadata'), -1)
        return
      }
      this.#trouble.delete(-1)
      if (this.#closed || this.#paused) return
      const now = performance.now()
      const byNode = new Map<number, { requested: Requested; topics: Map<string, FetchTopic> }>()
      for (const position of this.#order) {
        if (position.offset === undefined || position.parked) continue
        const { topic, partition } = position.tp
        const topicMetadata = metadata.topics.get(topic)
        const node = topicMetadata?.partitions[partition]?.leader
        if (!topicMetadata || node === undefined || node < 0 || this.#inflight.has(node)) continue
        const restsUntil = this.#resting.get(node)
        if (restsUntil !== undefined) {
          if (restsUntil > now) {
            this.#wakeAt(restsUntil) // nothing else may come to fetch from it again
            continue
          }
          this.#resting.delete(node)
        }
        let request = byNode.get(node)
        if (!request) {
          request = { requested: new Map(), topics: new Map() }
          byNode.set(node, request)
        }
        let fetchTopic = request.topics.get(topicMetadata.id)
        if (!fetchTopic) {
          fetchTopic = { topicId: topicMetadata.id, partitions: [] }
          request.topics.set(topicMetadata.id, fetchTopic)
        }
        fetchTopic.partitions.push({
          partition,
          fetchOffset: position.offset,
          partitionMaxBytes: this.#settings.fetchMaxBytesPerPartition,
          currentLeaderEpoch: -1,
          lastFetchedEpoch: -1
        })
        request.requested.set(partitionKey(topic, partition), {
          position,
          offset: position.offset,
          generation: position.generation
        })
      }
      for (const [node, { requested, topics }] of byNode)
        this.#fetch(node, requested, [...topics.values()], topicNames(metadata))
    })
  }

  #fetch(node: number, requested: Requested, topics: FetchTopic[], names: Map<string, string>): void {
    this.#inflight.add(node)
    this.#consumer
      .fetch({
        node,
        topics,
        maxWaitTime: this.#settings.maxWaitTime,
        maxBytes: this.#settings.fetchMaxBytes
      })
      .then(
        (response) => {
          this.#inflight.delete(node)
          if (this.#closed) return
          this.#trouble.delete(node)
          this.#resting.delete(node)
          if (fetchChannel.hasSubscribers) fetchChannel.publish({ groupId: this.#options.groupId })
          const answer = { response, requested, names }
          // Paused: the answer waits here, so the listener gets at most the one response it
          // was being given when it asked to pause.
          if (this.#paused || this.#pauseRequested) this.#held.push(answer)
          else this.#take(answer)
        },
        (error: unknown) => {
          this.#inflight.delete(node)
          if (this.#closed) return
          if (hasApiId(error, 'OFFSET_OUT_OF_RANGE')) {
            void this.#restartOutOfRange(error as { response?: FetchResponse }, requested, names)
            return
          }
          this.#fetchFailed(error as Error, node)
        }
      )
  }

  /**
   * Takes a fetch's answer: moves each partition's position past its records, sends the
   * next fetch, and only then hands the records to the listener, so the broker reads the
   * next response while these are handled.
   */
  #take({ response, requested, names }: Answer): void {
    const deliveries: Delivery[] = []
    for (const topicResponse of response.responses) {
      const topic = names.get(topicResponse.topicId) ?? topicResponse.topicId
      for (const { partitionIndex: partition, records: batches } of topicResponse.partitions) {
        const asked = requested.get(partitionKey(topic, partition))
        if (!asked || !batches || batches.length === 0) continue
        if (asked.position.generation !== asked.generation) continue // sought, parked or let go since
        const last = batches[batches.length - 1]!
        const next = last.firstOffset + BigInt(last.lastOffsetDelta) + 1n
        if (next <= asked.offset) continue
        asked.position.offset = next
        deliveries.push({ topic, partition, batches, ...asked })
      }
    }
    this.#rotate()
    this.#fetchRound()
    for (const delivery of deliveries) this.#deliver(delivery)
  }

  /**
   * Fairness across partitions: the broker fills a response (up to `fetchMaxBytes`) in
   * request order, so with a backlog the first partitions would take every response.
   * Rotating the order after each fetch gives every partition its turn at the front.
   */
  #rotate(): void {
    if (this.#order.length > 1) this.#order.push(this.#order.shift()!)
  }

  /**
   * Hands the listener one partition's records of a response, in offset order. A partition
   * sought, parked or let go meanwhile (even by the listener, in the middle of them) gets
   * no more of them.
   */
  #deliver({ topic, partition, batches, position, offset: from, generation }: Delivery): void {
    for (const batch of batches) {
      if (batch.attributes & IS_CONTROL) continue
      const timestamp = Number(batch.firstTimestamp)
      for (const record of batch.records) {
        const offset = batch.firstOffset + BigInt(record.offsetDelta)
        if (offset < from) continue // the batch starts before the fetch offset
        this.#listener.record({
          topic,
          partition,
          offset,
          key: record.key,
          value: record.value,
          headers: record.headers.length === 0 ? noHeaders : headerMap(record.headers),
          timestamp: timestamp + Number(record.timestampDelta)
        })
        if (position.generation !== generation) return
      }
    }
  }

  /** Positions outside the log (deleted by retention): start them as partitions without a commit. */
  async #restartOutOfRange(
    error: { response?: FetchResponse },
    requested: Requested,
    names: Map<string, string>
  ): Promise<void> {
    const lost: Array<{ position: Position; generation: number }> = []
    for (const topicResponse of error.response?.responses ?? []) {
      const topic = names.get(topicResponse.topicId) ?? topicResponse.topicId
      for (const { partitionIndex, errorCode } of topicResponse.partitions) {
        const asked = requested.get(partitionKey(topic, partitionIndex))
        if (errorCode !== 0 && asked && asked.position.generation === asked.generation) lost.push(asked)
      }
    }
    try {
      const bounds = lost.length > 0 ? await this.#logBounds(lost.map((l) => l.position)) : new Map()
      for (const { position, generation } of lost) {
        const offset = bounds.get(partitionKey(position.tp.topic, position.tp.partition))
        if (position.generation === generation && offset !== undefined) position.offset = offset
      }
      this.#schedule()
    } catch (lookupError) {
      this.#fail(lookupError as Error)
    }
  }

  /**
   * A fetch (or the metadata for one) failed. Most often a broker stopped or handed its
   * leadership on, and fresh metadata points elsewhere within seconds: that broker rests,
   * and a round with fresh metadata follows the pause. Fetches failing for longer than a
   * session timeout, or rejected credentials, fail the subscription.
   */
  #fetchFailed(error: Error, node: number): void {
    if (this.#closed || this.#failed) return
    const now = performance.now()
    let trouble = this.#trouble.get(node)
    if (!trouble) {
      trouble = { since: now, failures: 0 }
      this.#trouble.set(node, trouble)
    }
    const authentication = (translateKafkaError(error, this.#settings.connection) as { code?: string }).code
    if (authentication === ErrorCodes.KAFKA_AUTHENTICATION || now - trouble.since > this.#giveUpAfter()) {
      this.#fail(error)
      return
    }
    const delay = Math.min(fetchRetry.initialDelay * 2 ** trouble.failures++, fetchRetry.maxDelay)
    if (node >= 0) this.#resting.set(node, now + delay)
    this.#refreshMetadata = true
    this.#wakeAt(now + delay)
  }

  /** Runs a fetch round at `time` (`performance.now()` ms), or earlier if one is due earlier. */
  #wakeAt(time: number): void {
    if (this.#closed || time >= this.#retryAt) return
    clearTimeout(this.#retryTimer)
    this.#retryAt = time
    // A millisecond late rather than early: a round before the rest ended would skip the broker again.
    this.#retryTimer = setTimeout(
      () => {
        this.#retryAt = Number.POSITIVE_INFINITY
        this.#schedule()
      },
      Math.max(0, Math.ceil(time - performance.now())) + 1
    )
    this.#retryTimer.unref()
  }

  /** How long fetches may keep failing before the subscription gives up: the session timeout. */
  #giveUpAfter(): number {
    return this.#options.sessionTimeout ?? (this.#options.groupProtocol === 'consumer' ? 45_000 : 30_000)
  }

  #fail(error: Error): void {
    if (this.#closed || this.#failed) return
    this.#failed = true // no more fetches; the runtime closes this subscription and joins again
    this.#listener.failed(translateKafkaError(error, this.#settings.connection) as Error)
  }

  seek({ topic, partition }: TopicPartition, offset: bigint): void {
    const position = this.#positions.get(partitionKey(topic, partition))
    if (!position) return
    position.generation++
    position.offset = offset
    position.parked = false
    this.#schedule()
  }

  /** Leaves the partition out of fetches until the next `seek`. */
  park({ topic, partition }: TopicPartition): void {
    const position = this.#positions.get(partitionKey(topic, partition))
    if (!position || position.parked) return
    position.parked = true
    position.generation++ // what fetches in flight bring for it is dropped
  }

  /**
   * Stops fetching once the response being delivered is through. The pause is deferred to
   * the next tick: records of one response are delivered synchronously, partition after
   * partition, and the listener may ask to pause in the middle of them.
   */
  pause(): void {
    this.#pauseRequested = true
    process.nextTick(() => {
      if (this.#pauseRequested) this.#paused = true
    })
  }

  /** Fetching goes on; answers held while paused are delivered first (on the next tick). */
  resume(): void {
    this.#pauseRequested = false
    this.#paused = false
    process.nextTick(() => {
      while (!this.#paused && !this.#pauseRequested && !this.#closed && this.#held.length > 0)
        this.#take(this.#held.shift()!)
      this.#schedule()
    })
  }

  /**
   * Commits the offsets. With metadata, on the classic protocol, through OffsetCommit
   * requests of Conveyor's own (the client writes none); on KIP-848 without it (the member
   * epoch such a request needs is private to the client).
   */
  async commit(all: CommitPosition[]): Promise<void> {
    const offsets = this.#owned(all)
    if (offsets.length === 0) return
    try {
      if (this.#options.groupProtocol !== 'consumer') {
        // Conveyor's own OffsetCommit, with or without metadata. When it fails because the
        // group is rebalancing, the commit fails: the heartbeat takes the member through the
        // rebalance, and `#beforeJoin` commits before it joins again (the client's own
        // commit would join again itself, a second rebalance). On other failures (metadata
        // over the broker's limit, a coordinator that moved) the client's own commit, with
        // its coordinator handling, commits the offsets without metadata.
        const sent = await commitWithMetadata(
          this.#consumer as unknown as Consumer,
          offsets.map(({ topic, partition, offset, metadata }) => ({
            topic,
            partition,
            offset,
            metadata: metadata || null
          }))
        ).then(
          () => true,
          (error: Error) => {
            if (findErrorBy(error, 'needsRejoin', true) !== null) throw error
            return false
          }
        )
        if (sent) return
      }
      await this.#consumer.commit({
        offsets: offsets.map(({ topic, partition, offset }) => ({
          topic,
          partition,
          offset,
          leaderEpoch: -1
        }))
      })
    } catch (error) {
      throw translateKafkaError(error, this.#settings.connection)
    }
  }

  /**
   * Adds offsets to a transaction (TxnOffsetCommit, with this member's generation and id,
   * so the broker refuses a member the group has moved on from). Every partition must be
   * this member's now: a transaction must not commit a partition another member has.
   */
  async addToTransaction(transaction: RawTransaction, offsets: CommitPosition[]): Promise<void> {
    if (this.#options.groupProtocol === 'consumer')
      throw new ConveyorError(
        ErrorCodes.STATE,
        'transactions commit offsets on the classic group protocol only'
      )
    const owned = this.#owned(offsets)
    if (owned.length < offsets.length)
      throw new ConveyorError(
        ErrorCodes.FENCED,
        'a partition of the transaction is no longer this member’s',
        {
          retryable: true
        }
      )
    const consumer = this.#consumer as unknown as Consumer
    const memberId = consumer.memberId
    if (memberId === null)
      throw new ConveyorError(ErrorCodes.STATE, 'the consumer is not a member of its group yet', {
        retryable: true
      })
    await transaction.addConsumer(consumer as never)
    const member = {
      groupId: this.#options.groupId,
      generationId: consumer.generationId,
      memberId,
      coordinatorId: await consumer.findGroupCoordinator()
    }
    // The client commits a message's offset + 1: each position is handed over as the record before it.
    for (const { topic, partition, offset } of owned)
      await transaction.addOffset({
        topic,
        partition,
        offset: offset - 1n,
        metadata: { consumer: member }
      } as never)
  }

  /**
   * The positions of partitions this member owns now. On the classic protocol a commit
   * carries only the generation, not the partitions, so a member that let a partition go in
   * a rebalance could still commit it in the new generation, over its new owner's commits.
   */
  #owned(offsets: CommitPosition[]): CommitPosition[] {
    const assignments = this.#consumer.assignments
    if (this.#options.groupProtocol === 'consumer' || assignments === null) return offsets
    const owned = new Set<string>()
    for (const { topic, partitions } of assignments)
      for (const partition of partitions) owned.add(partitionKey(topic, partition))
    return offsets.filter((o) => owned.has(partitionKey(o.topic, o.partition)))
  }

  /** The group's committed offsets and their metadata (Kafka's OffsetFetch, through an admin client). */
  async committed(
    partitions: TopicPartition[],
    options: { stable?: boolean } = {}
  ): Promise<CommittedPosition[]> {
    this.#admin ??= new Admin(clientOptions(this.#settings.connection))
    try {
      const [group] = await this.#admin.listConsumerGroupOffsets({
        ...(options.stable ? { requireStable: true } : {}),
        groups: [
          {
            groupId: this.#options.groupId,
            topics: byTopic(partitions.map((tp) => ({ tp }))).map(({ topic, partitions }) => ({
              name: topic,
              partitionIndexes: partitions
            }))
          }
        ]
      })
      return partitions.map(({ topic, partition }) => {
        const found = group?.topics
          .find((t) => t.name === topic)
          ?.partitions.find((p) => p.partitionIndex === partition)
        const offset = found && found.committedOffset >= 0n ? found.committedOffset : undefined
        return { topic, partition, offset, metadata: found?.metadata ?? undefined }
      })
    } catch (error) {
      throw translateKafkaError(error, this.#settings.connection)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#assignmentCheck)
    clearTimeout(this.#retryTimer)
    this.#stopped.abort()
    if (this.#stream) {
      delete (this.#stream as { resume?: unknown }).resume // its own resume again, which close needs
      await this.#stream.close().catch(() => {})
    }
    await this.#consumer.close(true).catch(() => {})
    await this.#admin?.close().catch(() => {})
  }
}

interface FetchTopic {
  topicId: string
  partitions: Array<{
    partition: number
    fetchOffset: bigint
    partitionMaxBytes: number
    currentLeaderEpoch: number
    lastFetchedEpoch: number
  }>
}

function byTopic(positions: Array<{ tp: TopicPartition }>): GroupAssignment[] {
  const topics = new Map<string, number[]>()
  for (const { tp } of positions) {
    const partitions = topics.get(tp.topic) ?? []
    partitions.push(tp.partition)
    topics.set(tp.topic, partitions)
  }
  return [...topics].map(([topic, partitions]) => ({ topic, partitions }))
}

/** Topic id → name (fetch responses name topics by id). */
function topicNames(metadata: ClusterMetadata): Map<string, string> {
  return new Map([...metadata.topics].map(([name, { id }]) => [id, name]))
}

/** The headers of every record that has none (read-only: a `Map` that refuses writes). */
const noHeaders: Map<string, Buffer> = new (class extends Map<string, Buffer> {
  override set(): this {
    throw new TypeError('the headers of a delivered record are read-only')
  }
})()

function headerMap(headers: Array<[Buffer | null, Buffer | null]>): Map<string, Buffer> {
  const map = new Map<string, Buffer>()
  for (const [key, value] of headers) {
    if (key !== null) map.set(key.toString('utf8'), value ?? Buffer.alloc(0))
  }
  return map
}
