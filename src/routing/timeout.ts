import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { Handler, Middleware } from '../core/message.ts'

/**
 * Fails an attempt that runs longer than `ms` with a retryable `CONVEYOR_HANDLER_TIMEOUT`,
 * and aborts the handler's signal so it can stop its work.
 */
export function withTimeout(ms: number): Middleware {
  return <T>(next: Handler<T>): Handler<T> =>
    async function timeout(message, context) {
      const controller = new AbortController()
      const signal = AbortSignal.any([context.signal, controller.signal])
      let timer: NodeJS.Timeout | undefined
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new ConveyorError(
            ErrorCodes.HANDLER_TIMEOUT,
            `the handler took longer than ${ms} ms`,
            {
              retryable: true
            }
          )
          controller.abort(error)
          reject(error)
        }, ms)
      })
      try {
        await Promise.race([next(message, { ...context, signal }), expired])
      } finally {
        clearTimeout(timer)
      }
    }
}
