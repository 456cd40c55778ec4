/**
 * A small stand-in for the CISO Assistant REST API, for the demo (`npm start` without
 * `API_URL`) and the tests. It behaves as the real API does where the dispatcher cares:
 * `Authorization: Token …` (401 otherwise), filters as query parameters (unknown ones
 * ignored, as django-filter does; an invalid choice is a 400), limit/offset pagination with
 * an absolute (or relative) `next`, PATCH with field validation, evidence creation and
 * uploads (`Content-Disposition: attachment; filename=…`). It records every call.
 *
 * For chaos tests it can fail a share of calls transiently — before doing the work, or
 * after it with the answer lost — and go down (connections refused) for a while.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { listen } from '../../src/util/listen.ts'

export type FakeObject = { id: string; [field: string]: unknown }

export interface RecordedCall {
  method: string
  path: string
  query: Record<string, string>
  /** Parsed JSON, or `{ bytes, fileName }` for an upload. */
  body: unknown
  status: number
  /** Set when chaos failed the call: `before` (not done) or `after` (done, answer lost). */
  chaos?: 'before' | 'after'
}

/** A failure planned for the next call that matches: before the work, or after it (answer lost). */
export interface PlannedFailure {
  /** `METHOD /api/path/?query` prefix the call must match, e.g. `POST /api/evidences/`. Default: any call. */
  match?: string
  when?: 'before' | 'after'
  /** The status to answer, or `reset` to drop the connection. */
  status?: number | 'reset'
  /** How many matching calls fail. Default 1. */
  times?: number
}

export interface ChaosOptions {
  /** Share of calls (0–1) that fail transiently. */
  failRate: number
  /** Seed of the failure sequence (same seed, same failures for the same calls). */
  seed?: number
}

export interface FakeOptions {
  port?: number
  host?: string
  /** Accepted tokens. Default `['demo-token']`. */
  tokens?: string[]
  /** Page size when the client gives no `limit`. Default 100. */
  pageSize?: number
  /** Give `next` as a relative link (`?limit=…&offset=…`) instead of an absolute URL. */
  relativeNext?: boolean
  chaos?: ChaosOptions
}

const choices: Record<string, Record<string, string[]>> = {
  'applied-controls': {
    status: ['to_do', 'in_progress', 'on_hold', 'active', 'deprecated', '--'],
    priority: ['1', '2', '3', '4'],
    category: ['policy', 'process', 'technical', 'physical', 'procedure']
  },
  'requirement-assessments': {
    result: ['not_assessed', 'partially_compliant', 'non_compliant', 'compliant', 'not_applicable'],
    status: ['to_do', 'in_progress', 'in_review', 'done']
  },
  evidences: {}
}

/** Fields each resource can be filtered on (the real API's filterset fields, in part). */
const filterable: Record<string, string[]> = {
  'applied-controls': ['id', 'ref_id', 'name', 'status', 'priority', 'category', 'folder', 'eta'],
  'requirement-assessments': [
    'id',
    'result',
    'status',
    'compliance_assessment__ref_id',
    'requirement__ref_id',
    'folder'
  ],
  evidences: ['id', 'name', 'ref_id', 'folder', 'applied_controls']
}

const readOnly = new Set(['id', 'created_at', 'updated_at'])

/** mulberry32: a small seeded PRNG, so a chaos run can be repeated. */
function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

function lookup(object: FakeObject, path: string): unknown {
  return path
    .split('__')
    .reduce<unknown>((value, key) => (value as Record<string, unknown> | null)?.[key], object)
}

export class FakeCisoAssistant {
  readonly calls: RecordedCall[] = []
  readonly data = new Map<string, Map<string, FakeObject>>(Object.keys(choices).map((r) => [r, new Map()]))
  /** Every upload, in order: the evidence id, file name and bytes. */
  readonly uploads: Array<{ evidence: string; fileName: string; bytes: Buffer }> = []
  readonly tokens: Set<string>
  #options: FakeOptions
  #server: Server | undefined
  #sockets = new Set<Socket>()
  #random: () => number
  #port = 0
  #host: string
  #planned: PlannedFailure[] = []
  down = false

  constructor(options: FakeOptions = {}) {
    this.#options = options
    this.tokens = new Set(options.tokens ?? ['demo-token'])
    this.#random = prng(options.chaos?.seed ?? 1)
    this.#port = options.port ?? 0
    this.#host = options.host ?? '127.0.0.1'
  }

  /** The API's base URL, e.g. `http://127.0.0.1:8000/api`. */
  get url(): string {
    return `http://${this.#host}:${this.#port}/api`
  }

