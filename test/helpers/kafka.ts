/**
 * Helpers for integration tests against the real broker started by global-setup.ts
 * (or the cluster KAFKA_BROKERS points at). Every test gets its own topics and groups,
 * deleted when the test ends.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringDeserializers,
  stringSerializers
} from '@platformatic/kafka'
import { defaultHome } from '../../src/dev/kafka/cluster.ts'
import { defaultKafkaVersion } from '../../src/dev/kafka/jars.ts'
import { Channels, type ErrorEvent, type PartitionsEvent } from '../../src/instrumentation/channels.ts'
import { clientOptions, type KafkaConnection } from '../../src/kafka/connection.ts'
import { KafkaTransport, type KafkaTransportOptions } from '../../src/kafka/transport.ts'
import { waitFor } from '../../src/util/wait.ts'

const execFileAsync = promisify(execFile)

const cleanups = new WeakMap<TestContext, Array<() => unknown>>()

/**
 * Registers cleanup work for the end of the test. Runs last-registered first (a consumer
 * stops before the transport it uses closes), unlike `t.after`, which runs in order.
 */
export function cleanup(t: TestContext, fn: () => unknown): void {
  let stack = cleanups.get(t)
  if (!stack) {
    const created: Array<() => unknown> = []
    stack = created
    cleanups.set(t, created)
    t.after(async () => {
      for (const step of created.reverse()) await step()
    })
  }
  stack.push(fn)
}

/** The PLAINTEXT connection to the test cluster. */
export function testConnection(): KafkaConnection {
  const brokers = process.env.KAFKA_BROKERS
  if (!brokers)
    throw new Error('KAFKA_BROKERS is not set: run the tests with `npm test`, which starts a broker')
  return { brokers: brokers.split(','), clientId: 'conveyor-test' }
}

/** The SASL_SSL connection to the test cluster, when it has one (the local broker always does). */
export function saslConnection(): KafkaConnection | undefined {
  const brokers = process.env.KAFKA_SASL_BROKERS
  if (!brokers) return undefined
  return {
    brokers: brokers.split(','),
    clientId: 'conveyor-test-sasl',
    sasl: {
      mechanism: (process.env.KAFKA_SASL_MECHANISM ?? 'SCRAM-SHA-512') as 'SCRAM-SHA-512',
      username: process.env.KAFKA_SASL_USERNAME ?? '',
      password: process.env.KAFKA_SASL_PASSWORD ?? ''
    },
    tls: process.env.KAFKA_CA_FILE ? { caFile: process.env.KAFKA_CA_FILE } : true
  }
}

/** A name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

export interface TopicOptions {
  partitions?: number
  replicas?: number
  connection?: KafkaConnection
}

/** Creates a fresh topic for this test and deletes it when the test ends. */
export async function useTopic(
  t: TestContext,
  { partitions = 1, replicas = 1, connection }: TopicOptions = {}
) {
  const topic = uniqueName('test')
  const admin = new Admin(clientOptions(connection ?? testConnection()))
  await admin.createTopics({ topics: [topic], partitions, replicas })
  cleanup(t, async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {})
    await admin.close()
  })
  return topic
}

/** Deletes topics the test (or the code under test) created, when the test ends. */
export function deleteTopicsAtEnd(t: TestContext, topics: string[]): void {
  cleanup(t, async () => {
    const admin = new Admin(clientOptions(testConnection()))
    await admin.deleteTopics({ topics }).catch(() => {})
    await admin.close()
  })
}

/** A consumer group id for this test, deleted when the test ends. */
export function useGroup(t: TestContext, connection?: KafkaConnection): string {
  const group = uniqueName('group')
  cleanup(t, async () => {
    const admin = new Admin(clientOptions(connection ?? testConnection()))
    await admin.deleteGroups({ groups: [group] }).catch(() => {})
    await admin.close()
  })
  return group
}

/** An idempotent, acks=all producer of string keys and values, closed when the test ends. */
export function useProducer(t: TestContext, connection?: KafkaConnection) {
  const producer = new Producer({
    ...clientOptions(connection ?? testConnection()),
    serializers: stringSerializers,
    idempotent: true,
    acks: ProduceAcks.ALL
  })
  cleanup(t, () => producer.close(true))
  return producer
}

