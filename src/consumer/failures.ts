/**
 * The failure path: what happens to a message once an attempt failed. Its route's
 * policy decides (`decide` in src/retry/policy.ts): wait and try again, or write it to
 * the dead-letter topic. Either way the message ends with an outcome the commit point
 * can trust: `processed` or `dead-lettered` only once the DLQ write is acknowledged, and
 * `abandoned` (never committed: it comes again) when the consumer stops or loses the
 * partition first.
 */
import type { HandlerContext, Message } from '../core/message.ts'
import { deadLetterRecord } from '../dead-letter/record.ts'
import {
  deadLetteredChannel,
  deadLetterFailedChannel,
  messageRetryChannel
} from '../instrumentation/channels.ts'
import { backoff, decide, forever } from '../retry/policy.ts'
import type { CompiledRoute } from '../routing/routes.ts'
import type { InboundRecord, OutboundRecord } from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import type { DeliveredMessage } from './delivered-message.ts'
import type { Outcome, PartitionState, RetryWait } from './partition.ts'

/** Dead-letter writes that fail are retried with this policy until they succeed or the consumer stops. */
const deadLetterRetry = forever({ initialDelay: 500, maxDelay: 30_000 })

/** Why and where a record is dead-lettered. */
export interface DeadLetterDetails {
  topic: string
  reason: string
  error: unknown
  attempts: number
  firstFailure: Date
}

export interface FailurePathOptions {
  groupId: string
  /** The DLQ of a source topic when the route names none. */
  deadLetterTopic(topic: string): string
  /** Runs the route's handler (with tracing when it is on, in a transaction when the consumer is transactional). */
  call(route: CompiledRoute, message: Message, context: HandlerContext, state: PartitionState): Promise<void>
  /** Writes a dead letter (in a transaction with the record's offset, when the consumer is transactional). */
  write(state: PartitionState, record: InboundRecord, dlq: OutboundRecord): Promise<void>
  context(state: PartitionState, message: Message): HandlerContext
  /** Reports how the message ended (logs, metrics) and returns the outcome. */
  handled(
    record: InboundRecord,
    message: Message | undefined,
    outcome: Outcome,
    attempts: number,
    started: number
  ): Outcome
  /** The partition's first message started waiting for a retry: it may hold only its own bound now. */
  blocked(state: PartitionState): void
}

export class FailurePath {
  readonly #options: FailurePathOptions

  constructor(options: FailurePathOptions) {
    this.#options = options
  }

  /**
   * An attempt of the handler failed with `failed.error`: retries it as the route's
   * policy says, until it succeeds (`processed`) or the policy gives up (the DLQ). A
   * message waiting for a retry blocks its lane only; `status()` lists it.
   */
  async retry(
    record: InboundRecord,
    state: PartitionState,
    route: CompiledRoute,
    failedMessage: DeliveredMessage,
    started: number,
    failed: { error: unknown; attempt: number }
  ): Promise<Outcome> {
    const { handled } = this.#options
    const signal = state.waits
    const context = this.#options.context(state, failedMessage)
    const firstFailure = new Date()
    let message = failedMessage
    let { error, attempt } = failed
    for (;;) {
      const decision = decide(route.retry, attempt, error)
      if (decision.action === 'dead-letter') {
        const outcome = await this.deadLetter(record, state, {
          topic: route.deadLetterTopic ?? this.#options.deadLetterTopic(record.topic),
          reason: decision.reason,
          error,
          attempts: attempt,
          firstFailure
        })
        return handled(record, message, outcome, attempt, started)
      }
      this.#announceRetry([message], error, attempt, decision.delay)
      if (!(await this.#waitForRetry(state, message, attempt, decision.delay, error)))
        return handled(record, message, 'abandoned', attempt, started)
      attempt++
      message = message.withAttempt(attempt)
      if (signal.aborted) return handled(record, message, 'abandoned', attempt, started)
      try {
        await this.#options.call(route, message, context, state)
        return handled(record, message, 'processed', attempt, started)
      } catch (thrown) {
        error = thrown
      }
    }
  }

  /**
   * A whole batch failed (a batch route without `split`): decides as the route's policy
   * says. `retry` once the wait before the next attempt is over; the dead-letter details
   * for every message of the batch when the policy gives up; `abandoned` when the consumer
   * stops or loses the partition first.
   */
  async retryBatch(
    state: PartitionState,
    route: CompiledRoute,
    messages: readonly DeliveredMessage[],
    attempt: number,
    error: unknown,
    firstFailure: Date
  ): Promise<'retry' | 'abandoned' | Omit<DeadLetterDetails, 'attempts'>> {
    const first = messages[0]!
    const decision = decide(route.retry, attempt, error)
    if (decision.action === 'dead-letter') {
      return {
        topic: route.deadLetterTopic ?? this.#options.deadLetterTopic(first.topic),
        reason: decision.reason,
        error,
        firstFailure
      }
    }
    this.#announceRetry(messages, error, attempt, decision.delay)
    const waited = await this.#waitForRetry(state, first, attempt, decision.delay, error, messages.length)
    return waited ? 'retry' : 'abandoned'
  }

  /** Tells instrumentation (logs, metrics) that these messages wait `delay` ms for their next attempt. */
  #announceRetry(messages: readonly Message[], error: unknown, attempt: number, delay: number): void {
    if (!messageRetryChannel.hasSubscribers) return
    for (const message of messages)
      messageRetryChannel.publish({ groupId: this.#options.groupId, message, error, attempt, delay })
  }

  /**
   * Waits `delay` ms before the next attempt of `message` (and of the `count - 1` after it
   * in its batch); false when the consumer stopped or lost the partition.
   */
  async #waitForRetry(
    state: PartitionState,
    message: DeliveredMessage,
    attempt: number,
    delay: number,
    error: unknown,
    count = 1
  ): Promise<boolean> {
    const first = state.retrying === 0
    state.retrying += count
    if (first) this.#options.blocked(state)
    const waiting: RetryWait = {
      offset: message.offset,
      key: message.keyString,
      type: message.type,
      attempt,
      nextRetryAt: new Date(Date.now() + delay).toISOString(),
      error: (error as Error)?.message ?? String(error)
    }
    state.retryWaits.add(waiting)
    try {
      return await wait(delay, state.waits)
    } finally {
      state.retryWaits.delete(waiting)
      state.retrying -= count
    }
  }

  /**
   * Writes the record to its dead-letter topic and resolves once the broker acknowledged
   * it. A failed write is retried (capped backoff) until it succeeds; if the consumer
   * stops or loses the partition first, the record is abandoned (not committed), so it
   * comes again: never lost.
   */
  async deadLetter(
    record: InboundRecord,
    state: PartitionState,
    details: DeadLetterDetails
  ): Promise<Outcome> {
    const { groupId } = this.#options
    const dlq = deadLetterRecord(record, { ...details, groupId, lastFailure: new Date() })
    for (let attempt = 1; ; attempt++) {
      if (state.waits.aborted || state.revoked) return 'abandoned'
      try {
        await this.#options.write(state, record, dlq)
        if (deadLetteredChannel.hasSubscribers) {
          deadLetteredChannel.publish({
            groupId,
            record,
            topic: details.topic,
            reason: details.reason,
            error: details.error,
            attempts: details.attempts
          })
        }
        return 'dead-lettered'
      } catch (error) {
        deadLetterFailedChannel.publish({ groupId, record, topic: details.topic, error })
        if (!(await wait(backoff(deadLetterRetry, attempt), state.waits))) return 'abandoned'
      }
    }
  }
}
