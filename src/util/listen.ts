import type { Server } from 'node:http'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'

/**
 * `server.listen` as a promise that also rejects: a port in use (or an address that is
 * not this machine's) is a configuration error naming `setting`, not an unhandled
 * `'error'` event that ends the process with a stack trace.
 */
export async function listen(server: Server, port: number, host: string, setting: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const why =
        error.code === 'EADDRINUSE'
          ? 'the port is already in use'
          : error.code === 'EADDRNOTAVAIL'
            ? 'the address is not one of this machine'
            : error.code === 'EACCES'
              ? 'permission denied (ports below 1024 need privileges)'
              : error.message
      reject(
        new ConveyorError(ErrorCodes.INVALID_OPTION, `${setting}: cannot listen on ${host}:${port}: ${why}`, {
          path: setting,
          cause: error
        })
      )
    }
    server.once('error', failed)
    server.listen(port, host, () => {
      server.off('error', failed)
      resolve()
    })
  })
}
