/**
 * Liveness and readiness for Kubernetes, from the runtime's diagnostics channels.
 *
 * Live: the process answers (and refreshes the liveness file on a timer, even when idle).
 * Ready: every watched consumer is running, owns partitions, and its fetch loop completed a
 * fetch within `stallTimeout` — so a lost broker or a stalled fetch loop turns readiness
 * off, and recovery turns it back on. The readiness file exists exactly while ready.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { rmSync, writeFileSync } from 'node:fs'
import {
  Channels,
  type FetchEvent,
  type LifecycleEvent,
  type PartitionsEvent
} from '../instrumentation/channels.ts'

export interface HealthOptions {
  /** Consumer groups that must be healthy for the service to be ready. */
  groups: string[]
  /** A fetch loop silent this long is stalled. Default 15 000 ms (fetches long-poll for at most a few seconds). */
  stallTimeout?: number
  /** Touched on every check while live, e.g. `/tmp/kubernetes-liveness`. */
  livenessFile?: string
  /** Present while ready, e.g. `/tmp/kubernetes-readiness`. */
  readinessFile?: string
  /** How often the probe files are refreshed. Default 5 000 ms. */
  interval?: number
  /** Further conditions of readiness (e.g. a REST API the service depends on): problems, empty when fine. */
  checks?: Record<string, () => string[]>
}

interface GroupHealth {
  state: string
  partitions: number
  lastFetch: number
}

export interface HealthReport {
  ready: boolean
  groups: Record<string, GroupHealth & { problems: string[] }>
  checks: Record<string, { problems: string[] }>
}

export class HealthMonitor {
  readonly #groups = new Map<string, GroupHealth>()
  readonly #options: Required<Omit<HealthOptions, 'livenessFile' | 'readinessFile' | 'checks'>> &
    HealthOptions
  readonly #handlers: Array<[string, (message: unknown) => void]>
  #timer: NodeJS.Timeout | undefined

  constructor(options: HealthOptions) {
    this.#options = { stallTimeout: 15_000, interval: 5_000, ...options }
    for (const group of options.groups) this.#groups.set(group, { state: 'new', partitions: 0, lastFetch: 0 })
    const on = (name: string, handle: (message: unknown) => void): [string, (message: unknown) => void] => [
      name,
      handle
    ]
    this.#handlers = [
      on(Channels.lifecycle, (m) => {
        const event = m as LifecycleEvent
        const group = this.#groups.get(event.groupId)
        if (group) group.state = event.state
      }),
      on(Channels.assigned, (m) => {
        const event = m as PartitionsEvent
        const group = this.#groups.get(event.groupId)
        if (group) group.partitions = event.partitions.length
      }),
      on(Channels.fetch, (m) => {
        const group = this.#groups.get((m as FetchEvent).groupId)
        if (group) group.lastFetch = Date.now()
      })
    ]
  }

  /** Watches these groups too (consumers made after the monitor). */
  watch(groups: readonly string[]): void {
    for (const group of groups)
      if (!this.#groups.has(group)) this.#groups.set(group, { state: 'new', partitions: 0, lastFetch: 0 })
  }

  start(): this {
    for (const [name, handler] of this.#handlers) subscribe(name, handler)
    this.#timer = setInterval(() => this.#refreshFiles(), this.#options.interval)
    this.#timer.unref()
    this.#refreshFiles()
    return this
  }

  stop(): void {
    clearInterval(this.#timer)
    for (const [name, handler] of this.#handlers) unsubscribe(name, handler)
    // The process is going: neither file may outlive it (a process killed outright cannot
    // remove them, so a probe should also check the liveness file's age).
    if (this.#options.readinessFile) rmSync(this.#options.readinessFile, { force: true })
    if (this.#options.livenessFile) rmSync(this.#options.livenessFile, { force: true })
  }

  /** Always true while the process answers: a hung event loop cannot answer at all. */
  live(): boolean {
    return true
  }

  report(): HealthReport {
    const now = Date.now()
    const groups: HealthReport['groups'] = {}
    for (const [name, group] of this.#groups) {
      const problems: string[] = []
      if (group.state !== 'running') problems.push(`consumer is ${group.state}`)
      if (group.partitions === 0) problems.push('no partitions assigned')
      if (now - group.lastFetch > this.#options.stallTimeout) {
        problems.push(
          group.lastFetch === 0
            ? 'no fetch yet'
            : `no fetch for ${Math.round((now - group.lastFetch) / 1000)} s`
        )
      }
      groups[name] = { ...group, problems }
    }
    const checks: HealthReport['checks'] = {}
    for (const [name, check] of Object.entries(this.#options.checks ?? {}))
      checks[name] = { problems: check() }
    return {
      ready:
        Object.values(groups).every((g) => g.problems.length === 0) &&
        Object.values(checks).every((c) => c.problems.length === 0),
      groups,
      checks
    }
  }

  ready(): boolean {
    return this.report().ready
  }

  #refreshFiles(): void {
    if (this.#options.livenessFile) writeFileSync(this.#options.livenessFile, `${new Date().toISOString()}\n`)
    if (this.#options.readinessFile) {
      if (this.ready()) writeFileSync(this.#options.readinessFile, `${new Date().toISOString()}\n`)
      else rmSync(this.#options.readinessFile, { force: true })
    }
  }
}
