/**
 * The ordered replicator: applies the events of each partition in offset order, consecutive
 * ones together, through a {@link FencedSink}, exactly once.
 *
 * It is a Conveyor consumer with partition ordering and a batch route, and three things added:
 * - on assignment it takes the partition in the sink (`acquire`, which fences out earlier
 *   owners) and reads the partition from the sink's position, not the group's offset;
 * - consecutive events of a partition (a batch: up to `batch.maxSize`, what has arrived) are
 *   written with the partition's next offset in one sink write, so whatever crashes where,
 *   an event is applied once (Kafka offsets are still committed, for lag); a batch whose
 *   write fails is halved until the failing event is found, so the events before it are
 *   applied and only it is retried;
 * - a write the fence refuses means another member had the partition since: this one
 *   applies nothing more of it until a rebalance revokes it or, when this member rejoined
 *   with it, it is acquired anew.
 *
 * A failing write is retried for ever (capped backoff with jitter) and blocks only its own
 * partition. A value the decoder refuses (a `DecodeError`) goes to the dead-letter topic
 * with the error's reason, and the partition goes on; with `onInvalid: 'block'` the
 * partition stops at it instead, until an operator asks for that one event to be skipped
 * (`skips.request`), and then it goes to the dead-letter topic. A tombstone is skipped.
 */
import { type Codec, DecodeError } from '../codec/json.ts'
import { type ConveyorConsumer, createConsumer } from '../consumer/consumer.ts'
import type { ConsumerState, ConsumerStatus } from '../consumer/options.ts'
import { ConveyorError, ErrorCodes, NonRetryableError } from '../core/errors.ts'
import type { Message } from '../core/message.ts'
import { errorChannel } from '../instrumentation/channels.ts'
import { forever, type RetryForever } from '../retry/policy.ts'
import { partitionKey, type TopicPartition, type Transport } from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import { FencedError, type FencedSink, type ReplicaEvent, type SkipRequests } from './sink.ts'

/** What a decoder is given: one record's value bytes (never `null`: tombstones are skipped before). */
export interface RecordToDecode {
  /** The topic the record was read from. */
  readonly topic: string
  /** The value bytes. */
  readonly value: Buffer
  /** The record's headers. */
  readonly headers: ReadonlyMap<string, Buffer>
}

/** Options of {@link createReplicator}. */
export interface ReplicatorOptions<T, Token> {
  /** The broker the events are read from (and dead letters written to). */
  transport: Transport
  /** The consumer group; the sink keeps its positions per group too. */
  groupId: string
  /** The topics of change events. */
  topics: string[]
  /** Where the events are applied, fenced per partition. */
  sink: FencedSink<T, Token>
  /**
   * Turns a record's value into an event. Throw a `DecodeError` (its `reason` names the
   * problem, e.g. `invalid_json`) for input that can never be applied: it is dead-lettered.
   */
  decode(record: RecordToDecode): T | Promise<T>
  /**
   * A value the decoder refuses: `dead-letter` (default) sends it to the dead-letter topic
   * with its reason and the partition goes on; `block` stops the partition at it until
   * `skips` says to skip it (then it is dead-lettered), for pipelines where a gap is worse
   * than a halt.
   */
  onInvalid?: 'dead-letter' | 'block'
  /** Operators' skip requests, needed with `onInvalid: 'block'` (`postgresSink(…).skips`). */
  skips?: SkipRequests
  /** How often a blocked partition asks whether it may skip its event, ms. Default 1000. */
  skipPollInterval?: number
  /** How failed writes are retried: for ever, by default from 1 s doubling to a 5 min cap, with jitter. */
  retry?: Partial<Omit<RetryForever, 'kind'>>
  /**
   * Consecutive events of a partition applied in one sink write: at most `maxSize`
   * (default 100), after waiting up to `maxWait` ms for that many (default 0: what has
   * arrived). `maxSize: 1` writes each event on its own.
   */
  batch?: { maxSize?: number; maxWait?: number }
  /** Partitions applied at the same time. Default 16. */
  concurrency?: number
  /** Dead-letter topic for a source topic. Default `<topic>.dlq`. */
  deadLetterTopic?: (topic: string) => string
  /** Where a partition without a position (in the sink or the group) starts. Default true (the oldest record). */
  fromBeginning?: boolean
  /** How often the group's offsets are committed (for lag), ms. Default 1000. */
  commitInterval?: number
  /** How long `stop()` and a revocation wait for a write in flight, ms. Default 30 000. */
  drainTimeout?: number
  /** Classic protocol: how long the broker keeps a member without heartbeats, ms. Default 30 000. */
  sessionTimeout?: number
  /** Classic protocol: how often the member sends a heartbeat, ms. Default 3 000. */
  heartbeatInterval?: number
  /** `consumer` for the KIP-848 protocol; default `classic`. */
  groupProtocol?: 'classic' | 'consumer'
}

/** A value the codec let through for a tombstone. */
const tombstone = Symbol('tombstone')

/** A value the decoder refused, let through in `block` mode to stop its partition. */
class Invalid {
  readonly error: DecodeError
  constructor(error: DecodeError) {
    this.error = error
  }
}

