/**
 * Producing Avro: 200,000 messages of about 200 bytes through the schema registry, with an
 * idempotent `acks=all` producer. Conveyor's typed `send` (which validates and encodes each
 * payload and sets the envelope headers) against the bare `@platformatic/kafka` producer
 * sending bytes encoded before the clock starts — one message per call (1,000 calls in
 * flight) and batched (1,000 per call) — and Kafka's own Java `ProducerPerformance` as the
 * ceiling. Each run writes to a fresh topic and verifies it then holds exactly the
 * messages sent.
 */
import { randomBytes } from 'node:crypto'
import { ProduceAcks, Producer } from '@platformatic/kafka'
import avro from 'avsc'
import { envelopeHeaders, newEnvelope } from '../../src/core/envelope.ts'
import { clientOptions } from '../../src/kafka/connection.ts'
import { EmbeddedRegistry } from '../../src/registry/registry.ts'
import { SchemaRegistryClient } from '../../src/schema/registry-client.ts'
import { frame } from '../../src/schema/wire.ts'
import type { Measurement, Scenario } from '../harness.ts'
import { createTopic, deleteTopic, runKafkaTool, topicSize } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  registryUrl: string
  count: number
}

const partitions = 6
const window = 1_000
const batch = 1_000
const schema = {
  type: 'record',
  name: 'reading',
  namespace: 'bench',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'key', type: 'string' },
    { name: 'seq', type: 'long' },
    { name: 'padding', type: 'string' }
  ]
}
const padding = 'x'.repeat(150)
const payload = (i: number) => ({ message_type: 'reading', key: `key-${i % 1_000}`, seq: i, padding })

let registry: EmbeddedRegistry | undefined

/** Runs `send(i)` for i < count with at most `window` in flight. */
async function pipelined(count: number, send: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.min(window, count) }, async () => {
    while (next < count) await send(next++)
  })
  await Promise.all(lanes)
}

/** Times `run` (which sends `count` messages) and checks the topic then holds `expected` records. */
async function timed(
  topic: string,
  count: number,
  run: () => Promise<void>,
  connection: Parameters<Scenario['measure']>[2]['connection'],
  expected = count
): Promise<Measurement> {
  const started = performance.now()
  await run()
  const seconds = (performance.now() - started) / 1000
  const stored = await topicSize(connection, topic)
  return { value: count / seconds, verified: stored === expected, checks: { sent: expected, stored } }
}

