import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { bounded } from '../../../src/retry/policy.ts'
import { compileRoutes, readType } from '../../../src/routing/routes.ts'

const handler = () => {}

test('a bad route fails at start-up with the path of the bad field', () => {
  assert.throws(() => compileRoutes({ update_status: { handler, retry: { ...bounded(), retries: -1 } } }), {
    code: ErrorCodes.INVALID_OPTION,
    path: 'routes > update_status > retry.retries'
  })
  assert.throws(() => compileRoutes({ update_status: { handler: 'nope' as never } }), {
    path: 'routes > update_status > handler'
  })
  assert.throws(() => compileRoutes({ a: { handler, deadLetterTopic: 'bad topic!' } }), {
    path: 'routes > a > deadLetterTopic'
  })
  assert.throws(() => compileRoutes({}), { path: 'routes' })
})

test('the compiled route table is frozen', () => {
  const table = compileRoutes({ a: { handler } })
  const route = table.get('a')!
  assert.ok(Object.isFrozen(route))
  assert.equal(route.retry.kind, 'bounded', 'bounded retries by default')
})

test('the message type comes from a payload field, a header or a function', () => {
  const headers = new Map([['ce_type', Buffer.from('from_header')]])
  const value = { message_type: 'from_field' }
  assert.equal(readType({ field: 'message_type' }, value, headers), 'from_field')
  assert.equal(readType({ header: 'ce_type' }, value, headers), 'from_header')
  assert.equal(
    readType(({ value }) => `fn_${(value as { message_type: string }).message_type}`, value, headers),
    'fn_from_field'
  )
  assert.equal(
    readType({ field: 'message_type' }, { message_type: 42 }, headers),
    undefined,
    'a non-string type is no type'
  )
})