/** A consumer of string keys and values with manual commits, closed when the test ends. */
export function useConsumer(t: TestContext, groupId: string, connection?: KafkaConnection) {
  const consumer = new Consumer({
    ...clientOptions(connection ?? testConnection()),
    groupId,
    deserializers: stringDeserializers,
    autocommit: false,
    maxWaitTime: 200
  })
  cleanup(t, () => consumer.close(true))
  return consumer
}

/** A Conveyor Kafka transport on the test cluster, closed when the test ends. */
export function useTransport(t: TestContext, options: Partial<KafkaTransportOptions> = {}) {
  const transport = new KafkaTransport({ connection: testConnection(), maxWaitTime: 200, ...options })
  cleanup(t, () => transport.close())
  return transport
}

/** Reads every record of `topic` (from the beginning) until `count` arrived; raw bytes. `read_committed` unless told otherwise. */
export async function readAll(
  t: TestContext,
  topic: string,
  count: number,
  timeout = 30_000,
  {
    isolation = 'committed',
    until
  }: {
    isolation?: 'committed' | 'uncommitted'
    /** Read until this holds instead of until `count` arrived. */
    until?: (records: Array<{ value: Buffer | undefined; partition: number }>) => boolean
  } = {}
) {
  const consumer = new Consumer({
    ...clientOptions({ ...testConnection(), clientId: 'conveyor-test-reader' }),
    groupId: uniqueName('reader'),
    isolationLevel:
      isolation === 'committed' ? FetchIsolationLevels.READ_COMMITTED : FetchIsolationLevels.READ_UNCOMMITTED,
    deserializers: { headerKey: stringDeserializer },
    autocommit: false,
    maxWaitTime: 200
  })
  cleanup(t, () => consumer.close(true))
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest' })
  const records: {
    key: Buffer | undefined
    value: Buffer | undefined
    headers: Map<string, Buffer>
    partition: number
    offset: bigint
  }[] = []
  stream.on('data', (m) =>
    records.push({ key: m.key, value: m.value, headers: m.headers, partition: m.partition, offset: m.offset })
  )
  await waitFor(() => (until ? until(records) : records.length >= count), {
    timeout,
    description: `${until ? 'the records awaited' : `${count} records`} on ${topic}`
  })
  await stream.close()
  return records
}

/** The committed offsets of a group, by partition. */
export async function committedOffsets(
  topic: string,
  partitions: number,
  groupId: string
): Promise<bigint[]> {
  const consumer = new Consumer({ ...clientOptions(testConnection()), groupId })
  try {
    const offsets = await consumer.listCommittedOffsets({
      topics: [{ topic, partitions: Array.from({ length: partitions }, (_, i) => i) }]
    })
    return offsets.get(topic) ?? []
  } finally {
    await consumer.close(true)
  }
}

/** What the runtime reports of one group while the test runs: its errors (`context: error`) and assignments. */
export function watchGroup(t: TestContext, groupId: string): { failures: string[]; assignments: number } {
  const watched = { failures: [] as string[], assignments: 0 }
  const onError = (message: unknown) => {
    const event = message as ErrorEvent
    if (event.groupId === groupId) watched.failures.push(`${event.context}: ${String(event.error)}`)
  }
  const onAssigned = (message: unknown) => {
    if ((message as PartitionsEvent).groupId === groupId) watched.assignments++
  }
  subscribe(Channels.error, onError)
  subscribe(Channels.assigned, onAssigned)
  cleanup(t, () => {
    unsubscribe(Channels.error, onError)
    unsubscribe(Channels.assigned, onAssigned)
  })
  return watched
}

/**
 * The values of `topic` as Kafka's own Java consumer reads them with `read_committed`
 * (test/java/ReadCommitted.java, run with the broker's jars), up to the `markers` records
 * whose value is `end`, which the caller wrote to each partition after its run.
 */
export async function readCommittedWithJava(
  topic: string,
  markers: number,
  timeout = 60_000
): Promise<string[]> {
  const libs = join(defaultHome(), 'kafka', defaultKafkaVersion, 'libs')
  const source = fileURLToPath(new URL('../java/ReadCommitted.java', import.meta.url))
  const { stdout } = await execFileAsync(
    'java',
    ['-cp', `${libs}/*`, source, testConnection().brokers.join(','), topic, String(markers), String(timeout)],
    { maxBuffer: 256 * 1024 * 1024, timeout: timeout + 30_000 }
  )
  return stdout.split('\n').filter((line) => line.length > 0)
}
