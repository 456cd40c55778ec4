/**
 * Processing: one record in, one outcome out. Decode (the codec) → read the type →
 * find the route (its middleware is already composed around its handler) → run the
 * handler → `processed`; a failed attempt goes to the failure path, and a record that
 * cannot be decoded or routed straight to the DLQ (repeating cannot help).
 *
 * A consumer with batch routes hands over runs of a lane's records (`handleRun`): each is
 * decoded and routed in turn, consecutive records of one batch route go to its handler
 * together, and a batch that fails is narrowed down to the message that failed (a
 * `BatchError` names it; otherwise, with `split`, the batch is halved until it is found),
 * so only that one follows the retry policy and the ones before it are done.
 *
 * The common case — a synchronous codec, a known type, a handler that succeeds — runs
 * without allocating a promise when the handler returns none (`handle`); everything else
 * takes the general path (`#handleAsync`).
 */
import type { Codec } from '../codec/json.ts'
import { BatchError, ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { HandlerContext, Message } from '../core/message.ts'
import { errorChannel, handlerChannel, messageHandledChannel } from '../instrumentation/channels.ts'
import type { ConveyorProducer } from '../producer/producer.ts'
import { backoff, forever, reasonOf } from '../retry/policy.ts'
import { type CompiledRoute, type RouteTable, readType, type TypeSource } from '../routing/routes.ts'
import type { InboundRecord, Publisher, Transaction } from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import { DeliveredMessage } from './delivered-message.ts'
import { FailurePath } from './failures.ts'
import type { Outcome, PartitionState } from './partition.ts'
import type { RunControl } from './scheduler.ts'
import type { Transactions } from './transactions.ts'

/** Decoding that fails for a transient reason (registry down) is retried with this policy. */
const decodeRetry = forever({ initialDelay: 250, maxDelay: 10_000 })

/** What `#decode` answers when the consumer stopped while it waited. */
const abandoned = Symbol('abandoned')

/** What `#decode` answers, when told not to wait, for a decode that must wait to be tried again. */
const deferred = Symbol('deferred')

/**
 * A record decoded and routed, ready for its handler; or how it ends without one
 * (abandoned while decoding waited, ignored as an unknown type, or for the DLQ).
 */
type Prepared =
  | { ready: true; route: CompiledRoute; message: DeliveredMessage }
  | { ready: false; outcome: 'abandoned' | 'ignored' }
  | { ready: false; error: unknown }
  | { ready: false; deferred: true }

/** A record of a run with its position in the run, ready for its batch handler. */
interface BatchItem {
  index: number
  record: InboundRecord
  message: DeliveredMessage
}

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
  /** Set when the consumer is transactional: every handler call and dead letter commits in a transaction. */
  transactions?: Transactions
}

export class Processor {
  readonly #options: ProcessorOptions
  readonly #failures: FailurePath

