import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { DeadLetterHeaders } from '../../../src/dead-letter/record.ts'
import { bounded } from '../../../src/retry/policy.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  committedOffsets,
  readAll,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

const fast = bounded({ retries: 3, initialDelay: 20, maxDelay: 100 })

test('a message failing every attempt lands in the DLQ with its original bytes and every dlq header (a stack without install paths), then the partition moves on', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const producer = useProducer(t)
  const poison = JSON.stringify({ message_type: 'charge', version: 1, selector: { id: 'x' }, fail: true })
  await producer.send({
    messages: [
      { topic, key: 'k1', value: poison, headers: { traceparent: '00-abc-def-01' } },
      { topic, key: 'k2', value: JSON.stringify({ message_type: 'charge', version: 1, n: 2 }) }
    ]
  })

  const attempts: number[] = []
  const processed: unknown[] = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    commitInterval: 100,
    routes: {
      charge: {
        retry: fast,
        handler: (message) => {
          const value = message.value as { fail?: boolean }
          if (value.fail) {
            attempts.push(message.attempt)
            throw new TypeError('card declined')
          }
          processed.push(value)
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())

  await waitFor(() => processed.length === 1, {
    timeout: 30_000,
    description: 'the next message to be processed'
  })
  assert.deepEqual(attempts, [1, 2, 3, 4], 'the first attempt and three retries')

  const [dead] = await readAll(t, `${topic}.dlq`, 1)
  assert.ok(dead)
  assert.equal(dead.value?.toString(), poison, 'the value bytes are untouched')
  assert.equal(dead.key?.toString(), 'k1', 'the key is untouched')
  const header = (name: string) => dead.headers.get(name)?.toString()
  assert.equal(header('traceparent'), '00-abc-def-01', 'original headers are kept')
  assert.equal(header(DeadLetterHeaders.sourceTopic), topic)
  assert.equal(header(DeadLetterHeaders.sourcePartition), '0')
  assert.equal(header(DeadLetterHeaders.sourceOffset), '0')
  assert.match(header(DeadLetterHeaders.sourceTimestamp) ?? '', /^\d{4}-\d\d-\d\dT/)
  assert.equal(header(DeadLetterHeaders.consumerGroup), groupId)
  assert.equal(header(DeadLetterHeaders.reason), 'retries_exhausted')
  assert.equal(header(DeadLetterHeaders.errorClass), 'TypeError')
  assert.equal(header(DeadLetterHeaders.errorMessage), 'card declined')
  assert.match(header(DeadLetterHeaders.errorStack) ?? '', /TypeError: card declined\n\s+at /)
  // The stack names the handler's file relative to the service's directory: no install path leaks.
  assert.match(
    header(DeadLetterHeaders.errorStack) ?? '',
    /\(test\/e2e\/consumer\/dead-letter\.test\.ts:\d+:\d+\)/
  )
  assert.ok(!header(DeadLetterHeaders.errorStack)?.includes(process.cwd()), 'no absolute path in the stack')
  assert.equal(header(DeadLetterHeaders.attempts), '4')
  const first = Date.parse(header(DeadLetterHeaders.firstFailureTime) ?? '')
  const last = Date.parse(header(DeadLetterHeaders.lastFailureTime) ?? '')
  assert.ok(first <= last, 'first failure is not after the last')

  await waitFor(async () => (await committedOffsets(topic, 1, groupId))[0] === 2n, {
    timeout: 10_000,
    description: 'offset 2 committed (past the dead-lettered message and the next one)'
  })
})

test('undecodable values, non-object JSON and unknown types go to the DLQ with their reason while the consumer keeps going', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const producer = useProducer(t)
  const bad = [
    '{"message_type": "ok", broken',
    '[1, 2, 3]',
    '"just a string"',
    JSON.stringify({ message_type: 'nobody_handles_this' }),
    JSON.stringify({ no_type: true })
  ]
  await producer.send({
    messages: [...bad, JSON.stringify({ message_type: 'ok', n: 1 })].map((value) => ({
      topic,
      key: 'k',
      value
    }))
  })
  const handled: unknown[] = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    routes: { ok: { handler: (m) => void handled.push(m.value) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())

  const dead = await readAll(t, `${topic}.dlq`, bad.length)
  assert.deepEqual(
    dead.map((r) => [r.value?.toString(), r.headers.get(DeadLetterHeaders.reason)?.toString()]),
    [
      [bad[0], 'invalid_json'],
      [bad[1], 'not_an_object'],
      [bad[2], 'not_an_object'],
      [bad[3], 'unknown_message_type'],
      [bad[4], 'unknown_message_type']
    ]
  )
  assert.match(
    dead[3]!.headers.get(DeadLetterHeaders.errorMessage)!.toString(),
    /no route handles type "nobody_handles_this"/
  )
  assert.match(dead[4]!.headers.get(DeadLetterHeaders.errorMessage)!.toString(), /no "message_type" field/)
  assert.equal(
    dead[0]!.headers.get(DeadLetterHeaders.attempts)?.toString(),
    '1',
    'no retries for what cannot succeed'
  )
  await waitFor(() => handled.length === 1, { description: 'the good message after the bad ones' })
  assert.deepEqual(handled, [{ message_type: 'ok', n: 1 }])
})
