import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Consumer, MultipleErrors, NetworkError, UserError } from '@platformatic/kafka'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { Channels, type PartitionsEvent } from '../../../src/instrumentation/channels.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useProducer, useTopic, useTransport, watchGroup } from '../../helpers/kafka.ts'

/**
 * The client reports a rejoin that failed (a SyncGroup whose connection closed during a
 * rebalance, as seen when consumers of one group stop one after another) as an 'error' event
 * on its consumer. Here that event is raised on the consumer under a running Conveyor consumer.
 */
/** The clients of the subscriptions made from now on, in order. */
function noteClients(t: Parameters<typeof cleanup>[0]): Consumer[] {
  const clients: Consumer[] = []
  const on = Consumer.prototype.on
  // Note each client as the subscription starts listening to it.
  Consumer.prototype.on = function (this: Consumer, ...args: Parameters<Consumer['on']>) {
    if (args[0] === 'consumer:group:join' && !clients.includes(this)) clients.push(this)
    return on.apply(this, args)
  } as Consumer['on']
  cleanup(t, () => {
    Consumer.prototype.on = on
  })
  return clients
}

test('a failed rejoin reported by the client as an error event does not end the process: the consumer joins again and goes on', async (t) => {
  const clients = noteClients(t)
  const topic = await useTopic(t, { partitions: 1 })
  const handled: string[] = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    routes: { n: { handler: (message) => void handled.push((message.value as { i: string }).i) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const producer = useProducer(t)
  await producer.send({ messages: [{ topic, value: JSON.stringify({ message_type: 'n', i: 'before' }) }] })
  await waitFor(() => handled.includes('before'), { timeout: 30_000, description: 'the first message' })
  assert.equal(clients.length, 1)

  // Without a listener, this emit throws the error (an uncaught exception in a service).
  assert.doesNotThrow(() => clients[0]!.emit('error', new NetworkError('Connection closed')))
  await producer.send({ messages: [{ topic, value: JSON.stringify({ message_type: 'n', i: 'after' }) }] })
  await waitFor(() => handled.includes('after'), {
    timeout: 60_000,
    description: 'a message after the failure'
  })
  assert.equal(consumer.state, 'running')
  assert.equal(clients.length, 2, 'the consumer joined again with a new client')
})

test('a consumer whose membership failed starts none of its queued records until the group assigns it partitions again, since another member may own them by then; nothing is lost', async (t) => {
  const clients = noteClients(t)
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const count = 200
  await useProducer(t).send({
    messages: Array.from({ length: count }, (_, i) => ({
      topic,
      value: JSON.stringify({ message_type: 'n', i })
    }))
  })
  const assignedAt: number[] = []
  const onAssigned = (message: unknown) => {
    const event = message as PartitionsEvent
    if (event.groupId === groupId && event.partitions.length > 0) assignedAt.push(performance.now())
  }
  subscribe(Channels.assigned, onAssigned)
  cleanup(t, () => unsubscribe(Channels.assigned, onAssigned))
  const starts: number[] = []
  const handled = new Set<number>()
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    concurrency: 1,
    routes: {
      n: {
        handler: async (message, { signal }) => {
          starts.push(performance.now())
          await sleep(20, undefined, { signal })
          handled.add((message.value as { i: number }).i)
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => handled.size >= 10, { timeout: 30_000, description: 'ten messages handled' })

  const failedAt = performance.now()
  clients[0]!.emit('error', new NetworkError('Connection closed'))
  await waitFor(() => assignedAt.some((at) => at > failedAt), {
    timeout: 60_000,
    description: 'the partition assigned again'
  })
  const reassignedAt = assignedAt.find((at) => at > failedAt)!
  const between = starts.filter((at) => at > failedAt && at < reassignedAt)
  assert.ok(reassignedAt - failedAt > 500, 'joining again takes the resubscribe backoff')
  assert.equal(between.length, 0, 'no handler started while the consumer was not a member')
  await waitFor(() => handled.size === count, { timeout: 60_000, description: 'every message handled' })
})

test('a fetch failing as the client reports a stopped broker (its connection closed, then the broker gone from the metadata) is sent again: the consumer keeps its membership and goes on', async (t) => {
  // What the client reported in the chaos run when one of three brokers stopped.
  const stoppedBroker = () =>
    new MultipleErrors('fetch failed 2 times.', [
      new NetworkError('Connection closed'),
      new UserError('Cannot find broker with node id 3')
    ])
  const fetch = Consumer.prototype.fetch
  let failing = 0
  Consumer.prototype.fetch = function (this: Consumer, ...args: Parameters<Consumer['fetch']>) {
    if (failing > 0) {
      failing--
      return Promise.reject(stoppedBroker())
    }
    return fetch.apply(this, args)
  } as Consumer['fetch']
  cleanup(t, () => {
    Consumer.prototype.fetch = fetch
  })
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const group = watchGroup(t, groupId)
  const handled: number[] = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    routes: { n: { handler: (message) => void handled.push((message.value as { i: number }).i) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const producer = useProducer(t)
  const send = (i: number) =>
    producer.send({ messages: [{ topic, value: JSON.stringify({ message_type: 'n', i }) }] })
  await send(0)
  await waitFor(() => handled.length === 1, { timeout: 30_000, description: 'the first message' })

  failing = 3
  await waitFor(() => failing === 0, { timeout: 30_000, description: 'three failed fetches' })
  await send(1)
  await waitFor(() => handled.length === 2, { timeout: 30_000, description: 'a message after them' })
  assert.deepEqual(handled, [0, 1])
  assert.deepEqual(group.failures, [], 'no failure reported: the membership stayed')
  assert.equal(group.assignments, 1, 'the consumer never joined again')
})
