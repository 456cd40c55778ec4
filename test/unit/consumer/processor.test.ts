/**
 * Processing alone: one record in, one outcome out — decode, route, handler — with a
 * publisher that records dead letters instead of a broker.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Codec } from '../../../src/codec/json.ts'
import { jsonCodec } from '../../../src/codec/json.ts'
import { newPartitionState } from '../../../src/consumer/partition.ts'
import { Processor } from '../../../src/consumer/processor.ts'
import { ConveyorError, ErrorCodes, NonRetryableError } from '../../../src/core/errors.ts'
import type { Message } from '../../../src/core/message.ts'
import { DeadLetterHeaders } from '../../../src/dead-letter/record.ts'
import { compileRoutes, type Routes } from '../../../src/routing/routes.ts'
import type { InboundRecord, OutboundRecord } from '../../../src/transport/types.ts'

function record(value: string | null, offset = 0n): InboundRecord {
  return {
    topic: 'orders',
    partition: 0,
    offset,
    key: null,
    value: value === null ? null : Buffer.from(value),
    headers: new Map(),
    timestamp: 0
  }
}

function setup(
  routes: Routes,
  { codec = jsonCodec, unknownType = 'dead-letter' as 'dead-letter' | 'ignore' } = {}
) {
  const stopping = new AbortController()
  const state = newPartitionState(
    { topic: 'orders', partition: 0 },
    stopping.signal,
    new AbortController().signal
  )
  const dead: OutboundRecord[] = []
  const processor = new Processor({
    groupId: 'g',
    routes: compileRoutes(routes, 'routes', []),
    codec,
    typeFrom: { field: 'message_type' },
    unknownType,
    deadLetterTopic: (topic) => `${topic}.dlq`,
    publisher: () => ({
      send: async (records) => {
        dead.push(...records)
        return []
      },
      close: async () => {}
    }),
    stopping: stopping.signal,
    blocked: () => {}
  })
  const reason = (i = 0) =>
    (dead[i]!.headers as Map<string, Buffer>).get(DeadLetterHeaders.reason)?.toString()
  return { processor, state, stopping, dead, reason }
}

test('a known type with a synchronous handler is processed without a promise, the handler seeing type and value', () => {
  const seen: Message[] = []
  const { processor, state } = setup({ placed: { handler: (m) => void seen.push(m) } })
  const outcome = processor.handle(record('{"message_type":"placed","id":1}'), state)
  assert.equal(outcome, 'processed')
  assert.equal(seen[0]!.type, 'placed')
  assert.deepEqual(seen[0]!.value, { message_type: 'placed', id: 1 })
  assert.equal(seen[0]!.attempt, 1)
})

test('an asynchronous handler resolves to processed', async () => {
  const { processor, state } = setup({ placed: { handler: async () => {} } })
  assert.equal(await processor.handle(record('{"message_type":"placed"}'), state), 'processed')
})

test('a value that is not JSON is dead-lettered as invalid_json without calling a handler', async () => {
  let called = false
  const { processor, state, dead, reason } = setup({
    placed: {
      handler: () => {
        called = true
      }
    }
  })
  assert.equal(await processor.handle(record('{not json'), state), 'dead-lettered')
  assert.equal(called, false)
  assert.equal(dead[0]!.topic, 'orders.dlq')
  assert.equal(reason(), 'invalid_json')
})

test('a type no route handles is dead-lettered naming the known types, or ignored when the consumer says so', async () => {
  const routes = { placed: { handler: () => {} } }
  const dl = setup(routes)
  assert.equal(await dl.processor.handle(record('{"message_type":"cancelled"}'), dl.state), 'dead-lettered')
  assert.equal(dl.reason(), 'unknown_message_type')
  const message = (dl.dead[0]!.headers as Map<string, Buffer>).get(DeadLetterHeaders.errorMessage)?.toString()
  assert.match(message ?? '', /"cancelled".*known: placed/)
  const ignoring = setup(routes, { unknownType: 'ignore' })
  assert.equal(
    await ignoring.processor.handle(record('{"message_type":"cancelled"}'), ignoring.state),
    'ignored'
  )
  assert.equal(ignoring.dead.length, 0)
})

test('a handler that throws a NonRetryableError goes to the failure path and ends in the DLQ', async () => {
  const { processor, state, reason } = setup({
    placed: {
      handler: () => {
        throw new NonRetryableError('no such order', { reason: 'order_not_found' })
      }
    }
  })
  assert.equal(await processor.handle(record('{"message_type":"placed"}'), state), 'dead-lettered')
  assert.equal(reason(), 'order_not_found')
})

test('a decode failure that is retryable (registry down) waits and decodes again instead of dead-lettering', async () => {
  let calls = 0
  const flaky: Codec = {
    ...jsonCodec,
    decode: (value) => {
      if (++calls < 3) throw new ConveyorError(ErrorCodes.REGISTRY, 'registry down', { retryable: true })
      return jsonCodec.decode(value, { topic: 'orders', headers: new Map() })
    }
  }
  const { processor, state, dead } = setup({ placed: { handler: () => {} } }, { codec: flaky })
  assert.equal(await processor.handle(record('{"message_type":"placed"}'), state), 'processed')
  assert.equal(calls, 3)
  assert.equal(dead.length, 0)
})

test('a record of a revoked partition is abandoned without calling its handler', () => {
  let called = false
  const { processor, state } = setup({
    placed: {
      handler: () => {
        called = true
      }
    }
  })
  state.revoked = true
  assert.equal(processor.handle(record('{"message_type":"placed"}'), state), 'abandoned')
  assert.equal(called, false)
})
