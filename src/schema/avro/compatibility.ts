import type { AvroSchema, EnumSchema, FixedSchema, RecordSchema } from './model.ts'

/**
 * Reader/writer compatibility of Avro schemas, following the rules of Apache Avro's
 * `SchemaCompatibility` (what Confluent Schema Registry, Apicurio and Karapace run):
 * can data written with `writer` be read with `reader`? Every incompatibility is
 * reported, each with its location as a JSON pointer into the reader schema.
 *
 * - Named types (record, enum, fixed) match on their short name, or a reader alias
 *   naming the writer's full name: a change of namespace alone is compatible.
 * - Promotions: int → long, float, double; long → float, double; float → double;
 *   string ↔ bytes.
 * - Records: a reader field absent from the writer (by name or reader alias) needs a
 *   default; writer fields the reader lacks are ignored.
 * - Enums: every writer symbol must be a reader symbol, unless the reader has a default.
 * - Fixed: same size. Arrays: items. Maps: values.
 * - Unions: every writer branch must be readable; a non-union writer must be readable by
 *   some reader branch.
 */
export const IncompatibilityTypes = {
  NAME_MISMATCH: 'NAME_MISMATCH',
  FIXED_SIZE_MISMATCH: 'FIXED_SIZE_MISMATCH',
  MISSING_ENUM_SYMBOLS: 'MISSING_ENUM_SYMBOLS',
  READER_FIELD_MISSING_DEFAULT_VALUE: 'READER_FIELD_MISSING_DEFAULT_VALUE',
  TYPE_MISMATCH: 'TYPE_MISMATCH',
  MISSING_UNION_BRANCH: 'MISSING_UNION_BRANCH'
} as const

export type IncompatibilityType = (typeof IncompatibilityTypes)[keyof typeof IncompatibilityTypes]

export interface Incompatibility {
  type: IncompatibilityType
  /** JSON pointer into the reader schema, e.g. `/fields/1/type/items`. */
  location: string
  /** Avro's own message: the field name, the missing symbols, the sizes, the types. */
  message: string
}

const promotions: Record<string, string[]> = {
  long: ['int'],
  float: ['int', 'long'],
  double: ['int', 'long', 'float'],
  string: ['bytes'],
  bytes: ['string']
}

/** Every reason `reader` cannot read data written with `writer` (empty: compatible). */
export function readerWriterIncompatibilities(reader: AvroSchema, writer: AvroSchema): Incompatibility[] {
  const found: Incompatibility[] = []
  check(reader, writer, '', found, new Set())
  return found
}

function check(
  reader: AvroSchema,
  writer: AvroSchema,
  location: string,
  found: Incompatibility[],
  inProgress: Set<string>
): void {
  // Recursive schemas: a pair already being compared is assumed compatible.
  if ('fullName' in reader && 'fullName' in writer) {
    const pair = `${reader.fullName}\u0000${writer.fullName}`
    if (inProgress.has(pair)) return
    inProgress.add(pair)
    try {
      checkPair(reader, writer, location, found, inProgress)
    } finally {
      inProgress.delete(pair)
    }
    return
  }
  checkPair(reader, writer, location, found, inProgress)
}

function checkPair(
  reader: AvroSchema,
  writer: AvroSchema,
  location: string,
  found: Incompatibility[],
  inProgress: Set<string>
): void {
  const at = location || '/'
  if (reader.type === writer.type) {
    switch (reader.type) {
      case 'array':
        check(reader.items, (writer as typeof reader).items, `${location}/items`, found, inProgress)
        return
      case 'map':
        check(reader.values, (writer as typeof reader).values, `${location}/values`, found, inProgress)
        return
      case 'fixed': {
        const w = writer as FixedSchema
        checkNames(reader, w, location, found)
        if (reader.size !== w.size) {
          found.push({
            type: 'FIXED_SIZE_MISMATCH',
            location: `${location}/size`,
            message: `expected: ${w.size}, found: ${reader.size}`
          })
        }
        return
      }
      case 'enum': {
        const w = writer as EnumSchema
        checkNames(reader, w, location, found)
        const missing = w.symbols.filter((s) => !reader.symbols.includes(s)).sort()
        if (missing.length > 0 && reader.default === undefined) {
          found.push({
            type: 'MISSING_ENUM_SYMBOLS',
            location: `${location}/symbols`,
            message: `[${missing.join(', ')}]`
          })
        }
        return
      }
      case 'record':
        checkRecord(reader, writer as RecordSchema, location, found, inProgress)
        return
      case 'union': {
        // Every branch the writer may have used must be readable.
        const w = writer as typeof reader
        w.branches.forEach((branch, index) => {
          if (!readableBySomeBranch(reader.branches, branch, inProgress)) {
            found.push({
              type: 'MISSING_UNION_BRANCH',
              location: `${location}/${index}`,
              message: `reader union lacking writer type: ${branch.type.toUpperCase()}`
            })
          }
        })
        return
      }
      default:
        return // the same primitive
    }
  }

  if (writer.type === 'union') {
    // A union writer, a single reader: every writer branch must fit the reader.
    for (const branch of writer.branches) check(reader, branch, location, found, inProgress)
    return
  }
  if (reader.type === 'union') {
    if (!readableBySomeBranch(reader.branches, writer, inProgress)) {
      found.push({
        type: 'MISSING_UNION_BRANCH',
        location: at,
        message: `reader union lacking writer type: ${writer.type.toUpperCase()}`
      })
    }
    return
  }
  if (promotions[reader.type]?.includes(writer.type)) return
  found.push({
    type: 'TYPE_MISMATCH',
    location: at,
    message: `reader type: ${reader.type.toUpperCase()} not compatible with writer type: ${writer.type.toUpperCase()}`
  })
}

function readableBySomeBranch(branches: AvroSchema[], writer: AvroSchema, inProgress: Set<string>): boolean {
  return branches.some((branch) => {
    const found: Incompatibility[] = []
    check(branch, writer, '', found, inProgress)
    return found.length === 0
  })
}

/** Named types match on the short name, or a reader alias naming the writer's full name. */
function checkNames(
  reader: RecordSchema | EnumSchema | FixedSchema,
  writer: RecordSchema | EnumSchema | FixedSchema,
  location: string,
  found: Incompatibility[]
): void {
  if (reader.name === writer.name || reader.aliases.includes(writer.fullName)) return
  found.push({
    type: 'NAME_MISMATCH',
    location: `${location}/name`,
    message: `expected: ${writer.fullName}`
  })
}

function checkRecord(
  reader: RecordSchema,
  writer: RecordSchema,
  location: string,
  found: Incompatibility[],
  inProgress: Set<string>
): void {
  checkNames(reader, writer, location, found)
  reader.fields.forEach((field, index) => {
    const writerField =
      writer.fields.find((w) => w.name === field.name) ??
      writer.fields.find((w) => field.aliases.includes(w.name))
    if (!writerField) {
      if (field.hasDefault) return
      if (field.type.type === 'enum' && field.type.default !== undefined) {
        // Avro's own rule for an enum field with an enum default but no field default:
        // it is compared with the writer record itself (and so fails as a type mismatch).
        check(field.type, writer, `${location}/fields/${index}/type`, found, inProgress)
      } else {
        found.push({
          type: 'READER_FIELD_MISSING_DEFAULT_VALUE',
          location: `${location}/fields/${index}`,
          message: field.name
        })
      }
      return
    }
    check(field.type, writerField.type, `${location}/fields/${index}/type`, found, inProgress)
  })
}
