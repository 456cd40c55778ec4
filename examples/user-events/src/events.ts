/**
 * The identity service's events: one Avro schema each in `schemas/`, registered in the schema
 * registry under `<topic>-identity.events.<type>` (the topic-record strategy, so one topic
 * carries all seven types), and these TypeScript types, which `createProducer<UserEvents>`
 * checks every payload against at compile time.
 */
import { fileURLToPath } from 'node:url'
import { AvroCodec, loadCatalog, SchemaRegistryClient } from '@conveyorjs/conveyor'

/** The topic every user event goes to, keyed by user id (a user's events stay in order). */
export const topic = 'identity.user-events'
export const deadLetterTopic = `${topic}.dlq`

/** Milliseconds since the epoch. */
type Time = number

export interface UserEvents {
  user_registered: { user_id: string; email: string; name: string; at: Time }
  user_updated: { user_id: string; name?: string | null; email?: string | null; at: Time }
  user_deleted: { user_id: string; reason?: string | null; at: Time }
  user_login: { user_id: string; ip: string; user_agent?: string | null; at: Time }
  user_logout: { user_id: string; at: Time }
  user_password_changed: { user_id: string; at: Time }
  user_email_verified: { user_id: string; email: string; at: Time }
}

export type UserEventType = keyof UserEvents

/** Encodes and decodes the events through the registry at `registryUrl` (Confluent wire format). */
export function userEventCodec(registryUrl: string): AvroCodec {
  const catalog = loadCatalog(fileURLToPath(new URL('../schemas', import.meta.url)))
  const schemas = Object.fromEntries([...catalog].map(([type, versions]) => [type, versions.at(-1)!.source]))
  return new AvroCodec({
    registry: new SchemaRegistryClient({ url: registryUrl }),
    schemas,
    subjectNameStrategy: 'topic-record'
  })
}
