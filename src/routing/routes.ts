import { BatchError, ConveyorError, ErrorCodes } from '../core/errors.ts'
import { type BatchHandler, compose, type Handler, type Middleware } from '../core/message.ts'
import { bounded, type RetryPolicy } from '../retry/policy.ts'
import { batchWithTimeout, withTimeout } from './timeout.ts'

/** How one message type is handled: one message at a time (`handler`) or in batches (`handleBatch`). */
// biome-ignore lint/suspicious/noExplicitAny: a table holds handlers of every payload type
export type Route<T = any> = MessageRoute<T> | BatchRoute<T>

/** What every route has, whatever it handles at a time. */
interface RouteOptions {
  /** Default: bounded (3 retries, 1 s, ×2, 30 s cap, jitter), then the DLQ. */
  retry?: RetryPolicy
  /** Dead-letter topic of this route. Default: `<source topic>.dlq`. */
  deadLetterTopic?: string
  /** Longest one attempt may take, ms; past it the attempt fails with a retryable timeout. */
  timeout?: number
}

/** A route handling its messages one at a time. */
// biome-ignore lint/suspicious/noExplicitAny: see Route
export interface MessageRoute<T = any> extends RouteOptions {
  /** Handles the messages of this type; a throw fails the attempt (see `retry`). */
  handler: Handler<T>
  /** Applied outermost first, around the handler. */
  middleware?: Middleware[]
  /** A route handling one message at a time has no batch handler. */
  handleBatch?: undefined
  /** Nor batch options. */
  batch?: undefined
}

/**
 * A route handling its messages in batches: consecutive messages of one lane (a partition,
 * or a key in key mode), in offset order. A throw fails the attempt of the whole batch
 * unless it is a {@link BatchError} naming the message that failed; see `batch.split`.
 * Middleware wraps handlers of one message, so a batch route takes none (the consumer's
 * `middleware` passes it by); `timeout` bounds each call of `handleBatch`.
 */
// biome-ignore lint/suspicious/noExplicitAny: see Route
export interface BatchRoute<T = any> extends RouteOptions {
  /** Handles a batch of messages of this type; they count as processed when it returns. */
  handleBatch: BatchHandler<T>
  /** How batches are made and split. */
  batch?: BatchOptions
  /** A batch route has no handler of one message. */
  handler?: undefined
  /** Nor middleware: middleware wraps handlers of one message. */
  middleware?: undefined
}

/** How a batch route's batches are made, and what happens when one fails. */
export interface BatchOptions {
  /** Most messages in one batch. Default 100. */
  maxSize?: number
  /**
   * How long a lane with fewer than `maxSize` messages waits for more before its batch
   * starts, ms. Default 0: a batch takes what has arrived (records of one fetch together).
   */
  maxWait?: number
  /**
   * A batch that fails without naming the failing message (a plain error, not a
   * `BatchError`): `true` (default) halves it until the first message that fails alone
   * is found, handling the halves that succeed on the way, so only that message follows
   * the retry policy (and may reach the DLQ), the ones before it are done and the ones
   * after it make a batch again; `false` retries the whole batch by the policy and, when it gives up,
   * dead-letters every message of it.
   */
  split?: boolean
}

/** Message type → route. */
export type Routes = Record<string, Route>

/** Where a message's type is read. */
export type TypeSource =
  | { field: string }
  | { header: string }
  | ((message: { value: unknown; headers: ReadonlyMap<string, Buffer> }) => string | undefined)

export interface CompiledRoute {
  readonly type: string
  /** Handles one message (for a batch route: a batch of one). */
  readonly handler: Handler<unknown>
  /** A batch route's handler and options. */
  readonly batch?: Readonly<Required<BatchOptions>> & { readonly handler: BatchHandler<unknown> }
  readonly retry: RetryPolicy
  readonly deadLetterTopic: string | undefined
}

/** The frozen type → route table. */
export type RouteTable = ReadonlyMap<string, CompiledRoute>

/** Throws a `CONVEYOR_INVALID_OPTION` error naming the bad field when `ok` is false. */
export function check(ok: boolean, path: string, message: string): asserts ok {
  if (!ok) throw new ConveyorError(ErrorCodes.INVALID_OPTION, `${path}: ${message}`, { path })
}

function isPositiveNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0
}

function checkRetry(policy: unknown, path: string): asserts policy is RetryPolicy {
  check(
    typeof policy === 'object' && policy !== null,
    path,
    'must be a retry policy (bounded() or forever())'
  )
  const p = policy as Record<string, unknown>
  check(
    p.kind === 'bounded' || p.kind === 'forever',
    `${path}.kind`,
    `must be "bounded" or "forever", got ${JSON.stringify(p.kind)}`
  )
  if (p.kind === 'bounded') {
    check(
      Number.isInteger(p.retries) && (p.retries as number) >= 0,
      `${path}.retries`,
      'must be an integer ≥ 0'
    )
  }
  check(isPositiveNumber(p.initialDelay), `${path}.initialDelay`, 'must be a number of ms > 0')
  check(typeof p.multiplier === 'number' && p.multiplier >= 1, `${path}.multiplier`, 'must be a number ≥ 1')
  check(
    isPositiveNumber(p.maxDelay) && (p.maxDelay as number) >= (p.initialDelay as number),
    `${path}.maxDelay`,
    'must be a number of ms ≥ initialDelay'
  )
  check(typeof p.jitter === 'boolean', `${path}.jitter`, 'must be true or false')
}

