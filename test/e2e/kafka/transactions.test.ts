/**
 * Kafka transactions through the transport, on the real broker: what exactly-once
 * pipelines rest on. Records and a group's offsets become visible together when a
 * transaction commits and never when it aborts; a second producer of a transactional id
 * fences the first, whose open transaction is aborted and whose later calls are refused.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import type { Subscription } from '../../../src/transport/types.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  committedOffsets,
  readAll,
  uniqueName,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

async function member(t: Parameters<typeof useTransport>[0], topic: string, groupId: string) {
  let assigned = false
  const subscription: Subscription = await useTransport(t).subscribe(
    { groupId, topics: [topic], fromBeginning: true },
    {
      record: () => {},
      assigned: (partitions) => {
        assigned = partitions.length > 0
      },
      failed: () => {}
    }
  )
  cleanup(t, () => subscription.close())
  await waitFor(() => assigned, { timeout: 30_000, description: 'the partition assigned' })
  return subscription
}

const values = (records: Array<{ value: Buffer | undefined }>) => records.map((r) => String(r.value))

test('a committed transaction’s records and group offsets become visible together; an aborted one’s records never do', async (t) => {
  const input = await useTopic(t, { partitions: 1 })
  const output = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const subscription = await member(t, input, groupId)
  const transport = useTransport(t)
  const publisher = transport.transactional!(uniqueName('tx'), { timeout: 10_000 })
  cleanup(t, () => publisher.close())

  const committed = await publisher.begin()
  await committed.send([{ topic: output, key: 'k', value: 'kept' }])
  await committed.commitOffsets(subscription, [{ topic: input, partition: 0, offset: 5n }])
  assert.deepEqual(await committedOffsets(input, 1, groupId), [-1n], 'the offsets wait for the commit')
  await committed.commit()

  const aborted = await publisher.begin()
  await aborted.send([{ topic: output, key: 'k', value: 'dropped' }])
  await aborted.commitOffsets(subscription, [{ topic: input, partition: 0, offset: 9n }])
  await aborted.abort()
  await useProducer(t).send({ messages: [{ topic: output, key: 'k', value: 'end' }] })

  assert.deepEqual(
    values(await readAll(t, output, 2)),
    ['kept', 'end'],
    'read_committed sees the committed one'
  )
  assert.deepEqual(
    values(await readAll(t, output, 3, 30_000, { isolation: 'uncommitted' })),
    ['kept', 'dropped', 'end'],
    'the aborted record was written, and only read_committed leaves it out'
  )
  assert.deepEqual(await committedOffsets(input, 1, groupId), [5n], 'the aborted offsets are not the group’s')
})

test('a second producer of a transactional id fences the first: its open transaction is aborted and its commit and next begin fail with CONVEYOR_FENCED', async (t) => {
  const output = await useTopic(t, { partitions: 1 })
  const transport = useTransport(t)
  const id = uniqueName('tx')
  const zombie = transport.transactional!(id, { timeout: 30_000 })
  cleanup(t, () => zombie.close())
  const open = await zombie.begin()
  await open.send([{ topic: output, key: 'k', value: 'zombie' }])

  const owner = transport.transactional!(id, { timeout: 30_000 })
  cleanup(t, () => owner.close())
  const taken = await owner.begin()
  await taken.send([{ topic: output, key: 'k', value: 'owner' }])
  await taken.commit()

  await assert.rejects(open.commit(), (error: Error & { code?: string }) => error.code === ErrorCodes.FENCED)
  await assert.rejects(zombie.begin(), (error: Error & { code?: string }) => error.code === ErrorCodes.FENCED)
  await useProducer(t).send({ messages: [{ topic: output, key: 'k', value: 'end' }] })
  assert.deepEqual(values(await readAll(t, output, 2)), ['owner', 'end'])
})
