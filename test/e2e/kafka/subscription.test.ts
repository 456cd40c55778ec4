import assert from 'node:assert/strict'
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { Channels } from '../../../src/instrumentation/channels.ts'
import { clientOptions } from '../../../src/kafka/connection.ts'
import type { InboundRecord, Subscription, SubscriptionListener } from '../../../src/transport/types.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  committedOffsets,
  testConnection,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

/** A listener that records what the subscription delivers, with a hook per record. */
function recorder(onRecord: (record: InboundRecord) => void = () => {}) {
  const records: InboundRecord[] = []
  const failures: Error[] = []
  const listener: SubscriptionListener = {
    record(record) {
      records.push(record)
      onRecord(record)
    },
    assigned() {},
    failed(error) {
      failures.push(error)
    }
  }
  const offsets = (partition: number) =>
    records.filter((r) => r.partition === partition).map((r) => Number(r.offset))
  return { records, failures, listener, offsets }
}

function produceTo(
  producer: ReturnType<typeof useProducer>,
  topic: string,
  partition: number,
  count: number
) {
  return producer.send({
    messages: Array.from({ length: count }, (_, i) => ({ topic, partition, key: `k${i}`, value: String(i) }))
  })
}

/** Counts the subscription's fetches (each answered fetch publishes on the fetch channel). */
function countFetches(t: { after: (fn: () => void) => void }) {
  const counter = { fetches: 0 }
  const onFetch = () => {
    counter.fetches++
  }
  subscribeChannel(Channels.fetch, onFetch)
  t.after(() => unsubscribeChannel(Channels.fetch, onFetch))
  return counter
}

test('a parked partition gets no records while the others keep flowing, and a seek resumes it exactly at the seek offset', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const producer = useProducer(t)
  await produceTo(producer, topic, 0, 20)
  await produceTo(producer, topic, 1, 20)
  const fetches = countFetches(t)
  let subscription: Subscription | undefined
  const seen = recorder((record) => {
    // Parked in the middle of a response: the rest of it must not reach the listener either.
    if (record.partition === 0 && record.offset === 0n) subscription!.park({ topic, partition: 0 })
  })
  subscription = await useTransport(t).subscribe(
    { groupId: useGroup(t), topics: [topic], fromBeginning: true },
    seen.listener
  )
  cleanup(t, () => subscription.close())

  await waitFor(() => seen.offsets(1).length === 20, { timeout: 20_000, description: 'partition 1' })
  await produceTo(producer, topic, 0, 20)
  await produceTo(producer, topic, 1, 20)
  await waitFor(() => seen.offsets(1).length === 40, { timeout: 20_000, description: 'more of partition 1' })
  const settled = fetches.fetches
  await waitFor(() => fetches.fetches >= settled + 3, { timeout: 20_000, description: 'three more fetches' })
  assert.deepEqual(seen.offsets(0), [0], 'nothing of the parked partition after the park')

  subscription.seek({ topic, partition: 0 }, 5n)
  await waitFor(() => seen.offsets(0).length === 36, { timeout: 20_000, description: 'partition 0 again' })
  assert.deepEqual(seen.offsets(0), [0, ...Array.from({ length: 35 }, (_, i) => 5 + i)])
  assert.deepEqual(
    seen.offsets(1),
    Array.from({ length: 40 }, (_, i) => i)
  )
  assert.deepEqual(seen.failures, [])
})

test('a seek back on a flowing partition delivers from the seek offset on, and nothing an older fetch brought after it', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const producer = useProducer(t)
  await produceTo(producer, topic, 0, 30)
  let subscription: Subscription | undefined
  let sought = false
  const seen = recorder((record) => {
    if (!sought && record.offset === 9n) {
      sought = true
      subscription!.seek({ topic, partition: 0 }, 4n)
    }
  })
  subscription = await useTransport(t).subscribe(
    { groupId: useGroup(t), topics: [topic], fromBeginning: true },
    seen.listener
  )
  cleanup(t, () => subscription.close())
  await waitFor(() => seen.offsets(0).at(-1) === 29, { timeout: 20_000, description: 'the last record' })
  assert.deepEqual(seen.offsets(0), [
    ...Array.from({ length: 10 }, (_, i) => i),
    ...Array.from({ length: 26 }, (_, i) => 4 + i)
  ])
})