  constructor(options: ProcessorOptions) {
    this.#options = options
    const { transactions } = options
    this.#failures = new FailurePath({
      groupId: options.groupId,
      deadLetterTopic: options.deadLetterTopic,
      call: (route, message, context, state) => this.#call(route, message, context, state),
      write: transactions
        ? (state, record, dlq) =>
            transactions.run(state, record.offset + 1n, async (transaction) => {
              await transaction.send([dlq])
            })
        : async (_state, _record, dlq) => {
            await options.publisher().send([dlq])
          },
      context: (state, message) => this.#contextFor(state, message),
      handled: (record, message, outcome, attempts, started) =>
        this.#handled(record, message, outcome, attempts, started),
      blocked: options.blocked
    })
  }

  /** Handles one record of an owned partition; a string when it finished synchronously. */
  handle(record: InboundRecord, state: PartitionState): Outcome | Promise<Outcome> {
    if (handlerChannel.hasSubscribers || this.#options.transactions) return this.#handleAsync(record, state)
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
    const prepared = await this.#prepare(record, state, decoded)
    if (!prepared.ready) return this.#unhandled(record, state, prepared, started)
    return this.#handleOne(record, state, prepared.route, prepared.message, started)
  }

  /**
   * Handles a run of consecutive records of one lane, in order, settling each as it ends:
   * a batch route's records go to its handler together (up to its `maxSize`), every other
   * record on its own. Records left when the partition is lost or the consumer stops are
   * abandoned.
   */
  async handleRun(records: InboundRecord[], state: PartitionState, control: RunControl): Promise<void> {
    const settle = control.settle
    let next: Prepared | undefined
    for (let i = 0; i < records.length; ) {
      // A rebalance is coming: start nothing until it has passed (or taken the partition).
      const held = control.held()
      if (held !== undefined) await until(held, state.waits)
      if (state.waits.aborted) {
        for (; i < records.length; i++) settle(i, 'abandoned')
        return
      }
      const started = performance.now()
      const prepared = next ?? (await this.#prepare(records[i]!, state))
      next = undefined
      if (!prepared.ready) {
        control.start(i, i + 1)
        settle(i, await this.#unhandled(records[i]!, state, prepared as Prepared & { ready: false }, started))
        i++
        continue
      }
      const { route } = prepared
      if (route.batch === undefined) {
        control.start(i, i + 1)
        settle(i, await this.#handleOne(records[i]!, state, route, prepared.message, started))
        i++
        continue
      }
      const batch: BatchItem[] = [{ index: i, record: records[i]!, message: prepared.message }]
      for (let j = i + 1; j < records.length && batch.length < route.batch.maxSize; j++) {
        // Looking ahead never waits (for a registry that is down, say): that record's turn comes later.
        const following = await this.#prepare(records[j]!, state, undefined, false)
        if (!following.ready || following.route !== route) {
          if (!('deferred' in following)) next = following // its turn comes after the batch
          break
        }
        batch.push({ index: j, record: records[j]!, message: following.message })
      }
      control.start(i, i + batch.length)
      await this.#handleBatch(batch, state, route, control, started)
      i += batch.length
    }
  }

  /**
   * Decodes and routes a record (see {@link Prepared}); never throws. With `wait` false, a
   * decode that fails for a passing reason is not waited for: the record is `deferred`.
   */
  async #prepare(
    record: InboundRecord,
    state: PartitionState,
    decoded?: unknown,
    wait = true
  ): Promise<Prepared> {
    try {
      const value = await this.#decode(record, state.waits, decoded as PromiseLike<unknown> | undefined, wait)
      if (value === abandoned) return { ready: false, outcome: 'abandoned' }
      if (value === deferred) return { ready: false, deferred: true }
      const type = readType(this.#options.typeFrom, value, record.headers)
      const route = type === undefined ? undefined : this.#options.routes.get(type)
      if (!route) {
        if (this.#options.unknownType === 'ignore') return { ready: false, outcome: 'ignored' }
        const what =
          type === undefined
            ? `it names no message type (${describeSource(this.#options.typeFrom)})`
            : `no route handles type "${type}" (known: ${knownTypes(this.#options.routes)})`
        throw new ConveyorError(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `the message cannot be routed: ${what}`)
      }
      return { ready: true, route, message: new DeliveredMessage(record, route.type, value, 1) }
    } catch (error) {
      return { ready: false, error }
    }
  }

  /** Ends a record that has no handler to run: abandoned, ignored, or (decoding and routing failures: repeating cannot help) the DLQ. */
  async #unhandled(
    record: InboundRecord,
    state: PartitionState,
    prepared: Prepared & { ready: false },
    started: number
  ): Promise<Outcome> {
    if ('deferred' in prepared) return this.#handled(record, undefined, 'abandoned', 1, started) // never: only look-ahead defers
    if ('outcome' in prepared) return this.#handled(record, undefined, prepared.outcome, 1, started)
    const outcome = await this.#failures.deadLetter(record, state, {
      topic: this.#options.deadLetterTopic(record.topic),
      reason: reasonOf(prepared.error),
      error: prepared.error,
      attempts: 1,
      firstFailure: new Date()
    })
    return this.#handled(record, undefined, outcome, 1, started)
  }

  /** Runs the handler of one message, and the failure path when the attempt fails. */
  async #handleOne(
    record: InboundRecord,
    state: PartitionState,
    route: CompiledRoute,
    message: DeliveredMessage,
    started: number
  ): Promise<Outcome> {
    if (state.waits.aborted) return this.#handled(record, message, 'abandoned', 1, started)
    try {
      await this.#call(route, message, this.#contextFor(state, message), state)
      return this.#handled(record, message, 'processed', 1, started)
    } catch (error) {
      return this.#failures.retry(record, state, route, message, started, { error, attempt: 1 })
    }
  }

  /**
   * Runs a batch route's handler on consecutive messages and settles them. When the batch
   * fails, the failing message is found — named by a `BatchError`, else (with `split`) by
   * halving the batch — so the ones before it are processed, it alone
   * follows the retry policy, and the ones after it make a batch again. Without `split`,
   * the whole batch is retried and, past the policy, dead-lettered.
   */
  async #handleBatch(
    items: BatchItem[],
    state: PartitionState,
    route: CompiledRoute,
    control: RunControl,
    started: number,
    failed?: { error: unknown; attempt: number }
  ): Promise<void> {
    const { handler, split } = route.batch!
    let attempt = failed?.attempt ?? 1
    let messages = items.map((item) => (attempt === 1 ? item.message : item.message.withAttempt(attempt)))
    let firstFailure: Date | undefined
    let error = failed?.error
    if (failed === undefined) {
      // A batch after a failed message (the rest) is a new batch: not during a hold.
      const held = control.held()
      if (held !== undefined) await until(held, state.waits)
    }
    for (let call = failed === undefined; ; call = true) {
      if (state.waits.aborted) {
        for (const item of items)
          control.settle(item.index, this.#handled(item.record, item.message, 'abandoned', attempt, started))
        return
      }
      if (call) {
        try {
          await this.#callBatch(handler, messages, this.#contextFor(state, messages[0]!), state)
          for (const [k, item] of items.entries())
            control.settle(
              item.index,
              this.#handled(item.record, messages[k]!, 'processed', attempt, started)
            )
          return
        } catch (thrown) {
          error = thrown
        }
      }
      const index = error instanceof BatchError ? error.index : undefined
      if (index !== undefined && Number.isInteger(index) && index >= 0 && index < items.length) {
        const cause = (error as BatchError).cause ?? error
        return this.#failedAt(items, index, state, route, control, started, { error: cause, attempt })
      }
      if (items.length === 1)
        return this.#failedAt(items, 0, state, route, control, started, { error, attempt })
      // A call that timed out may still be running: halving now would run its messages
      // beside it. The policy's wait comes first; the batch is then tried whole again.
      if (split && !isTimeout(error)) return this.#split(items, state, route, control, started)
      firstFailure ??= new Date()
      const decision = await this.#failures.retryBatch(state, route, messages, attempt, error, firstFailure)
      if (decision === 'retry') {
        attempt++
        messages = messages.map((message) => message.withAttempt(attempt))
        continue
      }
      // The policy gave up (or the wait was cut short): every message of the batch ends so.
      for (const [k, item] of items.entries()) {
        const outcome =
          decision === 'abandoned'
            ? 'abandoned'
            : await this.#failures.deadLetter(item.record, state, { ...decision, attempts: attempt })
        control.settle(item.index, this.#handled(item.record, messages[k]!, outcome, attempt, started))
      }
      return
    }
  }

  /**
   * The message at `index` failed: those before it are processed, it follows the retry
   * policy on its own, and those after it make a batch again once it has ended.
   */
  async #failedAt(
    items: BatchItem[],
    index: number,
    state: PartitionState,
    route: CompiledRoute,
    control: RunControl,
    started: number,
    failed: { error: unknown; attempt: number }
  ): Promise<void> {
    if (this.#options.transactions && index > 0) {
      // The batch's transaction was aborted with its error, the work of the messages before
      // the failing one too: they go again, in a transaction of their own, first.
      await this.#handleBatch(items.slice(0, index), state, route, control, started)
      return this.#failedAt(items.slice(index), 0, state, route, control, started, failed)
    }
    for (const item of items.slice(0, index))
      control.settle(
        item.index,
        this.#handled(
          item.record,
          item.message.withAttempt(failed.attempt),
          'processed',
          failed.attempt,
          started
        )
      )
    const failing = items[index]!
    const message = failed.attempt === 1 ? failing.message : failing.message.withAttempt(failed.attempt)
    control.settle(
      failing.index,
      await this.#failures.retry(failing.record, state, route, message, started, failed)
    )
    const rest = items.slice(index + 1)
    if (rest.length > 0) await this.#handleBatch(rest, state, route, control, started)
  }

  /**
   * A batch failed without naming a message: it is narrowed down by halves to the first
   * message that fails on its own. Halves that succeed are processed on the way; the
   * failing message follows the retry policy and the messages after it make a batch
   * again. A batch that failed for a passing reason costs two calls, not one per message.
   */
  async #split(
    items: BatchItem[],
    state: PartitionState,
    route: CompiledRoute,
    control: RunControl,
    started: number
  ): Promise<void> {
    const { handler } = route.batch!
    // items[0, done) are processed; items[done, end) hold a message that failed. After a
    // half went through, the rest of [done, end) is tried whole before it is halved.
    let done = 0
    let end = items.length
    let whole = false
    for (;;) {
      if (state.waits.aborted) {
        for (const left of items.slice(done))
          control.settle(left.index, this.#handled(left.record, left.message, 'abandoned', 1, started))
        return
      }
      const mid = whole || end - done === 1 ? end : done + Math.ceil((end - done) / 2)
      const chunk = items.slice(done, mid)
      try {
        await this.#callBatch(
          handler,
          chunk.map((item) => item.message),
          this.#contextFor(state, chunk[0]!.message),
          state
        )
      } catch (error) {
        const index = error instanceof BatchError ? error.index : undefined
        if (index !== undefined && Number.isInteger(index) && index >= 0 && index < chunk.length) {
          const cause = (error as BatchError).cause ?? error
          return this.#failedAt(items.slice(done), index, state, route, control, started, {
            error: cause,
            attempt: 1
          })
        }
        if (chunk.length === 1)
          return this.#failedAt(items.slice(done), 0, state, route, control, started, { error, attempt: 1 })
        if (isTimeout(error))
          return this.#handleBatch(items.slice(done), state, route, control, started, { error, attempt: 1 })
        end = mid
        whole = false
        continue
      }
      for (const item of chunk)
        control.settle(item.index, this.#handled(item.record, item.message, 'processed', 1, started))
      done = mid
      if (done === end) {
        // The part that failed went through this time: the rest make a batch again.
        const rest = items.slice(done)
        if (rest.length > 0) await this.#handleBatch(rest, state, route, control, started)
        return
      }
      whole = true
    }
  }

  /**
   * Runs a batch handler, inside the handler tracing channel when something listens to it;
   * in a transaction with the offset after the batch when the consumer is transactional.
   */
  async #callBatch(
    handler: NonNullable<CompiledRoute['batch']>['handler'],
    messages: readonly Message[],
    context: HandlerContext,
    state: PartitionState
  ): Promise<void> {
    const { transactions } = this.#options
    const run = async (bound: HandlerContext) => {
      if (handlerChannel.hasSubscribers) {
        await handlerChannel.tracePromise(async () => handler(messages, bound), {
          message: messages[0]!,
          batch: messages,
          groupId: this.#options.groupId
        })
      } else {
        await handler(messages, bound)
      }
    }
    if (!transactions) return run(context)
    const last = messages[messages.length - 1]!
    return transactions.run(state, last.offset + 1n, (transaction) =>
      run(this.#inTransaction(context, transaction, messages[0]!))
    )
  }

  /**
   * Runs the route's handler, inside the handler tracing channel when something listens to
   * it; in a transaction with the message's offset when the consumer is transactional.
   */
  async #call(
    route: CompiledRoute,
    message: Message,
    context: HandlerContext,
    state: PartitionState
  ): Promise<void> {
    const { transactions } = this.#options
    if (transactions)
      return transactions.run(state, message.offset + 1n, (transaction) =>
        this.#traced(route, message, this.#inTransaction(context, transaction, message))
      )
    return this.#traced(route, message, context)
  }

  async #traced(route: CompiledRoute, message: Message, context: HandlerContext): Promise<void> {
    if (handlerChannel.hasSubscribers) {
      await handlerChannel.tracePromise(async () => route.handler(message, context), {
        message,
        groupId: this.#options.groupId
      })
    } else {
      await route.handler(message, context)
    }
  }

  /** The context with `send` writing in `transaction` (when the consumer has a producer). */
  #inTransaction(context: HandlerContext, transaction: Transaction, parent: Message): HandlerContext {
    const { producer } = this.#options
    if (!producer) return context
    const bound = producer.through({ send: (records) => transaction.send(records), close: async () => {} })
    return {
      ...context,
      send: (type, payload, options = {}) => bound.send(type, payload, { ...options, parent })
    }
  }

  /**
   * Decodes a record. A retryable failure (the schema registry is unreachable) is not the
   * message's fault: it waits with capped backoff and tries again, never dead-letters.
   * `first` is a decode already started (on the fast path): its outcome is the first attempt's.
   */
  async #decode(
    record: InboundRecord,
    signal: AbortSignal,
    first?: PromiseLike<unknown>,
    waitToRetry = true
  ): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (attempt === 1 && first !== undefined) return await first
        return await this.#options.codec.decode(record.value, {
          topic: record.topic,
          headers: record.headers
        })
      } catch (error) {
        if (!(error instanceof ConveyorError) || !error.retryable) throw error
        if (!waitToRetry) return deferred
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

function isTimeout(error: unknown): boolean {
  return error instanceof ConveyorError && error.code === ErrorCodes.HANDLER_TIMEOUT
}

/** Resolves when `promise` does or `signal` aborts, whichever is first. */
function until(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
    promise.then(done, done)
  })
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
