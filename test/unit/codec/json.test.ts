import assert from 'node:assert/strict'
import { test } from 'node:test'
import { jsonCodec } from '../../../src/codec/json.ts'

const context = { topic: 't', headers: new Map<string, Buffer>() }

test('the JSON codec decodes objects and names what is wrong with anything else', () => {
  assert.deepEqual(jsonCodec.decode(Buffer.from('{"a":1}'), context), { a: 1 })
  const reason = (bytes: Buffer | null) => {
    try {
      jsonCodec.decode(bytes, context)
      return 'decoded'
    } catch (error) {
      return (error as { reason: string }).reason
    }
  }
  assert.equal(reason(null), 'empty_value')
  assert.equal(reason(Buffer.from('{oops')), 'invalid_json')
  assert.equal(reason(Buffer.from('[1]')), 'not_an_object')
  assert.equal(reason(Buffer.from('null')), 'not_an_object')
  assert.equal(reason(Buffer.from('7')), 'not_an_object')
})
