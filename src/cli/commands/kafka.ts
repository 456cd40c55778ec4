import { parseArgs } from 'node:util'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'
import { type ClusterInfo, LocalKafka } from '../../dev/kafka/index.ts'
import type { Command } from '../command.ts'
import { integerOption } from '../options.ts'

const usage = `Usage: conveyor kafka <up|down|status|stop|start> [options]

Runs Apache Kafka locally from its official jars (resolved once with Maven), in KRaft mode.

  up                 start the cluster (idempotent) and print its addresses
  down [--purge]     stop every broker it started; --purge also deletes data and logs
  status             print the brokers, their pids and log files
  stop --broker ID   stop one broker of the cluster
  start --broker ID  start one stopped broker again

Options:
  --name NAME        cluster name, clusters with different names run side by side (default: dev)
  --brokers N        1, or 3 for a replicated cluster: RF 3, min.insync.replicas 2 (default: 1)
  --port PORT        PLAINTEXT port of broker 1; broker N uses PORT + 10(N-1) (default: 9092)
  --sasl             also open a SASL_SSL listener (SCRAM-SHA-512) on PORT + 2
  --version VERSION  Apache Kafka version (default: ${'$'}CONVEYOR_KAFKA_VERSION or the pinned release)
  --json             print status as JSON
  -h, --help         show this help`

export const kafkaCommand: Command = {
  name: 'kafka',
  summary: 'start, stop and inspect a local Apache Kafka broker or three-broker cluster',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        brokers: { type: 'string' },
        port: { type: 'string' },
        sasl: { type: 'boolean' },
        version: { type: 'string' },
        broker: { type: 'string' },
        purge: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const action = positionals[0]
    if (values.help || !action) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const kafka = new LocalKafka({
      name: values.name,
      brokers: values.brokers === undefined ? undefined : integerOption(values.brokers, '--brokers'),
      port: values.port === undefined ? undefined : integerOption(values.port, '--port'),
      sasl: values.sasl,
      version: values.version,
      log: (line) => io.err(line)
    })
    const print = (info: ClusterInfo) => io.out(values.json ? JSON.stringify(info, null, 2) : describe(info))
    switch (action) {
      case 'up':
        print(await kafka.up())
        return 0
      case 'down':
        await kafka.down({ purge: values.purge })
        io.out(
          values.json
            ? JSON.stringify({ name: kafka.name, stopped: true, purged: values.purge === true })
            : `cluster "${kafka.name}" stopped${values.purge ? ' and its data deleted' : ''}`
        )
        return 0
      case 'status':
        if (!kafka.exists()) {
          io.out(values.json ? 'null' : `cluster "${kafka.name}" does not exist`)
          return 3
        }
        print(kafka.status())
        return kafka.status().brokers.every((b) => b.running) ? 0 : 3
      case 'stop':
        await kafka.stopBroker(requireBroker(values.broker))
        return 0
      case 'start':
        await kafka.startBroker(requireBroker(values.broker))
        print(kafka.status())
        return 0
      default:
        throw new ConveyorError(ErrorCodes.INVALID_OPTION, `unknown action "${action}"\n\n${usage}`)
    }
  }
}

function describe(info: ClusterInfo): string {
  const lines = [`cluster "${info.name}" (Apache Kafka ${info.version}, id ${info.clusterId})`]
  lines.push(`bootstrap: ${info.bootstrap.join(',')}`)
  if (info.sasl) {
    const { credentials } = info.sasl
    lines.push(
      `SASL_SSL:  ${info.sasl.bootstrap.join(',')}  ${credentials.mechanism} user "${credentials.username}" password "${credentials.password}", CA ${info.sasl.caFile}`
    )
  }
  for (const broker of info.brokers) {
    lines.push(
      `broker ${broker.id}: ${broker.running ? `running, pid ${broker.pid}` : 'stopped'}, ${broker.address}, log ${broker.logFile}`
    )
  }
  return lines.join('\n')
}

function requireBroker(value: string | undefined): number {
  if (value === undefined) {
    throw new ConveyorError(ErrorCodes.INVALID_OPTION, '--broker ID is required', { path: '--broker' })
  }
  return integerOption(value, '--broker')
}
