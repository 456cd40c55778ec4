import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { KafkaTransport } from '../../../src/kafka/transport.ts'
import { createProducer } from '../../../src/producer/producer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, readAll, testConnection, useGroup, useTopic, useTransport } from '../../helpers/kafka.ts'

interface Commands {
  order_placed: { order: string; amount: number }
  invoice_requested: { order: string }
}

test('send encodes the payload, sets the envelope headers and resolves with the offset of each record', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const producer = createProducer<Commands>({ transport: useTransport(t), topic, source: 'urn:test:shop' })
  cleanup(t, () => producer.close())
  const first = await producer.send(
    'order_placed',
    { order: 'o-1', amount: 10 },
    { key: 'o-1', envelope: { tenantId: 'acme' } }
  )
  const second = await producer.send('order_placed', { order: 'o-1', amount: 11 }, { key: 'o-1' })
  assert.equal(second.partition, first.partition, 'one key, one partition')
  assert.equal(second.offset, first.offset + 1n, 'offsets are returned per record')

  const records = await readAll(t, topic, 2)
  const record = records.find((r) => r.partition === first.partition && r.offset === first.offset)!
  assert.deepEqual(JSON.parse(record.value!.toString()), {
    message_type: 'order_placed',
    order: 'o-1',
    amount: 10
  })
  const header = (name: string) => record.headers.get(name)?.toString()
  assert.equal(header('ce_type'), 'order_placed')
  assert.equal(header('ce_source'), 'urn:test:shop')
  assert.equal(header('ce_tenantid'), 'acme')
  assert.equal(header('ce_specversion'), '1.0')
  assert.match(header('ce_id') ?? '', /^[0-9a-f-]{36}$/)
})

test('a handler that produces passes on the correlation id and names the handled message as cause', async (t) => {
  const input = await useTopic(t)
  const output = await useTopic(t)
  const transport = useTransport(t)
  const producer = createProducer<Commands>({ transport })
  cleanup(t, () => producer.close())
  const consumer = createConsumer({
    transport,
    groupId: useGroup(t),
    topics: [input],
    routes: {
      order_placed: {
        handler: async (message) => {
          const { order } = message.value as Commands['order_placed']
          await producer.send('invoice_requested', { order }, { topic: output, key: order, parent: message })
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const sent = await producer.send(
    'order_placed',
    { order: 'o-9', amount: 5 },
    { topic: input, key: 'o-9', envelope: { correlationId: 'checkout-42' } }
  )
  assert.ok(sent.offset >= 0n)

  const [inputRecord] = await readAll(t, input, 1)
  const [follow] = await readAll(t, output, 1)
  assert.equal(follow?.headers.get('ce_correlationid')?.toString(), 'checkout-42')
  assert.equal(
    follow?.headers.get('ce_causationid')?.toString(),
    inputRecord?.headers.get('ce_id')?.toString()
  )
})

for (const compression of ['gzip', 'snappy', 'lz4', 'zstd'] as const) {
  test(`records compressed with ${compression} are consumed back intact`, async (t) => {
    const topic = await useTopic(t)
    const transport = new KafkaTransport({ connection: testConnection(), compression })
    cleanup(t, () => transport.close())
    const producer = createProducer({ transport, topic })
    const payload = { order: 'x'.repeat(2_000), amount: 1 }
    await producer.sendMany(
      Array.from({ length: 20 }, (_, i) => ({
        type: 'order_placed',
        payload: { ...payload, amount: i },
        key: `k${i}`
      }))
    )
    await producer.close()
    const seen: number[] = []
    const consumer = createConsumer({
      transport: useTransport(t),
      groupId: useGroup(t),
      topics: [topic],
      routes: { order_placed: { handler: (m) => void seen.push((m.value as { amount: number }).amount) } }
    })
    await consumer.start()
    cleanup(t, () => consumer.stop())
    await waitFor(() => seen.length >= 20, { timeout: 20_000 })
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i)
    )
  })
}

test('a send that cannot be written fails loudly with a retryable publish error', async (t) => {
  const transport = useTransport(t)
  const producer = createProducer({ transport, topic: 'conveyor-no-such-topic-x' })
  cleanup(t, () => producer.close())
  await assert.rejects(
    producer.send('order_placed', { order: 'o', amount: 1 }),
    (error: Error & Record<string, unknown>) => {
      assert.equal(error.code, ErrorCodes.PUBLISH)
      assert.equal(error.retryable, true)
      assert.match(error.message, /could not write to conveyor-no-such-topic-x/)
      return true
    }
  )
})

test('a payload that is not an object is refused before anything is sent', async (t) => {
  const producer = createProducer({ transport: useTransport(t), topic: 'unused' })
  cleanup(t, () => producer.close())
  await assert.rejects(producer.send('order_placed', 'text' as never), {
    code: ErrorCodes.INVALID_OPTION,
    path: 'payload'
  })
})
