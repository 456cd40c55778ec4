import { parseArgs } from 'node:util'
import { EmbeddedRegistry } from '../../registry/registry.ts'
import { stopOnSignals } from '../../service/signals.ts'
import type { Command } from '../command.ts'
import { brokersOption, connectionFor } from '../options.ts'

const usage = `Usage: conveyor registry [--brokers HOST:PORT,…] [--port 8081] [--host 127.0.0.1] [--topic _schemas]

Runs Conveyor's embedded schema registry: the Confluent Schema Registry REST API, stored in
the compacted topic --topic of the Kafka cluster at --brokers (default $KAFKA_BROKERS or
127.0.0.1:9092). Stops on SIGTERM or SIGINT.`

export const registryCommand: Command = {
  name: 'registry',
  summary: 'run the embedded, Confluent-compatible schema registry',
  async run(argv, io) {
    const { values } = parseArgs({
      args: argv,
      options: {
        brokers: brokersOption,
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
    const registry = new EmbeddedRegistry({
      connection: connectionFor(values.brokers, 'registry'),
      topic: values.topic,
      port: Number(values.port),
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
