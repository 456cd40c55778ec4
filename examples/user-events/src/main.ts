/**
 * Runs the identity service: `node src/main.ts api` (the HTTP API, port $PORT or 3000) or
 * `node src/main.ts consumer` (the read model). Kafka at $KAFKA_BROKERS (default
 * 127.0.0.1:9092), the registry at $SCHEMA_REGISTRY_URL (default http://127.0.0.1:8081).
 * SIGTERM or SIGINT stops cleanly: the API stops taking requests and flushes its background
 * queue; the consumer drains and commits.
 */
import { createProducer, KafkaTransport, stopOnSignals } from '@conveyorjs/conveyor'
import { buildApi } from './api.ts'
import { BackgroundPublisher } from './background.ts'
import { createUserEventsConsumer } from './consumer.ts'
import { topic, type UserEvents, userEventCodec } from './events.ts'

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')
const codec = userEventCodec(process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081')
const role = process.argv[2]
const log = (fields: object) =>
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`)

if (role === 'api') {
  const transport = new KafkaTransport({
    connection: { brokers, clientId: 'identity-api' },
    compression: 'gzip'
  })
  await transport.ensureTopics([{ topic, partitions: 6 }])
  const producer = createProducer<UserEvents>({ transport, topic, codec, source: 'identity-api' })
  const background = new BackgroundPublisher({
    producer,
    onFailure: (event, error) =>
      log({ level: 'error', msg: 'event not published', event, error: (error as Error).message })
  })
  const app = buildApi({ producer, background })
  const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  log({ level: 'info', msg: 'identity API listening', url: address })
  stopOnSignals([
    {
      stop: async () => {
        await app.close()
        await background.close()
        await producer.close()
        await transport.close()
        log({ level: 'info', msg: 'identity API stopped', ...background.counts })
      }
    }
  ])
} else if (role === 'consumer') {
  const transport = new KafkaTransport({ connection: { brokers, clientId: 'identity-read-model' } })
  const { consumer, users } = createUserEventsConsumer({ transport, codec })
  await consumer.start()
  log({ level: 'info', msg: 'identity read model consuming', topic })
  stopOnSignals([
    {
      stop: async () => {
        await consumer.stop()
        await transport.close()
        log({ level: 'info', msg: 'identity read model stopped', users: users.size })
      }
    }
  ])
} else {
  process.stderr.write('usage: node src/main.ts api|consumer\n')
  process.exitCode = 2
}
