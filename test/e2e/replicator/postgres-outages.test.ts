/**
 * The replicator against PostgreSQL failing under it: sessions terminated in the middle of
 * their transactions, and the server unreachable for 20 s (a TCP proxy in front of the real
 * server, cut and restored). It waits, goes on, and applies every event once.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createReplicator } from '../../../src/replicator/replicator.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, uniqueName, useGroup, useProducer, useTopic, useTransport } from '../../helpers/kafka.ts'
import { byPartition, decodeChange, ledgerSink } from '../../helpers/ledger.ts'
import { pgConfig, usePool } from '../../helpers/postgres.ts'
import { useTcpProxy } from '../../helpers/tcp-proxy.ts'

async function produce(t: Parameters<typeof useProducer>[0], topic: string, count: number) {
  await useProducer(t).send({
    messages: Array.from({ length: count }, (_, i) => ({
      topic,
      key: `k${i % 31}`,
      value: JSON.stringify({ key: `k${i % 31}`, seq: i })
    }))
  })
}

function assertOnceInOrder(rows: Array<{ partition: number; offset: bigint }>, count: number): void {
  assert.equal(rows.length, count, 'every event applied, none twice')
  for (const [partition, offsets] of byPartition(rows))
    assert.deepEqual(
      offsets,
      offsets.map((_, i) => BigInt(i)),
      `partition ${partition}: each offset once, in order`
    )
}

test('sessions terminated in the middle of their transactions (pg_terminate_backend) fail those writes, which are retried: every event is applied once, in order', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const groupId = useGroup(t)
  const application = uniqueName('replicator').replaceAll('-', '_')
  const pool = usePool(t, { application_name: application })
  // Each transaction stays open a little, so a termination lands inside one.
  const { sink, applied } = await ledgerSink(t, groupId, { pool, extra: 'SELECT pg_sleep(0.003)' })
  const count = 1_500
  await produce(t, topic, count)
  const replicator = createReplicator({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    sink,
    decode: decodeChange,
    retry: { initialDelay: 50, maxDelay: 500 }
  })
  await replicator.start()
  cleanup(t, () => replicator.stop())
  const admin = usePool(t)
  let terminated = 0
  for (let round = 0; round < 6; round++) {
    await waitFor(async () => (await applied()).length >= ((round + 1) * count) / 8, {
      timeout: 60_000,
      description: `${round + 1}/8 applied`
    })
    const { rows } = await admin.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'`,
      [application]
    )
    terminated += rows.filter((r) => r.ok).length
  }
  assert.ok(terminated > 0, 'sessions were terminated while in a transaction')
  await waitFor(async () => (await applied()).length >= count, {
    timeout: 60_000,
    description: 'every event'
  })
  await sleep(500)
  assertOnceInOrder(await applied(), count)
})

test('with PostgreSQL unreachable for 20 s the replicator waits and retries, then goes on: nothing lost, nothing applied twice', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const groupId = useGroup(t)
  const config = pgConfig()
  const proxy = await useTcpProxy(t, { host: config.host ?? '127.0.0.1', port: config.port ?? 5432 })
  const pool = usePool(t, { host: '127.0.0.1', port: proxy.port, connectionTimeoutMillis: 1_000 })
  const { sink, applied } = await ledgerSink(t, groupId, { pool })
  const count = 900
  await produce(t, topic, count / 3)
  const replicator = createReplicator({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    sink,
    decode: decodeChange,
    retry: { initialDelay: 100, maxDelay: 2_000 }
  })
  await replicator.start()
  cleanup(t, () => replicator.stop())
  await waitFor(async () => (await applied()).length >= count / 3, {
    timeout: 60_000,
    description: 'a third'
  })

  proxy.cut()
  await produce(t, topic, (2 * count) / 3)
  await sleep(5_000)
  const waiting = replicator.status().partitions.filter((p) => p.retrying.length > 0).length
  assert.ok(waiting > 0, 'partitions wait in retries while the database is unreachable')
  await sleep(15_000)
  proxy.restore()
  await waitFor(async () => (await applied()).length >= count, {
    timeout: 60_000,
    description: 'every event'
  })
  await sleep(500)
  assertOnceInOrder(await applied(), count)
})
