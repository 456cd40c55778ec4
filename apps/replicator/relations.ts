/**
 * The relations profile's events: Debezium change events (the JSON converter's envelope,
 * as Debezium's Outbox Event Router writes them) whose payload lists relationships to add
 * and to remove. `decodeRelationsEvent` turns a record's value into a {@link RelationsChange}
 * or throws a `DecodeError` whose reason names what is wrong:
 *
 * | reason | the value |
 * |---|---|
 * | `empty_value` | has no bytes |
 * | `invalid_json` | is not JSON |
 * | `not_debezium_envelope` | is not an object with `schema` (an object) and `payload` (a string or an object) |
 * | `invalid_payload_json` | has a `payload` string that is not JSON |
 * | `payload_not_an_object` | has a payload that is not a JSON object |
 * | `unsupported_payload` | has a payload with neither `relations_to_add` nor `relations_to_remove` (a workspace event, say) |
 * | `invalid_relations_to_add_type`, `invalid_relations_to_remove_type` | has that field, but not a list |
 * | `empty_relations` | has both lists empty (or one empty and the other absent) |
 * | `invalid_relation_structure` | has a relationship without the structure below |
 * | `invalid_resource_context` | has a `resource_context` that is not an object |
 *
 * A relationship: `{resource: {type: {namespace, name}, id}, relation, subject: {subject:
 * {type: {namespace, name}, id}, relation?}}`, every named field a non-empty string without
 * NUL characters, namespaces, names and relations of at most 64 bytes (UTF-8) and ids of at
 * most 256: what the relations table's key can always hold, so no valid event is one that
 * PostgreSQL refuses for ever.
 */
import { DecodeError, preview } from '../../src/codec/json.ts'

/** A typed object of the relations graph. */
export interface RelationObject {
  type: { namespace: string; name: string }
  id: string
}

/** One relationship: `resource#relation@subject` (the subject optionally a set, `subject#relation`). */
export interface Relationship {
  resource: RelationObject
  relation: string
  subject: { subject: RelationObject; relation?: string }
}

/** What one event asks for: remove these, then add those. */
export interface RelationsChange {
  relationsToAdd: Relationship[]
  relationsToRemove: Relationship[]
  /** `org_id`, `event_type`, `created_at`, …, when the event carries them. */
  resourceContext?: Record<string, unknown>
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** A non-empty string PostgreSQL can store in a key column: no NUL, at most `bytes` UTF-8 bytes. */
const fits = (value: unknown, bytes: number): value is string =>
  typeof value === 'string' &&
  value.length > 0 &&
  !value.includes('\u0000') &&
  Buffer.byteLength(value) <= bytes
const isName = (value: unknown): value is string => fits(value, 64)
const isId = (value: unknown): value is string => fits(value, 256)

/** Parsed JSON, or a `DecodeError` that shows the start of the text once (not V8's message, which copies it). */
function parse(text: string, reason: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    // Without the parser's error as the cause: its message copies the text, and logs print causes.
    throw new DecodeError(reason, `${what} is not JSON: ${preview(Buffer.from(text))}`)
  }
}

/** The problem with `value` as a typed object at `path`, or undefined when it is one. */
function objectProblem(value: unknown, path: string): string | undefined {
  if (!isObject(value)) return `${path} is not an object`
  if (!isObject(value.type)) return `${path}.type is not an object`
  if (!isName(value.type.namespace)) return `${path}.type.namespace is not a name (1–64 bytes, no NUL)`
  if (!isName(value.type.name)) return `${path}.type.name is not a name (1–64 bytes, no NUL)`
  if (!isId(value.id)) return `${path}.id is not an id (1–256 bytes, no NUL)`
  return undefined
}

function relationship(value: unknown, path: string): Relationship {
  const fail = (problem: string): never => {
    throw new DecodeError('invalid_relation_structure', problem)
  }
  if (!isObject(value)) return fail(`${path} is not an object`)
  const resource = objectProblem(value.resource, `${path}.resource`)
  if (resource) fail(resource)
  if (!isName(value.relation)) fail(`${path}.relation is not a name (1–64 bytes, no NUL)`)
  if (!isObject(value.subject)) return fail(`${path}.subject is not an object`)
  const subject = objectProblem(value.subject.subject, `${path}.subject.subject`)
  if (subject) fail(subject)
  const subjectRelation = value.subject.relation
  if (subjectRelation !== undefined && subjectRelation !== null && !isName(subjectRelation))
    fail(`${path}.subject.relation is not a name (1–64 bytes, no NUL)`)
  const pick = (o: Record<string, unknown>): RelationObject => {
    const type = o.type as Record<string, string>
    return { type: { namespace: type.namespace!, name: type.name! }, id: o.id as string }
  }
  return {
    resource: pick(value.resource as Record<string, unknown>),
    relation: value.relation as string,
    subject: {
      subject: pick(value.subject.subject as Record<string, unknown>),
      ...(isName(subjectRelation) ? { relation: subjectRelation } : {})
    }
  }
}

function relationships(payload: Record<string, unknown>, field: string): Relationship[] {
  const list = payload[field]
  if (list === undefined || list === null) return []
  if (!Array.isArray(list))
    throw new DecodeError(`invalid_${field}_type`, `${field} is ${typeof list}, not a list of relationships`)
  return list.map((item, i) => relationship(item, `${field}[${i}]`))
}

/** The payload of a Debezium envelope, parsed. */
export function debeziumPayload(value: Buffer): Record<string, unknown> {
  if (value.length === 0) throw new DecodeError('empty_value', 'the value has no bytes')
  const envelope = parse(value.toString('utf8'), 'invalid_json', 'the value')
  if (!isObject(envelope) || !isObject(envelope.schema) || !('payload' in envelope))
    throw new DecodeError(
      'not_debezium_envelope',
      'the value is not a Debezium envelope ({"schema": {…}, "payload": …})'
    )
  let payload = envelope.payload
  if (typeof payload === 'string') payload = parse(payload, 'invalid_payload_json', 'the payload')
  else if (!isObject(payload))
    throw new DecodeError('not_debezium_envelope', 'the envelope’s payload is neither a string nor an object')
  if (!isObject(payload)) throw new DecodeError('payload_not_an_object', 'the payload is not a JSON object')
  return payload
}

/** A relations event from a Debezium envelope (see the module's description for what is refused). */
export function relationsChange(payload: Record<string, unknown>): RelationsChange {
  if (!('relations_to_add' in payload) && !('relations_to_remove' in payload)) {
    const fields = Object.keys(payload).slice(0, 5).join(', ')
    throw new DecodeError(
      'unsupported_payload',
      `the payload has neither relations_to_add nor relations_to_remove (its fields: ${fields || 'none'})`
    )
  }
  const relationsToAdd = relationships(payload, 'relations_to_add')
  const relationsToRemove = relationships(payload, 'relations_to_remove')
  if (relationsToAdd.length === 0 && relationsToRemove.length === 0)
    throw new DecodeError('empty_relations', 'relations_to_add and relations_to_remove are both empty')
  const context = payload.resource_context
  if (context !== undefined && context !== null && !isObject(context))
    throw new DecodeError('invalid_resource_context', 'resource_context is not an object')
  return { relationsToAdd, relationsToRemove, ...(isObject(context) ? { resourceContext: context } : {}) }
}

/** Decodes a record's value as a relations event. */
export function decodeRelationsEvent({ value }: { value: Buffer }): RelationsChange {
  return relationsChange(debeziumPayload(value))
}
