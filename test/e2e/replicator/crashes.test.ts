/**
 * The replicator's exactly-once guarantee under what production does to it, with
 * replicator processes on the real broker and PostgreSQL (test/fixtures/replicator-process.ts):
 * SIGKILLs, a group scaled up and down, transient sink failures, and a member frozen past
 * its session timeout (a zombie) that wakes up and tries to write.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type pg from 'pg'
import { postgresSink } from '../../../src/replicator/postgres.ts'
import { waitFor } from '../../../src/util/wait.ts'
import type { ReplicatorProcessConfig } from '../../fixtures/replicator-process.ts'
import { testConnection, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'
import { usePool, useTable } from '../../helpers/postgres.ts'
import { startConsumerProcess } from '../../helpers/process.ts'

const fixture = new URL('../../fixtures/replicator-process.ts', import.meta.url).pathname

/** Tables of a run, the config of its processes, and what they applied. */
async function setUp(
  t: Parameters<typeof usePool>[0],
  options: { partitions: number; failRate: number; sessionTimeout: number } & Partial<ReplicatorProcessConfig>
) {
  const topic = await useTopic(t, { partitions: options.partitions })
  const groupId = useGroup(t)
  const pool = usePool(t)
  const positions = useTable(t, pool, 'positions')
  const ledger = useTable(t, pool, 'ledger')
  const state = useTable(t, pool, 'state')
  await pool.query(
    `CREATE TABLE ${ledger} (id bigserial PRIMARY KEY, partition int, kafka_offset bigint, key text, seq int, pid int)`
  )
  await pool.query(`CREATE TABLE ${state} (key text PRIMARY KEY, seq int)`)
  await postgresSink({ pool, groupId, table: positions, apply: async () => {} }).migrate()
  const config: ReplicatorProcessConfig = {
    brokers: testConnection().brokers,
    topic,
    groupId,
    positions,
    ledger,
    state,
    ...options
  }
  const start = (overrides: Partial<ReplicatorProcessConfig> = {}) =>
    startConsumerProcess(t, { REPLICATOR: JSON.stringify({ ...config, ...overrides }) }, fixture)
  const applied = async () => Number((await pool.query(`SELECT count(*) AS n FROM ${ledger}`)).rows[0].n)
  return { topic, pool, ledger, state, start, applied }
}

/** Produces `count` changes over `keys` keys: change i sets key `k<i % keys>` to seq i. */
async function produce(t: Parameters<typeof useProducer>[0], topic: string, count: number, keys: number) {
  const producer = useProducer(t)
  for (let from = 0; from < count; from += 1_000)
    await producer.send({
      messages: Array.from({ length: Math.min(1_000, count - from) }, (_, j) => {
        const i = from + j
        return { topic, key: `k${i % keys}`, value: JSON.stringify({ key: `k${i % keys}`, seq: i }) }
      })
    })
}

/** Every event applied once, each partition in offset order, and the state a serial replay gives. */
async function assertExactlyOnce(pool: pg.Pool, ledger: string, state: string, count: number, keys: number) {
  const { rows } = await pool.query<{ partition: number; kafka_offset: string }>(
    `SELECT partition, kafka_offset FROM ${ledger} ORDER BY id`
  )
  assert.equal(rows.length, count, 'as many applies as events')
  const byPartition = new Map<number, bigint[]>()
  for (const row of rows)
    byPartition.set(row.partition, [...(byPartition.get(row.partition) ?? []), BigInt(row.kafka_offset)])
  let total = 0
  for (const [partition, offsets] of byPartition) {
    total += offsets.length
    const expected = offsets.map((_, i) => BigInt(i))
    assert.deepEqual(offsets, expected, `partition ${partition}: every offset once, in order`)
  }
  assert.equal(total, count)
  const replay = new Map<string, number>()
  for (let i = 0; i < count; i++) replay.set(`k${i % keys}`, i)
  const final = await pool.query<{ key: string; seq: number }>(`SELECT key, seq FROM ${state}`)
  assert.deepEqual(
    new Map(final.rows.map((r) => [r.key, r.seq])),
    replay,
    'the final state is what a serial replay of the events gives'
  )
}

// The sizes of the SIGKILL run; the acceptance's full size is
// CONVEYOR_REPLICATOR_EVENTS=100000 CONVEYOR_REPLICATOR_PARTITIONS=12 CONVEYOR_REPLICATOR_KEYS=2000.
const size = {
  events: Number(process.env.CONVEYOR_REPLICATOR_EVENTS ?? 12_000),
  partitions: Number(process.env.CONVEYOR_REPLICATOR_PARTITIONS ?? 6),
  keys: Number(process.env.CONVEYOR_REPLICATOR_KEYS ?? 400)
}

