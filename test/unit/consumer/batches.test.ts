/**
 * Batch routes alone: a run of one lane's records through `Processor.handleRun`, with a
 * publisher that records dead letters instead of a broker. What a user of `handleBatch`
 * relies on: batches of consecutive messages of one route, in order, up to `maxSize`;
 * a failing batch narrowed down to the failing message, so its neighbours are processed
 * and only it is retried or dead-lettered.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { jsonCodec } from '../../../src/codec/json.ts'
import type { Outcome } from '../../../src/consumer/partition.ts'
import { newPartitionState } from '../../../src/consumer/partition.ts'
import { Processor } from '../../../src/consumer/processor.ts'
import { BatchError, ConveyorError, ErrorCodes, NonRetryableError } from '../../../src/core/errors.ts'
import type { Message } from '../../../src/core/message.ts'
import { DeadLetterHeaders } from '../../../src/dead-letter/record.ts'
import { bounded, forever } from '../../../src/retry/policy.ts'
import { compileRoutes, type Routes } from '../../../src/routing/routes.ts'
import type { InboundRecord, OutboundRecord } from '../../../src/transport/types.ts'

const quick = { initialDelay: 1, maxDelay: 1, jitter: false }

function records(values: Array<string | object>): InboundRecord[] {
  return values.map((value, offset) => ({
    topic: 'reports',
    partition: 0,
    offset: BigInt(offset),
    key: null,
    value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
    headers: new Map(),
    timestamp: 0
  }))
}

/** `n` reports of type `report` with ids 0…n-1. */
function reports(n: number): Array<object> {
  return Array.from({ length: n }, (_, id) => ({ message_type: 'report', id }))
}

function setup(routes: Routes, codec = jsonCodec) {
  const stopping = new AbortController()
  const state = newPartitionState(
    { topic: 'reports', partition: 0 },
    stopping.signal,
    new AbortController().signal
  )
  const dead: OutboundRecord[] = []
  const processor = new Processor({
    groupId: 'g',
    routes: compileRoutes(routes, 'routes', []),
    codec,
    typeFrom: { field: 'message_type' },
    unknownType: 'dead-letter',
    deadLetterTopic: (topic) => `${topic}.dlq`,
    publisher: () => ({
      send: async (sent) => {
        dead.push(...sent)
        return []
      },
      close: async () => {}
    }),
    stopping: stopping.signal,
    blocked: () => {}
  })
  /** Runs the records; resolves to each one's outcome, in the order they were settled. */
  const run = async (input: InboundRecord[], held: () => Promise<void> | undefined = () => undefined) => {
    const settled: Array<[number, Outcome]> = []
    await processor.handleRun(input, state, {
      start: () => {},
      settle: (index, outcome) => void settled.push([index, outcome]),
      held
    })
    return settled
  }
  const deadIds = () => dead.map((r) => JSON.parse(String(r.value)).id as number)
  const reason = (i: number) =>
    (dead[i]!.headers as Map<string, Buffer>).get(DeadLetterHeaders.reason)?.toString()
  return { run, state, stopping, dead, deadIds, reason }
}

const ids = (batch: readonly Message[]) => batch.map((m) => (m.value as { id: number }).id)

test('a batch route gets consecutive messages in offset order, at most maxSize at a time, all processed', async () => {
  const batches: number[][] = []
  const { run } = setup({
    report: { batch: { maxSize: 4 }, handleBatch: (batch) => void batches.push(ids(batch)) }
  })
  const settled = await run(records(reports(10)))
  assert.deepEqual(batches, [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
    [8, 9]
  ])
  assert.deepEqual(
    settled,
    Array.from({ length: 10 }, (_, i) => [i, 'processed'])
  )
})

test('a message of another route or one that cannot be decoded ends the batch and is handled in its turn', async () => {
  const seen: string[] = []
  const { run, dead } = setup({
    report: { handleBatch: (batch) => void seen.push(`batch ${ids(batch).join(',')}`) },
    ping: { handler: (m) => void seen.push(`ping ${(m.value as { id: number }).id}`) }
  })
  const settled = await run(
    records([...reports(2), { message_type: 'ping', id: 2 }, ...reports(2), 'not json', ...reports(1)])
  )
  assert.deepEqual(seen, ['batch 0,1', 'ping 2', 'batch 0,1', 'batch 0'])
  assert.equal(dead.length, 1, 'the undecodable record is dead-lettered')
  assert.deepEqual(
    settled.map(([i]) => i),
    [0, 1, 2, 3, 4, 5, 6],
    'settled in offset order'
  )
  assert.equal(settled[5]![1], 'dead-lettered')
})

