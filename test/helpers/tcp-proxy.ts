/**
 * A TCP proxy in front of a real server, to cut the network to it in a test: `cut()` drops
 * every connection and refuses new ones until `restore()`. What the client sees is what it
 * sees when the server's host goes away: connections reset, connects refused.
 */
import { type AddressInfo, createConnection, createServer, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { cleanup } from './kafka.ts'

export interface TcpProxy {
  port: number
  cut(): void
  restore(): void
}

export async function useTcpProxy(t: TestContext, target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let open = true
  const server = createServer((client) => {
    if (!open) {
      client.destroy()
      return
    }
    const upstream = createConnection(target)
    sockets.add(client).add(upstream)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanup(t, () => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      open = false
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    restore() {
      open = true
    }
  }
}
