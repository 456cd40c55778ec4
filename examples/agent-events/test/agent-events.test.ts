/**
 * The compliance system's events against a real broker's SASL_SSL listener (SCRAM, TLS with
 * the cluster's CA): credentials, keys and partitions, dispatch by `eventType`, and commits
 * that wait for the handler.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { type KafkaTransport, verifyConnection, waitFor } from '@conveyorjs/conveyor'
import { connectionFromEnv, transportFromEnv } from '../src/connection.ts'
import { agentProducer, auditHour, auditProducer, reportProducer, topics } from '../src/events.ts'
import { createAgentMonitor } from '../src/monitor.ts'

let transport: KafkaTransport
const stops: Array<() => Promise<void>> = []

before(async () => {
  transport = transportFromEnv('compliance-test')
  await transport.ensureTopics(Object.values(topics).map((topic) => ({ topic, partitions: 6 })))
})

after(async () => {
  for (const stop of stops.reverse()) await stop()
  await transport.close()
})

test('the cluster is reached with SCRAM over TLS; a wrong password is refused at once with one clear error', async () => {
  const brokers = await verifyConnection(connectionFromEnv('compliance-check'), { timeout: 15_000 })
  assert.ok(brokers.length >= 1)
  const started = Date.now()
  const refused = connectionFromEnv('compliance-check')
  refused.sasl = { ...refused.sasl!, password: 'not-the-password' }
  await assert.rejects(verifyConnection(refused, { timeout: 15_000 }), {
    code: 'CONVEYOR_KAFKA_AUTHENTICATION'
  })
  assert.ok(Date.now() - started < 10_000, 'refused at once, not retried until the timeout')
})

test("each producer keys by its rule: an agent's events, an organisation's reports, an hour's audit trail each on one partition", async () => {
  const agents = agentProducer(transport)
  const reports = reportProducer(transport)
  const audit = auditProducer(transport)
  stops.push(
    () => agents.close(),
    () => reports.close(),
    () => audit.close()
  )
  const partitionsByKey = new Map<string, Set<number>>()
  const note = (key: string, partition: number) => {
    const set = partitionsByKey.get(key) ?? new Set()
    set.add(partition)
    partitionsByKey.set(key, set)
  }
  const run = randomUUID().slice(0, 8)
  for (let round = 0; round < 4; round++)
    for (let a = 0; a < 5; a++) {
      const agentId = `agent-${run}-${a}`
      const at = new Date().toISOString()
      note(
        agentId,
        (await agents.send('agent_heartbeat', { agentId, status: 'healthy', at }, { key: agentId })).partition
      )
      const task = { agentId, taskId: `t-${round}`, outcome: 'passed' as const, at }
      note(agentId, (await agents.send('task_completed', task, { key: agentId })).partition)
    }
  for (const organisationId of [`org-${run}-1`, `org-${run}-2`, `org-${run}-3`])
    for (let r = 0; r < 3; r++) {
      const report = { organisationId, reportId: `r-${r}`, framework: 'ISO 27001', score: 0.9 }
      note(
        organisationId,
        (await reports.send('compliance_report_submitted', report, { key: organisationId })).partition
      )
    }
  for (const at of ['2026-12-02T15:01:00Z', '2026-12-02T15:59:00Z', '2026-12-02T16:00:00Z']) {
    const hour = auditHour(at)
    note(
      `hour-${hour}`,
      (await audit.send('audit_logged', { actor: 'auditor', action: 'export', at }, { key: hour })).partition
    )
  }
  assert.deepEqual(
    [...partitionsByKey.keys()].filter((key) => key.startsWith('hour-')),
    ['hour-2026-12-02T15', 'hour-2026-12-02T16']
  )
  for (const [key, partitions] of partitionsByKey)
    assert.equal(partitions.size, 1, `${key} stays on one partition`)
})

test("the monitor dispatches by eventType and commits an offset only once its event's handler has finished", async () => {
  const agents = agentProducer(transport)
  stops.push(() => agents.close())
  const agentId = `gated-${randomUUID()}`
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  const { consumer, state } = createAgentMonitor({
    transport,
    groupId: `monitor-${randomUUID()}`,
    recordTask: async (task) => {
      if (task.agentId === agentId && task.taskId === 'slow') await gate
    }
  })
  await consumer.start()
  stops.push(() => consumer.stop())
  const at = new Date().toISOString()
  await agents.send('agent_heartbeat', { agentId, status: 'healthy', at }, { key: agentId })
  const slow = await agents.send(
    'task_completed',
    { agentId, taskId: 'slow', outcome: 'passed', at },
    { key: agentId }
  )
  const last = await agents.send('agent_heartbeat', { agentId, status: 'degraded', at }, { key: agentId })
  const committed = () => {
    const partition = consumer.status().partitions.find((p) => p.partition === slow.partition)
    return partition?.committed == null ? -1n : BigInt(partition.committed)
  }
  await waitFor(() => state.agents.get(agentId)?.status === 'healthy', {
    timeout: 30_000,
    description: 'the first heartbeat'
  })
  // The task's handler waits (its write is slow): the commit point stays at it, not past it.
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  assert.ok(
    committed() <= slow.offset,
    `committed ${committed()} ≤ ${slow.offset} while the task is being recorded`
  )
  assert.equal(state.agents.get(agentId)?.status, 'healthy', 'the next event of the agent waits its turn')
  release()
  await waitFor(() => committed() > last.offset, {
    timeout: 30_000,
    description: 'the commit past the last event'
  })
  assert.equal(state.agents.get(agentId)?.status, 'degraded')
  assert.ok(state.tasks.passed >= 1)
})
