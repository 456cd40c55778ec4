import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test } from 'node:test'
import { connectionsConnectsChannel } from '@platformatic/kafka'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { verifyConnection } from '../../../src/kafka/connection.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { saslConnection, useConsumer, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'

const sasl = saslConnection()
const skip = sasl ? false : 'KAFKA_SASL_BROKERS is not set (the local test broker always opens one)'

test('a client connects over SASL_SSL with SCRAM-SHA-512 and produces and consumes', { skip }, async (t) => {
  const connection = sasl!
  const brokers = await verifyConnection(connection)
  assert.deepEqual(brokers, connection.brokers, 'the cluster advertises its SASL_SSL listener')

  const topic = await useTopic(t, { connection })
  const producer = useProducer(t, connection)
  await producer.send({ messages: [{ topic, key: 'k', value: 'over TLS and SCRAM' }] })
  const consumer = useConsumer(t, useGroup(t, connection), connection)
  const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
  const values: string[] = []
  stream.on('data', (message) => values.push(message.value))
  await waitFor(() => values.length > 0, { timeout: 20_000, description: 'the message over SASL_SSL' })
  assert.deepEqual(values, ['over TLS and SCRAM'])
})

test('a wrong SCRAM password fails at once with a clear authentication error, without retries', {
  skip
}, async () => {
  const connection = { ...sasl!, sasl: { ...sasl!.sasl!, password: 'not-the-password' } }
  const attempts: unknown[] = []
  const onConnect = (event: unknown) => attempts.push(event)
  const channel = `tracing:${connectionsConnectsChannel.name}:start`
  subscribe(channel, onConnect)
  try {
    // Unreachable brokers would be retried for 30 s; rejected credentials must not be.
    await assert.rejects(
      verifyConnection(connection, { timeout: 30_000 }),
      (error: Error & Record<string, unknown>) => {
        assert.equal(error.code, ErrorCodes.KAFKA_AUTHENTICATION)
        assert.equal(error.retryable, false)
        assert.match(error.message, /authentication failed, check the username and password/)
        assert.match(error.message, /as "conveyor" with SCRAM-SHA-512/)
        return true
      }
    )
    assert.equal(attempts.length, 1, 'exactly one connection attempt: no retry storm')
  } finally {
    unsubscribe(channel, onConnect)
  }
})
