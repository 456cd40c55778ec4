/**
 * The chaos run in CI (the full one is `npm run chaos`): 20 000 keyed messages with planted
 * failures, one SIGKILL, the group scaled 1 → 2 and one broker stopped, on a three-broker
 * cluster of its own. Hard assertions on what users rely on; the re-handled figures are the
 * full run's to report.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { defaultChaosOptions, runChaos } from '../../../chaos/scenario.ts'
import { type ClusterInfo, LocalKafka } from '../../../src/dev/kafka/index.ts'

const cluster = new LocalKafka({
  name: 'test-chaos',
  brokers: 3,
  port: Number(process.env.CONVEYOR_TEST_CHAOS_PORT ?? 29692),
  log: (line) => process.stderr.write(`[kafka test-chaos] ${line}\n`)
})
let info: ClusterInfo

before(async () => {
  await cluster.down({ purge: true })
  info = await cluster.up()
})

after(() => cluster.down({ purge: true }))

test('under a SIGKILL, a rebalance and a broker stop, no message is lost or reordered, the DLQ holds exactly the planted failures and nothing committed is handled again', async () => {
  const { report, crashes, timeline } = await runChaos(
    { ...defaultChaosOptions, messages: 20_000, kills: 1, scale: [1, 2], brokerStop: 10, timeout: 300_000 },
    { connection: { brokers: info.bootstrap, clientId: 'conveyor-chaos-test' }, cluster, brokers: 3 },
    (line) => process.stderr.write(`[chaos] ${line}\n`)
  )
  const context = `\n${timeline.join('\n')}`
  assert.deepEqual(crashes, [], `no worker ended by itself${context}`)
  assert.equal(report.killed, 1, `one worker was SIGKILLed${context}`)
  assert.ok(report.byCause.rebalance.handovers > 0, `partitions moved in a rebalance${context}`)
  assert.deepEqual(report.lost, [], 'every message handled or dead-lettered')
  assert.equal(report.reorders, 0, `per-key order (${report.reorderExamples.join('; ')})`)
  assert.deepEqual(report.dlq.missing, [], 'every planted permanent failure is in the DLQ')
  assert.deepEqual(report.dlq.unexpected, [], 'nothing else is')
  assert.equal(report.dlq.splitIdentities, 0, 'each failure has one dlq_id')
  assert.ok(report.dlq.planted > 0)
  assert.equal(report.rehandledDespiteCommit, 0, 'no message committed as finished is handled again')
  assert.equal(report.rehandledWithinOwnership, 0, 'no message is handled twice by one owner')
  assert.equal(report.handledUnowned, 0, 'no worker handles a partition it does not own')
  assert.ok(
    report.extraCalls <= report.uncommittedWindow,
    'what is handled again lies in the uncommitted windows'
  )
  assert.equal(report.commitRegressions, 0, 'no commit moves a partition back')
  assert.equal(report.committedAtEnd, report.partitions, 'the group ends committed at the log end')
})
