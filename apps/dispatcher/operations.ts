/**
 * The REST command bridge: each message type maps to a declarative operation on a REST
 * API, and each operation is written so that repeating it after a half-done attempt
 * has the effect of doing it once (no second object created, nothing linked twice).
 *
 * - `update`: resolve the selector on `resource`, then PATCH (or PUT) `values` — or
 *   only the listed `fields` of it — to `{resource}/{id}/` for each match.
 * - `upload`: find the object the selector names on `resource` (default `{ name: file_name }`)
 *   or create it, upload the file's bytes to `{resource}/{id}/{uploadPath}`, and, when the
 *   command names objects in `values[link.selectorField]`, add the object's id to their
 *   `link.field` list.
 * - `link`: find one object on `from.resource` by `values[from.selectorField]`, and add its
 *   id to the `field` list of each object the selector names on `resource`.
 */
import type { Handler, Message } from '../../src/core/message.ts'
import { type ApiClient, ApiError } from './api-client.ts'
import type { S3Reader } from './s3.ts'
import {
  type ApiObject,
  CommandError,
  type ParsedSelector,
  parseSelector,
  requireFilter,
  resolveSelector
} from './selectors.ts'

export type Operation =
  | {
      kind: 'update'
      resource: string
      method?: 'PATCH' | 'PUT'
      fields?: string[]
      /** Let a selector without filters act on every object (with `target: multiple`). Default false. */
      allowUnfiltered?: boolean
    }
  | {
      kind: 'upload'
      resource: string
      /** Appended to `{resource}/{id}/`. Default `upload/`. */
      uploadPath?: string
      link?: { resource: string; field: string; selectorField: string }
    }
  | {
      kind: 'link'
      resource: string
      field: string
      from: { resource: string; selectorField: string }
      /** Let a selector without filters act on every object (with `target: multiple`). Default false. */
      allowUnfiltered?: boolean
    }

/** A named set of operations for one API, and the call that proves the API is back. */
export interface Profile {
  name: string
  /** GET path (relative to the API URL) that must answer 2xx for a closed API to reopen. */
  probePath: string
  /** The API refuses anonymous calls: a missing token is a configuration error at start. */
  needsToken: boolean
  operations: Record<string, Operation>
}

/** CISO Assistant (https://intuitem.com): the commands of `schemas/commands/`. */
export const cisoAssistant: Profile = {
  name: 'ciso-assistant',
  probePath: 'applied-controls/?limit=1',
  needsToken: true,
  operations: {
    update_applied_control: { kind: 'update', resource: 'applied-controls' },
    update_requirement_assessment: { kind: 'update', resource: 'requirement-assessments' },
    update_applied_control_status: { kind: 'update', resource: 'applied-controls', fields: ['status'] },
    update_requirement_assessment_status: {
      kind: 'update',
      resource: 'requirement-assessments',
      fields: ['result']
    },
    upload_attachment: {
      kind: 'upload',
      resource: 'evidences',
      uploadPath: 'upload/',
      link: { resource: 'applied-controls', field: 'evidences', selectorField: 'applied_controls' }
    },
    attach_evidence_to_applied_control: {
      kind: 'link',
      resource: 'applied-controls',
      field: 'evidences',
      from: { resource: 'evidences', selectorField: 'evidence' }
    }
  }
}

export const profiles: Record<string, Profile> = { 'ciso-assistant': cisoAssistant }

export interface Command {
  message_type: string
  version?: number
  selector?: Record<string, string>
  values?: Record<string, unknown>
}

export interface OperationDependencies {
  api: ApiClient
  s3?: S3Reader
  /** Serializes read-modify-write steps on one object (links), across concurrent commands. */
  locks?: KeyedLock
}

