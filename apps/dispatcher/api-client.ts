/**
 * An authenticated client for a REST API, built for commands that must never be lost.
 *
 * Every call is classified by what repeating it can achieve:
 * - success (2xx): returned;
 * - refused credentials (401, 403): the API is closed to every command until a probe call
 *   succeeds; calls wait (nothing fails, nothing is committed) and one log line asks the
 *   operator to renew the token;
 * - transient (unreachable, timeout, 429, 5xx): retried with exponential backoff (or the
 *   `Retry-After` the API asks for); after `retries`, a retryable `ApiError`, which the
 *   consumer retries and finally dead-letters. When `outageThreshold` calls in a row find
 *   the API unreachable (connection errors, timeouts, 502, 503, 504), the API is closed as
 *   for refused credentials: an outage makes commands wait instead of burning their retries;
 * - refused (other 4xx): a non-retryable `ApiError` carrying the API's response body.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import { ConveyorError, ErrorCodes } from '../../src/core/errors.ts'
import { backoff } from '../../src/retry/policy.ts'

export interface Backoff {
  initialDelay: number
  multiplier: number
  maxDelay: number
}

export interface ApiLogger {
  debug(object: object, message: string): void
  info(object: object, message: string): void
  warn(object: object, message: string): void
  error(object: object, message: string): void
}

export interface ApiClientOptions {
  /** Base URL, e.g. `http://localhost:8000/api`; paths are relative to it. */
  url: string
  /** The token, or a function read before every call (so a token file can be renewed in place). */
  token?: string | (() => string | undefined)
  /** `Authorization: <scheme> <token>`. Default `Token` (CISO Assistant's personal access tokens). */
  authScheme?: string
  /** Longest one call may take, ms. Default 30 000. */
  timeout?: number
  /** Retries of one call after a transient failure. Default 3. */
  retries?: number
  /** Delay before retry N: initialDelay × multiplier^(N−1), capped, with jitter. Default 500 ms, ×2, 10 s. */
  backoff?: Backoff
  /** Path of the probe call that reopens a closed API (GET, relative to `url`). Default: `url` itself. */
  probePath?: string
  /** Delays between probes while the API is closed. Default 1 s, ×2, 30 s. */
  probeBackoff?: Backoff
  /** Unreachable calls in a row that close the API until a probe succeeds. Default 5. */
  outageThreshold?: number
  /** Verify the API's TLS certificate. Default true. */
  verifyCertificate?: boolean
  /** Extra CA certificates (PEM) for the API's TLS certificate. */
  ca?: string | Buffer
  logger?: ApiLogger
  /** Told of every call that failed transiently and will be repeated (for a metric). */
  onRetry?: (event: CallRetry) => void
}

/** A call that failed transiently and is repeated after `delay` ms (`attempt` 1 = the first repeat). */
export interface CallRetry {
  method: string
  target: string
  reason: string
  status: number | undefined
  attempt: number
  delay: number
}

export interface ApiResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON when the API sent JSON, else the text. */
  body: unknown
  text: string
}

export interface RequestOptions {
  query?: Record<string, string>
  json?: unknown
  body?: Buffer
  headers?: Record<string, string>
  signal?: AbortSignal
  /**
   * Whether repeating the call is safe (default true). A call that is not (a POST that
   * creates) is never repeated here after a transient failure — it may have been done
   * with the answer lost — but fails at once, so the caller can look before trying again.
   */
  idempotent?: boolean
}

export type ApiFailure = 'unreachable' | 'timeout' | 'rate_limited' | 'server_error' | 'api_rejected'

/** A failed call: `status` and `body` are the API's answer (absent when it gave none). */
export class ApiError extends ConveyorError {
  readonly reason: ApiFailure | string
  readonly status: number | undefined
  readonly body: string | undefined
  readonly method: string
  readonly target: string

  constructor(options: {
    method: string
    target: string
    reason: ApiFailure | string
    retryable: boolean
    status?: number
    body?: string
    detail?: string
    cause?: unknown
  }) {
    const answer =
      options.status !== undefined
        ? `${options.status}${options.body ? `: ${truncate(options.body)}` : ''}`
        : (options.detail ?? options.reason)
    super(ErrorCodes.API, `${options.method} ${options.target} → ${answer}`, {
      retryable: options.retryable,
      cause: options.cause
    })
    this.name = 'ApiError'
    this.reason = options.reason
    this.status = options.status
    this.body = options.body
    this.method = options.method
    this.target = options.target
  }
}

