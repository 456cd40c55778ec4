/**
 * Selectors: how a command names the objects it acts on. Every key but `target` is a
 * filter sent as a query parameter on `GET {api}/{resource}/`; `target` is `single`
 * (the default: exactly one object must match) or `multiple` (every match, in API order).
 */
import { NonRetryableError } from '../../src/core/errors.ts'
import { type ApiClient, ApiError } from './api-client.ts'

export type Selector = Record<string, string>

export interface ApiObject {
  id: string
  [field: string]: unknown
}

/** A command that cannot be carried out as it stands: dead-lettered at once with `reason`. */
export class CommandError extends NonRetryableError {
  constructor(reason: string, message: string, cause?: unknown) {
    super(message, { reason, cause })
    this.name = 'CommandError'
  }
}

export interface ParsedSelector {
  filters: Record<string, string>
  target: 'single' | 'multiple'
}

/** Splits `target` from the filters; `path` names the selector in errors (e.g. `values.applied_controls`). */
export function parseSelector(selector: unknown, path = 'selector'): ParsedSelector {
  if (selector === undefined || selector === null) return { filters: {}, target: 'single' }
  if (typeof selector !== 'object' || Array.isArray(selector))
    throw new CommandError('invalid_command', `${path} must be a map of filters`)
  const filters: Record<string, string> = {}
  let target: ParsedSelector['target'] = 'single'
  for (const [key, value] of Object.entries(selector)) {
    if (typeof value !== 'string')
      throw new CommandError(
        'invalid_command',
        `${path}.${key} must be a string, got ${JSON.stringify(value)}`
      )
    // Django REST Framework's filters (and most APIs') skip an empty value: it would match everything.
    if (value.length === 0 && key !== 'target')
      throw new CommandError(
        'invalid_command',
        `${path}.${key} is empty: an empty filter matches every object`
      )
    if (key === 'target') {
      if (value !== 'single' && value !== 'multiple')
        throw new CommandError(
          'invalid_selector',
          `${path}.target must be "single" or "multiple", got "${value}"`
        )
      target = value
    } else filters[key] = value
  }
  return { filters, target }
}

/**
 * Refuses a selector without filters: it would list every object of the resource, and
 * the command would act on objects nobody named. `allowUnfiltered` (an operation's
 * explicit opt-in) lets it through.
 */
export function requireFilter(
  selector: ParsedSelector,
  path = 'selector',
  allowUnfiltered = false
): ParsedSelector {
  if (!allowUnfiltered && Object.keys(selector.filters).length === 0)
    throw new CommandError(
      'invalid_command',
      `the ${path === 'selector' ? 'selector' : `selector ${path}`} names no filter: refusing to act on every object`
    )
  return selector
}

function describe(resource: string, filters: Record<string, string>): string {
  const query = new URLSearchParams(filters).toString()
  return `${resource}${query ? `?${query}` : ''}`
}

/** Pages a list endpoint: a paginated `{ results, next }` (next absolute or relative) or a plain array. */
export async function listAll(
  api: ApiClient,
  resource: string,
  filters: Record<string, string>,
  signal?: AbortSignal
): Promise<ApiObject[]> {
  const objects: ApiObject[] = []
  let url = api.resolve(`${resource}/`, filters)
  const seen = new Set<string>()
  for (;;) {
    seen.add(url.href)
    let body: unknown
    try {
      body = (await api.request('GET', url, { signal })).body
    } catch (error) {
      if (error instanceof ApiError && !error.retryable)
        throw new CommandError(
          'invalid_selector',
          `the API refused the selector ${describe(resource, filters)}: ${error.message}`,
          error
        )
      throw error
    }
    const page = Array.isArray(body) ? body : (body as { results?: unknown } | null)?.results
    if (!Array.isArray(page))
      throw new ApiError({
        method: 'GET',
        target: `${url.pathname}${url.search}`,
        reason: 'unexpected_answer',
        retryable: true,
        detail: 'the answer is neither a list nor a page with `results`'
      })
    for (const item of page) {
      if (typeof item !== 'object' || item === null || typeof (item as ApiObject).id !== 'string')
        throw new ApiError({
          method: 'GET',
          target: `${url.pathname}${url.search}`,
          reason: 'unexpected_answer',
          retryable: true,
          detail: 'a listed object has no string `id`'
        })
      objects.push(item as ApiObject)
    }
    const next = Array.isArray(body) ? undefined : (body as { next?: unknown }).next
    if (typeof next !== 'string' || next.length === 0) return objects
    // Absolute links keep their path on the API's own origin; relative ones resolve against this page.
    url = /^https?:\/\//.test(next) ? api.resolve(next) : new URL(next, url)
    if (seen.has(url.href))
      throw new ApiError({
        method: 'GET',
        target: `${url.pathname}${url.search}`,
        reason: 'unexpected_answer',
        retryable: true,
        detail: 'pagination loops back to a page already read'
      })
  }
}

/**
 * The objects a selector names on `resource`. No match is a `no_match` error; more than
 * one with `target: single` is `ambiguous_selector`; a filter the API refuses (400) is
 * `invalid_selector`. With `allowNone`, no match resolves to an empty list.
 */
export async function resolveSelector(
  api: ApiClient,
  resource: string,
  selector: ParsedSelector,
  {
    signal,
    path = 'selector',
    allowNone = false
  }: { signal?: AbortSignal; path?: string; allowNone?: boolean } = {}
): Promise<ApiObject[]> {
  const { filters, target } = selector
  const objects = await listAll(api, resource, filters, signal)
  if (objects.length === 0 && !allowNone)
    throw new CommandError(
      'no_match',
      `no object matches the selector (${path}: ${describe(resource, filters)})`
    )
  if (objects.length > 1 && target === 'single')
    throw new CommandError(
      'ambiguous_selector',
      `expected a single object, got ${objects.length} (${path}: ${describe(resource, filters)}): narrow the selector to name one object`
    )
  return objects
}
