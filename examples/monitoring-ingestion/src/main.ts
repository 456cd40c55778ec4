/**
 * Runs one service of the pipeline: `node src/main.ts ingestion` (run several for competing
 * consumers) or `node src/main.ts alerter`. Kafka at $KAFKA_BROKERS (default 127.0.0.1:9092).
 * Tracing is on: register your OpenTelemetry SDK (tracer provider, propagator) before this runs.
 */
import { KafkaTransport, stopOnSignals } from '@conveyorjs/conveyor'
import { conveyorTracing } from '@conveyorjs/conveyor/otel'
import { createAlerter, createIngestion, type PipelineService } from './services.ts'

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',')
const role = process.argv[2]
if (role !== 'ingestion' && role !== 'alerter') {
  process.stderr.write('usage: node src/main.ts ingestion|alerter\n')
  process.exit(2)
}
const transport = new KafkaTransport({ connection: { brokers, clientId: `airis-mon-${role}` } })
const tracing = conveyorTracing()
const disableTracing = tracing.enable()
const service: PipelineService = (role === 'ingestion' ? createIngestion : createAlerter)({
  transport,
  middleware: [tracing.middleware]
})
await service.consumer.start()
process.stdout.write(`${JSON.stringify({ level: 'info', msg: `${role} consuming`, brokers })}\n`)
stopOnSignals([
  {
    stop: async () => {
      await service.stop()
      disableTracing()
      await transport.close()
    }
  }
])
