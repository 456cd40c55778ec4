import type { SchemaReference, SchemaType } from '../schema/registry-client.ts'

/**
 * The registry's state, rebuilt from the records of the `_schemas` topic in offset order.
 * Keys and values are Confluent Schema Registry's own JSON, so either registry can read
 * the topic the other wrote.
 */
export type StoreKey =
  | { keytype: 'SCHEMA'; subject: string; version: number; magic: 1 }
  | { keytype: 'CONFIG'; subject: string | null; magic: 0 }
  | { keytype: 'MODE'; subject: string | null; magic: 0 }
  | { keytype: 'DELETE_SUBJECT'; subject: string; magic: 0 }
  | { keytype: 'CLEAR_SUBJECT'; subject: string; magic: 0 }
  | { keytype: 'NOOP'; magic: 0 }

export interface SchemaValue {
  subject: string
  version: number
  id: number
  schemaType?: SchemaType
  schema: string
  references?: SchemaReference[]
  deleted: boolean
}

export interface StoredVersion {
  subject: string
  version: number
  id: number
  schemaType: SchemaType
  schema: string
  references: SchemaReference[]
  deleted: boolean
}

export class RegistryStore {
  /** subject → version → record (soft-deleted ones included, hard-deleted ones gone). */
  readonly subjects = new Map<string, Map<number, StoredVersion>>()
  readonly schemasById = new Map<
    number,
    { schemaType: SchemaType; schema: string; references: SchemaReference[] }
  >()
  /** `null` key: the global level. */
  readonly configs = new Map<string | null, string>()
  readonly modes = new Map<string | null, string>()
  maxId = 0

  /** Applies one record of the log (a `null` value is a tombstone). */
  apply(keyText: string, valueText: string | null): void {
    let key: StoreKey
    try {
      key = JSON.parse(keyText) as StoreKey
    } catch {
      return // not ours: a registry ignores records it cannot read
    }
    const value = valueText === null ? null : (JSON.parse(valueText) as Record<string, unknown>)
    switch (key.keytype) {
      case 'SCHEMA':
        this.#applySchema(key, value as SchemaValue | null)
        return
      case 'CONFIG':
        if (value === null) this.configs.delete(key.subject)
        else this.configs.set(key.subject, String(value.compatibilityLevel ?? value.compatibility))
        return
      case 'MODE':
        if (value === null) this.modes.delete(key.subject)
        else this.modes.set(key.subject, String(value.mode))
        return
      case 'DELETE_SUBJECT': {
        if (value === null) return
        const upTo = Number(value.version)
        for (const version of this.subjects.get(key.subject)?.values() ?? []) {
          if (version.version <= upTo) version.deleted = true
        }
        return
      }
      case 'CLEAR_SUBJECT':
        if (value !== null) this.subjects.delete(key.subject)
        return
      default:
        return
    }
  }

  #applySchema(key: { subject: string; version: number }, value: SchemaValue | null): void {
    let versions = this.subjects.get(key.subject)
    if (value === null) {
      versions?.delete(key.version)
      if (versions?.size === 0) this.subjects.delete(key.subject)
      return
    }
    if (!versions) {
      versions = new Map()
      this.subjects.set(key.subject, versions)
    }
    const stored: StoredVersion = {
      subject: value.subject,
      version: value.version,
      id: value.id,
      schemaType: value.schemaType ?? 'AVRO',
      schema: value.schema,
      references: value.references ?? [],
      deleted: value.deleted === true
    }
    versions.set(value.version, stored)
    if (!this.schemasById.has(value.id)) {
      this.schemasById.set(value.id, {
        schemaType: stored.schemaType,
        schema: stored.schema,
        references: stored.references
      })
    }
    if (value.id > this.maxId) this.maxId = value.id
  }

  /** Live (not soft-deleted) versions of a subject, oldest first. */
  liveVersions(subject: string): StoredVersion[] {
    return [...(this.subjects.get(subject)?.values() ?? [])]
      .filter((v) => !v.deleted)
      .sort((a, b) => a.version - b.version)
  }

  allVersions(subject: string): StoredVersion[] {
    return [...(this.subjects.get(subject)?.values() ?? [])].sort((a, b) => a.version - b.version)
  }

  compatibilityLevel(subject: string | null): string {
    return (subject !== null ? this.configs.get(subject) : undefined) ?? this.configs.get(null) ?? 'BACKWARD'
  }
}

/** Confluent's key JSON, in its field order. */
export function schemaKey(subject: string, version: number): string {
  return JSON.stringify({ keytype: 'SCHEMA', subject, version, magic: 1 })
}

export function schemaValue(value: StoredVersion): string {
  return JSON.stringify({
    subject: value.subject,
    version: value.version,
    id: value.id,
    ...(value.schemaType !== 'AVRO' ? { schemaType: value.schemaType } : {}),
    ...(value.references.length > 0 ? { references: value.references } : {}),
    schema: value.schema,
    deleted: value.deleted
  })
}

export function configKey(subject: string | null): string {
  return JSON.stringify({ keytype: 'CONFIG', subject, magic: 0 })
}

export function modeKey(subject: string | null): string {
  return JSON.stringify({ keytype: 'MODE', subject, magic: 0 })
}

export function deleteSubjectKey(subject: string): string {
  return JSON.stringify({ keytype: 'DELETE_SUBJECT', subject, magic: 0 })
}
