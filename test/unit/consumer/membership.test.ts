/**
 * Membership on the in-memory transport: the assignment listeners' hooks around each
 * partition's ownership, revocation's drain and commit, and joining again after the
 * subscription failed.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { type AssignmentListener, createConsumer } from '../../../src/consumer/consumer.ts'
import { forever } from '../../../src/retry/policy.ts'
import { MemoryTransport } from '../../../src/testing/memory-transport.ts'
import type { Subscription, SubscriptionListener, Transport } from '../../../src/transport/types.ts'
import { waitFor } from '../../../src/util/wait.ts'

function setup(partitions = 1) {
  const transport = new MemoryTransport()
  const topic = `t-${randomUUID()}`
  transport.createTopic(topic, partitions)
  const send = (partition: number, from: number, count: number) =>
    transport.publisher().send(
      Array.from({ length: count }, (_, i) => ({
        topic,
        partition,
        value: JSON.stringify({ message_type: 'w', n: from + i })
      }))
    )
  return { transport, topic, send, groupId: `g-${randomUUID()}` }
}

/**
 * An earlier owner of the group: it takes `count` keyed messages in key order, finishes all
 * but the one at `waiting` (it waits in retries) and stops, committing `waiting` with what
 * it finished above it (when `finishedMetadata`).
 */
async function leaveOneWaiting(
  { transport, topic, groupId }: ReturnType<typeof setup>,
  count: number,
  waiting: number,
  finishedMetadata = true
): Promise<void> {
  await transport.publisher().send(
    Array.from({ length: count }, (_, n) => ({
      topic,
      key: `k${n}`,
      value: JSON.stringify({ message_type: 'w', n })
    }))
  )
  const earlier = createConsumer({
    transport,
    groupId,
    topics: [topic],
    ordering: 'key',
    commitInterval: 10,
    finishedMetadata,
    routes: {
      w: {
        retry: forever({ initialDelay: 60_000 }),
        handler: (m) => {
          if ((m.value as { n: number }).n === waiting) throw new Error(`offset ${waiting} waits`)
        }
      }
    }
  })
  await earlier.start()
  await waitFor(() => earlier.status().partitions[0]?.retrying.length === 1 && earlier.buffered === 1)
  await earlier.stop()
}

test('a new partition is handled only once its assigned hook resolved, and nothing delivered meanwhile is lost', async (t) => {
  const { transport, topic, send, groupId } = setup()
  const seen: number[] = []
  let ready!: () => void
  const hookStarted = Promise.withResolvers<void>()
  const listener: AssignmentListener = {
    assigned: () => {
      hookStarted.resolve()
      return new Promise<void>((resolve) => (ready = resolve))
    }
  }
  await send(0, 0, 5)
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    assignmentListeners: [listener],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await hookStarted.promise
  await send(0, 5, 5)
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(seen, [], 'no record is handled while the hook runs')
  ready()
  await waitFor(() => seen.length === 10)
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
})

test('an assigned hook that seeks makes the partition start there, and the records below count as finished', async (t) => {
  const { transport, topic, send, groupId } = setup()
  const seen: number[] = []
  await send(0, 0, 10)
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 10,
    assignmentListeners: [{ assigned: async (_tp, start) => start.seek(6n) }],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await waitFor(() => transport.committed(groupId, topic, 0) === 10n)
  assert.deepEqual(seen, [6, 7, 8, 9])
})

test('an assigned hook that throws is called again until it resolves; the partition waits', async (t) => {
  const { transport, topic, send, groupId } = setup()
  const seen: number[] = []
  let calls = 0
  await send(0, 0, 3)
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    assignmentListeners: [
      {
        assigned: () => {
          calls++
          if (calls < 2) throw new Error('sink unreachable')
          assert.deepEqual(seen, [])
        }
      }
    ],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await waitFor(() => seen.length === 3, { timeout: 5_000 })
  assert.equal(calls, 2)
  assert.deepEqual(seen, [0, 1, 2])
})

test('a revoked partition’s hook runs after its in-flight message finished and before its final commit', async (t) => {
  const { transport, topic, send, groupId } = setup(2)
  const events: string[] = []
  let finishSlow!: () => void
  const slowStarted = Promise.withResolvers<void>()
  const first = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 60_000,
    assignmentListeners: [
      {
        revoked: (tp) => {
          events.push(
            `revoked ${tp.partition}, committed ${transport.committed(groupId, topic, tp.partition)}`
          )
        }
      }
    ],
    routes: {
      w: {
        handler: async (m) => {
          if (m.partition !== 1) return
          slowStarted.resolve()
          await new Promise<void>((resolve) => (finishSlow = resolve))
          events.push('handled 1')
        }
      }
    }
  })
  await first.start()
  await send(1, 0, 1)
  await slowStarted.promise
  const second = createConsumer({ transport, groupId, topics: [topic], routes: { w: { handler: () => {} } } })
  await second.start()
  t.after(async () => {
    await second.stop()
    await first.stop()
  })
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(events, [], 'the hook waits for the drain')
  finishSlow()
  await waitFor(() => transport.committed(groupId, topic, 1) === 1n)
  assert.deepEqual(events, ['handled 1', 'revoked 1, committed undefined'])
})

