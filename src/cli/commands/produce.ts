import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { Codec } from '../../codec/json.ts'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'
import { KafkaTransport } from '../../kafka/transport.ts'
import { createProducer } from '../../producer/producer.ts'
import { AvroCodec, type SubjectNameStrategy } from '../../schema/avro-codec.ts'
import { loadCatalog } from '../../schema/catalog.ts'
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

const subjectStrategies: SubjectNameStrategy[] = ['topic-record', 'record', 'topic']

const usage = `Usage: conveyor produce <topic> --value JSON|@file [--type T] [--key K] [options]

Sends one message with Conveyor's envelope headers and prints where it was written.
The type defaults to the value's message_type field. With --registry, and a schema for the
type in --schemas (<message_type>_v<version>.avsc, latest version), the value is Avro-encoded
through the registry (and validated first); otherwise it is sent as JSON. A topic that does
not exist is an error.

Options:
${connectionHelp}
  --registry URL          schema registry (default $CONVEYOR_REGISTRY_URL)
  --schemas DIR           schema catalog (default schemas)
  --subject-strategy S    how the schema's subject is named: topic-record (default, as the
                          dispatcher and its docs: <topic>-<record full name>, so one topic can
                          carry several message types), record (<record full name>) or topic
                          (<topic>-value: one schema per topic). Use the strategy of the
                          topic's consumers.
  --json                  print the position as JSON

${environmentHelp}

${exitCodesHelp}`

export const produceCommand: Command = {
  name: 'produce',
  summary: 'send one message (JSON, or Avro when the type has a schema)',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        value: { type: 'string' },
        type: { type: 'string' },
        key: { type: 'string' },
        ...connectionOptions,
        registry: { type: 'string', default: process.env.CONVEYOR_REGISTRY_URL },
        schemas: { type: 'string', default: 'schemas' },
        'subject-strategy': { type: 'string', default: 'topic-record' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const [topic] = positionals
    if (values.help || !topic || values.value === undefined) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const text = values.value.startsWith('@') ? readFileSync(values.value.slice(1), 'utf8') : values.value
    let payload: Record<string, unknown>
    try {
      payload = JSON.parse(text) as Record<string, unknown>
    } catch (error) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `--value is not valid JSON: ${(error as Error).message}`,
        { path: '--value' }
      )
    }
    const type = values.type ?? (typeof payload.message_type === 'string' ? payload.message_type : undefined)
    if (!type)
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        'give --type, or a message_type field in the value',
        { path: '--type' }
      )
    const strategy = values['subject-strategy']
    if (!subjectStrategies.includes(strategy as SubjectNameStrategy))
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `--subject-strategy must be ${subjectStrategies.join(', ')}, got "${strategy}"`,
        { path: '--subject-strategy' }
      )
    const connection = await connect(values, 'produce')
    await requireTopics(connection, [topic])
    let codec: Codec | undefined
    if (values.registry) {
      const catalog = (() => {
        try {
          return loadCatalog(values.schemas)
        } catch {
          return new Map()
        }
      })()
      const schema = catalog.get(type)?.at(-1)
      if (schema)
        codec = new AvroCodec({
          registry: await reachRegistry(values.registry),
          schemas: { [type]: schema.source },
          subjectNameStrategy: strategy as SubjectNameStrategy
        })
    }
    const transport = new KafkaTransport({ connection })
    try {
      const producer = createProducer({ transport, topic, ...(codec ? { codec } : {}) })
      const position = await producer.send(type, payload, { key: values.key ?? null })
      await producer.close()
      const result = {
        topic,
        partition: position.partition,
        offset: String(position.offset),
        encoding: codec ? 'avro' : 'json'
      }
      io.out(
        values.json
          ? JSON.stringify(result)
          : `${topic}/${result.partition}/${result.offset} (${result.encoding})`
      )
      return 0
    } finally {
      await transport.close()
    }
  }
}
