import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { createLogger, enableLogging } from '../../../src/instrumentation/logging.ts'
import { bounded } from '../../../src/retry/policy.ts'
import { MemoryTransport } from '../../../src/testing/memory-transport.ts'
import { waitFor } from '../../../src/util/wait.ts'

function capture() {
  const stream = new PassThrough()
  const lines: Array<Record<string, unknown>> = []
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
  })
  return { stream, lines }
}

async function run(t: { after: (fn: () => unknown) => void }, sampleEvery: number) {
  const { stream, lines } = capture()
  const logger = createLogger({ destination: stream })
  t.after(enableLogging({ logger, sampleEvery }))
  const transport = new MemoryTransport()
  const topic = `t-${randomUUID()}`
  transport.createTopic(topic, 1)
  let done = 0
  const consumer = createConsumer({
    transport,
    groupId: `g-${randomUUID()}`,
    topics: [topic],
    routes: {
      ok: { handler: () => void done++ },
      bad: {
        retry: bounded({ retries: 1, initialDelay: 1, maxDelay: 1 }),
        handler: () => {
          throw new RangeError('out of range')
        }
      }
    }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await transport.publisher().send([
    ...Array.from({ length: 4 }, (_, i) => ({
      topic,
      key: `k${i}`,
      value: JSON.stringify({ message_type: 'ok' })
    })),
    { topic, key: 'poison', value: JSON.stringify({ message_type: 'bad' }) }
  ])
  await waitFor(() => transport.records(`${topic}.dlq`).length === 1)
  await waitFor(() => lines.some((l) => l.msg === 'message dead-lettered' && l.outcome === 'dead-lettered'))
  return { lines, topic, done }
}

test('one INFO line per processed message with its type, coordinates, attempt, duration and outcome', async (t) => {
  const { lines, topic } = await run(t, 1)
  const processed = lines.filter((l) => l.msg === 'message processed')
  assert.equal(processed.length, 4)
  const first = processed[0]!
  assert.equal(first.level, 30)
  assert.equal(first.type, 'ok')
  assert.equal(first.topic, topic)
  assert.equal(first.partition, 0)
  assert.equal(first.offset, '0')
  assert.equal(first.key, 'k0')
  assert.equal(first.attempt, 1)
  assert.equal(typeof first.durationMs, 'number')
  assert.equal(first.outcome, 'processed')
})

test('retries and dead letters are logged with the error stack and the message coordinates, one line per dead letter', async (t) => {
  const { lines, topic } = await run(t, 1)
  const retry = lines.find((l) => l.msg === 'handler failed, will retry')!
  assert.equal(retry.level, 40)
  assert.equal(retry.key, 'poison')
  assert.match((retry.err as { stack: string }).stack, /RangeError: out of range\n\s+at /)
  const dead = lines.filter((l) => l.msg === 'message dead-lettered')
  assert.equal(dead.length, 1, 'one line per dead-lettered message')
  assert.equal(dead[0]!.reason, 'retries_exhausted')
  assert.equal(dead[0]!.offset, '4')
  assert.equal(dead[0]!.type, 'bad')
  assert.equal(dead[0]!.outcome, 'dead-lettered')
  assert.equal(dead[0]!.dlqTopic, `${topic}.dlq`)
  assert.match((dead[0]!.err as { stack: string }).stack, /RangeError: out of range/)
})

test('sampling logs one processed message in N but every failure', async (t) => {
  const { lines } = await run(t, 2)
  assert.equal(lines.filter((l) => l.msg === 'message processed').length, 2)
  assert.ok(lines.some((l) => l.msg === 'handler failed, will retry'))
})

test('credentials and configured secret fields are redacted', () => {
  const { stream, lines } = capture()
  const logger = createLogger({ destination: stream, redact: ['api.personalAccessToken'] })
  logger.info(
    {
      kafka: { sasl: { username: 'svc', password: 'hunter2' } },
      api: { personalAccessToken: 'pat-123', url: 'http://api' }
    },
    'config'
  )
  const text = JSON.stringify(lines)
  assert.equal(text.includes('hunter2'), false)
  assert.equal(text.includes('pat-123'), false)
  assert.equal((lines[0]!.api as Record<string, string>).url, 'http://api', 'other fields stay')
})
