import { randomUUID } from 'node:crypto'
import { MemoryTransport } from '../../../src/testing/memory-transport.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { consumerContract } from '../../contract/consumer-contract.ts'

consumerContract('memory transport', async (t) => {
  const transport = new MemoryTransport()
  t.after(() => transport.close())
  return {
    transport,
    topic: async (partitions) => {
      const topic = `t-${randomUUID()}`
      transport.createTopic(topic, partitions)
      return topic
    },
    group: () => `g-${randomUUID()}`,
    produce: async (records) => {
      await transport.publisher().send(records)
    },
    read: async (topic, count) => {
      await waitFor(() => transport.records(topic).length >= count, { timeout: 10_000 })
      return transport.records(topic)
    },
    committed: async (groupId, topic, partition) => transport.committed(groupId, topic, partition)
  }
})
