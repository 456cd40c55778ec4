import { parseArgs } from 'node:util'
import { EmbeddedRegistry } from '../../registry/registry.ts'
import { stopOnSignals } from '../../service/signals.ts'
import type { Command } from '../command.ts'
import {
  connect,
  connectionHelp,
  connectionOptions,
  environmentHelp,
  exitCodesHelp,
  integerOption
} from '../options.ts'

const usage = `Usage: conveyor registry [--port 8081] [--host 127.0.0.1] [--topic _schemas] [options]

Runs Conveyor's embedded schema registry: the Confluent Schema Registry REST API, stored in
the compacted topic --topic of the Kafka cluster at --brokers. Stops on SIGTERM or SIGINT
(exit 0).

Options:
  --port N                port to listen on (default 8081; 0 for any free one)
  --host HOST             address to listen on (default 127.0.0.1)
  --topic TOPIC           the storage topic (default _schemas)
${connectionHelp}

${environmentHelp}

${exitCodesHelp}`

export const registryCommand: Command = {
  name: 'registry',
  summary: 'run the embedded, Confluent-compatible schema registry',
  async run(argv, io) {
    const { values } = parseArgs({
      args: argv,
      options: {
        ...connectionOptions,
        port: { type: 'string', default: '8081' },
        host: { type: 'string', default: '127.0.0.1' },
        topic: { type: 'string', default: '_schemas' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (values.help) {
      io.out(usage)
      return 0
    }
    const port = integerOption(values.port, '--port', { min: 0 })
    const registry = new EmbeddedRegistry({
      connection: await connect(values, 'registry'),
      topic: values.topic,
      port,
      host: values.host
    })
    const url = await registry.start()
    io.out(`schema registry listening on ${url} (storage: ${values.topic})`)
    await new Promise<void>((resolve) =>
      stopOnSignals([
        {
          stop: async () => {
            await registry.stop()
            resolve()
          }
        }
      ])
    )
    return 0
  }
}
