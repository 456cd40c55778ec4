import { parseArgs } from 'node:util'
import { loadConfig } from '../../service/config.ts'
import { type RunningService, runService } from '../../service/run.ts'
import { stopOnSignals } from '../../service/signals.ts'
import type { Command } from '../command.ts'

const usage = `Usage: conveyor run -c <config> [--brokers HOST:PORT,…] [--port N] [--log-level LEVEL]

Starts the consumers declared in <config> (TypeScript/JavaScript module, JSON or YAML), the HTTP
endpoints (/health/live, /health/ready, /metrics) and signal handling: SIGTERM or SIGINT
drains and exits 0, a second signal exits at once. Environment variables (CONVEYOR_KAFKA_BROKERS,
CONVEYOR_KAFKA_SASL_PASSWORD, CONVEYOR_HTTP_PORT, CONVEYOR_LOG_LEVEL, …) override the file; flags
override both. See docs/service.md.`

/**
 * A command that runs a service until SIGTERM/SIGINT: `-c <config>` and the flags every
 * service takes (`--brokers`, `--port`, `--log-level`); `load` reads the configuration,
 * `start` runs it. Used by `run` and by applications such as `dispatcher`.
 */
export function serviceCommand<Config>({
  name,
  summary,
  usage,
  load,
  start,
  flags = []
}: {
  name: string
  summary: string
  usage: string
  /** Further string flags the command takes (passed to `load` with the others). */
  flags?: string[]
  load(options: { file: string | undefined; flags: Record<string, string | undefined> }): Promise<Config>
  start(config: Config): Promise<RunningService>
}): Command {
  return {
    name,
    summary,
    async run(argv, io) {
      const { values } = parseArgs({
        args: argv,
        options: {
          config: { type: 'string', short: 'c' },
          brokers: { type: 'string' },
          port: { type: 'string' },
          'log-level': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
          ...Object.fromEntries(flags.map((flag) => [flag, { type: 'string' as const }]))
        }
      })
      if (values.help) {
        io.out(usage)
        return 0
      }
      const config = await load({
        file: values.config,
        flags: {
          brokers: values.brokers,
          port: values.port,
          'log-level': values['log-level'],
          ...Object.fromEntries(
            flags.map((flag) => [flag, (values as Record<string, unknown>)[flag] as string | undefined])
          )
        }
      })
      // The service logs its start (with its URL) as JSON: nothing else is written here,
      // so that the output stays one JSON log stream.
      const service = await start(config)
      stopOnSignals([{ stop: () => service.stop() }])
      await service.stopped
      return 0
    }
  }
}

export const runCommand: Command = serviceCommand({
  name: 'run',
  summary: 'run the configured consumers as a service',
  usage,
  load: loadConfig,
  start: (loaded) => runService(loaded)
})
