/**
 * Reader/writer compatibility, case by case after the public test suites of Apache
 * Avro (TestSchemaCompatibility*), Confluent Schema Registry and Karapace.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readerWriterIncompatibilities } from '../../../src/schema/avro/compatibility.ts'
import { type AvroSchema, parseAvro } from '../../../src/schema/avro/model.ts'

const S = (json: unknown): AvroSchema => parseAvro(json)
const NULL = S('null')
const BOOLEAN = S('boolean')
const INT = S('int')
const LONG = S('long')
const FLOAT = S('float')
const DOUBLE = S('double')
const BYTES = S('bytes')
const STRING = S('string')
const INT_ARRAY = S({ type: 'array', items: 'int' })
const LONG_ARRAY = S({ type: 'array', items: 'long' })
const STRING_ARRAY = S({ type: 'array', items: 'string' })
const INT_MAP = S({ type: 'map', values: 'int' })
const LONG_MAP = S({ type: 'map', values: 'long' })
const STRING_MAP = S({ type: 'map', values: 'string' })
const ENUM1_AB = S({ type: 'enum', name: 'Enum1', symbols: ['A', 'B'] })
const ENUM1_ABC = S({ type: 'enum', name: 'Enum1', symbols: ['A', 'B', 'C'] })
const ENUM1_BC = S({ type: 'enum', name: 'Enum1', symbols: ['B', 'C'] })
const ENUM1_AB_DEFAULT_A = S({ type: 'enum', name: 'Enum1', symbols: ['A', 'B'], default: 'A' })
const ENUM2_AB = S({ type: 'enum', name: 'Enum2', symbols: ['A', 'B'] })
const ENUM_ABC_ENUM_DEFAULT_A_RECORD = S({
  type: 'record',
  name: 'Record',
  fields: [{ name: 'Field', type: { type: 'enum', name: 'Enum', symbols: ['A', 'B', 'C'], default: 'A' } }]
})
const ENUM_AB_ENUM_DEFAULT_A_RECORD = S({
  type: 'record',
  name: 'Record',
  fields: [{ name: 'Field', type: { type: 'enum', name: 'Enum', symbols: ['A', 'B'], default: 'A' } }]
})
const FIXED_4 = S({ type: 'fixed', name: 'Fixed', size: 4 })
const FIXED_8 = S({ type: 'fixed', name: 'Fixed', size: 8 })
const EMPTY_UNION = S([])
const NULL_UNION = S(['null'])
const INT_UNION = S(['int'])
const LONG_UNION = S(['long'])
const FLOAT_UNION = S(['float'])
const DOUBLE_UNION = S(['double'])
const STRING_UNION = S(['string'])
const BYTES_UNION = S(['bytes'])
const INT_STRING_UNION = S(['int', 'string'])
const STRING_INT_UNION = S(['string', 'int'])
const INT_FLOAT_UNION = S(['int', 'float'])
const INT_LONG_FLOAT_DOUBLE_UNION = S(['int', 'long', 'float', 'double'])
const EMPTY_RECORD1 = S({ type: 'record', name: 'Record1', fields: [] })
const EMPTY_RECORD2 = S({ type: 'record', name: 'Record2', fields: [] })
const A_INT_RECORD1 = S({ type: 'record', name: 'Record1', fields: [{ name: 'a', type: 'int' }] })
const A_LONG_RECORD1 = S({ type: 'record', name: 'Record1', fields: [{ name: 'a', type: 'long' }] })
const A_INT_B_INT_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int' },
    { name: 'b', type: 'int' }
  ]
})
const A_DINT_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [{ name: 'a', type: 'int', default: 0 }]
})
const A_INT_B_DINT_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int' },
    { name: 'b', type: 'int', default: 0 }
  ]
})
const A_DINT_B_DINT_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int', default: 0 },
    { name: 'b', type: 'int', default: 0 }
  ]
})
const A_DINT_B_DFIXED_4_BYTES_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int', default: 0 },
    { name: 'b', type: { type: 'fixed', name: 'Fixed', size: 4 }, default: '\u0000\u0000\u0000\u0000' }
  ]
})
const A_DINT_B_DFIXED_8_BYTES_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int', default: 0 },
    { name: 'b', type: { type: 'fixed', name: 'Fixed', size: 8 }, default: '\u0000'.repeat(8) }
  ]
})
const A_DINT_B_DINT_STRING_UNION_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int', default: 0 },
    { name: 'b', type: ['int', 'string'], default: 0 }
  ]
})
const A_DINT_B_DINT_UNION_RECORD1 = S({
  type: 'record',
  name: 'Record1',
  fields: [
    { name: 'a', type: 'int', default: 0 },
    { name: 'b', type: ['int'], default: 0 }
  ]
})
const INT_LIST_RECORD = S({
  type: 'record',
  name: 'List',
  fields: [
    { name: 'head', type: 'int', default: 0 },
    { name: 'tail', type: ['null', 'List'], default: null }
  ]
})
const LONG_LIST_RECORD = S({
  type: 'record',
  name: 'List',
  fields: [
    { name: 'head', type: 'long', default: 0 },
    { name: 'tail', type: ['null', 'List'], default: null }
  ]
})

test("compatible reader/writer pairs, as in Avro's own suite", () => {
  const compatible: Array<[AvroSchema, AvroSchema]> = [
    [BOOLEAN, BOOLEAN],
    [INT, INT],
    [LONG, INT],
    [LONG, LONG],
    [FLOAT, INT],
    [FLOAT, LONG],
    [FLOAT, FLOAT],
    [DOUBLE, INT],
    [DOUBLE, LONG],
    [DOUBLE, FLOAT],
    [DOUBLE, DOUBLE],
    [STRING, STRING],
    [BYTES, BYTES],
    [STRING, BYTES],
    [BYTES, STRING],
    [INT_ARRAY, INT_ARRAY],
    [LONG_ARRAY, INT_ARRAY],
    [INT_MAP, INT_MAP],
    [LONG_MAP, INT_MAP],
    [ENUM1_AB, ENUM1_AB],
    [ENUM1_ABC, ENUM1_AB],
    [ENUM1_AB_DEFAULT_A, ENUM1_ABC],
    [ENUM_AB_ENUM_DEFAULT_A_RECORD, ENUM_ABC_ENUM_DEFAULT_A_RECORD],
    [FIXED_4, FIXED_4],
    [EMPTY_UNION, EMPTY_UNION],
    [INT_UNION, INT_UNION],
    [INT_STRING_UNION, STRING_INT_UNION],
    [INT_UNION, EMPTY_UNION],
    [LONG_UNION, EMPTY_UNION],
    [LONG_UNION, INT_UNION],
    [FLOAT_UNION, INT_UNION],
    [DOUBLE_UNION, INT_UNION],
    [FLOAT_UNION, LONG_UNION],
    [DOUBLE_UNION, LONG_UNION],
    [DOUBLE_UNION, FLOAT_UNION],
    [STRING_UNION, BYTES_UNION],
    [BYTES_UNION, STRING_UNION],
    [DOUBLE_UNION, INT_FLOAT_UNION],
    [INT_STRING_UNION, INT],
    [STRING_INT_UNION, STRING],
    [DOUBLE, INT_LONG_FLOAT_DOUBLE_UNION],
    [EMPTY_RECORD1, EMPTY_RECORD1],
    [EMPTY_RECORD1, A_INT_RECORD1],
    [A_INT_RECORD1, A_INT_RECORD1],
    [A_DINT_RECORD1, A_INT_RECORD1],
    [A_DINT_RECORD1, A_DINT_RECORD1],
    [A_INT_RECORD1, A_DINT_RECORD1],
    [A_LONG_RECORD1, A_INT_RECORD1],
    [A_INT_RECORD1, A_INT_B_INT_RECORD1],
    [A_DINT_RECORD1, A_INT_B_INT_RECORD1],
    [A_INT_B_DINT_RECORD1, A_INT_RECORD1],
    [A_DINT_B_DINT_RECORD1, EMPTY_RECORD1],
    [A_DINT_B_DINT_RECORD1, A_INT_RECORD1],
    [A_INT_B_INT_RECORD1, A_DINT_B_DINT_RECORD1],
    [A_DINT_B_DINT_STRING_UNION_RECORD1, A_DINT_B_DINT_UNION_RECORD1],
    [INT_LIST_RECORD, INT_LIST_RECORD],
    [LONG_LIST_RECORD, LONG_LIST_RECORD],
    [LONG_LIST_RECORD, INT_LIST_RECORD],
    [NULL, NULL],
    [NULL_UNION, NULL_UNION]
  ]
  for (const [index, [reader, writer]] of compatible.entries()) {
    assert.deepEqual(readerWriterIncompatibilities(reader, writer), [], `pair ${index} is compatible`)
  }
})

function incompatible(reader: AvroSchema, writer: AvroSchema) {
  return readerWriterIncompatibilities(reader, writer).map((p) => [p.type, p.message, p.location])
}

test("type mismatches are reported with Avro's message and the location in the reader", () => {
  const cases: Array<[AvroSchema, AvroSchema, string, string]> = [
    [NULL, INT, 'reader type: NULL not compatible with writer type: INT', '/'],
    [BOOLEAN, INT, 'reader type: BOOLEAN not compatible with writer type: INT', '/'],
    [INT, LONG, 'reader type: INT not compatible with writer type: LONG', '/'],
    [INT, FLOAT, 'reader type: INT not compatible with writer type: FLOAT', '/'],
    [LONG, FLOAT, 'reader type: LONG not compatible with writer type: FLOAT', '/'],
    [FLOAT, DOUBLE, 'reader type: FLOAT not compatible with writer type: DOUBLE', '/'],
    [DOUBLE, STRING, 'reader type: DOUBLE not compatible with writer type: STRING', '/'],
    [FIXED_4, STRING, 'reader type: FIXED not compatible with writer type: STRING', '/'],
    [STRING, INT, 'reader type: STRING not compatible with writer type: INT', '/'],
    [BYTES, NULL, 'reader type: BYTES not compatible with writer type: NULL', '/'],
    [A_INT_RECORD1, INT, 'reader type: RECORD not compatible with writer type: INT', '/'],
    [INT_ARRAY, LONG_ARRAY, 'reader type: INT not compatible with writer type: LONG', '/items'],
    [INT_MAP, INT_ARRAY, 'reader type: MAP not compatible with writer type: ARRAY', '/'],
    [INT_ARRAY, INT_MAP, 'reader type: ARRAY not compatible with writer type: MAP', '/'],
    [INT_MAP, LONG_MAP, 'reader type: INT not compatible with writer type: LONG', '/values'],
    [INT, ENUM2_AB, 'reader type: INT not compatible with writer type: ENUM', '/'],
    [ENUM2_AB, INT, 'reader type: ENUM not compatible with writer type: INT', '/'],
    [FLOAT, INT_LONG_FLOAT_DOUBLE_UNION, 'reader type: FLOAT not compatible with writer type: DOUBLE', '/'],
    [LONG, INT_FLOAT_UNION, 'reader type: LONG not compatible with writer type: FLOAT', '/'],
    [
      INT_LIST_RECORD,
      LONG_LIST_RECORD,
      'reader type: INT not compatible with writer type: LONG',
      '/fields/0/type'
    ],
    [STRING_ARRAY, STRING_MAP, 'reader type: ARRAY not compatible with writer type: MAP', '/']
  ]
  for (const [reader, writer, message, location] of cases) {
    assert.deepEqual(incompatible(reader, writer), [['TYPE_MISMATCH', message, location]])
  }
})

test('a missing union branch names the writer type and its index', () => {
  const RECORD1 = S(['int', { type: 'record', name: 'Record1', fields: [{ name: 'field1', type: 'int' }] }])
  const RECORD2 = S(['int', { type: 'record', name: 'Record2', fields: [{ name: 'field1', type: 'int' }] }])
  assert.deepEqual(incompatible(INT_UNION, INT_STRING_UNION), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: STRING', '/1']
  ])
  assert.deepEqual(incompatible(STRING_UNION, INT_STRING_UNION), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: INT', '/0']
  ])
  assert.deepEqual(incompatible(INT_UNION, RECORD1), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: RECORD', '/1']
  ])
  assert.deepEqual(incompatible(RECORD1, RECORD2), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: RECORD', '/1']
  ])
  assert.deepEqual(incompatible(INT_UNION, INT_LONG_FLOAT_DOUBLE_UNION), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: LONG', '/1'],
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: FLOAT', '/2'],
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: DOUBLE', '/3']
  ])
  assert.deepEqual(incompatible(A_DINT_B_DINT_UNION_RECORD1, A_DINT_B_DINT_STRING_UNION_RECORD1), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: STRING', '/fields/1/type/1']
  ])
  assert.deepEqual(incompatible(INT_STRING_UNION, LONG), [
    ['MISSING_UNION_BRANCH', 'reader union lacking writer type: LONG', '/']
  ])
})

test('a reader field missing from the writer needs a default', () => {
  assert.deepEqual(incompatible(A_INT_RECORD1, EMPTY_RECORD1), [
    ['READER_FIELD_MISSING_DEFAULT_VALUE', 'a', '/fields/0']
  ])
  assert.deepEqual(incompatible(A_INT_B_DINT_RECORD1, EMPTY_RECORD1), [
    ['READER_FIELD_MISSING_DEFAULT_VALUE', 'a', '/fields/0']
  ])
  // An enum default is not a field default: Avro compares the enum with the writer record.
  const reader = S({
    type: 'record',
    name: 'Record1',
    fields: [{ name: 'e', type: { type: 'enum', name: 'E', symbols: ['A'], default: 'A' } }]
  })
  assert.deepEqual(incompatible(reader, EMPTY_RECORD1), [
    ['TYPE_MISMATCH', 'reader type: ENUM not compatible with writer type: RECORD', '/fields/0/type']
  ])
})

test('enum symbols the reader lacks are listed, sorted, unless the reader has a default', () => {
  assert.deepEqual(incompatible(ENUM1_AB, ENUM1_ABC), [['MISSING_ENUM_SYMBOLS', '[C]', '/symbols']])
  assert.deepEqual(incompatible(ENUM1_BC, ENUM1_ABC), [['MISSING_ENUM_SYMBOLS', '[A]', '/symbols']])
  const nested = S({ type: 'record', name: 'R', fields: [{ name: 'f', type: ENUM1_AB as never }] })
  assert.equal(nested.type, 'record')
  assert.deepEqual(incompatible(ENUM1_AB_DEFAULT_A, ENUM1_ABC), [])
})

test('fixed sizes must match', () => {
  assert.deepEqual(incompatible(FIXED_4, FIXED_8), [
    ['FIXED_SIZE_MISMATCH', 'expected: 8, found: 4', '/size']
  ])
  assert.deepEqual(incompatible(A_DINT_B_DFIXED_8_BYTES_RECORD1, A_DINT_B_DFIXED_4_BYTES_RECORD1), [
    ['FIXED_SIZE_MISMATCH', 'expected: 4, found: 8', '/fields/1/type/size']
  ])
})

test('named types match on the short name or a reader alias; a namespace change alone is compatible', () => {
  assert.deepEqual(incompatible(ENUM1_AB, ENUM2_AB), [['NAME_MISMATCH', 'expected: Enum2', '/name']])
  assert.deepEqual(incompatible(EMPTY_RECORD2, EMPTY_RECORD1), [
    ['NAME_MISMATCH', 'expected: Record1', '/name']
  ])
  const inOne = S({
    type: 'record',
    name: 'User',
    namespace: 'com.one',
    fields: [{ name: 'id', type: 'int' }]
  })
  const inTwo = S({
    type: 'record',
    name: 'User',
    namespace: 'org.two',
    fields: [{ name: 'id', type: 'int' }]
  })
  assert.deepEqual(incompatible(inTwo, inOne), [], 'only the namespace changed')
  const renamed = S({
    type: 'record',
    name: 'Account',
    namespace: 'org.two',
    aliases: ['com.one.User'],
    fields: [{ name: 'id', type: 'int' }]
  })
  assert.deepEqual(incompatible(renamed, inOne), [], 'an alias naming the old full name')
  const fieldRenamed = S({
    type: 'record',
    name: 'User',
    fields: [{ name: 'identifier', aliases: ['id'], type: 'int' }]
  })
  assert.deepEqual(incompatible(fieldRenamed, inOne), [], 'a field alias naming the old field')
})

test('every incompatibility is reported, not only the first', () => {
  const writer = S({
    type: 'record',
    name: 'R',
    fields: [
      { name: 'a', type: 'long' },
      { name: 'b', type: { type: 'array', items: 'string' } }
    ]
  })
  const reader = S({
    type: 'record',
    name: 'R',
    fields: [
      { name: 'a', type: 'int' },
      { name: 'b', type: { type: 'array', items: 'int' } },
      { name: 'c', type: 'string' }
    ]
  })
  assert.deepEqual(incompatible(reader, writer), [
    ['TYPE_MISMATCH', 'reader type: INT not compatible with writer type: LONG', '/fields/0/type'],
    ['TYPE_MISMATCH', 'reader type: INT not compatible with writer type: STRING', '/fields/1/type/items'],
    ['READER_FIELD_MISSING_DEFAULT_VALUE', 'c', '/fields/2']
  ])
})

test('recursive schemas are compared without looping', () => {
  assert.deepEqual(incompatible(LONG_LIST_RECORD, INT_LIST_RECORD), [])
  assert.deepEqual(incompatible(INT_LIST_RECORD, LONG_LIST_RECORD).length, 1)
})