/** Runs one async function at a time per key; others with the same key wait their turn. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>()

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    const result = previous.then(work, work)
    const tail = result.catch(() => {})
    this.#tails.set(key, tail)
    try {
      return await result
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}

function valuesOf(command: Command): Record<string, unknown> {
  const values = command.values
  if (typeof values !== 'object' || values === null || Array.isArray(values))
    throw new CommandError('invalid_command', 'values must be an object')
  return values
}

function requiredString(values: Record<string, unknown>, field: string): string {
  const value = values[field]
  if (typeof value !== 'string' || value.length === 0)
    throw new CommandError('invalid_command', `values.${field} is required (a non-empty string)`)
  return value
}

/**
 * Strict base64, so that a corrupt file is never uploaded. Accepted: the standard alphabet
 * (`+`, `/`) with its padding, or the URL-safe alphabet (`-`, `_`) with or without padding;
 * whitespace (line breaks) is ignored. Refused: other characters, both alphabets mixed, a
 * length no encoding produces, missing padding in the standard alphabet (a text that lost
 * its tail looks just like that), and non-zero bits after the last byte. A text made only
 * of the characters both alphabets share is read as the standard one, so it must be padded.
 */
export function decodeBase64(text: string, path: string): Buffer {
  const compact = text.replace(/\s+/g, '')
  if (compact.length === 0) throw new CommandError('bad_base64', `${path} is empty`)
  const fail = (why: string) => {
    throw new CommandError('bad_base64', `${path} is not valid base64: ${why}`)
  }
  const urlSafe = /[-_]/.test(compact)
  if (urlSafe && /[+/]/.test(compact)) fail('it mixes the standard and URL-safe alphabets')
  if (!/^[A-Za-z0-9+/_-]*=*$/.test(compact))
    fail('it has characters outside the base64 alphabet (or "=" before the end)')
  const data = compact.replace(/=+$/, '')
  const padded = data.length !== compact.length
  if (compact.length - data.length > 2) fail('it has more than two padding characters')
  if (data.length % 4 === 1) fail('its last group of 4 has a single character, which encodes no byte')
  if (padded && compact.length % 4 !== 0) fail('the padding does not complete the last group of 4')
  if (!padded && !urlSafe && data.length % 4 !== 0)
    fail('the padding is missing (the text may have lost its end)')
  const bytes = Buffer.from(data, urlSafe ? 'base64url' : 'base64')
  // Re-encoding gives the text back only when the bits after the last byte are zero.
  if (
    bytes.toString('base64url').replace(/=+$/, '') !==
    (urlSafe ? data : data.replaceAll('+', '-').replaceAll('/', '_'))
  )
    fail('the last character carries bits beyond the last byte (a truncated or altered text)')
  return bytes
}

/** `Content-Disposition: attachment; filename=…` (RFC 6266), with `filename*` for non-ASCII names. */
export function contentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '\\$&')
  const plain = `attachment; filename="${ascii}"`
  return /^[\x20-\x7e]*$/.test(fileName)
    ? plain
    : `${plain}; filename*=UTF-8''${encodeURIComponent(fileName)}`
}

function idsOf(list: unknown): string[] {
  if (!Array.isArray(list)) return []
  return list.map((item) =>
    typeof item === 'object' && item !== null ? String((item as { id: unknown }).id) : String(item)
  )
}

/** Adds `itemId` to `{resource}/{id}/`'s `field` list unless it is there already. */
async function addToList(
  deps: OperationDependencies,
  resource: string,
  target: ApiObject,
  field: string,
  itemId: string,
  signal: AbortSignal
): Promise<void> {
  const step = async () => {
    const current = (await deps.api.get(`${resource}/${target.id}/`, { signal })).body as Record<
      string,
      unknown
    >
    // A list the answer does not show is not an empty list: writing one would replace it.
    if (!Array.isArray(current?.[field]))
      throw new CommandError(
        'unexpected_answer',
        `${resource}/${target.id}/ has no list field "${field}" in the API's answer: refusing to write one (it could replace links the API did not show)`
      )
    const ids = idsOf(current[field])
    if (ids.includes(itemId)) return
    await deps.api.patch(`${resource}/${target.id}/`, { [field]: [...ids, itemId] }, { signal })
  }
  await (deps.locks ? deps.locks.run(`${resource}/${target.id}`, step) : step())
}