  async start(): Promise<this> {
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((error) => {
        response.writeHead(500, { 'content-type': 'application/json' })
        response.end(JSON.stringify({ detail: String(error) }))
      })
    })
    server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
    await listen(server, this.#port, this.#host, 'the fake API port (--api-port)')
    this.#port = (server.address() as AddressInfo).port
    this.#server = server
    this.down = false
    return this
  }

  async stop(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (!server) return
    for (const socket of this.#sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Refuses connections for `ms` (the listener closes), then listens again on the same port. */
  async outage(ms: number): Promise<void> {
    this.down = true
    await this.stop()
    this.down = true
    await new Promise((resolve) => setTimeout(resolve, ms))
    await this.start()
  }

  /** Plans failures of the next matching calls (see `PlannedFailure`). */
  failNext(failure: PlannedFailure): void {
    this.#planned.push({ when: 'before', status: 503, times: 1, ...failure })
  }

  #plannedFor(method: string, path: string): PlannedFailure | undefined {
    const index = this.#planned.findIndex((p) => !p.match || `${method} ${path}`.startsWith(p.match))
    if (index < 0) return undefined
    const planned = this.#planned[index]!
    planned.times = (planned.times ?? 1) - 1
    if (planned.times <= 0) this.#planned.splice(index, 1)
    return planned
  }

  setChaos(chaos: ChaosOptions | undefined): void {
    this.#options = { ...this.#options, chaos }
    if (chaos?.seed !== undefined) this.#random = prng(chaos.seed)
  }

  add(resource: string, fields: Record<string, unknown>): FakeObject {
    const object: FakeObject = { id: randomUUID(), ...fields }
    if (resource === 'applied-controls') object.evidences ??= []
    this.data.get(resource)!.set(object.id, object)
    return object
  }

  list(resource: string): FakeObject[] {
    return [...this.data.get(resource)!.values()]
  }

  find(resource: string, fields: Record<string, unknown>): FakeObject[] {
    return this.list(resource).filter((o) => Object.entries(fields).every(([k, v]) => o[k] === v))
  }

  /** Calls other than chaos-failed ones and probes, as `METHOD path?query`. */
  callLines(options: { includeFailed?: boolean } = {}): string[] {
    return this.calls
      .filter((c) => options.includeFailed || c.chaos === undefined)
      .map((c) => {
        const query = new URLSearchParams(c.query).toString()
        return `${c.method} ${c.path}${query ? `?${query}` : ''}`
      })
  }

  #view(resource: string, object: FakeObject): FakeObject {
    const { history: _history, ...visible } = object as FakeObject & { history?: unknown }
    if (resource === 'applied-controls') {
      const evidences = this.data.get('evidences')!
      return {
        ...visible,
        evidences: ((object.evidences as string[]) ?? []).map((id) => ({
          id,
          str: evidences.get(id)?.name ?? id
        }))
      }
    }
    return visible
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', `http://${request.headers.host}`)
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks)
    const call: RecordedCall = {
      method: request.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      status: 0
    }
    this.calls.push(call)
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      call.status = status
      response.writeHead(status, { 'content-type': 'application/json', ...headers })
      response.end(JSON.stringify(body))
    }
    const planned = this.#plannedFor(call.method, `${url.pathname}${url.search}`)
    const fail = (status: number | 'reset') => {
      if (status !== 'reset') return send(status, { detail: `planned failure ${status}` })
      call.status = -1
      request.socket.destroy()
    }
    if (planned?.when === 'before') {
      call.chaos = 'before'
      return fail(planned.status ?? 503)
    }
    const chaos = this.#options.chaos
    const failing = !planned && chaos && chaos.failRate > 0 && this.#random() < chaos.failRate
    const failure = failing ? Math.floor(this.#random() * 5) : -1
    if (failing && failure <= 2) {
      // Before the work: 503, a connection reset, or 429.
      call.chaos = 'before'
      if (failure === 0) return send(503, { detail: 'Service temporarily unavailable' })
      if (failure === 1) {
        call.status = -1
        request.socket.destroy()
        return
      }
      return send(429, { detail: 'Request was throttled.' }, { 'retry-after': '0' })
    }
    const token = /^Token (.+)$/.exec(request.headers.authorization ?? '')?.[1]
    if (!token || !this.tokens.has(token)) return send(401, { detail: 'Invalid token.' })
    const result = this.#route(call, url, raw, request)
    if (planned) {
      call.chaos = 'after'
      return fail(planned.status ?? 502)
    }
    if (failing) {
      // After the work: the answer is lost (a 502 from a proxy, or a dropped connection).
      call.chaos = 'after'
      if (failure === 3) return send(502, { detail: 'Bad gateway' })
      call.status = -1
      request.socket.destroy()
      return
    }
    send(result.status, result.body)
  }

  #route(
    call: RecordedCall,
    url: URL,
    raw: Buffer,
    request: IncomingMessage
  ): { status: number; body: unknown } {
    const match = /^\/api\/([a-z-]+)\/(?:([0-9a-f-]{36})\/(?:(upload)\/)?)?$/.exec(url.pathname)
    const resource = match?.[1]
    const table = resource ? this.data.get(resource) : undefined
    if (!match || !table) return { status: 404, body: { detail: 'Not found.' } }
    const [, , id, action] = match
    const method = call.method
    if (action === 'upload') {
      const disposition = String(request.headers['content-disposition'] ?? '')
      const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition)?.[1]
      const plain = /filename="((?:[^"\\]|\\.)*)"/i.exec(disposition)?.[1]
      const fileName = star ? decodeURIComponent(star) : plain?.replace(/\\(.)/g, '$1')
      call.body = { bytes: raw.length, fileName }
      if (method !== 'POST' || resource !== 'evidences')
        return { status: 405, body: { detail: 'Method not allowed.' } }
      const evidence = table.get(id!)
      if (!evidence) return { status: 404, body: { detail: 'Not found.' } }
      if (!fileName) return { status: 400, body: { error: 'Missing filename in Content-Disposition.' } }
      evidence.attachment = fileName
      this.uploads.push({ evidence: evidence.id, fileName, bytes: raw })
      return { status: 200, body: {} }
    }
    let json: Record<string, unknown> = {}
    if (raw.length > 0) {
      try {
        json = JSON.parse(raw.toString('utf8'))
        call.body = json
      } catch {
        return { status: 400, body: { detail: 'JSON parse error.' } }
      }
    }
    if (!id && method === 'GET') return this.#list(resource!, url)
    if (!id && method === 'POST') {
      const errors = this.#validate(resource!, json, true)
      if (errors) return { status: 400, body: errors }
      const object = this.add(
        resource!,
        Object.fromEntries(Object.entries(json).filter(([k]) => !readOnly.has(k)))
      )
      return { status: 201, body: this.#view(resource!, object) }
    }
    const object = id ? table.get(id) : undefined
    if (!object)
      return { status: id ? 404 : 405, body: { detail: id ? 'Not found.' : 'Method not allowed.' } }
    if (method === 'GET') return { status: 200, body: this.#view(resource!, object) }
    if (method === 'PATCH' || method === 'PUT') {
      const errors = this.#validate(resource!, json, false)
      if (errors) return { status: 400, body: errors }
      for (const [key, value] of Object.entries(json)) if (!readOnly.has(key)) object[key] = value
      const tracked = object as { history?: unknown[] }
      tracked.history ??= []
      tracked.history.push(json)
      return { status: 200, body: this.#view(resource!, object) }
    }
    return { status: 405, body: { detail: `Method "${method}" not allowed.` } }
  }

  #validate(
    resource: string,
    json: Record<string, unknown>,
    creating: boolean
  ): Record<string, string[]> | undefined {
    const errors: Record<string, string[]> = {}
    if (creating && resource === 'evidences' && (typeof json.name !== 'string' || json.name === ''))
      errors.name = ['This field is required.']
    for (const [field, allowed] of Object.entries(choices[resource] ?? {})) {
      if (field in json && !allowed.includes(String(json[field])))
        errors[field] = [`"${json[field]}" is not a valid choice.`]
    }
    if (resource === 'applied-controls' && 'evidences' in json) {
      const list = json.evidences
      const evidences = this.data.get('evidences')!
      if (!Array.isArray(list)) errors.evidences = ['Expected a list of items.']
      else {
        const unknown = list.filter((id) => !evidences.has(String(id)))
        if (unknown.length > 0)
          errors.evidences = unknown.map((id) => `Invalid pk "${id}" - object does not exist.`)
        else if (new Set(list).size !== list.length) errors.evidences = ['Duplicate items.']
      }
    }
    return Object.keys(errors).length > 0 ? errors : undefined
  }

  #list(resource: string, url: URL): { status: number; body: unknown } {
    const params = url.searchParams
    const errors: Record<string, string[]> = {}
    let objects = this.list(resource)
    for (const [key, value] of params) {
      if (key === 'limit' || key === 'offset' || key === 'ordering' || key === 'search') continue
      if (!filterable[resource]!.includes(key)) continue // django-filter ignores unknown parameters
      const allowed = choices[resource]?.[key]
      if (allowed && !allowed.includes(value)) {
        errors[key] = [`Select a valid choice. ${value} is not one of the available choices.`]
        continue
      }
      objects = objects.filter((o) => {
        const field = lookup(o, key)
        return Array.isArray(field) ? field.map(String).includes(value) : String(field) === value
      })
    }
    if (Object.keys(errors).length > 0) return { status: 400, body: errors }
    const limit = Number(params.get('limit') ?? this.#options.pageSize ?? 100)
    const offset = Number(params.get('offset') ?? 0)
    if (!Number.isInteger(limit) || limit < 1 || !Number.isInteger(offset) || offset < 0)
      return { status: 400, body: { detail: 'Invalid limit or offset.' } }
    const page = objects.slice(offset, offset + limit)
    let next: string | null = null
    if (offset + limit < objects.length) {
      const nextParams = new URLSearchParams(params)
      nextParams.set('limit', String(limit))
      nextParams.set('offset', String(offset + limit))
      next = this.#options.relativeNext
        ? `?${nextParams}`
        : `${this.url.replace(/\/api$/, '')}${url.pathname}?${nextParams}`
    }
    return {
      status: 200,
      body: { count: objects.length, next, previous: null, results: page.map((o) => this.#view(resource, o)) }
    }
  }
}
