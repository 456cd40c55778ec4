import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { clientOptions } from '../../../src/kafka/connection.ts'
import { decodeFinished } from '../../../src/offsets/finished-metadata.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { committedOffsets, testConnection, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'
import { readHandled, startConsumerProcess } from '../../helpers/process.ts'
import { produceKeyed } from '../../helpers/produce.ts'

/** The group's committed offsets on a topic with the metadata beside each, as Kafka's admin API reads them. */
async function committedWithMetadata(topic: string, group: string) {
  const admin = new Admin(clientOptions(testConnection()))
  try {
    const [answer] = await admin.listConsumerGroupOffsets({ groups: [group] })
    return (answer?.topics.find((t) => t.name === topic)?.partitions ?? []).map((p) => ({
      partition: p.partitionIndex,
      offset: p.committedOffset,
      metadata: p.metadata ?? undefined
    }))
  } finally {
    await admin.close()
  }
}

function logFile(name: string): string {
  return join(mkdtempSync(join(tmpdir(), 'conveyor-')), `${name}.jsonl`)
}

test('a consumer killed with SIGKILL mid-stream and restarted handles every message, re-handling only the uncommitted window', async (t) => {
  const partitions = 3
  const topic = await useTopic(t, { partitions })
  const group = useGroup(t)
  const count = 3_000
  await produceKeyed(useProducer(t), topic, { count, keys: 30 })
  const log = logFile('crash')
  const env = {
    KAFKA_BROKERS: testConnection().brokers.join(','),
    TOPIC: topic,
    GROUP: group,
    LOG: log,
    DELAY_MS: '1',
    COMMIT_MS: '200'
  }

  const first = await startConsumerProcess(t, env)
  await waitFor(() => readHandled(log).length >= count / 3, {
    timeout: 60_000,
    description: 'a third of the messages'
  })
  first.child.kill('SIGKILL')
  const { signal } = await first.exited
  assert.equal(signal, 'SIGKILL')
  const handledBeforeCrash = readHandled(log)
  assert.ok(handledBeforeCrash.length < count, 'killed mid-stream')
  const committedAtCrash = await committedOffsets(topic, partitions, group)

  await startConsumerProcess(t, env)
  await waitFor(() => new Set(readHandled(log).map((h) => `${h.partition}:${h.offset}`)).size >= count, {
    timeout: 60_000,
    description: 'every message after the restart'
  })

  const handled = readHandled(log)
  const times = new Map<string, number>()
  for (const h of handled)
    times.set(`${h.partition}:${h.offset}`, (times.get(`${h.partition}:${h.offset}`) ?? 0) + 1)
  assert.equal(times.size, count, 'every message handled at least once, none missing')
  for (const [position, n] of times) {
    if (n === 1) continue
    const [partition, offset] = position.split(':').map(BigInt) as [bigint, bigint]
    const committed = committedAtCrash[Number(partition)] ?? -1n
    assert.ok(
      offset >= committed,
      `offset ${position} handled ${n} times although it was committed (${committed})`
    )
  }
})

test('SIGTERM during processing exits 0 within the drain timeout, and a restart handles nothing twice', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const group = useGroup(t)
  const count = 400
  await produceKeyed(useProducer(t), topic, { count, keys: 8 })
  const log = logFile('sigterm')
  const env = {
    KAFKA_BROKERS: testConnection().brokers.join(','),
    TOPIC: topic,
    GROUP: group,
    LOG: log,
    DELAY_MS: '20',
    COMMIT_MS: '60000', // only the shutdown commits: it must not forget anything
    DRAIN_MS: '5000'
  }

  const first = await startConsumerProcess(t, env)
  await waitFor(() => readHandled(log).length >= 20, {
    timeout: 30_000,
    description: 'processing to be under way'
  })
  first.child.kill('SIGTERM')
  const exit = await Promise.race([
    first.exited,
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5_000 + 5_000))
  ])
  assert.notEqual(exit, 'timeout', `the process exits after SIGTERM; output:\n${first.output()}`)
  assert.deepEqual(exit, { code: 0, signal: null }, `exit code 0; output:\n${first.output()}`)
  const beforeRestart = readHandled(log).length
  assert.ok(beforeRestart < count, 'stopped mid-stream')

  await startConsumerProcess(t, env)
  await waitFor(() => readHandled(log).length >= count, {
    timeout: 60_000,
    description: 'the rest after the restart'
  })
  const handled = readHandled(log)
  const positions = new Set(handled.map((h) => `${h.partition}:${h.offset}`))
  assert.equal(positions.size, count, 'none missing')
  assert.equal(handled.length, count, 'nothing finished before the shutdown is handled again')
})

test('after a SIGKILL, only the message that had not finished is handled again: the work finished above the commit point was recorded with it', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const group = useGroup(t)
  const count = 100
  await produceKeyed(useProducer(t), topic, { count, keys: count })
  const log = logFile('finished-above')
  const env = {
    KAFKA_BROKERS: testConnection().brokers.join(','),
    TOPIC: topic,
    GROUP: group,
    LOG: log,
    ORDERING: 'key',
    COMMIT_MS: '200'
  }
  const first = await startConsumerProcess(t, { ...env, FAIL_OFFSET: '10' })
  await waitFor(() => readHandled(log).length === count - 1, { timeout: 60_000, description: '99 messages' })
  // The commit point stays at 10 (waiting in retries); the commit records 11–99 as finished.
  await waitFor(
    async () => {
      const [offset] = await committedOffsets(topic, 1, group)
      const { metadata } = (await committedWithMetadata(topic, group))[0] ?? {}
      const runs = offset === undefined ? [] : decodeFinished(offset, metadata)
      return offset === 10n && runs.length === 1 && runs[0]!.from === 11n && runs[0]!.to === 100n
    },
    { timeout: 30_000, description: 'offset 10 committed with 11–99 finished' }
  )
  first.child.kill('SIGKILL')
  await first.exited

  const second = await startConsumerProcess(t, env)
  await waitFor(async () => (await committedOffsets(topic, 1, group))[0] === 100n, {
    timeout: 60_000,
    description: 'everything committed after the restart'
  })
  const again = readHandled(log).filter((h) => h.pid === second.child.pid)
  assert.deepEqual(
    again.map((h) => h.offset),
    ['10'],
    'only offset 10 is handled again'
  )
})
