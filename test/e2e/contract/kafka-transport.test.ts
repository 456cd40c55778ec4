import { consumerContract } from '../../contract/consumer-contract.ts'
import {
  committedOffsets,
  readAll,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

consumerContract('kafka transport', async (t) => {
  const producer = useProducer(t)
  return {
    transport: useTransport(t),
    topic: (partitions) => useTopic(t, { partitions }),
    group: () => useGroup(t),
    produce: async (records) => {
      await producer.send({
        messages: records.map((r) => ({
          topic: r.topic,
          key: r.key === null || r.key === undefined ? undefined : String(r.key),
          value: r.value === null ? undefined : String(r.value)
        }))
      })
    },
    read: async (topic, count) =>
      (await readAll(t, topic, count)).map((r) => ({
        key: r.key ?? null,
        value: r.value ?? null,
        headers: r.headers
      })),
    committed: async (groupId, topic, partition) => {
      const offsets = await committedOffsets(topic, partition + 1, groupId)
      const offset = offsets[partition]
      return offset === undefined || offset < 0n ? undefined : offset
    }
  }
})