test('killed with SIGKILL three times and scaled 1 → 3 → 1 while 5% of the sink’s transactions fail, the replicator applies every event exactly once, in partition order, and the state equals a serial replay', async (t) => {
  const count = size.events
  const keys = size.keys
  const run = await setUp(t, { partitions: size.partitions, failRate: 0.05, sessionTimeout: 6_000 })
  await produce(t, run.topic, count, keys)
  const until = (share: number) =>
    waitFor(async () => (await run.applied()) >= count * share, {
      timeout: Math.max(120_000, count * 10),
      interval: 50,
      description: `${share * 100}% applied`
    })
  const kill = async (worker: Awaited<ReturnType<typeof run.start>>) => {
    worker.child.kill('SIGKILL')
    await worker.exited
  }
  const workers = [await run.start()]
  await until(0.15)
  await kill(workers[0]!)
  workers[0] = await run.start()
  await until(0.3)
  workers.push(await run.start(), await run.start()) // 1 → 3
  await until(0.45)
  await kill(workers[1]!)
  workers[1] = await run.start()
  await until(0.6)
  for (const worker of workers.splice(1)) {
    // 3 → 1: a stop is clean (exit 0).
    worker.child.kill('SIGTERM')
    assert.deepEqual(await worker.exited, { code: 0, signal: null })
  }
  await until(0.7)
  await kill(workers[0]!)
  workers[0] = await run.start()
  await until(1)
  await new Promise((resolve) => setTimeout(resolve, 1_000)) // anything applied twice would show by now
  await assertExactlyOnce(run.pool, run.ledger, run.state, count, keys)
})

test('a member frozen with SIGSTOP past its session timeout loses its partitions; woken with SIGCONT, its writes are refused by the fence and nothing is applied twice', async (t) => {
  const count = 8_000
  const keys = 300
  const run = await setUp(t, {
    partitions: 6,
    failRate: 0,
    sessionTimeout: 6_000,
    idleInTransactionTimeout: 2_000
  })
  await produce(t, run.topic, count, keys)
  const zombie = await run.start()
  await waitFor(async () => (await run.applied()) >= count * 0.2, {
    timeout: 60_000,
    description: '20% applied'
  })
  zombie.child.kill('SIGSTOP') // most likely inside a write: holding a partition's row lock
  const frozenAt = await run.applied()
  const successor = await run.start() // owns partitions once the zombie's session expired
  await waitFor(async () => (await run.applied()) >= frozenAt + 500, {
    timeout: 60_000,
    description: 'the successor applying'
  })
  zombie.child.kill('SIGCONT')
  await waitFor(async () => (await run.applied()) >= count, {
    timeout: 120_000,
    description: 'every event applied'
  })
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  await assertExactlyOnce(run.pool, run.ledger, run.state, count, keys)
  assert.match(zombie.output(), /fenced/, 'the woken member’s writes met the fence')
  assert.ok(successor.output().includes('running'))
})

test('SIGTERM while an event waits for its retry ends the process with 0 at once; started again, it applies every event once, the failed one included', async (t) => {
  const count = 600
  const keys = 60
  const run = await setUp(t, { partitions: 3, failRate: 0, sessionTimeout: 6_000 })
  await produce(t, run.topic, count, keys)
  const failing = await run.start({ failAt: { partition: 0, offset: '10' }, retryDelay: 60_000 })
  // Partitions 1 and 2 finish; partition 0 stops at offset 10, waiting a minute for its retry.
  let before = -1
  await waitFor(
    async () => {
      const { rows } = await run.pool.query(`SELECT count(*) AS n FROM ${run.ledger} WHERE partition = 0`)
      const now = await run.applied()
      const settled = Number(rows[0].n) === 10 && now === before
      before = now
      return settled
    },
    { timeout: 60_000, interval: 1_000, description: 'partition 0 waiting at offset 10, the others applied' }
  )
  const stopping = performance.now()
  failing.child.kill('SIGTERM')
  assert.deepEqual(await failing.exited, { code: 0, signal: null })
  assert.ok(performance.now() - stopping < 5_000, 'within the drain timeout: the retry wait ended at once')

  await run.start()
  await waitFor(async () => (await run.applied()) >= count, { timeout: 60_000, description: 'every event' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  await assertExactlyOnce(run.pool, run.ledger, run.state, count, keys)
})
