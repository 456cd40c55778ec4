import { ConveyorError, isNonRetryable } from '../core/errors.ts'

/**
 * What to do when a handler fails, as data. One function, `decide`, turns a policy, the
 * attempt number and the error into "retry after N ms" or "dead-letter with reason".
 */
export type RetryPolicy = BoundedRetry | RetryForever

/** N retries with exponential backoff and jitter, then the dead-letter queue. */
export interface BoundedRetry {
  /** Marks a bounded policy. */
  kind: 'bounded'
  /** Retries after the first attempt (3 → four attempts in all). */
  retries: number
  /** Delay before the first retry, in ms. */
  initialDelay: number
  /** Each delay is the one before times this. */
  multiplier: number
  /** No delay exceeds this, in ms. */
  maxDelay: number
  /** Spread each delay at random over [delay/2, delay], so retries of many messages do not align. */
  jitter: boolean
}

/** Never give up, never skip: for strictly ordered replication. The partition (or key) waits. */
export interface RetryForever {
  /** Marks a retry-forever policy. */
  kind: 'forever'
  /** Delay before the first retry, in ms. */
  initialDelay: number
  /** Each delay is the one before times this. */
  multiplier: number
  /** No delay exceeds this, in ms. */
  maxDelay: number
  /** Spread each delay at random over [delay/2, delay], so retries of many messages do not align. */
  jitter: boolean
}

export const defaultBoundedRetry: BoundedRetry = Object.freeze({
  kind: 'bounded',
  retries: 3,
  initialDelay: 1_000,
  multiplier: 2,
  maxDelay: 30_000,
  jitter: true
})

export const defaultRetryForever: RetryForever = Object.freeze({
  kind: 'forever',
  initialDelay: 1_000,
  multiplier: 2,
  maxDelay: 300_000,
  jitter: true
})

/** A bounded policy with the defaults (3 retries, 1 s, ×2, 30 s cap, jitter) and any overrides. */
export function bounded(options: Partial<Omit<BoundedRetry, 'kind'>> = {}): BoundedRetry {
  return { ...defaultBoundedRetry, ...options, kind: 'bounded' }
}

/** A retry-forever policy with the defaults (1 s, ×2, 5 min cap, jitter) and any overrides. */
export function forever(options: Partial<Omit<RetryForever, 'kind'>> = {}): RetryForever {
  return { ...defaultRetryForever, ...options, kind: 'forever' }
}

/** What `decide` answers: retry after `delay` ms, or send to the DLQ with `reason`. */
export type RetryDecision = { action: 'retry'; delay: number } | { action: 'dead-letter'; reason: string }

/**
 * Decides after failed attempt number `attempt` (1 for the first). An error that says
 * repeating cannot help (`NonRetryableError`, or any non-retryable `ConveyorError`) goes
 * to the DLQ at once under every policy: the handler asked for it. Anything else is
 * retried: up to `retries` times under `bounded`, for ever under `forever`.
 */
export function decide(
  policy: RetryPolicy,
  attempt: number,
  error: unknown,
  random = Math.random
): RetryDecision {
  if (isNonRetryable(error)) return { action: 'dead-letter', reason: reasonOf(error) }
  if (policy.kind === 'bounded' && attempt > policy.retries)
    return { action: 'dead-letter', reason: 'retries_exhausted' }
  return { action: 'retry', delay: backoff(policy, attempt, random) }
}

/** The delay before retry number `attempt` (1-based): initial × multiplier^(attempt−1), capped, with jitter. */
export function backoff(policy: RetryPolicy, attempt: number, random = Math.random): number {
  const raw = policy.initialDelay * policy.multiplier ** Math.max(0, attempt - 1)
  const capped = Math.min(policy.maxDelay, raw)
  return Math.round(policy.jitter ? capped / 2 + (random() * capped) / 2 : capped)
}

/** The DLQ reason for an error that goes straight to the DLQ: its own `reason`, or one derived from its code. */
export function reasonOf(error: unknown): string {
  const reason = (error as { reason?: unknown } | null)?.reason
  if (typeof reason === 'string' && reason.length > 0) return reason
  if (error instanceof ConveyorError) return error.code.replace(/^CONVEYOR_/, '').toLowerCase()
  return 'handler_error'
}
