import { setTimeout as sleep } from 'node:timers/promises'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'

/** Options of `waitFor`. */
export interface WaitForOptions {
  /** Give up after this many milliseconds. */
  timeout?: number
  /** Poll every this many milliseconds. */
  interval?: number
  /** Names the condition in the timeout error. */
  description?: string
  /** Ends the wait early: `waitFor` rejects once it aborts. */
  signal?: AbortSignal
}

/**
 * Polls `condition` until it returns a value other than `undefined`, `null` or `false`
 * and resolves with that value. A condition that throws counts as not yet met; the
 * last error becomes the `cause` of the timeout error.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeout = 10_000, interval = 50, description = 'condition', signal }: WaitForOptions = {}
): Promise<Exclude<T, false | null | undefined>> {
  const deadline = Date.now() + timeout
  let lastError: unknown
  for (;;) {
    signal?.throwIfAborted()
    try {
      const value = await condition()
      if (value !== undefined && value !== null && value !== false) {
        return value as Exclude<T, false | null | undefined>
      }
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) {
      throw new ConveyorError(
        ErrorCodes.TIMEOUT,
        `timed out after ${timeout} ms waiting for ${description}`,
        {
          cause: lastError
        }
      )
    }
    await sleep(interval, undefined, signal ? { signal } : undefined)
  }
}

/** Sleeps `ms`; resolves false instead if `signal` aborts first. */
export async function wait(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal })
    return true
  } catch {
    return false
  }
}
