/**
 * The relations profile's decoding: Debezium envelopes (payload as a JSON string, as the
 * Outbox Event Router writes it, or as an object), and every class of bad input refused with
 * the reason the DLQ and the metrics show.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeRelationsEvent } from '../../../apps/replicator/relations.ts'
import { DecodeError } from '../../../src/codec/json.ts'

const object = (name: string, id: string) => ({ type: { namespace: 'rbac', name }, id })
const membership = {
  resource: object('group', 'g1'),
  relation: 'member',
  subject: { subject: object('principal', 'u1') }
}
const binding = {
  resource: object('role_binding', 'b1'),
  relation: 'subject',
  subject: { subject: object('group', 'g1'), relation: 'member' }
}
const envelope = (payload: unknown, asString = true) =>
  Buffer.from(
    JSON.stringify({
      schema: { type: 'string', optional: false, name: 'io.debezium.data.Json', version: 1 },
      payload: asString ? JSON.stringify(payload) : payload
    })
  )

function refused(value: Buffer | string): string {
  try {
    decodeRelationsEvent({ value: Buffer.from(value) })
  } catch (error) {
    assert.ok(error instanceof DecodeError, `a DecodeError, got ${String(error)}`)
    return error.reason
  }
  assert.fail('the value was accepted')
}

test('an envelope whose payload is a JSON string (the Outbox Event Router’s) or an object decodes to the relationships to remove and to add', () => {
  const payload = {
    relations_to_add: [membership, binding],
    relations_to_remove: [membership],
    resource_context: { org_id: '12345', event_type: 'add_member' }
  }
  for (const asString of [true, false]) {
    const change = decodeRelationsEvent({ value: envelope(payload, asString) })
    assert.deepEqual(change.relationsToAdd, [membership, binding])
    assert.deepEqual(change.relationsToRemove, [membership])
    assert.deepEqual(change.resourceContext, { org_id: '12345', event_type: 'add_member' })
  }
  assert.deepEqual(
    decodeRelationsEvent({ value: envelope({ relations_to_remove: [membership] }) }).relationsToAdd,
    []
  )
})

test('each class of bad input is refused with its own reason', () => {
  const cases: Array<[string, Buffer | string]> = [
    ['empty_value', ''],
    ['invalid_json', 'not json {'],
    ['not_debezium_envelope', JSON.stringify({ relations_to_add: [membership] })],
    ['not_debezium_envelope', JSON.stringify({ schema: 'x', payload: '{}' })],
    ['not_debezium_envelope', JSON.stringify([1, 2])],
    ['not_debezium_envelope', JSON.stringify({ schema: {}, payload: 42 })],
    ['invalid_payload_json', JSON.stringify({ schema: {}, payload: '{"relations_to_add": [' })],
    ['payload_not_an_object', envelope([membership])],
    [
      'unsupported_payload',
      envelope({ org_id: '1', workspace: { id: 'w', name: 'Dev' }, operation: 'create' })
    ],
    ['invalid_relations_to_add_type', envelope({ relations_to_add: { membership } })],
    [
      'invalid_relations_to_remove_type',
      envelope({ relations_to_add: [membership], relations_to_remove: 'all' })
    ],
    ['empty_relations', envelope({ relations_to_add: [], relations_to_remove: [] })],
    ['empty_relations', envelope({ relations_to_add: [] })],
    ['invalid_relation_structure', envelope({ relations_to_add: ['member'] })],
    ['invalid_relation_structure', envelope({ relations_to_add: [{ ...membership, relation: '' }] })],
    [
      'invalid_relation_structure',
      envelope({ relations_to_add: [{ ...membership, resource: { type: { namespace: 'rbac' }, id: 'g1' } }] })
    ],
    [
      'invalid_relation_structure',
      envelope({ relations_to_add: [{ ...membership, subject: object('principal', 'u1') }] })
    ],
    [
      'invalid_relation_structure',
      envelope({
        relations_to_add: [{ ...membership, subject: { subject: object('principal', 'u1'), relation: 7 } }]
      })
    ],
    ['invalid_resource_context', envelope({ relations_to_add: [membership], resource_context: 'org 1' })],
    // What the relations table's key could never hold: PostgreSQL would refuse it for ever.
    [
      'invalid_relation_structure',
      envelope({ relations_to_add: [{ ...membership, resource: object('group', 'g\u0000') }] })
    ],
    [
      'invalid_relation_structure',
      envelope({ relations_to_add: [{ ...membership, resource: object('group', 'x'.repeat(257)) }] })
    ],
    [
      'invalid_relation_structure',
      envelope({ relations_to_add: [{ ...membership, relation: 'é'.repeat(33) }] })
    ]
  ]
  for (const [reason, value] of cases)
    assert.equal(refused(value), reason, `${reason}: ${String(value).slice(0, 80)}`)
})

test('a bad relationship’s error names where it is', () => {
  try {
    decodeRelationsEvent({
      value: envelope({
        relations_to_add: [membership, { ...binding, subject: { subject: { ...object('g', 'x'), id: '' } } }]
      })
    })
    assert.fail('accepted')
  } catch (error) {
    assert.match((error as Error).message, /relations_to_add\[1\]\.subject\.subject\.id/)
  }
})
