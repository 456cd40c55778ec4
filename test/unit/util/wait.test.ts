import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { waitFor } from '../../../src/util/wait.ts'

test('waitFor resolves with the first value the condition returns', async () => {
  let calls = 0
  const value = await waitFor(() => (++calls === 3 ? { ready: calls } : undefined), { interval: 1 })
  assert.deepEqual(value, { ready: 3 })
})

test('waitFor gives up after its timeout with a TIMEOUT error naming the condition and the last failure', async () => {
  const failure = new Error('not yet')
  await assert.rejects(
    waitFor(
      () => {
        throw failure
      },
      { timeout: 30, interval: 5, description: 'the broker' }
    ),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCodes.TIMEOUT)
      assert.match(error.message, /waiting for the broker/)
      assert.equal(error.cause, failure)
      return true
    }
  )
})

test('waitFor stops when its signal aborts', async () => {
  const controller = new AbortController()
  const waiting = waitFor(() => false, { timeout: 10_000, interval: 5, signal: controller.signal })
  controller.abort()
  await assert.rejects(waiting, { name: 'AbortError' })
})