const maxBodyInMessage = 2_000

function truncate(text: string): string {
  return text.length > maxBodyInMessage ? `${text.slice(0, maxBodyInMessage)}… (${text.length} chars)` : text
}

type Closed =
  | { kind: 'unauthorized'; since: number; detail: string }
  | { kind: 'unreachable'; since: number; detail: string }

/** What an API's availability looks like from here, for `/status` and readiness. */
export interface ApiAvailability {
  open: boolean
  state: 'open' | 'unauthorized' | 'unreachable'
  since?: string
  detail?: string
}

const unavailableStatuses = new Set([502, 503, 504])

export class ApiClient {
  readonly url: URL
  readonly #options: Required<Omit<ApiClientOptions, 'token' | 'ca' | 'logger' | 'probePath' | 'onRetry'>> &
    Pick<ApiClientOptions, 'token' | 'logger' | 'probePath' | 'onRetry'>
  readonly #agent: Agent
  #closed: Closed | undefined
  #reopened: { promise: Promise<void>; resolve: () => void } | undefined
  #unreachableInARow = 0
  #prober: Promise<void> | undefined
  readonly #shutdown = new AbortController()
  /** Aborted by `stopWaiting()`: waits for a closed API and backoffs between call retries end. */
  readonly #stopWaits = new AbortController()