test('a BatchError naming message 3 processes 0–2, retries 3 alone by the policy, then batches the rest again', async () => {
  const calls: number[][] = []
  let failures = 0
  const { run } = setup({
    report: {
      retry: bounded({ retries: 5, ...quick }),
      handleBatch: (batch) => {
        calls.push(ids(batch))
        const at = batch.findIndex((m) => (m.value as { id: number }).id === 3)
        if (at >= 0 && failures++ < 2) throw new BatchError(at, new Error('sink refused report 3'))
      }
    }
  })
  const settled = await run(records(reports(8)))
  assert.deepEqual(calls, [
    [0, 1, 2, 3, 4, 5, 6, 7],
    [3], // the retry of the failing message alone, attempt 2: fails again
    [3], // attempt 3: succeeds
    [4, 5, 6, 7]
  ])
  assert.deepEqual(
    settled.map(([, outcome]) => outcome),
    Array(8).fill('processed')
  )
  assert.deepEqual(
    settled.slice(0, 3).map(([i]) => i),
    [0, 1, 2],
    'the messages before the failing one are settled before its retries'
  )
})

test('a poison message in a batch of 100 dead-letters only itself: with split, its 99 neighbours are processed', async () => {
  const processed = new Set<number>()
  let calls = 0
  const { run, deadIds, reason } = setup({
    report: {
      retry: bounded({ retries: 2, ...quick }),
      handleBatch: (batch) => {
        calls++
        if (ids(batch).includes(42)) throw new Error('report 42 is poison')
        for (const id of ids(batch)) processed.add(id)
      }
    }
  })
  const settled = await run(records(reports(100)))
  assert.deepEqual(deadIds(), [42])
  assert.equal(reason(0), 'retries_exhausted')
  assert.equal(processed.size, 99)
  assert.ok(calls <= 20, `found by halving, in ${calls} calls (one at a time would take 43 or more)`)
  assert.equal(settled.filter(([, outcome]) => outcome === 'processed').length, 99)
})

test('a batch that failed once for a passing reason is handled in two halves, none dead-lettered', async () => {
  let failed = false
  const calls: number[] = []
  const { run, dead } = setup({
    report: {
      handleBatch: (batch) => {
        calls.push(batch.length)
        if (!failed) {
          failed = true
          throw new Error('connection reset')
        }
      }
    }
  })
  const settled = await run(records(reports(5)))
  assert.deepEqual(calls, [5, 3, 2])
  assert.equal(dead.length, 0)
  assert.equal(settled.length, 5)
})

test('without split, a failing batch is retried whole by the policy and then every message of it is dead-lettered', async () => {
  const calls: Array<{ ids: number[]; attempt: number }> = []
  const { run, deadIds, reason } = setup({
    report: {
      batch: { maxSize: 3, split: false },
      retry: bounded({ retries: 2, ...quick }),
      handleBatch: (batch) => {
        calls.push({ ids: ids(batch), attempt: batch[0]!.attempt })
        if (ids(batch).includes(1)) throw new Error('bulk insert failed')
      }
    }
  })
  const settled = await run(records(reports(4)))
  assert.deepEqual(calls, [
    { ids: [0, 1, 2], attempt: 1 },
    { ids: [0, 1, 2], attempt: 2 },
    { ids: [0, 1, 2], attempt: 3 },
    { ids: [3], attempt: 1 }
  ])
  assert.deepEqual(deadIds(), [0, 1, 2])
  assert.equal(reason(0), 'retries_exhausted')
  assert.deepEqual(
    settled.map(([, outcome]) => outcome),
    ['dead-lettered', 'dead-lettered', 'dead-lettered', 'processed']
  )
})

test('a BatchError whose cause is non-retryable dead-letters that message at once with the cause as the reason', async () => {
  const { run, deadIds, reason } = setup({
    report: {
      retry: forever(quick),
      handleBatch: (batch) => {
        const at = ids(batch).indexOf(2)
        if (at >= 0)
          throw new BatchError(at, new NonRetryableError('report 2 has no owner', { reason: 'no_owner' }))
      }
    }
  })
  const settled = await run(records(reports(4)))
  assert.deepEqual(deadIds(), [2])
  assert.equal(reason(0), 'no_owner')
  assert.deepEqual(
    settled.map(([, outcome]) => outcome),
    ['processed', 'processed', 'dead-lettered', 'processed']
  )
})

