/**
 * The replicator on the real broker and the real PostgreSQL: each event applied once, in
 * offset order per partition, with the partition's position written in the same
 * transaction; the sink's position, not the group's offsets, is where work goes on; the
 * fence refuses an earlier owner's writes; a failing partition blocks only itself.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { clientOptions } from '../../../src/kafka/connection.ts'
import { createReplicator } from '../../../src/replicator/replicator.ts'
import { FencedError, type ReplicaEvent } from '../../../src/replicator/sink.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  committedOffsets,
  readAll,
  testConnection,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'
import { byPartition, type Change, decodeChange as decode, ledgerSink } from '../../helpers/ledger.ts'

async function produce(t: Parameters<typeof useProducer>[0], topic: string, from: number, count: number) {
  await useProducer(t).send({
    messages: Array.from({ length: count }, (_, j) => ({
      topic,
      key: `k${(from + j) % 17}`,
      value: JSON.stringify({ key: `k${(from + j) % 17}`, seq: from + j })
    }))
  })
}

test('every event is applied once, in offset order per partition, and a replicator started again goes on from the sink’s position even with the group’s offsets gone', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const groupId = useGroup(t)
  const { sink, applied } = await ledgerSink(t, groupId)
  await produce(t, topic, 0, 300)
  const replicator = () =>
    createReplicator({
      transport: useTransport(t),
      groupId,
      topics: [topic],
      sink,
      decode,
      commitInterval: 100
    })

  const first = replicator()
  await first.start()
  await waitFor(async () => (await applied()).length === 300, {
    timeout: 60_000,
    description: '300 events applied'
  })
  await first.stop()

  // The group's offsets are gone (as after a reset or a new group id for Kafka's side): the
  // sink's positions still say where each partition is.
  const admin = new Admin(clientOptions(testConnection()))
  cleanup(t, () => admin.close())
  await admin.deleteGroups({ groups: [groupId] })
  await produce(t, topic, 300, 150)
  // Events it is handed, counted: the sink would leave out those below its position anyway,
  // so this is what shows the replicator reading from there.
  let written = 0
  const counting: typeof sink = {
    ...sink,
    write: (tp, events, next, token) => {
      written += events.length
      return sink.write(tp, events, next, token)
    }
  }
  const second = createReplicator({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    sink: counting,
    decode,
    commitInterval: 100
  })
  await second.start()
  cleanup(t, () => second.stop())
  await waitFor(async () => (await applied()).length >= 450, {
    timeout: 60_000,
    description: '450 events applied'
  })
  await new Promise((resolve) => setTimeout(resolve, 500)) // anything applied twice would show by now

  const rows = await applied()
  assert.equal(rows.length, 450, 'no event applied twice')
  assert.equal(written, 150, 'the second replicator was handed only the events after the sink’s positions')
  const positions = await sink.positions()
  for (const [partition, offsets] of byPartition(rows)) {
    assert.deepEqual(
      offsets,
      offsets.map((_, i) => BigInt(i)),
      `partition ${partition}: offsets 0, 1, 2, … each once, in order`
    )
    assert.equal(
      positions.get(`${topic}:${partition}`)?.next,
      BigInt(offsets.length),
      'the position after the last'
    )
  }
})

test('a write under a token an owner took since is refused by the fence and applies nothing', async (t) => {
  const groupId = useGroup(t)
  const { sink, applied } = await ledgerSink(t, groupId)
  const tp = { topic: 'fenced', partition: 0 }
  const signal = new AbortController().signal
  const zombie = await sink.acquire(tp, signal)
  const event = (offset: bigint): ReplicaEvent<Change> => ({
    topic: tp.topic,
    partition: 0,
    offset,
    key: null,
    headers: new Map(),
    value: { key: 'k', seq: Number(offset) }
  })
  await sink.write(tp, [event(0n)], 1n, zombie.token)
  const owner = await sink.acquire(tp, signal)
  assert.equal(owner.next, 1n, 'the new owner goes on after what the zombie applied')
  await assert.rejects(sink.write(tp, [event(1n)], 2n, zombie.token), FencedError)
  await sink.write(tp, [event(1n)], 2n, owner.token)
  // Delivered again below the position (a seek that raced it): left out.
  await sink.write(tp, [event(1n)], 2n, owner.token)
  assert.deepEqual(await applied(), [
    { partition: 0, offset: 0n },
    { partition: 0, offset: 1n }
  ])
})

test('an acquire whose partition was taken away again while it waited for a session leaves the epoch alone, so it fences out no one', async (t) => {
  const groupId = useGroup(t)
  const { sink } = await ledgerSink(t, groupId)
  const tp = { topic: 'late', partition: 0 }
  const owner = await sink.acquire(tp, new AbortController().signal)
  const revoked = new AbortController()
  revoked.abort(new Error('revoked'))
  await assert.rejects(sink.acquire(tp, revoked.signal), /revoked/)
  assert.equal((await sink.positions()).get('late:0')?.epoch, owner.token, 'the epoch the owner holds')
})

test('a partition whose writes keep failing retries with backoff while the other partitions finish; once the sink accepts, it goes on in order', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const groupId = useGroup(t)
  let broken = true
  let refusals = 0
  const { sink, applied } = await ledgerSink(t, groupId, {
    fail: (event) => {
      const refuse = broken && event.partition === 1 && event.offset === 5n
      if (refuse) refusals++
      return refuse
    }
  })
  await useProducer(t).send({
    messages: Array.from({ length: 300 }, (_, i) => ({
      topic,
      partition: i % 3,
      value: JSON.stringify({ key: `k${i}`, seq: i })
    }))
  })
  const replicator = createReplicator({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    sink,
    decode,
    retry: { initialDelay: 50, maxDelay: 200 }
  })
  await replicator.start()
  cleanup(t, () => replicator.stop())
  const count = async (partition: number) => (byPartition(await applied()).get(partition) ?? []).length
  await waitFor(async () => (await count(0)) === 100 && (await count(2)) === 100, {
    timeout: 60_000,
    description: 'partitions 0 and 2 applied'
  })
  const waiting = () => replicator.status().partitions.find((p) => p.partition === 1)?.retrying ?? []
  await waitFor(() => waiting().length === 1, { timeout: 10_000, description: 'the refused event waiting' })
  // Narrowing a batch down to the event also meets the refusal: count the retries from here.
  const found = refusals
  await waitFor(() => refusals >= found + 2, { timeout: 10_000, description: 'the refused write retried' })
  assert.equal(await count(1), 5, 'partition 1 waits at the event the sink refuses')
  assert.equal(waiting()[0]?.offset, '5')

  broken = false
  await waitFor(async () => (await count(1)) === 100, { timeout: 30_000, description: 'partition 1 applied' })
  assert.deepEqual(
    byPartition(await applied()).get(1),
    Array.from({ length: 100 }, (_, i) => BigInt(i)),
    'each once, in order'
  )
})

test('consecutive events go in one transaction, at most batch.maxSize; a batch the sink refuses is narrowed to its poison event, so the events before it are applied and committed to the group', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  let broken = true
  let refusals = 0
  const { sink, applied, transactions } = await ledgerSink(t, groupId, {
    fail: (event) => {
      const refuse = broken && event.offset === 321n
      if (refuse) refusals++
      return refuse
    }
  })
  await produce(t, topic, 0, 500)
  const replicator = createReplicator({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    sink,
    decode,
    batch: { maxSize: 50 },
    retry: { initialDelay: 50, maxDelay: 200 },
    commitInterval: 100
  })
  await replicator.start()
  cleanup(t, () => replicator.stop())
  await waitFor(async () => (await applied()).length === 321 && refusals >= 3, {
    timeout: 60_000,
    description: 'the events before the poison applied, the poison retried'
  })
  // Every transaction holding the poison event failed (and counted a refusal): the others hold the 321.
  const succeeded = transactions.length - refusals
  assert.equal(Math.max(...transactions), 50, 'batches of up to maxSize events')
  assert.ok(succeeded <= 30, `the 321 events before the poison in ${succeeded} transactions, not one each`)
  await waitFor(async () => (await committedOffsets(topic, 1, groupId))[0] === 321n, {
    timeout: 10_000,
    description: 'the group’s offset at the poison event'
  })
  assert.equal(replicator.status().partitions[0]?.retrying[0]?.offset, '321')

  broken = false
  await waitFor(async () => (await applied()).length === 500, { timeout: 30_000, description: 'all applied' })
  assert.deepEqual(
    (await applied()).map((row) => row.offset),
    Array.from({ length: 500 }, (_, i) => BigInt(i)),
    'each once, in order'
  )
})

test('a value that is not an event is dead-lettered with the decoder’s reason, a tombstone is skipped, and the partition goes on', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const { sink, applied } = await ledgerSink(t, groupId)
  await useProducer(t).send({
    messages: [
      { topic, value: JSON.stringify({ key: 'a', seq: 0 }) },
      { topic, value: 'not json' },
      { topic, value: null as unknown as string },
      { topic, value: JSON.stringify({ key: 'a', seq: 3 }) }
    ]
  })
  const replicator = createReplicator({ transport: useTransport(t), groupId, topics: [topic], sink, decode })
  await replicator.start()
  cleanup(t, () => replicator.stop())
  await waitFor(async () => (await applied()).length === 2, {
    timeout: 30_000,
    description: 'two events applied'
  })
  assert.deepEqual(await applied(), [
    { partition: 0, offset: 0n },
    { partition: 0, offset: 3n }
  ])
  const [dead] = await readAll(t, `${topic}.dlq`, 1)
  assert.equal(dead?.value?.toString(), 'not json')
  assert.equal(dead?.headers.get('dlq_reason')?.toString(), 'invalid_json')
  assert.equal(dead?.headers.get('dlq_source_offset')?.toString(), '1')
})
