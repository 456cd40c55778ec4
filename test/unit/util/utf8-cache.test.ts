import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Utf8Cache } from '../../../src/util/utf8-cache.ts'

test('a repeated string gets the same bytes back, and they are its UTF-8', () => {
  const cache = new Utf8Cache()
  const first = cache.bytes('ce_type')
  assert.equal(cache.bytes('ce_type'), first)
  assert.deepEqual(cache.bytes('grüße'), Buffer.from('grüße', 'utf8'))
})

test('past its limit the cache starts afresh instead of growing, and still answers correctly', () => {
  const cache = new Utf8Cache(3)
  const kept = cache.bytes('a')
  cache.bytes('b')
  cache.bytes('c')
  cache.bytes('d') // the fourth distinct string clears the cache
  const again = cache.bytes('a')
  assert.notEqual(again, kept, 'made anew after the reset')
  assert.deepEqual(again, Buffer.from('a'))
})
