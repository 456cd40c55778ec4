import assert from 'node:assert/strict'
import { test } from 'node:test'
import { envelopeHeaders, newEnvelope, readEnvelope } from '../../../src/core/envelope.ts'

test('a message produced while handling another inherits its correlation id and names it as cause', () => {
  const incoming = newEnvelope({ type: 'order_placed', correlationId: 'corr-1', tenantId: 'acme' })
  const outgoing = newEnvelope({ type: 'invoice_requested' }, incoming)
  assert.equal(outgoing.correlationId, 'corr-1')
  assert.equal(outgoing.causationId, incoming.id)
  assert.equal(outgoing.tenantId, 'acme')
  assert.notEqual(outgoing.id, incoming.id)
})

test('the first message of an exchange becomes the correlation id of what follows', () => {
  const first = newEnvelope({ type: 'a' })
  assert.equal(newEnvelope({ type: 'b' }, first).correlationId, first.id)
})

test('the envelope travels as CloudEvents ce_* headers and reads back the same', () => {
  const envelope = newEnvelope({
    type: 't',
    version: 2,
    source: 'urn:svc',
    correlationId: 'c',
    tenantId: 'x'
  })
  const headers = new Map([...envelopeHeaders(envelope)].map(([k, v]) => [k, Buffer.from(v)]))
  assert.equal(headers.get('ce_specversion')?.toString(), '1.0')
  assert.deepEqual(readEnvelope(headers, { id: 'fallback', type: 'fallback', version: undefined }), envelope)
})

test('a record without envelope headers gets its coordinates as id', () => {
  const envelope = readEnvelope(new Map(), { id: 'topic-0-42', type: 't', version: 1 })
  assert.equal(envelope.id, 'topic-0-42')
  assert.equal(envelope.version, 1)
})
