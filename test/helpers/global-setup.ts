/**
 * Runs once per `npm test`, before any test file: starts the local broker (single node
 * with a SASL_SSL listener) unless KAFKA_BROKERS names an existing cluster, and hands its
 * addresses to the test processes through the environment. Stops it at the end.
 */
import { LocalKafka } from '../../src/dev/kafka/index.ts'

const startedHere = !process.env.KAFKA_BROKERS
const kafka = new LocalKafka({
  name: 'test',
  port: Number(process.env.CONVEYOR_TEST_KAFKA_PORT ?? 29092),
  sasl: true,
  log: (line) => process.stderr.write(`[kafka] ${line}\n`)
})

export async function globalSetup(): Promise<void> {
  if (!startedHere) return
  const info = await kafka.up()
  process.env.KAFKA_BROKERS = info.bootstrap.join(',')
  if (info.sasl) {
    process.env.KAFKA_SASL_BROKERS = info.sasl.bootstrap.join(',')
    process.env.KAFKA_SASL_MECHANISM = info.sasl.credentials.mechanism
    process.env.KAFKA_SASL_USERNAME = info.sasl.credentials.username
    process.env.KAFKA_SASL_PASSWORD = info.sasl.credentials.password
    process.env.KAFKA_CA_FILE = info.sasl.caFile
  }
  process.stderr.write(
    `[kafka] tests use ${info.bootstrap.join(',')}; broker log ${info.brokers[0]?.logFile}\n`
  )
}

export async function globalTeardown(): Promise<void> {
  // CONVEYOR_KEEP_KAFKA=1 keeps the broker between runs while iterating on tests.
  if (!startedHere || process.env.CONVEYOR_KEEP_KAFKA === '1') return
  await kafka.down({ purge: true })
}
