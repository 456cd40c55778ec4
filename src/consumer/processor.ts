/**
 * Processing: one record in, one outcome out. Decode (the codec) → read the type →
 * find the route (its middleware is already composed around its handler) → run the
 * handler → `processed`; a failed attempt goes to the failure path, and a record that
 * cannot be decoded or routed straight to the DLQ (repeating cannot help).
 *
 * The common case — a synchronous codec, a known type, a handler that succeeds — runs
 * without allocating a promise when the handler returns none (`handle`); everything else
 * takes the general path (`#handleAsync`).
 */
import type { Codec } from '../codec/json.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { HandlerContext, Message } from '../core/message.ts'
import { errorChannel, handlerChannel, messageHandledChannel } from '../instrumentation/channels.ts'
import type { ConveyorProducer } from '../producer/producer.ts'
import { backoff, forever, reasonOf } from '../retry/policy.ts'
import { type CompiledRoute, type RouteTable, readType, type TypeSource } from '../routing/routes.ts'
import type { InboundRecord, Publisher } from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import { DeliveredMessage } from './delivered-message.ts'
import { FailurePath } from './failures.ts'
import type { Outcome, PartitionState } from './partition.ts'

/** Decoding that fails for a transient reason (registry down) is retried with this policy. */
const decodeRetry = forever({ initialDelay: 250, maxDelay: 10_000 })

/** What `#decode` answers when the consumer stopped while it waited. */
const abandoned = Symbol('abandoned')

export interface ProcessorOptions {
  groupId: string
  routes: RouteTable
  codec: Codec
  typeFrom: TypeSource
  unknownType: 'dead-letter' | 'ignore'
  producer?: ConveyorProducer
  /** The DLQ of a source topic when the route names none. */
  deadLetterTopic(topic: string): string
  /** Where dead letters are written (made at start). */
  publisher(): Publisher
  /** Aborted at stop(): nothing new starts. */
  stopping: AbortSignal
  /** The partition's first message started waiting for a retry. */
  blocked(state: PartitionState): void
}

export class Processor {
  readonly #options: ProcessorOptions
  readonly #failures: FailurePath

  constructor(options: ProcessorOptions) {
    this.#options = options
    this.#failures = new FailurePath({
      groupId: options.groupId,
      publisher: options.publisher,
      deadLetterTopic: options.deadLetterTopic,
      call: (route, message, context) => this.#call(route, message, context),
      context: (state, message) => this.#contextFor(state, message),
      handled: (record, message, outcome, attempts, started) =>
        this.#handled(record, message, outcome, attempts, started),
      blocked: options.blocked
    })
  }

  /** Handles one record of an owned partition; a string when it finished synchronously. */
  handle(record: InboundRecord, state: PartitionState): Outcome | Promise<Outcome> {
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
    const route = type === undefined ? undefined : this.#options.routes.get(type)
    if (!route) return this.#handleAsync(record, state, value)
    if (state.revoked || this.#options.stopping.aborted) return 'abandoned'
    const message = new DeliveredMessage(record, route.type, value, 1)
    let result: unknown
    try {
      result = route.handler(message, this.#contextFor(state, message))
    } catch (error) {
      return this.#failures.retry(record, state, route, message, started, { error, attempt: 1 })
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        () => this.#handled(record, message, 'processed', 1, started),
        (error: unknown) =>
          this.#failures.retry(record, state, route, message, started, { error, attempt: 1 })
      )
    }
    return this.#handled(record, message, 'processed', 1, started)
  }

  async #handleAsync(record: InboundRecord, state: PartitionState, decoded?: unknown): Promise<Outcome> {
    const started = performance.now()
    let message: DeliveredMessage
    let route: CompiledRoute | undefined
    try {
      const value = await this.#decode(record, state.waits, decoded as PromiseLike<unknown> | undefined)
      if (value === abandoned) return this.#handled(record, undefined, 'abandoned', 1, started)
      const type = readType(this.#options.typeFrom, value, record.headers)
      route = type === undefined ? undefined : this.#options.routes.get(type)
      if (!route) {
        if (this.#options.unknownType === 'ignore')
          return this.#handled(record, undefined, 'ignored', 1, started)
        const what =
          type === undefined
            ? `it names no message type (${describeSource(this.#options.typeFrom)})`
            : `no route handles type "${type}" (known: ${knownTypes(this.#options.routes)})`
        throw new ConveyorError(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `the message cannot be routed: ${what}`)
      }
      message = new DeliveredMessage(record, route.type, value, 1)
    } catch (error) {
      // Decoding and routing failures: repeating cannot help.
      const outcome = await this.#failures.deadLetter(record, state, {
        topic: this.#options.deadLetterTopic(record.topic),
        reason: reasonOf(error),
        error,
        attempts: 1,
        firstFailure: new Date()
      })
      return this.#handled(record, undefined, outcome, 1, started)
    }
    if (state.waits.aborted) return this.#handled(record, message, 'abandoned', 1, started)
    try {
      await this.#call(route, message, this.#contextFor(state, message))
      return this.#handled(record, message, 'processed', 1, started)
    } catch (error) {
      return this.#failures.retry(record, state, route, message, started, { error, attempt: 1 })
    }
  }

  /** Runs the route's handler, inside the handler tracing channel when something listens to it. */
  async #call(route: CompiledRoute, message: Message, context: HandlerContext): Promise<void> {
    if (handlerChannel.hasSubscribers) {
      await handlerChannel.tracePromise(async () => route.handler(message, context), {
        message,
        groupId: this.#options.groupId
      })
    } else {
      await route.handler(message, context)
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
        errorChannel.publish({ groupId: this.#options.groupId, error, fatal: false, context: 'decode' })
        if (!(await wait(backoff(decodeRetry, attempt), signal))) return abandoned
      }
    }
  }

  /** The handler's context: its signal, group and, with a producer, `send` naming the message as cause. */
  #contextFor(state: PartitionState, parent: Message): HandlerContext {
    const { producer, groupId } = this.#options
    if (!producer) {
      state.context ??= { signal: state.handlerSignal, groupId }
      return state.context
    }
    return {
      signal: state.handlerSignal,
      groupId,
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
        groupId: this.#options.groupId,
        message,
        record,
        outcome,
        attempts,
        duration: performance.now() - started
      })
    }
    return outcome
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

function describeSource(source: TypeSource): string {
  if (typeof source === 'function') return 'the typeFrom function returned nothing'
  return 'header' in source ? `no "${source.header}" header` : `no "${source.field}" field`
}

/** The types a consumer routes, for an error about one it does not (at most 20 named). */
function knownTypes(routes: ReadonlyMap<string, unknown>): string {
  const types = [...routes.keys()]
  if (types.length === 0) return 'none'
  return types.length > 20
    ? `${types.slice(0, 20).join(', ')} and ${types.length - 20} more`
    : types.join(', ')
}
