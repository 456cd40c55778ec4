/**
 * Helpers for integration tests against the real broker started by global-setup.ts
 * (or the cluster KAFKA_BROKERS points at). Every test gets its own topics and groups,
 * deleted when the test ends.
 */
import { randomBytes } from 'node:crypto'
import type { TestContext } from 'node:test'
import {
  Admin,
  Consumer,
  ProduceAcks,
  Producer,
  stringDeserializers,
  stringSerializers
} from '@platformatic/kafka'
import { clientOptions, type KafkaConnection } from '../../src/kafka/connection.ts'

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
  t.after(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {})
    await admin.close()
  })
  return topic
}

/** A consumer group id for this test, deleted when the test ends. */
export function useGroup(t: TestContext, connection?: KafkaConnection): string {
  const group = uniqueName('group')
  t.after(async () => {
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
  t.after(() => producer.close(true))
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
  t.after(() => consumer.close(true))
  return consumer
}