  constructor(options: ApiClientOptions) {
    this.url = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`)
    this.#options = {
      authScheme: 'Token',
      timeout: 30_000,
      retries: 3,
      backoff: { initialDelay: 500, multiplier: 2, maxDelay: 10_000 },
      probeBackoff: { initialDelay: 1_000, multiplier: 2, maxDelay: 30_000 },
      outageThreshold: 5,
      verifyCertificate: true,
      ...options
    }
    this.#agent = new Agent({
      keepAliveTimeout: 4_000,
      connect: {
        rejectUnauthorized: this.#options.verifyCertificate,
        ...(options.ca ? { ca: options.ca } : {})
      }
    })
  }

  /** Retries of one call after a transient failure. */
  get retries(): number {
    return this.#options.retries
  }

  availability(): ApiAvailability {
    const closed = this.#closed
    if (!closed) return { open: true, state: 'open' }
    return {
      open: false,
      state: closed.kind,
      since: new Date(closed.since).toISOString(),
      detail: closed.detail
    }
  }

  /** Readiness problems: empty while the API is open. */
  problems(): string[] {
    const closed = this.#closed
    if (!closed) return []
    return closed.kind === 'unauthorized'
      ? [`the API at ${this.url.origin} refuses the token (${closed.detail}): renew it`]
      : [`the API at ${this.url.origin} is unreachable (${closed.detail})`]
  }

  /** A path relative to the base URL, or an absolute URL (same origin as the API), with a query. */
  resolve(path: string, query?: Record<string, string>): URL {
    let url: URL
    if (/^https?:\/\//.test(path)) {
      // Pagination links may name the host the API sees behind a proxy: keep the path, use ours.
      const given = new URL(path)
      url = new URL(`${given.pathname}${given.search}`, this.url.origin)
    } else if (path.startsWith('/')) {
      url = new URL(path, this.url.origin)
    } else if (path.startsWith('?')) {
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `a relative query "${path}" needs a base path`)
    } else {
      url = new URL(path, this.url)
    }
    for (const [key, value] of Object.entries(query ?? {})) url.searchParams.append(key, value)
    return url
  }

  async get(path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    return this.request('GET', path, options)
  }

  async patch(path: string, json: unknown, options: RequestOptions = {}): Promise<ApiResponse> {
    return this.request('PATCH', path, { ...options, json })
  }

  async post(path: string, json: unknown, options: RequestOptions = {}): Promise<ApiResponse> {
    return this.request('POST', path, { ...options, json })
  }

  /** One call, with the retries, waits and classification described above. */
  async request(method: string, path: string | URL, options: RequestOptions = {}): Promise<ApiResponse> {
    const url = typeof path === 'string' ? this.resolve(path, options.query) : path
    const target = `${url.pathname}${url.search}`
    const signal = options.signal ?? this.#shutdown.signal
    let failures = 0
    for (;;) {
      await this.#whenOpen(signal)
      const outcome = await this.#send(method, url, options, signal)
      if ('response' in outcome && outcome.response.status < 300) {
        this.#unreachableInARow = 0
        return outcome.response
      }
      const error = this.#classify(method, target, outcome)
      if (error === 'unauthorized') {
        const { status, text } = (outcome as { response: ApiResponse }).response
        this.#close('unauthorized', `${status}${text ? ` ${truncate(text).slice(0, 200)}` : ''}`)
        continue
      }
      if (!error.retryable) {
        this.#unreachableInARow = 0
        throw error
      }
      const idempotent = options.idempotent ?? true
      const unavailable =
        error.reason === 'unreachable' ||
        error.reason === 'timeout' ||
        unavailableStatuses.has(error.status ?? 0)
      this.#unreachableInARow = unavailable ? this.#unreachableInARow + 1 : 0
      if (unavailable && this.#unreachableInARow >= this.#options.outageThreshold) {
        this.#close('unreachable', error.message)
        if (!idempotent) throw error
        continue // not counted: an outage makes the call wait, it does not use up its retries
      }
      if (!idempotent) throw error
      failures += 1
      if (failures > this.#options.retries) throw error
      const retryAfter =
        'response' in outcome ? retryAfterMs(outcome.response.headers['retry-after']) : undefined
      const wait = retryAfter ?? delay(this.#options.backoff, failures)
      const retry = {
        method,
        target,
        reason: error.reason,
        status: error.status,
        attempt: failures,
        delay: wait
      }
      this.#options.logger?.debug({ ...retry, error: error.message }, 'API call failed, will retry')
      this.#options.onRetry?.(retry)
      await sleep(wait, undefined, { signal: AbortSignal.any([signal, this.#stopWaits.signal]) }).catch(
        (aborted) => {
          this.#stopWaits.signal.throwIfAborted()
          throw aborted
        }
      )
    }
  }

  /**
   * Ends every wait at once: calls waiting for a closed API to reopen, and backoffs between
   * a call's retries, reject with a "stopping" error. A service calls it when it begins to
   * stop: such a command is not committed anyway, and waiting for it would only hold the
   * stop for the whole drain timeout. Calls in progress go on.
   */
  stopWaiting(): void {
    this.#stopWaits.abort(
      new ConveyorError(ErrorCodes.STATE, 'the service is stopping: the call was not made', {
        retryable: true
      })
    )
  }

  /** Stops probing and closes connections; waiting calls reject. */
  async close(): Promise<void> {
    this.#shutdown.abort()
    await this.#prober?.catch(() => {})
    await this.#agent.close()
  }

  #authorization(): Record<string, string> {
    const token = typeof this.#options.token === 'function' ? this.#options.token() : this.#options.token
    return token ? { authorization: `${this.#options.authScheme} ${token}` } : {}
  }

  async #send(
    method: string,
    url: URL,
    options: RequestOptions,
    signal: AbortSignal
  ): Promise<{ response: ApiResponse } | { error: unknown; timedOut: boolean }> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...this.#authorization(),
      ...options.headers
    }
    let body: Buffer | string | undefined = options.body
    if (options.json !== undefined) {
      body = JSON.stringify(options.json)
      headers['content-type'] = 'application/json'
    }
    const timeout = AbortSignal.timeout(this.#options.timeout)
    try {
      const response = await request(url, {
        method: method as 'GET',
        headers,
        body: body ?? null,
        signal: AbortSignal.any([signal, timeout]),
        dispatcher: this.#agent
      })
      const text = await response.body.text()
      const type = String(response.headers['content-type'] ?? '')
      let parsed: unknown = text
      if (type.includes('json') && text.length > 0) {
        try {
          parsed = JSON.parse(text)
        } catch {
          parsed = text
        }
      }
      return { response: { status: response.statusCode, headers: response.headers, body: parsed, text } }
    } catch (error) {
      signal.throwIfAborted()
      return { error, timedOut: timeout.aborted }
    }
  }

  #classify(
    method: string,
    target: string,
    outcome: { response: ApiResponse } | { error: unknown; timedOut: boolean }
  ): ApiError | 'unauthorized' {
    if ('error' in outcome) {
      const cause = outcome.error as { code?: string; message?: string; cause?: { code?: string } }
      return new ApiError({
        method,
        target,
        reason: outcome.timedOut ? 'timeout' : 'unreachable',
        retryable: true,
        detail: outcome.timedOut
          ? `no answer within ${this.#options.timeout} ms`
          : `unreachable: ${cause?.cause?.code ?? cause?.code ?? cause?.message ?? String(outcome.error)}`,
        cause: outcome.error
      })
    }
    const { status, text } = outcome.response
    if (status === 401 || status === 403) return 'unauthorized'
    const transient = status === 408 || status === 429 || status >= 500
    return new ApiError({
      method,
      target,
      status,
      body: text,
      retryable: transient,
      reason:
        status === 429 ? 'rate_limited' : status >= 500 || status === 408 ? 'server_error' : 'api_rejected'
    })
  }

  #close(kind: Closed['kind'], detail: string): void {
    if (this.#closed?.kind === kind) return
    const first = this.#closed === undefined
    this.#closed = { kind, since: first ? Date.now() : this.#closed!.since, detail }
    this.#reopened ??= Promise.withResolvers<void>()
    const log = this.#options.logger
    if (kind === 'unauthorized') {
      log?.error(
        { api: this.url.origin, answer: detail },
        Object.keys(this.#authorization()).length > 0
          ? 'the API refuses the token: renew it (api.token, USER_TOKEN). Commands wait uncommitted and resume when a probe call succeeds'
          : 'the API refuses anonymous calls: set a token (api.token, USER_TOKEN). Commands wait uncommitted and resume when a probe call succeeds'
      )
    } else {
      log?.warn(
        { api: this.url.origin, error: detail },
        `the API is unreachable (${this.#unreachableInARow} calls in a row): commands wait and resume when a probe call succeeds`
      )
    }
    this.#prober ??= this.#probe().finally(() => {
      this.#prober = undefined
    })
  }

  async #whenOpen(callSignal: AbortSignal): Promise<void> {
    while (this.#reopened) {
      const signal = AbortSignal.any([this.#stopWaits.signal, callSignal])
      signal.throwIfAborted()
      const aborted = new Promise<never>((_, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true })
      })
      aborted.catch(() => {})
      await Promise.race([this.#reopened.promise, aborted])
    }
  }

  async #probe(): Promise<void> {
    const signal = this.#shutdown.signal
    const url = this.resolve(this.#options.probePath ?? '')
    for (let attempt = 1; ; attempt += 1) {
      try {
        await sleep(delay(this.#options.probeBackoff, attempt), undefined, { signal })
      } catch {
        return
      }
      const outcome = await this.#send('GET', url, {}, signal).catch(() => undefined)
      if (!outcome) return
      if ('response' in outcome) {
        const { status, text } = outcome.response
        if (status < 300) break
        if (status === 401 || status === 403) {
          this.#close('unauthorized', `${status}${text ? ` ${text.slice(0, 200)}` : ''}`)
        }
      }
    }
    const closed = this.#closed!
    this.#closed = undefined
    this.#unreachableInARow = 0
    const reopened = this.#reopened!
    this.#reopened = undefined
    this.#options.logger?.info(
      { api: this.url.origin, closedFor: Date.now() - closed.since, was: closed.kind },
      'the API answers the probe: commands resume'
    )
    reopened.resolve()
  }
}

/** The project's backoff (exponential, capped, with jitter) for a retry or probe schedule. */
function delay(schedule: Backoff, attempt: number): number {
  return backoff({ kind: 'forever', ...schedule, jitter: true }, attempt)
}

/** `Retry-After` in ms (seconds or an HTTP date), at most one minute. */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined) return undefined
  const seconds = Number(value)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now()
  return Number.isFinite(ms) ? Math.min(60_000, Math.max(0, ms)) : undefined
}
