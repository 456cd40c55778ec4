import { ConveyorError, ErrorCodes } from '../../core/errors.ts'

/**
 * A parsed Avro schema with every name resolved to its full name, as the Avro
 * specification defines it. Named types appear once; later uses are references to the
 * same object, so recursive schemas are graphs, not trees.
 */
export type AvroSchema =
  | { type: PrimitiveName; logicalType?: string }
  | RecordSchema
  | EnumSchema
  | FixedSchema
  | { type: 'array'; items: AvroSchema }
  | { type: 'map'; values: AvroSchema }
  | { type: 'union'; branches: AvroSchema[] }

/** The names of Avro's primitive types. */
export type PrimitiveName = 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'bytes' | 'string'

/** What every named Avro type (record, enum, fixed) has. */
export interface Named {
  /** Full name, `namespace.name` (or `name` in the null namespace). */
  fullName: string
  /** Short name, the last part of the full name. */
  name: string
  /** Full names of the aliases. */
  aliases: string[]
}

/** An Avro record (an Avro `error` is parsed as one too). */
export interface RecordSchema extends Named {
  /** Always `record`. */
  type: 'record'
  /** The fields, in the schema's order. */
  fields: FieldSchema[]
}

/** A field of a record. */
export interface FieldSchema {
  /** The field's name. */
  name: string
  /** The schema of the field's values. */
  type: AvroSchema
  /** Whether the field declares a `default` (which may be `null`). */
  hasDefault: boolean
  /** The declared default as parsed JSON; undefined when there is none (see `hasDefault`). */
  default: unknown
  /** Other names of the field, as written in the schema. */
  aliases: string[]
}

/** An Avro enum. */
export interface EnumSchema extends Named {
  /** Always `enum`. */
  type: 'enum'
  /** The symbols, in the schema's order. */
  symbols: string[]
  /** The symbol a reader uses for a symbol it does not know; undefined when the schema declares none. */
  default: string | undefined
}

/** An Avro fixed: values of exactly `size` bytes. */
export interface FixedSchema extends Named {
  /** Always `fixed`. */
  type: 'fixed'
  /** Size of every value, in bytes. */
  size: number
}

