/**
 * Runtime behaviour that does not depend on the broker, on the in-memory transport.
 * (Delivery, ordering and crash behaviour on Kafka: test/e2e/consumer.)
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConsumer, type Ordering } from '../../../src/consumer/consumer.ts'
import { ErrorCodes, NonRetryableError } from '../../../src/core/errors.ts'
import { DeadLetterHeaders } from '../../../src/dead-letter/record.ts'
import { bounded } from '../../../src/retry/policy.ts'
import { MemoryTransport } from '../../../src/testing/memory-transport.ts'
import type { OutboundRecord, Publisher } from '../../../src/transport/types.ts'
import { waitFor } from '../../../src/util/wait.ts'

function setup(partitions = 1) {
  const transport = new MemoryTransport()
  const topic = `t-${randomUUID()}`
  transport.createTopic(topic, partitions)
  const send = (values: unknown[], key = (i: number) => `k${i}`) =>
    transport.publisher().send(values.map((v, i) => ({ topic, key: key(i), value: JSON.stringify(v) })))
  return { transport, topic, send, groupId: `g-${randomUUID()}` }
}

test('a NonRetryableError sends the message to the DLQ at once with its reason', async (t) => {
  const { transport, topic, send, groupId } = setup()
  let attempts = 0
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    routes: {
      w: {
        handler: () => {
          attempts++
          throw new NonRetryableError('selector matches nothing', { reason: 'selector_no_match' })
        }
      }
    }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await send([{ message_type: 'w' }])
  await waitFor(() => transport.records(`${topic}.dlq`).length === 1)
  assert.equal(attempts, 1)
  assert.equal(
    transport.records(`${topic}.dlq`)[0]!.headers.get(DeadLetterHeaders.reason)?.toString(),
    'selector_no_match'
  )
})

test('an unknown type is ignored, not dead-lettered, when the consumer says so, and its offset committed', async (t) => {
  const { transport, topic, send, groupId } = setup()
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    unknownType: 'ignore',
    commitInterval: 10,
    routes: { w: { handler: () => {} } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await send([{ message_type: 'other' }])
  await waitFor(() => transport.committed(groupId, topic, 0) === 1n)
  assert.equal(transport.records(`${topic}.dlq`).length, 0)
})

test('the type can come from a header instead of the payload', async (t) => {
  const { transport, topic, groupId } = setup()
  const seen: string[] = []
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    typeFrom: { header: 'ce_type' },
    routes: { created: { handler: (m) => void seen.push(m.type) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await transport.publisher().send([{ topic, key: 'k', value: '{}', headers: { ce_type: 'created' } }])
  await waitFor(() => seen.length === 1)
  assert.deepEqual(seen, ['created'])
})

test('while the DLQ cannot be written the message is retried and its offset not committed; once written, it is', async (t) => {
  const { transport, topic, send, groupId } = setup()
  let failures = 3
  const real = transport.publisher.bind(transport)
  transport.publisher = (): Publisher => {
    const inner = real()
    return {
      send: async (records: OutboundRecord[]) => {
        if (records.some((r) => r.topic.endsWith('.dlq')) && failures-- > 0)
          throw new Error('DLQ broker unavailable')
        return inner.send(records)
      },
      close: () => inner.close()
    }
  }
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 5,
    routes: {
      w: {
        retry: bounded({ retries: 0, initialDelay: 1, maxDelay: 1 }),
        handler: () => Promise.reject(new Error('no'))
      }
    }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await send([{ message_type: 'w' }])
  await waitFor(() => failures <= 1, { timeout: 5_000, description: 'failed DLQ writes' })
  assert.equal(transport.committed(groupId, topic, 0), undefined, 'not committed while the DLQ write fails')
  await waitFor(() => transport.records(`${topic}.dlq`).length === 1, { timeout: 10_000 })
  await waitFor(() => transport.committed(groupId, topic, 0) === 1n)
})

for (const ordering of ['partition', 'key', 'unordered'] as Ordering[]) {
  test(`${ordering} ordering never runs more handlers at once than its concurrency bound`, async (t) => {
    const { transport, topic, send, groupId } = setup(4)
    let running = 0
    let highest = 0
    let done = 0
    const consumer = createConsumer({
      transport,
      groupId,
      topics: [topic],
      ordering,
      concurrency: 3,
      routes: {
        w: {
          handler: async () => {
            highest = Math.max(highest, ++running)
            await sleep(2)
            running--
            done++
          }
        }
      }
    })
    await consumer.start()
    t.after(() => consumer.stop())
    await send(Array.from({ length: 60 }, () => ({ message_type: 'w' })))
    await waitFor(() => done === 60, { timeout: 10_000 })
    assert.ok(highest <= 3, `at most 3 at once (saw ${highest})`)
    assert.ok(highest > 1, `more than one at once (saw ${highest})`)
  })
}

test('partition ordering runs one message at a time per partition', async (t) => {
  const { transport, topic, send, groupId } = setup(2)
  const running = new Map<number, number>()
  let overlap = false
  let done = 0
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    concurrency: 8,
    routes: {
      w: {
        handler: async (m) => {
          const now = (running.get(m.partition) ?? 0) + 1
          running.set(m.partition, now)
          if (now > 1) overlap = true
          await sleep(1)
          running.set(m.partition, now - 1)
          done++
        }
      }
    }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await send(Array.from({ length: 40 }, () => ({ message_type: 'w' })))
  await waitFor(() => done === 40, { timeout: 10_000 })
  assert.equal(overlap, false)
})

test('stop() aborts a retry wait at once and does not commit the unfinished message', async (t) => {
  const { transport, topic, send, groupId } = setup()
  let attempts = 0
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 5,
    routes: {
      w: {
        retry: bounded({ initialDelay: 60_000, maxDelay: 60_000 }),
        handler: () => {
          attempts++
          throw new Error('down')
        }
      }
    }
  })
  await consumer.start()
  await send([{ message_type: 'w' }])
  await waitFor(() => attempts === 1)
  const started = Date.now()
  await consumer.stop()
  assert.ok(Date.now() - started < 5_000, 'the 60 s retry wait does not hold the shutdown')
  assert.equal(transport.committed(groupId, topic, 0), undefined)
  t.diagnostic(`stopped in ${Date.now() - started} ms`)
})

test('a bad consumer option fails construction with the field named', () => {
  const transport = new MemoryTransport()
  assert.throws(
    () => createConsumer({ transport, groupId: 'g', topics: [], routes: { a: { handler: () => {} } } }),
    {
      code: ErrorCodes.INVALID_OPTION,
      path: 'topics'
    }
  )
  assert.throws(
    () =>
      createConsumer({
        transport,
        groupId: 'g',
        topics: ['t'],
        ordering: 'random' as never,
        routes: { a: { handler: () => {} } }
      }),
    { path: 'ordering' }
  )
  assert.throws(
    () =>
      createConsumer({
        transport,
        groupId: 'g',
        topics: ['t'],
        typeFrom: { field: 'a', header: 'b' } as never,
        routes: { a: { handler: () => {} } }
      }),
    {
      path: 'typeFrom'
    }
  )
})

test('a transactional consumer is refused, naming the option, without partition ordering, on the consumer protocol, or on a transport without transactions', () => {
  const { transport, topic, groupId } = setup()
  const routes = { a: { handler: () => {} } }
  const transactional = {
    ...transport,
    transactional: () => ({ begin: async () => ({}) as never, close: async () => {} })
  }
  const refused = (options: Record<string, unknown>, message: RegExp) =>
    assert.throws(
      () =>
        createConsumer({
          transport: transactional as never,
          groupId,
          topics: [topic],
          routes,
          transactional: true,
          ...options
        }),
      (error: Error & { code?: string; path?: string }) =>
        error.code === ErrorCodes.INVALID_OPTION &&
        error.path === 'transactional' &&
        message.test(error.message)
    )
  refused({ ordering: 'key' }, /needs ordering "partition"/)
  refused({ groupProtocol: 'consumer' }, /classic group protocol/)
  refused({ transport }, /the transport has no transactions/)
  assert.ok(
    createConsumer({
      transport: transactional as never,
      groupId,
      topics: [topic],
      routes,
      transactional: true
    })
  )
})