test('a committed offset that retention has deleted starts the partition at the log start instead of failing', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const group = useGroup(t)
  const producer = useProducer(t)
  const transport = useTransport(t)
  await produceTo(producer, topic, 0, 20)

  const first = recorder()
  const before = await transport.subscribe(
    { groupId: group, topics: [topic], fromBeginning: true },
    first.listener
  )
  await waitFor(() => first.records.length === 20, { timeout: 20_000, description: 'the first 20' })
  await before.commit([{ topic, partition: 0, offset: 3n }])
  await before.close()

  const admin = new Admin(clientOptions(testConnection()))
  cleanup(t, () => admin.close())
  await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset: 10n }] }] })
  await produceTo(producer, topic, 0, 5)

  const second = recorder()
  const after = await transport.subscribe(
    { groupId: group, topics: [topic], fromBeginning: true },
    second.listener
  )
  cleanup(t, () => after.close())
  await waitFor(() => second.records.length === 15, { timeout: 20_000, description: 'offsets 10 to 24' })
  assert.deepEqual(
    second.offsets(0),
    Array.from({ length: 15 }, (_, i) => 10 + i)
  )
  assert.deepEqual(second.failures, [])
})

test('a new group without fromBeginning starts at the end of the log and gets only what is produced after it joined', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const producer = useProducer(t)
  await produceTo(producer, topic, 0, 10)
  const fetches = countFetches(t)
  const seen = recorder()
  const subscription = await useTransport(t).subscribe(
    { groupId: useGroup(t), topics: [topic], fromBeginning: false },
    seen.listener
  )
  cleanup(t, () => subscription.close())
  // Fetching has begun (so the start position is known) before anything new is produced.
  await waitFor(() => fetches.fetches >= 1, { timeout: 20_000, description: 'the first fetch' })
  await produceTo(producer, topic, 0, 3)
  await waitFor(() => seen.records.length === 3, { timeout: 20_000, description: 'the new records' })
  assert.deepEqual(seen.offsets(0), [10, 11, 12])
})

test('a member commits before it joins a rebalance again, and its commits of a partition given to another member are left out', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  const transport = useTransport(t)
  const at = (offset: bigint) => [0, 1].map((partition) => ({ topic, partition, offset }))
  const owned = new Map<string, number[]>()
  const events: string[] = []
  const member = async (name: string) => {
    let subscription: Subscription | undefined
    const listener: SubscriptionListener = {
      record() {},
      assigned: (partitions) => void owned.set(name, partitions.map((p) => p.partition).sort()),
      failed() {},
      async rebalancing() {
        // The generation is still the old one: this commit of both partitions counts.
        events.push(`${name} rebalancing`)
        await subscription!.commit(at(5n))
        events.push(`${name} committed`)
      }
    }
    subscription = await transport.subscribe(
      { groupId, topics: [topic], fromBeginning: true, heartbeatInterval: 500, sessionTimeout: 10_000 },
      listener
    )
    cleanup(t, () => subscription.close())
    return subscription
  }
  const first = await member('first')
  await waitFor(() => owned.get('first')?.length === 2, {
    timeout: 20_000,
    description: 'the first member to own both partitions'
  })
  await member('second')
  await waitFor(() => owned.get('first')?.length === 1 && owned.get('second')?.length === 1, {
    timeout: 30_000,
    description: 'the partitions to be shared'
  })
  assert.deepEqual(
    events.slice(0, 2),
    ['first rebalancing', 'first committed'],
    'the first member was told before it joined again'
  )
  assert.deepEqual(
    await committedOffsets(topic, 2, groupId),
    [5n, 5n],
    'its commit made then counted for both partitions'
  )

  await first.commit(at(9n))
  const kept = owned.get('first')![0]!
  const committed = await committedOffsets(topic, 2, groupId)
  assert.equal(committed[kept], 9n, 'the partition it kept is committed')
  assert.equal(committed[1 - kept], 5n, 'the partition the second member owns is not')
})