const primitives = new Set<string>(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'])

function invalid(message: string): never {
  throw new ConveyorError(ErrorCodes.INVALID_OPTION, `invalid Avro schema: ${message}`, { path: 'schema' })
}

function fullNameOf(name: string, namespace: string | undefined): string {
  if (name.includes('.')) return name
  return namespace ? `${namespace}.${name}` : name
}

function namespaceOf(fullName: string): string | undefined {
  const at = fullName.lastIndexOf('.')
  return at < 0 ? undefined : fullName.slice(0, at)
}

const nameRule = /^[A-Za-z_][A-Za-z0-9_]*$/

function checkFullName(fullName: string): void {
  for (const part of fullName.split('.')) {
    if (!nameRule.test(part)) invalid(`"${fullName}" is not a valid name`)
  }
}

/**
 * Parses an Avro schema (JSON text or the parsed JSON). `named` holds types defined
 * elsewhere (schema references), by full name.
 */
export function parseAvro(schema: unknown, named: Map<string, AvroSchema> = new Map()): AvroSchema {
  const json = typeof schema === 'string' ? parseJson(schema) : schema
  const types = new Map(named)
  return parse(json, undefined, types)
}

function parseJson(text: string): unknown {
  // A bare primitive name such as `string` (or `null`, which is also JSON) is a schema too.
  if (primitives.has(text.trim())) return text.trim()
  try {
    return JSON.parse(text)
  } catch {
    invalid('not valid JSON')
  }
}

function parse(json: unknown, namespace: string | undefined, types: Map<string, AvroSchema>): AvroSchema {
  if (typeof json === 'string') {
    if (primitives.has(json)) return { type: json as PrimitiveName }
    const found = types.get(fullNameOf(json, namespace)) ?? types.get(json)
    if (!found) invalid(`unknown type "${json}"`)
    return found
  }
  if (Array.isArray(json)) {
    const branches = json.map((branch) => parse(branch, namespace, types))
    if (branches.some((b) => b.type === 'union')) invalid('a union cannot contain a union')
    return { type: 'union', branches }
  }
  if (typeof json !== 'object' || json === null) invalid(`unexpected ${JSON.stringify(json)}`)
  const object = json as Record<string, unknown>
  const type = object.type
  if (typeof type === 'string' && primitives.has(type)) {
    return typeof object.logicalType === 'string'
      ? { type: type as PrimitiveName, logicalType: object.logicalType }
      : { type: type as PrimitiveName }
  }
  switch (type) {
    case 'array':
      return { type: 'array', items: parse(object.items, namespace, types) }
    case 'map':
      return { type: 'map', values: parse(object.values, namespace, types) }
    case 'record':
    case 'error':
    case 'enum':
    case 'fixed':
      return parseNamed(object, type === 'error' ? 'record' : type, namespace, types)
    default:
      if (typeof type === 'string' || Array.isArray(type) || typeof type === 'object') {
        // {"type": "com.example.Name"} or {"type": {...}}: a wrapped type.
        return parse(type, namespace, types)
      }
      invalid(`unknown type ${JSON.stringify(type)}`)
  }
}

function parseNamed(
  object: Record<string, unknown>,
  kind: 'record' | 'enum' | 'fixed',
  enclosing: string | undefined,
  types: Map<string, AvroSchema>
): AvroSchema {
  if (typeof object.name !== 'string' || object.name.length === 0) invalid(`a ${kind} needs a name`)
  const explicit =
    typeof object.namespace === 'string' && object.namespace.length > 0 ? object.namespace : undefined
  const fullName = object.name.includes('.') ? object.name : fullNameOf(object.name, explicit ?? enclosing)
  checkFullName(fullName)
  if (types.has(fullName)) invalid(`"${fullName}" is defined twice`)
  const ownNamespace = namespaceOf(fullName)
  const aliases = Array.isArray(object.aliases)
    ? object.aliases.map((alias) => {
        if (typeof alias !== 'string') invalid(`aliases of "${fullName}" must be strings`)
        return fullNameOf(alias, ownNamespace)
      })
    : []
  const name = fullName.slice(fullName.lastIndexOf('.') + 1)
  if (kind === 'fixed') {
    if (!Number.isInteger(object.size) || (object.size as number) < 0)
      invalid(`fixed "${fullName}" needs a size`)
    const fixed: FixedSchema = { type: 'fixed', fullName, name, aliases, size: object.size as number }
    types.set(fullName, fixed)
    return fixed
  }
  if (kind === 'enum') {
    if (
      !Array.isArray(object.symbols) ||
      object.symbols.some((s) => typeof s !== 'string' || !nameRule.test(s))
    ) {
      invalid(`enum "${fullName}" needs symbols that are valid names`)
    }
    const symbols = object.symbols as string[]
    if (new Set(symbols).size !== symbols.length) invalid(`enum "${fullName}" repeats a symbol`)
    const fallback = typeof object.default === 'string' ? object.default : undefined
    if (fallback !== undefined && !symbols.includes(fallback))
      invalid(`the default of enum "${fullName}" is not one of its symbols`)
    const schema: EnumSchema = {
      type: 'enum',
      fullName,
      name,
      aliases,
      symbols: [...symbols],
      default: fallback
    }
    types.set(fullName, schema)
    return schema
  }
  const record: RecordSchema = { type: 'record', fullName, name, aliases, fields: [] }
  types.set(fullName, record) // before the fields: they may refer to the record itself
  if (!Array.isArray(object.fields)) invalid(`record "${fullName}" needs fields`)
  const seen = new Set<string>()
  for (const field of object.fields as Array<Record<string, unknown>>) {
    if (typeof field?.name !== 'string' || !nameRule.test(field.name))
      invalid(`a field of "${fullName}" has no valid name`)
    if (seen.has(field.name)) invalid(`record "${fullName}" repeats field "${field.name}"`)
    seen.add(field.name)
    record.fields.push({
      name: field.name,
      type: parse(field.type, ownNamespace, types),
      hasDefault: Object.hasOwn(field, 'default'),
      default: field.default,
      aliases: Array.isArray(field.aliases)
        ? field.aliases.filter((a): a is string => typeof a === 'string')
        : []
    })
  }
  return record
}

/**
 * The normalized JSON text of a schema (the registry's `normalize=true`): names written as
 * full names without a separate namespace, attributes in one fixed order, whitespace
 * removed, primitives as bare names. Two schemas that differ only in those ways normalize to
 * the same text. Docs, defaults, aliases and logical types are kept: they change meaning.
 */
export function normalizeAvro(schema: AvroSchema): string {
  const seen = new Set<string>()
  const write = (s: AvroSchema): unknown => {
    switch (s.type) {
      case 'record':
      case 'enum':
      case 'fixed': {
        if (seen.has(s.fullName)) return s.fullName
        seen.add(s.fullName)
        const base: Record<string, unknown> = { type: s.type, name: s.fullName }
        if (s.aliases.length > 0) base.aliases = [...s.aliases].sort()
        if (s.type === 'fixed') base.size = s.size
        if (s.type === 'enum') {
          base.symbols = s.symbols
          if (s.default !== undefined) base.default = s.default
        }
        if (s.type === 'record') {
          base.fields = s.fields.map((field) => ({
            name: field.name,
            type: write(field.type),
            ...(field.hasDefault ? { default: field.default } : {}),
            ...(field.aliases.length > 0 ? { aliases: [...field.aliases].sort() } : {})
          }))
        }
        return base
      }
      case 'array':
        return { type: 'array', items: write(s.items) }
      case 'map':
        return { type: 'map', values: write(s.values) }
      case 'union':
        return s.branches.map(write)
      default:
        return s.logicalType ? { type: s.type, logicalType: s.logicalType } : s.type
    }
  }
  return JSON.stringify(write(schema))
}
