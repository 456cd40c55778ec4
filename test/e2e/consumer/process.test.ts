import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { waitFor } from '../../../src/util/wait.ts'
import { committedOffsets, testConnection, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'
import { readHandled, startConsumerProcess } from '../../helpers/process.ts'
import { produceKeyed } from '../../helpers/produce.ts'

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