test('at stop every owned partition’s revoked hook runs, then the final commit', async () => {
  const { transport, topic, send, groupId } = setup(2)
  const revoked: string[] = []
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 60_000,
    assignmentListeners: [
      {
        revoked: (tp) =>
          void revoked.push(`${tp.partition}: committed ${transport.committed(groupId, topic, tp.partition)}`)
      }
    ],
    routes: { w: { handler: () => {} } }
  })
  await consumer.start()
  await send(0, 0, 2)
  await send(1, 0, 3)
  await waitFor(() => consumer.status().partitions.every((p) => p.buffered === 0) && consumer.buffered === 0)
  await new Promise((resolve) => setTimeout(resolve, 20))
  await consumer.stop()
  assert.deepEqual(revoked.sort(), ['0: committed undefined', '1: committed undefined'])
  assert.equal(transport.committed(groupId, topic, 0), 2n)
  assert.equal(transport.committed(groupId, topic, 1), 3n)
})

test('a partition taken back waits for its previous ownership’s revoked hook before its assigned hook', async (t) => {
  const { transport, topic, groupId } = setup(2)
  const events: string[] = []
  let endRevoked!: () => void
  const first = createConsumer({
    transport,
    groupId,
    topics: [topic],
    assignmentListeners: [
      {
        assigned: (tp) => void events.push(`assigned ${tp.partition}`),
        revoked: async (tp) => {
          if (first.state !== 'running') return
          events.push(`revoked ${tp.partition} start`)
          await new Promise<void>((resolve) => (endRevoked = resolve))
          events.push(`revoked ${tp.partition} end`)
        }
      }
    ],
    routes: { w: { handler: () => {} } }
  })
  await first.start()
  t.after(() => first.stop())
  await waitFor(() => events.length === 2)
  const second = createConsumer({ transport, groupId, topics: [topic], routes: { w: { handler: () => {} } } })
  await second.start()
  await waitFor(() => events.includes('revoked 1 start'))
  await second.stop() // partition 1 comes back to the first consumer
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(events.slice(2), ['revoked 1 start'])
  endRevoked()
  await waitFor(() => events.length === 5)
  assert.deepEqual(events.slice(2), ['revoked 1 start', 'revoked 1 end', 'assigned 1'])
})

test('when the subscription fails, the consumer joins again and goes on where it finished', async (t) => {
  const { transport, topic, send, groupId } = setup()
  // A transport whose subscriptions can be made to fail, as a client that gave up does.
  const listeners: SubscriptionListener[] = []
  const failing: Transport = {
    subscribe: async (options, listener) => {
      listeners.push(listener)
      const subscription: Subscription = await transport.subscribe(options, listener)
      return subscription
    },
    publisher: () => transport.publisher(),
    ensureTopics: (topics) => transport.ensureTopics(topics),
    close: () => transport.close()
  }
  const seen: number[] = []
  const consumer = createConsumer({
    transport: failing,
    groupId,
    topics: [topic],
    commitInterval: 10,
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await send(0, 0, 3)
  await waitFor(() => transport.committed(groupId, topic, 0) === 3n)
  listeners[0]!.failed(new Error('the client gave up'))
  await send(0, 3, 3)
  await waitFor(() => seen.length === 6 && listeners.length === 2, { timeout: 5_000 })
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5])
})

test('a synchronous assigned hook can seek back before the group’s committed offset, and the partition is read from there', async (t) => {
  const { transport, topic, send, groupId } = setup()
  await send(0, 0, 10)
  const before = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 10,
    routes: { w: { handler: () => {} } }
  })
  await before.start()
  await waitFor(() => transport.committed(groupId, topic, 0) === 10n)
  await before.stop()
  const seen: number[] = []
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 10,
    assignmentListeners: [{ assigned: (_tp, start) => start.seek(7n) }],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await waitFor(() => seen.length === 3)
  assert.deepEqual(seen, [7, 8, 9])
})

