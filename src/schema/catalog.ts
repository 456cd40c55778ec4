import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { readerWriterIncompatibilities } from './avro/compatibility.ts'
import { type AvroSchema, parseAvro } from './avro/model.ts'
import { type CompatibilityLevel, checkCompatibility } from './compatibility.ts'
import type { SchemaRegistryClient } from './registry-client.ts'

/** One schema file of the catalog: `<message_type>_v<version>.avsc`. */
export interface CatalogEntry {
  /** The message type, from the file name. */
  type: string
  /** The schema's version, from the file name. */
  version: number
  /** Path of the file: `root` joined with its path below it. */
  file: string
  /** The file's text, registered as it is. */
  source: string
  /** The parsed schema. */
  schema: AvroSchema
}

const fileName = /^([a-z][a-z0-9_]*)_v(\d+)\.avsc$/

/**
 * Reads a schema catalog: every `<message_type>_v<version>.avsc` below `root` (e.g.
 * `schemas/commands/`, `schemas/events/`), grouped by message type, versions ascending.
 * A file with another name, or one that is not a valid Avro schema, is an error naming it.
 */
export function loadCatalog(root: string): Map<string, CatalogEntry[]> {
  const catalog = new Map<string, CatalogEntry[]>()
  for (const file of walk(root)) {
    if (!file.endsWith('.avsc')) continue
    const name = file.slice(file.lastIndexOf('/') + 1)
    const match = fileName.exec(name)
    if (!match) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `${relative(process.cwd(), file)}: schema files are named <message_type>_v<version>.avsc`,
        { path: file }
      )
    }
    const source = readFileSync(file, 'utf8')
    let schema: AvroSchema
    try {
      schema = parseAvro(source)
    } catch (error) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `${relative(process.cwd(), file)}: ${(error as Error).message}`,
        { path: file, cause: error }
      )
    }
    const entry = { type: match[1]!, version: Number(match[2]), file, source, schema }
    catalog.set(entry.type, [...(catalog.get(entry.type) ?? []), entry])
  }
  for (const entries of catalog.values()) entries.sort((a, b) => a.version - b.version)
  return catalog
}

function walk(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name)
    return statSync(path).isDirectory() ? walk(path) : [path]
  })
}

export interface CatalogProblem {
  type: string
  file: string
  message: string
}

/**
 * Checks a catalog: versions of a type run 1, 2, 3 … without gaps, and each version is
 * compatible with the ones before it at `level` (as the registry would check it).
 */
export function checkCatalog(
  catalog: Map<string, CatalogEntry[]>,
  level: CompatibilityLevel
): CatalogProblem[] {
  const problems: CatalogProblem[] = []
  for (const [type, entries] of catalog) {
    entries.forEach((entry, index) => {
      if (entry.version !== index + 1) {
        problems.push({
          type,
          file: entry.file,
          message: `expected version ${index + 1}, found ${entry.version}: versions run 1, 2, 3 … without gaps`
        })
      }
      if (index === 0) return
      const result = checkCompatibility(
        level,
        entry.schema,
        entries.slice(0, index).map((e) => e.schema)
      )
      for (const message of result.messages) problems.push({ type, file: entry.file, message })
    })
  }
  return problems
}

/** The subject a message type's schemas are registered under. Default: the record strategy, the type itself. */
export type SubjectOf = (type: string) => string

/**
 * Registers, in version order, every schema of the given message types (what a service
 * produces) and resolves with the id of each type's latest version. Run at start-up.
 */
export async function registerCatalog(
  registry: SchemaRegistryClient,
  catalog: Map<string, CatalogEntry[]>,
  types: string[],
  subjectOf: SubjectOf = (type) => type
): Promise<Map<string, number>> {
  const ids = new Map<string, number>()
  for (const type of types) {
    const entries = catalog.get(type)
    if (!entries || entries.length === 0) {
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `the schema catalog has no schema for "${type}"`, {
        path: type
      })
    }
    for (const entry of entries)
      ids.set(type, await registry.register(subjectOf(type), { schema: entry.source }))
  }
  return ids
}

/**
 * Verifies that a service can read what is registered for the types it consumes: each
 * type's latest catalog schema (the reader) must read every live version of the type's
 * subject (the writers). Throws one error listing every problem. Run at start-up.
 */
export async function verifyCatalog(
  registry: SchemaRegistryClient,
  catalog: Map<string, CatalogEntry[]>,
  types: string[],
  subjectOf: SubjectOf = (type) => type
): Promise<void> {
  const problems: string[] = []
  for (const type of types) {
    const reader = catalog.get(type)?.at(-1)
    if (!reader) {
      problems.push(`${type}: no schema in the catalog`)
      continue
    }
    let versions: number[]
    try {
      versions = await registry.listVersions(subjectOf(type))
    } catch (error) {
      if ((error as { errorCode?: number }).errorCode === 40401) continue // nothing written yet
      throw error
    }
    for (const version of versions) {
      const writer = await registry.getVersion(subjectOf(type), version)
      for (const p of readerWriterIncompatibilities(reader.schema, parseAvro(writer.schema))) {
        problems.push(
          `${type}: ${relative(process.cwd(), reader.file)} cannot read version ${version} of "${subjectOf(type)}": ${p.type} at ${p.location} (${p.message})`
        )
      }
    }
  }
  if (problems.length > 0) {
    throw new ConveyorError(
      ErrorCodes.INCOMPATIBLE_SCHEMA,
      `the consumed schemas cannot read what is registered:\n${problems.join('\n')}`
    )
  }
}
