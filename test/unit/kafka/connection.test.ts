import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { connectionsConnectsChannel } from '@platformatic/kafka'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { clientOptions, verifyConnection } from '../../../src/kafka/connection.ts'

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

test('brokers that do not answer are retried until the timeout, then reported as unavailable and retryable', async () => {
  const port = await closedPort()
  const attempts: unknown[] = []
  const onConnect = (event: unknown) => attempts.push(event)
  const channel = `tracing:${connectionsConnectsChannel.name}:start`
  subscribe(channel, onConnect)
  try {
    await assert.rejects(
      verifyConnection(
        { brokers: [`127.0.0.1:${port}`], connectTimeout: 500 },
        { timeout: 1_000, retryDelay: 50 }
      ),
      (error: Error & Record<string, unknown>) => {
        assert.equal(error.code, ErrorCodes.KAFKA_UNAVAILABLE)
        assert.equal(error.retryable, true)
        assert.match(error.message, new RegExp(`no Kafka broker answered at 127.0.0.1:${port}`))
        return true
      }
    )
    assert.ok(attempts.length >= 2, `retried (${attempts.length} attempts)`)
  } finally {
    unsubscribe(channel, onConnect)
  }
})

test('a connection without brokers is rejected with the field that is wrong', () => {
  assert.throws(() => clientOptions({ brokers: [] }), { code: ErrorCodes.INVALID_OPTION, path: 'brokers' })
})

test('a TLS CA file that cannot be read fails when the options are built, naming the field', () => {
  assert.throws(
    () => clientOptions({ brokers: ['127.0.0.1:9092'], tls: { caFile: '/nonexistent/ca.pem' } }),
    {
      code: ErrorCodes.INVALID_OPTION,
      path: 'tls.caFile'
    }
  )
})
