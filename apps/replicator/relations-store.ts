/**
 * The relations profile's PostgreSQL store: one row per relationship in a relations table,
 * written inside the replicator's transaction. Each event removes its `relations_to_remove`
 * first, then adds its `relations_to_add`, so an event that moves a relationship leaves it
 * where the event says; both steps are idempotent (a delete of a missing row, an insert of
 * a present one, change nothing), so applying an event is safe even where the position's
 * check would not already prevent it twice.
 *
 * The table (`migrateRelations` creates it; `conveyor replicator migrate` runs it):
 *
 *   resource_namespace, resource_name, resource_id, relation,
 *   subject_namespace, subject_name, subject_id, subject_relation ('' for none)
 *   primary key: all eight
 */

import { identifier, type SqlClient } from '../../src/replicator/postgres.ts'
import type { ReplicaEvent } from '../../src/replicator/sink.ts'
import type { RelationsChange, Relationship } from './relations.ts'

const columns = [
  'resource_namespace',
  'resource_name',
  'resource_id',
  'relation',
  'subject_namespace',
  'subject_name',
  'subject_id',
  'subject_relation'
] as const

function values({ resource, relation, subject }: Relationship): string[] {
  return [
    resource.type.namespace,
    resource.type.name,
    resource.id,
    relation,
    subject.subject.type.namespace,
    subject.subject.type.name,
    subject.subject.id,
    subject.relation ?? ''
  ]
}

export async function migrateRelations(client: SqlClient, table = 'relations'): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${identifier(table)} (
       ${columns.map((c) => `${c} text NOT NULL`).join(',\n       ')},
       PRIMARY KEY (${columns.join(', ')})
     )`
  )
}

/** The sink's `apply` for relations events: per event, its removals, then its additions. */
export function applyRelations(table = 'relations') {
  const name = identifier(table)
  const match = columns.map((c, i) => `${c} = $${i + 1}`).join(' AND ')
  const placeholders = columns.map((_, i) => `$${i + 1}`).join(', ')
  return async (events: readonly ReplicaEvent<RelationsChange>[], client: SqlClient): Promise<void> => {
    for (const { value } of events) {
      for (const relationship of value.relationsToRemove)
        await client.query(`DELETE FROM ${name} WHERE ${match}`, values(relationship))
      for (const relationship of value.relationsToAdd)
        await client.query(
          `INSERT INTO ${name} (${columns.join(', ')}) VALUES (${placeholders}) ON CONFLICT DO NOTHING`,
          values(relationship)
        )
    }
  }
}

/** Every relationship in the table, as `namespace/name:id#relation@namespace/name:id[#relation]`, sorted. */
export async function listRelations(client: SqlClient, table = 'relations'): Promise<string[]> {
  const { rows } = await client.query(`SELECT ${columns.join(', ')} FROM ${identifier(table)}`)
  return rows
    .map(
      (r) =>
        `${r.resource_namespace}/${r.resource_name}:${r.resource_id}#${r.relation}@${r.subject_namespace}/${r.subject_name}:${r.subject_id}${r.subject_relation ? `#${r.subject_relation}` : ''}`
    )
    .sort()
}