/** Refuses `values` fields the operation does not know, instead of dropping them silently. */
function onlyKnownFields(values: Record<string, unknown>, known: string[]): void {
  const unknown = Object.keys(values).filter((field) => !known.includes(field))
  if (unknown.length > 0)
    throw new CommandError(
      'invalid_command',
      `${unknown.map((f) => `values.${f}`).join(', ')} ${unknown.length === 1 ? 'is not a field' : 'are not fields'} of this command (known: ${known.join(', ')})`
    )
}

/** An optional selector in `values[field]`: absent, null or `{}` means none (as the original dispatcher read it). */
function optionalSelector(values: Record<string, unknown>, field: string): ParsedSelector | undefined {
  const given = values[field]
  if (given == null || (typeof given === 'object' && Object.keys(given).length === 0)) return undefined
  return requireFilter(parseSelector(given, `values.${field}`), `values.${field}`)
}

async function fileBytes(deps: OperationDependencies, values: Record<string, unknown>, signal: AbortSignal) {
  const fileName = requiredString(values, 'file_name')
  const content = values.file_content
  const bucket = values.file_s3_bucket
  if (typeof content === 'string' && content.length > 0) {
    if (typeof bucket === 'string' && bucket.length > 0)
      throw new CommandError('invalid_command', 'give values.file_content or values.file_s3_bucket, not both')
    return { fileName, bytes: decodeBase64(content, 'values.file_content') }
  }
  if (typeof bucket === 'string' && bucket.length > 0) {
    if (!deps.s3)
      throw new CommandError(
        'invalid_command',
        'values.file_s3_bucket needs an object store: set s3.url, s3.accessKey and s3.secretKey'
      )
    const key = typeof values.file_s3_key === 'string' && values.file_s3_key ? values.file_s3_key : fileName
    return { fileName, bytes: await deps.s3.get(bucket, key, signal) }
  }
  throw new CommandError(
    'invalid_command',
    'values.file_content (base64) or values.file_s3_bucket is required'
  )
}

async function runUpdate(
  operation: Extract<Operation, { kind: 'update' }>,
  command: Command,
  deps: OperationDependencies,
  signal: AbortSignal
): Promise<string[]> {
  const selector = requireFilter(parseSelector(command.selector), 'selector', operation.allowUnfiltered)
  const values = valuesOf(command)
  if (operation.fields) onlyKnownFields(values, operation.fields)
  const body = operation.fields
    ? Object.fromEntries(operation.fields.filter((f) => f in values).map((f) => [f, values[f]]))
    : values
  if (operation.fields && Object.keys(body).length !== operation.fields.length)
    throw new CommandError(
      'invalid_command',
      `values must hold ${operation.fields.map((f) => `values.${f}`).join(', ')}`
    )
  if (Object.keys(body).length === 0)
    throw new CommandError('invalid_command', 'values is empty: nothing to update')
  const targets = await resolveSelector(deps.api, operation.resource, selector, { signal })
  for (const target of targets)
    await deps.api.request(operation.method ?? 'PATCH', `${operation.resource}/${target.id}/`, {
      json: body,
      signal
    })
  return targets.map((t) => t.id)
}

/**
 * The objects `selector` names on `resource`, or one created so that the selector finds it.
 * A create whose answer is lost may have been done: after a transient failure it looks
 * again before creating, so a retry never makes a second object.
 */
async function findOrCreate(
  deps: OperationDependencies,
  resource: string,
  selector: ParsedSelector,
  defaults: Record<string, unknown>,
  signal: AbortSignal
): Promise<ApiObject[]> {
  const fields = Object.fromEntries(Object.entries(selector.filters).filter(([key]) => !key.includes('__')))
  for (let attempt = 0; ; attempt += 1) {
    const found = await resolveSelector(deps.api, resource, selector, { signal, allowNone: true })
    if (found.length > 0) return found
    try {
      const created = (
        await deps.api.post(`${resource}/`, { ...defaults, ...fields }, { signal, idempotent: false })
      ).body as ApiObject
      if (typeof created?.id !== 'string')
        throw new CommandError('api_rejected', `POST ${resource}/ answered without an id`)
      return [created]
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retryable || attempt >= deps.api.retries) throw error
    }
  }
}

