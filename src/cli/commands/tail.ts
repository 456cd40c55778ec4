import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Consumer, stringDeserializer } from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'
import { clientOptions } from '../../kafka/connection.ts'
import { RegistryError } from '../../schema/registry-client.ts'
import { AnyCodec } from '../../schema/registry-codec.ts'
import type { Command } from '../command.ts'
import {
  connect,
  connectionHelp,
  connectionOptions,
  environmentHelp,
  exitCodesHelp,
  reachRegistry,
  requireTopics
} from '../options.ts'

const usage = `Usage: conveyor tail <topic> [--from beginning|end|OFFSET|ISO-TIME] [--partition N] [--limit N] [options]

Prints the messages of a topic as they are, decoded: Avro and JSON Schema values through the
registry, other values as JSON (or text). Reads with a throwaway consumer group that commits
nothing. Without --limit it follows the topic until interrupted. A topic that does not exist,
or a registry that does not answer, is an error before anything is read.

Options:
  --from WHERE            beginning (default), end, an offset, or a time (ISO 8601)
  --partition N           only this partition
  --limit N               stop after N messages
${connectionHelp}
  --registry URL          schema registry (default $CONVEYOR_REGISTRY_URL)
  --json                  one JSON object per message

${environmentHelp}

${exitCodesHelp}`

export const tailCommand: Command = {
  name: 'tail',
  summary: 'print the messages of a topic, decoded',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        from: { type: 'string', default: 'beginning' },
        partition: { type: 'string' },
        limit: { type: 'string' },
        ...connectionOptions,
        registry: { type: 'string', default: process.env.CONVEYOR_REGISTRY_URL },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const [topic] = positionals
    if (values.help || !topic) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : Number(values.limit)
    const partition = values.partition === undefined ? undefined : Number(values.partition)
    const connection = await connect(values, 'tail')
    await requireTopics(connection, [topic])
    const codec = new AnyCodec(values.registry ? await reachRegistry(values.registry) : undefined)
    const consumer = new Consumer({
      ...clientOptions(connection),
      groupId: `conveyor-tail-${randomUUID()}`,
      deserializers: { headerKey: stringDeserializer },
      autocommit: false,
      maxWaitTime: 500
    })
    try {
      const partitions = (await consumer.listOffsets({ topics: [topic] })).get(topic)
      if (!partitions)
        throw new ConveyorError(ErrorCodes.INVALID_OPTION, `topic ${topic} does not exist`, { path: 'topic' })
      const from = values.from
      let stream: Awaited<ReturnType<typeof consumer.consume>>
      if (from === 'beginning' || from === 'end') {
        stream = await consumer.consume({ topics: [topic], mode: from === 'end' ? 'latest' : 'earliest' })
      } else {
        const timestamp = /^\d+$/.test(from) ? undefined : Date.parse(from)
        if (timestamp !== undefined && Number.isNaN(timestamp)) {
          throw new ConveyorError(
            ErrorCodes.INVALID_OPTION,
            '--from must be beginning, end, an offset or an ISO 8601 time',
            { path: '--from' }
          )
        }
        const starts =
          timestamp === undefined
            ? partitions.map(() => BigInt(from))
            : ((await consumer.listOffsets({ topics: [topic], timestamp: BigInt(timestamp) })).get(topic) ??
              [])
        stream = await consumer.consume({
          topics: [topic],
          mode: 'manual',
          offsets: starts.map((offset, p) => ({ topic, partition: p, offset }))
        })
      }
      let printed = 0
      for await (const message of stream) {
        if (partition !== undefined && message.partition !== partition) continue
        const headers = message.headers as unknown as Map<string, Buffer>
        let value: unknown
        try {
          value = await codec.decode((message.value as Buffer | undefined) ?? null, { topic, headers })
        } catch (error) {
          // A registry gone away is the command's failure, not a value to print undecoded.
          if (error instanceof RegistryError && error.retryable) throw error
          value = (message.value as Buffer | undefined)?.toString('utf8') ?? null
        }
        const key = (message.key as Buffer | undefined)?.toString('utf8') ?? null
        if (values.json) {
          io.out(
            JSON.stringify(
              {
                partition: message.partition,
                offset: String(message.offset),
                timestamp: new Date(Number(message.timestamp)).toISOString(),
                key,
                value,
                headers: Object.fromEntries([...headers].map(([k, v]) => [k, v.toString('utf8')]))
              },
              (_k, v) => (typeof v === 'bigint' ? String(v) : v)
            )
          )
        } else {
          io.out(
            `${message.partition}/${message.offset} ${key ?? '-'} ${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`
          )
        }
        if (++printed >= limit) break
      }
      return 0
    } finally {
      await consumer.close(true)
    }
  }
}
