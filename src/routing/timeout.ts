import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { BatchHandler, Handler, HandlerContext, Middleware } from '../core/message.ts'

/**
 * Fails an attempt that runs longer than `ms` with a retryable `CONVEYOR_HANDLER_TIMEOUT`,
 * and aborts the handler's signal so it can stop its work.
 */
export function withTimeout(ms: number): Middleware {
  return <T>(next: Handler<T>): Handler<T> =>
    function timeout(message, context) {
      return bounded(ms, context, (bound) => next(message, bound))
    }
}

/** `withTimeout` for a batch handler: each call of it, whatever the batch's size. */
export function batchWithTimeout(ms: number): <T>(next: BatchHandler<T>) => BatchHandler<T> {
  return <T>(next: BatchHandler<T>): BatchHandler<T> =>
    function timeout(messages, context) {
      return bounded(ms, context, (bound) => next(messages, bound))
    }
}

async function bounded(
  ms: number,
  context: HandlerContext,
  run: (context: HandlerContext) => Promise<void> | void
): Promise<void> {
  const controller = new AbortController()
  const signal = AbortSignal.any([context.signal, controller.signal])
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new ConveyorError(ErrorCodes.HANDLER_TIMEOUT, `the handler took longer than ${ms} ms`, {
        retryable: true
      })
      controller.abort(error)
      reject(error)
    }, ms)
  })
  try {
    await Promise.race([run({ ...context, signal }), expired])
  } finally {
    clearTimeout(timer)
  }
}