test('with listeners, joining again after the subscription failed ends each ownership (revoked) and starts a new one (assigned)', async (t) => {
  const { transport, topic, send, groupId } = setup()
  const listeners: SubscriptionListener[] = []
  const failing: Transport = {
    subscribe: (options, listener) => {
      listeners.push(listener)
      return transport.subscribe(options, listener)
    },
    publisher: () => transport.publisher(),
    ensureTopics: (topics) => transport.ensureTopics(topics),
    close: () => transport.close()
  }
  const events: string[] = []
  const seen: number[] = []
  const consumer = createConsumer({
    transport: failing,
    groupId,
    topics: [topic],
    commitInterval: 10,
    assignmentListeners: [
      {
        assigned: (tp) => void events.push(`assigned ${tp.partition}`),
        revoked: (tp) => void events.push(`revoked ${tp.partition}`)
      }
    ],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await send(0, 0, 2)
  await waitFor(() => transport.committed(groupId, topic, 0) === 2n)
  listeners[0]!.failed(new Error('the client gave up'))
  await send(0, 2, 2)
  await waitFor(() => seen.length === 4 && events.length === 3, { timeout: 5_000 })
  assert.deepEqual(events, ['assigned 0', 'revoked 0', 'assigned 0'])
  assert.deepEqual(seen, [0, 1, 2, 3])
})

test('at stop, revoked is called only for the listeners whose assigned was called', async () => {
  const { transport, topic, groupId } = setup()
  const events: string[] = []
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    assignmentListeners: [
      {
        assigned: (_tp, start) =>
          new Promise<void>((resolve) => {
            events.push('first assigned')
            start.signal.addEventListener('abort', () => resolve())
          }),
        revoked: () => void events.push('first revoked')
      },
      {
        assigned: () => void events.push('second assigned'),
        revoked: () => void events.push('second revoked')
      }
    ],
    routes: { w: { handler: () => {} } }
  })
  await consumer.start()
  await waitFor(() => events.length === 1)
  await consumer.stop()
  assert.deepEqual(events, ['first assigned', 'first revoked'])
})

test('work finished above the commit point is recorded with the commit and not handled again by the next owner', async () => {
  for (const finishedMetadata of [true, false]) {
    const group = setup()
    const { transport, topic, groupId } = group
    await leaveOneWaiting(group, 10, 3, finishedMetadata)
    assert.equal(transport.committed(groupId, topic, 0), 3n)
    const seen: number[] = []
    const next = createConsumer({
      transport,
      groupId,
      topics: [topic],
      commitInterval: 10,
      finishedMetadata,
      routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
    })
    await next.start()
    await waitFor(() => transport.committed(groupId, topic, 0) === 10n)
    await next.stop()
    assert.deepEqual(
      seen,
      finishedMetadata ? [3] : [3, 4, 5, 6, 7, 8, 9],
      `finishedMetadata: ${finishedMetadata}`
    )
  }
})

test('a listener that seeks back handles every record from there, even those the group’s metadata says an earlier owner finished', async (t) => {
  const group = setup()
  const { transport, topic, groupId } = group
  await leaveOneWaiting(group, 6, 1) // committed 1, with 2–5 recorded as finished
  const seen: number[] = []
  const rebuild = createConsumer({
    transport,
    groupId,
    topics: [topic],
    assignmentListeners: [{ assigned: (_tp, start) => start.seek(0n) }],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await rebuild.start()
  t.after(() => rebuild.stop())
  await waitFor(() => seen.length === 6)
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5])
})

test('a subscription that fails before its subscribe call resolved is not ignored: the consumer joins again and goes on', async (t) => {
  const { transport, topic, send, groupId } = setup()
  const listeners: SubscriptionListener[] = []
  const failing: Transport = {
    subscribe: async (options, listener) => {
      listeners.push(listener)
      const subscription = await transport.subscribe(options, listener)
      // The first one fails at once, before the runtime has it (as a client can, while joining).
      if (listeners.length === 1) listener.failed(new Error('the client gave up while joining'))
      return subscription
    },
    publisher: () => transport.publisher(),
    ensureTopics: (topics) => transport.ensureTopics(topics),
    close: () => transport.close()
  }
  const seen: number[] = []
  const consumer = createConsumer({
    transport: failing,
    groupId,
    topics: [topic],
    commitInterval: 10,
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await waitFor(() => listeners.length === 2, { timeout: 5_000, description: 'a second subscription' })
  await send(0, 0, 3)
  await waitFor(() => seen.length === 3, { timeout: 5_000 })
  assert.deepEqual(seen, [0, 1, 2])
})

test('reacquire drops a partition’s work and takes it again (revoked, then assigned, reading from its seek) — at once with now, else only at a later assignment', async (t) => {
  const { transport, topic, send, groupId } = setup()
  await send(0, 0, 5)
  const events: string[] = []
  const seen: number[] = []
  let from = 0n
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    assignmentListeners: [
      {
        assigned: (_tp, start) => {
          events.push('assigned')
          start.seek(from)
        },
        revoked: () => void events.push('revoked')
      }
    ],
    routes: { w: { handler: (m) => void seen.push((m.value as { n: number }).n) } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await waitFor(() => seen.length === 5)
  consumer.reacquire({ topic, partition: 0 })
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(events, ['assigned'], 'taken in this assignment: it waits for a later one')

  from = 2n
  consumer.reacquire({ topic, partition: 0 }, { now: true })
  await waitFor(() => events.length === 3 && seen.length === 8)
  assert.deepEqual(events, ['assigned', 'revoked', 'assigned'])
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 2, 3, 4], 'read again from where the hook said')
})
