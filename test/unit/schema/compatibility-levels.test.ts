/** The seven compatibility levels, with the evolution cases of Confluent's public Avro suite. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseAvro } from '../../../src/schema/avro/model.ts'
import { type CompatibilityLevel, checkCompatibility } from '../../../src/schema/compatibility.ts'

const record = (fields: unknown[]) => parseAvro({ type: 'record', name: 'myrecord', fields })
const v1 = record([{ name: 'f1', type: 'string' }])
const withDefault = record([
  { name: 'f1', type: 'string' },
  { name: 'f2', type: 'string', default: 'foo' }
])
const withoutDefault = record([
  { name: 'f1', type: 'string' },
  { name: 'f2', type: 'string' }
])
const renamedWithAlias = record([{ name: 'f1_new', type: 'string', aliases: ['f1'] }])
const nullableUnion = record([{ name: 'f1', type: ['null', 'string'] }])
const widerUnion = record([{ name: 'f1', type: ['null', 'string', 'int'] }])

const compatible = (level: CompatibilityLevel, candidate = v1, ...existing: (typeof v1)[]) =>
  checkCompatibility(level, candidate, existing).compatible

test('BACKWARD: the new schema must read data written with the latest one', () => {
  assert.equal(compatible('BACKWARD', withDefault, v1), true, 'adding a field with a default')
  assert.equal(compatible('BACKWARD', withoutDefault, v1), false, 'adding a field without a default')
  assert.equal(compatible('BACKWARD', renamedWithAlias, v1), true, 'renaming a field with an alias')
  assert.equal(compatible('BACKWARD', nullableUnion, v1), true, 'widening a field to a union')
  assert.equal(compatible('BACKWARD', v1, nullableUnion), false, 'removing a type from a union')
  assert.equal(compatible('BACKWARD', widerUnion, nullableUnion), true, 'adding a type to a union')
  assert.equal(
    compatible('BACKWARD', withoutDefault, v1, withDefault),
    true,
    'only the latest version counts'
  )
})

test('BACKWARD_TRANSITIVE: the new schema must read every existing version', () => {
  assert.equal(compatible('BACKWARD_TRANSITIVE', withoutDefault, v1, withDefault), false)
  assert.equal(compatible('BACKWARD_TRANSITIVE', withDefault, v1, withDefault), true)
})

test('FORWARD: the latest schema must read data written with the new one', () => {
  assert.equal(compatible('FORWARD', withoutDefault, v1), true, 'adding a field: old readers ignore it')
  assert.equal(compatible('FORWARD', v1, withDefault), true, 'removing a field that has a default')
  assert.equal(compatible('FORWARD', v1, withoutDefault), false, 'removing a field without a default')
  assert.equal(compatible('FORWARD', v1, withoutDefault, withDefault), true, 'only the latest version counts')
})

test("FORWARD_TRANSITIVE: every existing version must read the new schema's data", () => {
  assert.equal(compatible('FORWARD_TRANSITIVE', v1, withoutDefault, withDefault), false)
})

test('FULL and FULL_TRANSITIVE: both directions', () => {
  assert.equal(compatible('FULL', withDefault, v1), true)
  assert.equal(compatible('FULL', withoutDefault, v1), false, 'backward fails')
  assert.equal(compatible('FULL', v1, withoutDefault), false, 'forward fails')
  assert.equal(compatible('FULL', withDefault, withoutDefault), true, 'only the latest version counts')
  assert.equal(compatible('FULL', withoutDefault, v1, withDefault), true, 'full against the latest only')
  assert.equal(
    compatible('FULL_TRANSITIVE', withoutDefault, v1, withDefault),
    false,
    'the first version cannot be read'
  )
  assert.equal(compatible('FULL_TRANSITIVE', withDefault, v1, withDefault), true)
})

test('NONE accepts anything, and a first version is compatible at every level', () => {
  assert.equal(compatible('NONE', parseAvro('int'), v1), true)
  for (const level of [
    'BACKWARD',
    'FORWARD',
    'FULL',
    'BACKWARD_TRANSITIVE',
    'FORWARD_TRANSITIVE',
    'FULL_TRANSITIVE'
  ] as const) {
    assert.equal(compatible(level, v1), true)
  }
})

test("problems are described as Confluent's verbose answer does, with the failing version", () => {
  const result = checkCompatibility('BACKWARD_TRANSITIVE', withoutDefault, [v1, withDefault])
  assert.deepEqual(result.messages, [
    "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'f2' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'f2'} {oldSchemaVersion: 1}"
  ])
  const forward = checkCompatibility('FORWARD', v1, [withoutDefault])
  assert.match(
    forward.messages[0]!,
    /The field 'f2' at path '\/fields\/1' in the old schema has no default value and is missing in the new schema/
  )
})

test("union evolution and iterative defaults, as in Karapace's suite", () => {
  const withDoc = record([{ name: 'f1', type: ['null', 'string'], doc: 'doc of f1' }])
  const wider = record([{ name: 'f1', type: ['null', 'string', 'int'], doc: 'doc of f1' }])
  const three = record([
    { name: 'f1', type: 'string' },
    { name: 'f2', type: 'string', default: 'foo' },
    { name: 'f3', type: 'string', default: 'bar' }
  ])
  assert.equal(compatible('BACKWARD', wider, withDoc), true, 'adding a type to a union')
  const narrowed = checkCompatibility('BACKWARD', withDoc, [wider])
  assert.deepEqual(
    narrowed.problems.map((p) => [p.type, p.location, p.message]),
    [['MISSING_UNION_BRANCH', '/fields/0/type/2', 'reader union lacking writer type: INT']],
    'removing a type from a union'
  )
  assert.equal(
    compatible('BACKWARD_TRANSITIVE', three, v1, withDefault),
    true,
    'iteratively adding fields with defaults'
  )
  assert.equal(
    compatible('FORWARD_TRANSITIVE', v1, three, withDefault),
    true,
    'iteratively removing fields with defaults'
  )
  assert.equal(compatible('FULL_TRANSITIVE', three, v1, withDefault), true)
})
