import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConveyorError, ErrorCodes, NonRetryableError } from '../../../src/core/errors.ts'
import { backoff, bounded, decide, forever } from '../../../src/retry/policy.ts'

const noJitter = () => 1

test('the bounded defaults are 3 retries, 1 s initial, doubling, capped at 30 s', () => {
  const policy = bounded({ jitter: false })
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((a) => backoff(policy, a)),
    [1_000, 2_000, 4_000, 8_000, 16_000, 30_000]
  )
  assert.deepEqual(decide(policy, 3, new Error('x')), { action: 'retry', delay: 4_000 })
  assert.deepEqual(decide(policy, 4, new Error('x')), { action: 'dead-letter', reason: 'retries_exhausted' })
})

test('jitter spreads each delay over its upper half', () => {
  const policy = bounded()
  assert.equal(
    backoff(policy, 2, () => 0),
    1_000
  )
  assert.equal(backoff(policy, 2, noJitter), 2_000)
})

test('retry forever never dead-letters an ordinary failure and caps its delay at 5 minutes', () => {
  const policy = forever({ jitter: false })
  assert.deepEqual(decide(policy, 1_000, new Error('x')), { action: 'retry', delay: 300_000 })
})

test('a NonRetryableError goes to the DLQ at once under every policy, with its reason', () => {
  const error = new NonRetryableError('bad selector', { reason: 'selector_no_match' })
  for (const policy of [bounded(), forever()]) {
    assert.deepEqual(decide(policy, 1, error), { action: 'dead-letter', reason: 'selector_no_match' })
  }
  assert.deepEqual(decide(bounded(), 1, new NonRetryableError('x')), {
    action: 'dead-letter',
    reason: 'non_retryable'
  })
})

test('a retryable ConveyorError is retried, a non-retryable one is not', () => {
  const timeout = new ConveyorError(ErrorCodes.HANDLER_TIMEOUT, 'slow', { retryable: true })
  assert.equal(decide(bounded(), 1, timeout).action, 'retry')
  const invalid = new ConveyorError(ErrorCodes.INVALID_OPTION, 'no')
  assert.deepEqual(decide(bounded(), 1, invalid), { action: 'dead-letter', reason: 'invalid_option' })
})
