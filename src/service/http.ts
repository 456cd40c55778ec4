import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { listen } from '../util/listen.ts'
import type { HealthMonitor } from './health.ts'

export interface ServiceHttpOptions {
  port?: number
  host?: string
  health?: HealthMonitor
  metrics?: Registry
  /** What `/status` shows: the consumers' own view (see ConveyorConsumer.status). */
  status?: () => unknown
}

/** The service's HTTP endpoints: `/health/live`, `/health/ready` (200 or 503 with the reasons), `/metrics` and `/status`. */
export async function startServiceHttp({
  port = 8080,
  host = '0.0.0.0',
  health,
  metrics,
  status
}: ServiceHttpOptions): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]
    const json = (code: number, body: unknown) => {
      response.writeHead(code, { 'content-type': 'application/json' })
      response.end(JSON.stringify(body))
    }
    if (path === '/health/live') return json(health?.live() === false ? 503 : 200, { live: true })
    if (path === '/health/ready') {
      const report = health?.report() ?? { ready: true, groups: {} }
      return json(report.ready ? 200 : 503, report)
    }
    if (path === '/status' && status) return json(200, status())
    if (path === '/metrics' && metrics) {
      metrics.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.contentType })
          response.end(text)
        },
        (error: Error) => json(500, { error: error.message })
      )
      return
    }
    json(404, { error: 'not found' })
  })
  await listen(server, port, host, 'http.port')
  const address = server.address() as AddressInfo
  return {
    url: `http://${address.address === '0.0.0.0' ? '127.0.0.1' : address.address}:${address.port}`,
    server
  }
}