/** The `values` fields an upload reads. */
const uploadFields = ['name', 'file_name', 'file_content', 'file_s3_bucket', 'file_s3_key']

async function runUpload(
  operation: Extract<Operation, { kind: 'upload' }>,
  command: Command,
  deps: OperationDependencies,
  signal: AbortSignal
): Promise<string[]> {
  const values = valuesOf(command)
  onlyKnownFields(values, operation.link ? [...uploadFields, operation.link.selectorField] : uploadFields)
  const linkSelector = operation.link ? optionalSelector(values, operation.link.selectorField) : undefined
  const given = parseSelector(command.selector)
  const { fileName, bytes } = await fileBytes(deps, values, signal)
  // The object's name: `values.name`, else the file's name (to find it and to create it).
  const name = typeof values.name === 'string' && values.name.length > 0 ? values.name : fileName
  const selector = Object.keys(given.filters).length > 0 ? given : { ...given, filters: { name } }
  // Every selector is resolved before the first change: a link that matches nothing
  // leaves no empty object behind.
  const links = linkSelector
    ? await resolveSelector(deps.api, operation.link!.resource, linkSelector, {
        signal,
        path: `values.${operation.link!.selectorField}`
      })
    : []
  const objects = await findOrCreate(deps, operation.resource, selector, { name }, signal)
  for (const object of objects) {
    await deps.api.request(
      'POST',
      `${operation.resource}/${object.id}/${operation.uploadPath ?? 'upload/'}`,
      {
        body: bytes,
        headers: {
          'content-type': 'application/octet-stream',
          'content-disposition': contentDisposition(fileName)
        },
        signal
      }
    )
    for (const target of links)
      await addToList(deps, operation.link!.resource, target, operation.link!.field, object.id, signal)
  }
  return objects.map((o) => o.id)
}

async function runLink(
  operation: Extract<Operation, { kind: 'link' }>,
  command: Command,
  deps: OperationDependencies,
  signal: AbortSignal
): Promise<string[]> {
  const selector = requireFilter(parseSelector(command.selector), 'selector', operation.allowUnfiltered)
  const values = valuesOf(command)
  onlyKnownFields(values, [operation.from.selectorField])
  const path = `values.${operation.from.selectorField}`
  if (values[operation.from.selectorField] == null)
    throw new CommandError('invalid_command', `${path} is required`)
  const itemSelector = requireFilter(parseSelector(values[operation.from.selectorField], path), path)
  const [item] = await resolveSelector(
    deps.api,
    operation.from.resource,
    { ...itemSelector, target: 'single' },
    { signal, path }
  )
  const targets = await resolveSelector(deps.api, operation.resource, selector, { signal })
  for (const target of targets)
    await addToList(deps, operation.resource, target, operation.field, item!.id, signal)
  return targets.map((t) => t.id)
}

/** Carries out one command; resolves with the ids of the objects it changed. */
export async function runOperation(
  operation: Operation,
  command: Command,
  deps: OperationDependencies,
  signal: AbortSignal
): Promise<string[]> {
  switch (operation.kind) {
    case 'update':
      return runUpdate(operation, command, deps, signal)
    case 'upload':
      return runUpload(operation, command, deps, signal)
    case 'link':
      return runLink(operation, command, deps, signal)
  }
}

/** A consumer handler that carries out each message's command with `operation`. */
export function operationHandler(
  operation: Operation,
  deps: OperationDependencies,
  onDone?: (message: Message<Command>, affected: string[]) => void
): Handler<Command> {
  return async (message, { signal }) => {
    const affected = await runOperation(operation, message.value, deps, signal)
    onDone?.(message, affected)
  }
}
