import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Consumer, NetworkError } from '@platformatic/kafka'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useProducer, useTopic, useTransport } from '../../helpers/kafka.ts'

/**
 * The client reports a rejoin that failed (a SyncGroup whose connection closed during a
 * rebalance, as seen when consumers of one group stop one after another) as an 'error' event
 * on its consumer. Here that event is raised on the consumer under a running Conveyor consumer.
 */
test('a failed rejoin reported by the client as an error event does not end the process: the consumer joins again and goes on', async (t) => {
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