/**
 * Validates the routes once, at start-up, and returns the frozen table. A bad route
 * fails with the path of the bad field, e.g. `routes > update_status > retry.retries`.
 */
export function compileRoutes(routes: Routes, base = 'routes', shared: Middleware[] = []): RouteTable {
  for (const [i, m] of shared.entries())
    check(typeof m === 'function', `middleware[${i}]`, 'must be a function')
  check(
    typeof routes === 'object' && routes !== null && !Array.isArray(routes),
    base,
    'must be an object of message type → route'
  )
  const types = Object.keys(routes)
  check(types.length > 0, base, 'declare at least one route')
  const table = new Map<string, CompiledRoute>()
  for (const type of types) {
    const path = `${base} > ${type}`
    const route = routes[type] as Route | undefined
    check(type.trim().length > 0, path, 'the message type must not be empty')
    check(typeof route === 'object' && route !== null, path, 'must be a route object with a handler')
    const batched = route.handleBatch !== undefined
    check(
      batched ? route.handler === undefined : typeof route.handler === 'function',
      `${path} > handler`,
      batched
        ? 'a route has a handler or a handleBatch, not both'
        : 'must be a function (message, context) => …'
    )
    const retry = route.retry ?? bounded()
    checkRetry(retry, `${path} > retry`)
    if (route.deadLetterTopic !== undefined) {
      check(
        typeof route.deadLetterTopic === 'string' && /^[a-zA-Z0-9._-]{1,249}$/.test(route.deadLetterTopic),
        `${path} > deadLetterTopic`,
        'must be a valid Kafka topic name ([a-zA-Z0-9._-], at most 249 characters)'
      )
    }
    if (route.timeout !== undefined)
      check(isPositiveNumber(route.timeout), `${path} > timeout`, 'must be a number of ms > 0')
    const compiled = batched ? compileBatch(route as BatchRoute, path) : compileMessage(route, shared, path)
    table.set(
      type,
      Object.freeze({
        type,
        ...compiled,
        retry: Object.freeze({ ...retry }),
        deadLetterTopic: route.deadLetterTopic
      })
    )
  }
  return table
}

function compileMessage(
  route: MessageRoute,
  shared: readonly Middleware[],
  path: string
): Pick<CompiledRoute, 'handler'> {
  const middleware = route.middleware ?? []
  check(Array.isArray(middleware), `${path} > middleware`, 'must be an array of middleware')
  for (const [i, m] of middleware.entries()) {
    check(typeof m === 'function', `${path} > middleware[${i}]`, 'must be a function')
  }
  const handler = compose(route.handler, [
    ...shared,
    ...middleware,
    ...(route.timeout === undefined ? [] : [withTimeout(route.timeout)])
  ])
  return { handler }
}

function compileBatch(route: BatchRoute, path: string): Pick<CompiledRoute, 'handler' | 'batch'> {
  check(
    typeof route.handleBatch === 'function',
    `${path} > handleBatch`,
    'must be a function (messages, context) => …'
  )
  check(
    route.middleware === undefined,
    `${path} > middleware`,
    'middleware wraps one message at a time; a batch route takes none'
  )
  const options = route.batch ?? {}
  check(
    typeof options === 'object' && options !== null,
    `${path} > batch`,
    'must be { maxSize, maxWait, split }'
  )
  const batch = { maxSize: 100, maxWait: 0, split: true, ...options }
  check(
    Number.isInteger(batch.maxSize) && batch.maxSize > 0,
    `${path} > batch.maxSize`,
    'must be an integer > 0'
  )
  check(
    typeof batch.maxWait === 'number' && Number.isFinite(batch.maxWait) && batch.maxWait >= 0,
    `${path} > batch.maxWait`,
    'must be a number of ms ≥ 0'
  )
  check(typeof batch.split === 'boolean', `${path} > batch.split`, 'must be true or false')
  const handler =
    route.timeout === undefined ? route.handleBatch : batchWithTimeout(route.timeout)(route.handleBatch)
  return {
    // A batch of one, as retries run it; a BatchError naming its message is that message's error.
    handler: async (message, context) => {
      try {
        await handler([message], context)
      } catch (error) {
        throw error instanceof BatchError && error.index === 0 ? (error.cause ?? error) : error
      }
    },
    batch: Object.freeze({ ...batch, handler })
  }
}

export function checkTypeSource(source: unknown, path: string): asserts source is TypeSource {
  if (typeof source === 'function') return
  check(typeof source === 'object' && source !== null, path, 'must be { field }, { header } or a function')
  const s = source as Record<string, unknown>
  const ok =
    (typeof s.field === 'string' && s.field.length > 0) !==
    (typeof s.header === 'string' && s.header.length > 0)
  check(ok, path, 'must name exactly one non-empty "field" or "header"')
}

/** Reads the type: a top-level payload field, a header (UTF-8), or the user's function. */
export function readType(
  source: TypeSource,
  value: unknown,
  headers: ReadonlyMap<string, Buffer>
): string | undefined {
  if (typeof source === 'function') return source({ value, headers })
  if ('header' in source) return headers.get(source.header)?.toString('utf8') || undefined
  const field = (value as Record<string, unknown> | null)?.[source.field]
  return typeof field === 'string' && field.length > 0 ? field : undefined
}

/** Reads the version: the payload's `version` field (an integer), else undefined. */
export function readVersion(value: unknown): number | undefined {
  const version = (value as Record<string, unknown> | null)?.version
  return Number.isInteger(version) ? (version as number) : undefined
}
