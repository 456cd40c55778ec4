import { type Incompatibility, readerWriterIncompatibilities } from './avro/compatibility.ts'
import type { AvroSchema } from './avro/model.ts'

/** Confluent's seven compatibility levels; BACKWARD is the default. */
export const CompatibilityLevels = [
  'NONE',
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE'
] as const

/** One of `CompatibilityLevels`, e.g. `BACKWARD`. */
export type CompatibilityLevel = (typeof CompatibilityLevels)[number]

export interface CompatibilityProblem extends Incompatibility {
  /** Which existing version (1-based position in `existing`) the candidate fails against. */
  version: number
  /** `new` when the candidate is the reader (backward checks), `old` when it is the writer. */
  reader: 'new' | 'old'
}

export interface CompatibilityResult {
  compatible: boolean
  problems: CompatibilityProblem[]
  /** The problems as Confluent's `verbose=true` phrases them. */
  messages: string[]
}

/**
 * Checks a candidate schema against the existing versions of a subject (oldest first)
 * at a compatibility level. BACKWARD: the candidate reads data written with the latest
 * version; FORWARD: the latest reads the candidate's data; FULL: both. The `_TRANSITIVE`
 * levels check every existing version, the others only the latest. Every problem is
 * reported, newest version first.
 */
export function checkCompatibility(
  level: CompatibilityLevel,
  candidate: AvroSchema,
  existing: AvroSchema[]
): CompatibilityResult {
  if (level === 'NONE' || existing.length === 0) return { compatible: true, problems: [], messages: [] }
  const transitive = level.endsWith('_TRANSITIVE')
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL')
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL')
  const problems: CompatibilityProblem[] = []
  const first = transitive ? 0 : existing.length - 1
  for (let index = existing.length - 1; index >= first; index--) {
    const old = existing[index]!
    const version = index + 1
    if (backward) {
      for (const p of readerWriterIncompatibilities(candidate, old))
        problems.push({ ...p, version, reader: 'new' })
    }
    if (forward) {
      for (const p of readerWriterIncompatibilities(old, candidate))
        problems.push({ ...p, version, reader: 'old' })
    }
  }
  return { compatible: problems.length === 0, problems, messages: problems.map(describeProblem) }
}

/** One problem in the words of Confluent Schema Registry's verbose compatibility answer. */
export function describeProblem(problem: CompatibilityProblem): string {
  const reader = problem.reader
  const writer = reader === 'new' ? 'old' : 'new'
  const path = problem.location
  const descriptions: Record<Incompatibility['type'], string> = {
    NAME_MISMATCH: `The name of the schema has changed (path '${path}')`,
    FIXED_SIZE_MISMATCH: `The size of FIXED type field at path '${path}' in the ${reader} schema does not match with the ${writer} schema`,
    MISSING_ENUM_SYMBOLS: `The ${reader} schema is missing enum symbols '${problem.message}' at path '${path}' in the ${writer} schema`,
    READER_FIELD_MISSING_DEFAULT_VALUE: `The field '${problem.message}' at path '${path}' in the ${reader} schema has no default value and is missing in the ${writer} schema`,
    TYPE_MISMATCH: `The type (path '${path}') of a field in the ${reader} schema does not match with the ${writer} schema`,
    MISSING_UNION_BRANCH: `The ${reader} schema is missing a type inside a union field at path '${path}' in the ${writer} schema`
  }
  return `{errorType:'${problem.type}', description:'${descriptions[problem.type]}', additionalInfo:'${problem.message}'} {oldSchemaVersion: ${problem.version}}`
}
