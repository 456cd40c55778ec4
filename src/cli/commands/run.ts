import { parseArgs } from 'node:util'
import { loadConfig } from '../../service/config.ts'
import { runService } from '../../service/run.ts'
import { stopOnSignals } from '../../service/signals.ts'
import type { Command } from '../command.ts'

const usage = `Usage: conveyor run -c <config> [--brokers HOST:PORT,…] [--port N] [--log-level LEVEL]

Starts the consumers declared in <config> (TypeScript/JavaScript module, JSON or YAML), the HTTP
endpoints (/health/live, /health/ready, /metrics) and signal handling: SIGTERM or SIGINT
drains and exits 0, a second signal exits at once. Environment variables (CONVEYOR_KAFKA_BROKERS,
CONVEYOR_KAFKA_SASL_PASSWORD, CONVEYOR_HTTP_PORT, CONVEYOR_LOG_LEVEL, …) override the file; flags
override both. See docs/service.md.`

export const runCommand: Command = {
  name: 'run',
  summary: 'run the configured consumers as a service',
  async run(argv, io) {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        brokers: { type: 'string' },
        port: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (values.help) {
      io.out(usage)
      return 0
    }
    const loaded = await loadConfig({
      file: values.config,
      flags: { brokers: values.brokers, port: values.port, 'log-level': values['log-level'] }
    })
    const service = await runService(loaded)
    io.err(`conveyor service on ${service.url}`)
    stopOnSignals([{ stop: () => service.stop() }])
    await service.stopped
    return 0
  }
}