test('a partition lost while a batch message waits for its retry abandons it and the rest of the run', async () => {
  const { run, state } = setup({
    report: {
      retry: forever({ initialDelay: 60_000, maxDelay: 60_000, jitter: false }),
      handleBatch: (batch) => {
        const at = ids(batch).indexOf(1)
        if (at >= 0) throw new BatchError(at, new Error('sink down'))
      }
    }
  })
  const running = run(records(reports(4)))
  await new Promise((resolve) => setTimeout(resolve, 20))
  state.revoked = true
  state.revocation.abort()
  const settled = await running
  assert.deepEqual(settled, [
    [0, 'processed'],
    [1, 'abandoned'],
    [2, 'abandoned'],
    [3, 'abandoned']
  ])
})

test('a route with both handler and handleBatch, or batch options out of range, is refused naming the field', () => {
  const handler = () => {}
  assert.throws(
    () => compileRoutes({ report: { handler, handleBatch: handler } as never }),
    /routes > report > handler: a route has a handler or a handleBatch, not both/
  )
  assert.throws(
    () => compileRoutes({ report: { handleBatch: handler, batch: { maxSize: 0 } } }),
    /routes > report > batch.maxSize: must be an integer > 0/
  )
  assert.throws(
    () => compileRoutes({ report: { handleBatch: handler, batch: { maxWait: -1 } } }),
    /batch.maxWait: must be a number of ms ≥ 0/
  )
})

test('during a hold (a rebalance) a run starts no further batch until the hold ends', async () => {
  const calls: number[][] = []
  const { run } = setup({
    report: {
      batch: { maxSize: 2 },
      handleBatch: (batch) => void calls.push(ids(batch))
    }
  })
  let hold: PromiseWithResolvers<void> | undefined
  const running = run(records(reports(6)), () => hold?.promise)
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(
    calls,
    [
      [0, 1],
      [2, 3],
      [4, 5]
    ],
    'without a hold the run goes through'
  )
  await running

  calls.length = 0
  hold = Promise.withResolvers()
  const heldRun = run(records(reports(4)), () => hold?.promise)
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.deepEqual(calls, [], 'nothing starts while the hold is in force')
  const ended = hold
  hold = undefined
  ended.resolve()
  const settled = await heldRun
  assert.deepEqual(calls, [
    [0, 1],
    [2, 3]
  ])
  assert.equal(settled.length, 4)
})

test('a batch that times out is not halved beside the call that may still run: the policy waits, then the batch is tried whole', async () => {
  const calls: number[][] = []
  let slow = true
  const { run, dead } = setup({
    report: {
      timeout: 20,
      retry: bounded({ retries: 3, initialDelay: 30, maxDelay: 30, jitter: false }),
      handleBatch: async (batch) => {
        calls.push(ids(batch))
        if (slow) {
          slow = false
          await new Promise((resolve) => setTimeout(resolve, 200))
        }
      }
    }
  })
  const settled = await run(records(reports(4)))
  assert.deepEqual(calls, [
    [0, 1, 2, 3],
    [0, 1, 2, 3]
  ])
  assert.equal(dead.length, 0)
  assert.deepEqual(
    settled.map(([, outcome]) => outcome),
    Array(4).fill('processed')
  )
})

test('a record whose decode must wait (the registry is down) ends the batch before it instead of holding the batch back', async () => {
  let registryUp = false
  const codec = {
    name: 'flaky',
    decode: (bytes: Buffer | null) => {
      const value = JSON.parse(String(bytes)) as { id: number }
      if (value.id === 3 && !registryUp)
        throw new ConveyorError(ErrorCodes.REGISTRY, 'the registry is unreachable', { retryable: true })
      return value
    },
    encode: () => Buffer.alloc(0)
  }
  const calls: number[][] = []
  const { run } = setup({ report: { handleBatch: (batch) => void calls.push(ids(batch)) } }, codec)
  const running = run(records(reports(6)))
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(calls, [[0, 1, 2]], 'the three before it handled while it waits')
  registryUp = true
  await running
  assert.deepEqual(calls, [
    [0, 1, 2],
    [3, 4, 5]
  ])
})