export const scenario: Scenario<Prepared> = {
  name: 'produce',
  title: 'Produce Avro (idempotent, acks=all)',
  metric: { name: 'throughput', unit: 'msg/s', higherIsBetter: true },
  contenders: [
    { name: 'conveyor-single', label: 'Conveyor send(), one per call' },
    { name: 'raw-single', label: '@platformatic/kafka, pre-encoded, one per call' },
    { name: 'conveyor-batched', label: 'Conveyor sendMany(), 1,000 per call' },
    { name: 'raw-batched', label: '@platformatic/kafka, pre-encoded, 1,000 per call' },
    {
      name: 'raw-batched-envelope',
      label: '@platformatic/kafka, pre-encoded with the same ce_* headers, 1,000 per call'
    },
    { name: 'java', label: 'Kafka ProducerPerformance (Java, 200 B)' }
  ],
  repeats: (quick) => (quick ? 1 : 3),
  parameters: (quick) => ({ messages: quick ? 50_000 : 200_000, bytes: 200, partitions, window, batch }),
  async prepare({ connection, quick }) {
    registry = new EmbeddedRegistry({
      connection,
      topic: `_schemas-bench-${randomBytes(3).toString('hex')}`,
      port: 0
    })
    const registryUrl = await registry.start()
    return { registryUrl, count: quick ? 50_000 : 200_000 }
  },
  async measure(contender, { registryUrl, count }, { connection }) {
    const topic = await createTopic(connection, partitions)
    try {
      if (contender === 'java') {
        const output = await runKafkaTool('org.apache.kafka.tools.ProducerPerformance', [
          '--topic',
          topic,
          '--num-records',
          String(count),
          '--record-size',
          '200',
          '--throughput',
          '-1',
          '--producer-props',
          `bootstrap.servers=${connection.brokers.join(',')}`,
          'acks=all',
          'enable.idempotence=true'
        ])
        const summary = output.trim().split('\n').at(-1)!
        const rate = Number(/([\d.]+) records\/sec/.exec(summary)?.[1])
        const stored = await topicSize(connection, topic)
        return {
          value: rate,
          verified: stored === count,
          checks: { sent: count, stored },
          details: { summary }
        }
      }
      if (contender.startsWith('conveyor')) {
        const { KafkaTransport } = await runtime('kafka/transport.ts')
        const { ConveyorProducer } = await runtime('producer/producer.ts')
        const { AvroCodec } = await runtime('schema/avro-codec.ts')
        const { SchemaRegistryClient } = await runtime('schema/registry-client.ts')
        const client = new SchemaRegistryClient({ url: registryUrl })
        const transport = new KafkaTransport({ connection })
        const producer = new ConveyorProducer({
          transport,
          topic,
          codec: new AvroCodec({ registry: client, schemas: { reading: schema } })
        })
        await producer.send('reading', payload(-1), { key: 'warm-up' }) // registers the schema
        const result = await timed(
          topic,
          count - 1,
          contender === 'conveyor-single'
            ? () =>
                pipelined(count - 1, (i) => producer.send('reading', payload(i), { key: `key-${i % 1_000}` }))
            : async () => {
                for (let start = 0; start < count - 1; start += batch) {
                  const end = Math.min(count - 1, start + batch)
                  await producer.sendMany(
                    Array.from({ length: end - start }, (_, j) => ({
                      type: 'reading' as const,
                      payload: payload(start + j),
                      key: `key-${(start + j) % 1_000}`
                    }))
                  )
                }
              },
          connection,
          count
        )
        await producer.close()
        await transport.close()
        return result
      }
      // The bare client: bytes encoded (Avro, framed with the registry id) before the clock starts.
      const client = new SchemaRegistryClient({ url: registryUrl })
      const id = await client.register(`${topic}-value`, { schema: JSON.stringify(schema) })
      const type = avro.Type.forSchema(schema as never)
      const withEnvelope = contender === 'raw-batched-envelope'
      const messages = Array.from({ length: count }, (_, i) => ({
        topic,
        key: Buffer.from(`key-${i % 1_000}`),
        value: frame(id, type.toBuffer(payload(i))),
        // What Conveyor's envelope puts on each record, made before the clock starts.
        ...(withEnvelope
          ? {
              headers: new Map(
                [...envelopeHeaders(newEnvelope({ type: 'reading' }))].map(([k, v]) => [
                  Buffer.from(k),
                  Buffer.from(v)
                ])
              )
            }
          : {})
      }))
      const producer = new Producer({ ...clientOptions(connection), idempotent: true, acks: ProduceAcks.ALL })
      const result = await timed(
        topic,
        count,
        contender === 'raw-single'
          ? () => pipelined(count, (i) => producer.send({ messages: [messages[i]!] as never }))
          : async () => {
              for (let start = 0; start < count; start += batch)
                await producer.send({ messages: messages.slice(start, start + batch) })
            },
        connection
      )
      await producer.close()
      return result
    } finally {
      await deleteTopic(connection, topic)
    }
  },
  async cleanup() {
    await registry?.stop()
  },
  ratios: [
    { numerator: 'conveyor-single', denominator: 'raw-single', goal: { atLeast: 0.8 } },
    { numerator: 'conveyor-batched', denominator: 'raw-batched', goal: { atLeast: 0.8 } },
    // Conveyor's own cost apart from the envelope headers' (which the client encodes per record).
    { numerator: 'conveyor-batched', denominator: 'raw-batched-envelope' },
    { numerator: 'conveyor-batched', denominator: 'java' }
  ],
  runtimeContenders: ['conveyor-single', 'conveyor-batched']
}
