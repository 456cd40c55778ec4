/**
 * The failure path alone: retries as the route's policy says, the retry wait as `status()`
 * shows it, dead letters acknowledged before they count, and abandonment when the
 * consumer stops or loses the partition.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DeliveredMessage } from '../../../src/consumer/delivered-message.ts'
import { FailurePath } from '../../../src/consumer/failures.ts'
import { newPartitionState, type PartitionState } from '../../../src/consumer/partition.ts'
import { DeadLetterHeaders } from '../../../src/dead-letter/record.ts'
import { bounded, forever } from '../../../src/retry/policy.ts'
import type { CompiledRoute } from '../../../src/routing/routes.ts'
import type { InboundRecord, OutboundRecord } from '../../../src/transport/types.ts'
import { waitFor } from '../../../src/util/wait.ts'

const record: InboundRecord = {
  topic: 'orders',
  partition: 0,
  offset: 7n,
  key: Buffer.from('k'),
  value: Buffer.from('{"message_type":"w"}'),
  headers: new Map(),
  timestamp: 0
}

function setup({ handler = async () => {}, sendFails = 0 } = {}) {
  const stopping = new AbortController()
  const state = newPartitionState(
    { topic: 'orders', partition: 0 },
    stopping.signal,
    new AbortController().signal
  )
  const sent: OutboundRecord[] = []
  const outcomes: string[] = []
  const blocked: PartitionState[] = []
  let failSends = sendFails
  const calls: number[] = []
  const failures = new FailurePath({
    groupId: 'g',
    write: async (_state, _record, dlq) => {
      if (failSends-- > 0) throw new Error('broker unreachable')
      sent.push(dlq)
    },
    deadLetterTopic: (topic) => `${topic}.dlq`,
    call: async (_route, message) => {
      calls.push(message.attempt)
      await handler()
    },
    context: (s) => ({ signal: s.handlerSignal, groupId: 'g' }),
    handled: (_record, _message, outcome) => {
      outcomes.push(outcome)
      return outcome
    },
    blocked: (s) => void blocked.push(s)
  })
  const route = (retry: CompiledRoute['retry']): CompiledRoute => ({
    type: 'w',
    handler: async () => {},
    retry,
    deadLetterTopic: undefined
  })
  const message = new DeliveredMessage(record, 'w', {}, 1)
  return { failures, state, stopping, sent, outcomes, blocked, calls, route, message }
}

test('a failed message is retried as its policy says, then dead-lettered with the reason and the attempts', async () => {
  const { failures, state, sent, calls, route, message, blocked } = setup({
    handler: async () => {
      throw new Error('API down')
    }
  })
  const outcome = await failures.retry(
    record,
    state,
    route(bounded({ retries: 2, initialDelay: 1, jitter: false })),
    message,
    0,
    {
      error: new Error('API down'),
      attempt: 1
    }
  )
  assert.equal(outcome, 'dead-lettered')
  assert.deepEqual(calls, [2, 3], 'two retries after the first attempt')
  assert.equal(sent.length, 1)
  assert.equal(sent[0]!.topic, 'orders.dlq')
  const headers = sent[0]!.headers as Map<string, Buffer>
  assert.equal(headers.get(DeadLetterHeaders.attempts)?.toString(), '3')
  assert.equal(blocked.length, 2, 'each wait tells flow control the partition is blocked')
  assert.equal(state.retrying, 0)
})

test('a retry that succeeds ends as processed, and the wait is listed while it lasts', async () => {
  let failing = true
  const { failures, state, route, message } = setup({
    handler: async () => {
      if (failing) throw new Error('not yet')
    }
  })
  const done = failures.retry(
    record,
    state,
    route(forever({ initialDelay: 50, jitter: false })),
    message,
    0,
    {
      error: new Error('first'),
      attempt: 1
    }
  )
  const wait = await waitFor(() => [...state.retryWaits][0])
  assert.equal(wait.offset, 7n)
  assert.equal(wait.attempt, 1)
  assert.equal(wait.error, 'first')
  failing = false
  assert.equal(await done, 'processed')
  assert.equal(state.retryWaits.size, 0)
})

test('stopping during a retry wait abandons the message at once, without another attempt', async () => {
  const { failures, state, stopping, route, message, calls } = setup()
  const done = failures.retry(record, state, route(forever({ initialDelay: 60_000 })), message, 0, {
    error: new Error('x'),
    attempt: 1
  })
  await waitFor(() => state.retrying === 1)
  stopping.abort()
  assert.equal(await done, 'abandoned')
  assert.deepEqual(calls, [])
})

test('a dead letter counts only once the broker acknowledged it; a failed write is tried again', async () => {
  const { failures, state, sent } = setup({ sendFails: 1 })
  const outcome = await failures.deadLetter(record, state, {
    topic: 'orders.dlq',
    reason: 'invalid_json',
    error: new Error('bad'),
    attempts: 1,
    firstFailure: new Date()
  })
  assert.equal(outcome, 'dead-lettered')
  assert.equal(sent.length, 1)
  assert.deepEqual(sent[0]!.value, record.value, 'the bytes are untouched')
})

test('a dead letter not yet written when the partition is revoked is abandoned, to be read again', async () => {
  const { failures, state, sent } = setup({ sendFails: 1_000 })
  const done = failures.deadLetter(record, state, {
    topic: 'orders.dlq',
    reason: 'invalid_json',
    error: new Error('bad'),
    attempts: 1,
    firstFailure: new Date()
  })
  state.revoked = true
  state.revocation.abort()
  assert.equal(await done, 'abandoned')
  assert.equal(sent.length, 0)
})

test('every dead letter carries the failure’s identity: the same for each copy of one source record', async () => {
  const ids: string[] = []
  for (let copy = 0; copy < 2; copy++) {
    const { failures, state, sent } = setup()
    await failures.deadLetter(record, state, {
      topic: 'orders.dlq',
      reason: 'retries_exhausted',
      error: new Error('down'),
      attempts: copy + 3,
      firstFailure: new Date()
    })
    ids.push((sent[0]!.headers as Map<string, Buffer>).get(DeadLetterHeaders.id)!.toString())
  }
  assert.deepEqual(ids, ['g/orders/0/7', 'g/orders/0/7'])
})