/** An event a partition stopped at (`onInvalid: 'block'`), as `status()` shows it. */
export interface BlockedEvent {
  offset: string
  reason: string
  error: string
  since: string
}

/** The replicator; `consumer` is the runtime underneath (for health and metrics wiring). */
export class Replicator<T, Token> {
  /** The consumer underneath: its state, status and diagnostics channels are the replicator's. */
  readonly consumer: ConveyorConsumer
  readonly #sink: FencedSink<T, Token>
  readonly #groupId: string
  /** The fence token of each partition this member holds, by `topic:partition`. */
  readonly #tokens = new Map<string, Token>()
  /** Partitions whose writes the fence refused: nothing more is applied until they are assigned again. */
  readonly #fenced = new Set<string>()
  readonly #stopping = new AbortController()
  readonly #skips: SkipRequests | undefined
  readonly #skipPollInterval: number
  /** Partitions stopped at an invalid event, by `topic:partition`. */
  readonly #blocked = new Map<string, BlockedEvent & TopicPartition>()

  constructor(options: ReplicatorOptions<T, Token>) {
    this.#sink = options.sink
    this.#groupId = options.groupId
    const block = options.onInvalid === 'block'
    if (block && options.skips === undefined)
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        'onInvalid: block needs skips (where operators ask to skip a blocked event)',
        { path: 'skips' }
      )
    if (options.onInvalid !== undefined && !['dead-letter', 'block'].includes(options.onInvalid))
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, 'onInvalid must be "dead-letter" or "block"', {
        path: 'onInvalid'
      })
    this.#skips = options.skips
    this.#skipPollInterval = options.skipPollInterval ?? 1_000
    const decode = async (record: RecordToDecode) => {
      if (!block) return options.decode(record)
      try {
        return await options.decode(record)
      } catch (error) {
        // Any failure to decode stops the partition in this mode: a gap is what it avoids.
        if (error instanceof DecodeError) return new Invalid(error)
        return new Invalid(
          new DecodeError('decode_failed', `the decoder failed: ${(error as Error)?.message ?? error}`, error)
        )
      }
    }
    const codec: Codec = {
      name: 'replicator',
      decode: (bytes, context) =>
        bytes === null ? tombstone : decode({ topic: context.topic, value: bytes, headers: context.headers }),
      encode: () => {
        throw new ConveyorError(ErrorCodes.STATE, 'the replicator does not produce through its codec')
      }
    }
    this.consumer = createConsumer({
      transport: options.transport,
      groupId: options.groupId,
      topics: options.topics,
      ordering: 'partition',
      codec,
      // An invalid event (block mode) has a route of its own: a batch ends before it.
      typeFrom: ({ value }) => (value instanceof Invalid ? 'invalid' : 'event'),
      routes: {
        invalid: {
          handler: (message, context) =>
            this.#block(message, (message.value as Invalid).error, context.signal),
          retry: forever(options.retry)
        },
        event: {
          handleBatch: (messages, context) => this.#apply(messages, context.signal),
          batch: { maxSize: options.batch?.maxSize ?? 100, maxWait: options.batch?.maxWait ?? 0 },
          retry: forever(options.retry)
        }
      },
      assignmentListeners: [
        {
          assigned: (tp, start) => this.#acquire(tp, start),
          revoked: (tp) => this.#release(tp)
        }
      ],
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.deadLetterTopic === undefined ? {} : { deadLetterTopic: options.deadLetterTopic }),
      ...(options.fromBeginning === undefined ? {} : { fromBeginning: options.fromBeginning }),
      ...(options.commitInterval === undefined ? {} : { commitInterval: options.commitInterval }),
      ...(options.drainTimeout === undefined ? {} : { drainTimeout: options.drainTimeout }),
      ...(options.sessionTimeout === undefined ? {} : { sessionTimeout: options.sessionTimeout }),
      ...(options.heartbeatInterval === undefined ? {} : { heartbeatInterval: options.heartbeatInterval }),
      ...(options.groupProtocol === undefined ? {} : { groupProtocol: options.groupProtocol })
    })
  }

  /** The consumer's state. */
  get state(): ConsumerState {
    return this.consumer.state
  }

  /** The consumer's status, and the partitions (`topic:partition`) whose writes the fence refused. */
  status(): ConsumerStatus & {
    fenced: string[]
    blocked: Array<BlockedEvent & { topic: string; partition: number }>
  } {
    const status = this.consumer.status()
    return {
      ...status,
      partitions: status.partitions.map((p) => {
        const blocked = this.#blocked.get(partitionKey(p.topic, p.partition))
        if (blocked === undefined) return p
        const { topic: _topic, partition: _partition, ...event } = blocked
        return { ...p, blocked: event }
      }),
      fenced: [...this.#fenced],
      blocked: [...this.#blocked.values()]
    }
  }

  /** Joins the group; partitions are applied as they are assigned. */
  start(): Promise<void> {
    return this.consumer.start()
  }

  /** Stops: the write in flight finishes (up to the drain timeout), retry waits end, nothing more is applied. */
  async stop(options?: { timeout?: number }): Promise<void> {
    this.#stopping.abort()
    await this.consumer.stop(options)
  }

  async #acquire(
    tp: TopicPartition,
    start: { seek(offset: bigint): void; signal: AbortSignal }
  ): Promise<void> {
    const { token, next } = await this.#sink.acquire(tp, start.signal)
    const key = partitionKey(tp.topic, tp.partition)
    this.#tokens.set(key, token)
    this.#fenced.delete(key)
    if (next !== undefined) start.seek(next)
  }

  #release(tp: TopicPartition): void {
    const key = partitionKey(tp.topic, tp.partition)
    this.#tokens.delete(key)
    this.#fenced.delete(key)
    this.#blocked.delete(key)
  }

  /**
   * Applies consecutive events of one partition in one sink write, with the position after
   * the last; tombstones count as applied. A write the fence refuses leaves the partition
   * idle; any other failure fails the batch, which the runtime then halves to find the
   * event at fault, and retries.
   */
  async #apply(messages: readonly Message<unknown>[], signal: AbortSignal): Promise<void> {
    if (messages.every((message) => message.value === tombstone)) return
    const last = messages[messages.length - 1]!
    const tp = { topic: last.topic, partition: last.partition }
    const key = partitionKey(tp.topic, tp.partition)
    const token = this.#tokens.get(key)
    if (token === undefined || this.#fenced.has(key)) throw await this.#idle(signal)
    const events = messages.flatMap((message): ReplicaEvent<T>[] =>
      message.value === tombstone
        ? []
        : [
            {
              topic: message.topic,
              partition: message.partition,
              offset: message.offset,
              key: message.key,
              headers: message.headers,
              value: message.value as T
            }
          ]
    )
    try {
      await this.#sink.write(tp, events, last.offset + 1n, token)
    } catch (error) {
      if (!(error instanceof FencedError)) throw error // the batch is halved and retried, for ever
      if (!this.#fenced.has(key)) {
        this.#fenced.add(key)
        errorChannel.publish({
          groupId: this.#groupId,
          error,
          fatal: false,
          context: 'fenced',
          partition: tp
        })
        // A rebalance takes the partition away; or, when the group gives it to this member
        // again, it is acquired anew and read from the sink's position.
        this.consumer.reacquire(tp)
      }
      throw await this.#idle(signal)
    }
  }

  /**
   * `onInvalid: 'block'`: the partition stops at this event until an operator asks to skip
   * it; then it fails for good, which sends it to the dead-letter topic with the decoder's
   * reason, and the partition goes on.
   */
  async #block(message: Message<unknown>, error: DecodeError, signal: AbortSignal): Promise<never> {
    const tp = { topic: message.topic, partition: message.partition }
    const key = partitionKey(tp.topic, tp.partition)
    this.#blocked.set(key, {
      ...tp,
      offset: String(message.offset),
      reason: error.reason,
      error: error.message,
      since: new Date().toISOString()
    })
    errorChannel.publish({ groupId: this.#groupId, error, fatal: false, context: 'blocked', partition: tp })
    const ended = AbortSignal.any([signal, this.#stopping.signal])
    const stopped = new Promise<false>((resolve) => {
      if (ended.aborted) resolve(false)
      else ended.addEventListener('abort', () => resolve(false), { once: true })
    })
    try {
      for (let failures = 0; !ended.aborted; ) {
        // Raced with the end: a store that does not answer must not hold up a revocation or stop.
        const skip = await Promise.race([
          this.#skips!.requested(tp, message.offset).then(
            (asked) => {
              failures = 0
              return asked
            },
            (failure: unknown) => {
              failures++
              errorChannel.publish({
                groupId: this.#groupId,
                error: failure,
                fatal: false,
                context: 'skip-requests',
                partition: tp
              })
              return false
            }
          ),
          stopped
        ])
        if (skip)
          throw new NonRetryableError(`skipped by an operator: ${error.message}`, {
            reason: error.reason,
            cause: error
          })
        await wait(this.#skipPollInterval * Math.min(2 ** failures, 30), ended)
      }
    } finally {
      this.#blocked.delete(key)
    }
    throw new ConveyorError(ErrorCodes.STATE, 'the replicator stopped or lost the partition', {
      retryable: true
    })
  }

  /**
   * A partition this member may no longer write: the events are neither applied nor
   * finished. Waits until the partition is revoked or the replicator stops, then gives the
   * error that fails the attempt, which the runtime then abandons (not committed, not
   * dead-lettered).
   */
  async #idle(signal: AbortSignal): Promise<ConveyorError> {
    const ended = AbortSignal.any([signal, this.#stopping.signal])
    if (!ended.aborted)
      await new Promise((resolve) => ended.addEventListener('abort', resolve, { once: true }))
    return new ConveyorError(ErrorCodes.FENCED, 'the partition is no longer this member’s to write', {
      retryable: true
    })
  }
}

/** Makes a {@link Replicator}; `start()` joins the group. */
export function createReplicator<T, Token>(options: ReplicatorOptions<T, Token>): Replicator<T, Token> {
  return new Replicator(options)
}
