/** The replicator's metrics from the runtime's diagnostics events: retries, time spent retrying, fencing, and one group only. */
import assert from 'node:assert/strict'
import { channel } from 'node:diagnostics_channel'
import { test } from 'node:test'
import { Registry } from 'prom-client'
import { replicatorMetrics } from '../../../apps/replicator/metrics.ts'
import { Channels } from '../../../src/instrumentation/channels.ts'

test('retries count by reason and attempt, an event that succeeded after retries records the time it took, and fencing rejections count, for the replicator’s group only', async (t) => {
  const registry = new Registry()
  const stop = replicatorMetrics(registry, 'replica')
  t.after(stop)
  const record = { topic: 'events', partition: 0, offset: 7n, value: Buffer.from('{}') }
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  for (const attempt of [1, 2])
    channel(Channels.messageRetry).publish({
      groupId: 'replica',
      message: record,
      error: refused,
      attempt,
      delay: 10
    })
  channel(Channels.messageRetry).publish({
    groupId: 'other',
    message: record,
    error: refused,
    attempt: 1,
    delay: 10
  })
  assert.match(await registry.metrics(), /^conveyor_replicator_blocked_partitions 1$/m)
  channel(Channels.messageHandled).publish({
    groupId: 'replica',
    message: { ...record, type: 'event' },
    record,
    outcome: 'processed',
    attempts: 3,
    duration: 2_500
  })
  channel(Channels.error).publish({
    groupId: 'replica',
    error: new Error('fenced'),
    fatal: false,
    context: 'fenced'
  })
  const text = await registry.metrics()
  assert.match(
    text,
    /^conveyor_replicator_retry_attempts_total\{retry_reason="ECONNREFUSED",attempt_number="1"\} 1$/m
  )
  assert.match(
    text,
    /^conveyor_replicator_retry_attempts_total\{retry_reason="ECONNREFUSED",attempt_number="2"\} 1$/m
  )
  assert.match(
    text,
    /^conveyor_replicator_message_retry_duration_seconds_sum\{retry_reason="ECONNREFUSED"\} 2\.5$/m
  )
  assert.match(
    text,
    /^conveyor_replicator_messages_processed_total\{message_type="relations",status="success"\} 1$/m
  )
  assert.match(text, /^conveyor_replicator_fencing_rejections_total 1$/m)
  assert.match(
    text,
    /^conveyor_replicator_blocked_partitions 0$/m,
    'the partition goes on once its event succeeded'
  )
})
