/**
 * The benchmark harness. A scenario prepares its data once (topics, backlogs, a registry),
 * then each of its contenders — Conveyor and its baselines — is measured in a fresh Node
 * process (`bench/worker.ts`), repeatedly, in alternating order, on the same broker and the
 * same data. The harness reports the median, min and max of each contender's metric and
 * the ratios between contenders measured in the same run (absolute figures on a shared
 * machine are noise; ratios measured side by side hold). With a baseline commit
 * (`BENCH_BASELINE`, see bench/run.ts) Conveyor's own contenders are measured a second time
 * on that commit's runtime (`withBaseline`, bench/runtime.ts).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KafkaConnection } from '../src/kafka/connection.ts'
import { median } from './lib.ts'
import { baselineSuffix } from './runtime.ts'

export interface BenchContext {
  connection: KafkaConnection
  quick: boolean
  log(line: string): void
}

/** One measured run of one contender. */
export interface Measurement {
  /** The scenario's metric (see `Scenario.metric`). */
  value: number
  /** Whether the run checked its own output (counts, order) and found it right. */
  verified: boolean
  checks: Record<string, unknown>
  /** Further figures worth keeping (percentiles, samples …). */
  details?: Record<string, unknown>
}

export interface Ratio {
  /** e.g. `conveyor / platformatic` */
  numerator: string
  denominator: string
  /** The ratio of medians must be at least this (higher-is-better metrics) or at most this. */
  goal?: { atLeast?: number; atMost?: number }
}

/** An absolute goal on one contender's median, e.g. latency p99 below 25 ms. */
export interface Goal {
  contender: string
  description: string
  holds(median: number): boolean
}

export interface Scenario<Prepared = unknown> {
  name: string
  title: string
  metric: { name: string; unit: string; higherIsBetter: boolean }
  contenders: Array<{ name: string; label: string }>
  repeats(quick: boolean): number
  /** Runs once, in the harness process; the result must survive JSON. */
  prepare(context: BenchContext): Promise<Prepared>
  /** Runs in a fresh worker process per measurement. */
  measure(contender: string, prepared: Prepared, context: BenchContext): Promise<Measurement>
  cleanup?(prepared: Prepared, context: BenchContext): Promise<void>
  ratios: Ratio[]
  goals?: Goal[]
  /**
   * The contenders measuring Conveyor itself, whose measurement loads Conveyor through
   * `runtime()` (bench/runtime.ts). With a baseline each is also measured as `<name>@base`.
   */
  runtimeContenders?: string[]
  /** Parameters to report (sizes, partitions, handler delays). */
  parameters(quick: boolean): Record<string, unknown>
}

export interface ContenderSummary {
  contender: string
  label: string
  runs: Measurement[]
  median: number
  min: number
  max: number
}

export interface RatioSummary {
  name: string
  value: number
  goal?: Ratio['goal']
  met: boolean | undefined
}

export interface ScenarioSummary {
  name: string
  title: string
  metric: Scenario['metric']
  parameters: Record<string, unknown>
  contenders: ContenderSummary[]
  ratios: RatioSummary[]
  goals: Array<{ contender: string; description: string; median: number; met: boolean }>
  verified: boolean
}

/**
 * Adds the baseline's contenders to `scenario`: `<name>@base` right after each of its
 * `runtimeContenders` (the same measurement on the baseline's runtime, labelled with
 * `baseline`, e.g. `HEAD~1 (5e00220)`), and the ratio `<name> / <name>@base`, without a goal.
 */
export function withBaseline(scenario: Scenario, baseline: string): void {
  const measured = scenario.contenders.filter((c) => scenario.runtimeContenders?.includes(c.name))
  scenario.contenders = scenario.contenders.flatMap((c) =>
    measured.includes(c)
      ? [c, { name: `${c.name}${baselineSuffix}`, label: `${c.label}, at ${baseline}` }]
      : [c]
  )
  scenario.ratios = [
    ...scenario.ratios,
    ...measured.map((c) => ({ numerator: c.name, denominator: `${c.name}${baselineSuffix}` }))
  ]
}

/** Runs `measure` for one contender in a fresh Node process and parses what it prints. */
export async function measureInWorker(
  scenario: string,
  contender: string,
  prepared: unknown,
  quick: boolean,
  /** Write a V8 CPU profile of the worker into this directory (`--cpu-prof`). */
  profileDirectory?: string
): Promise<Measurement> {
  const directory = mkdtempSync(join(tmpdir(), 'conveyor-bench-'))
  const input = join(directory, 'prepared.json')
  writeFileSync(
    input,
    JSON.stringify(prepared, (_, v) => (typeof v === 'bigint' ? v.toString() : v))
  )
  const worker = new URL('./worker.ts', import.meta.url).pathname
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        ...(profileDirectory ? ['--cpu-prof', `--cpu-prof-dir=${profileDirectory}`] : []),
        worker,
        scenario,
        contender,
        input,
        quick ? 'quick' : 'full'
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], env: process.env }
    )
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      const line = out
        .trim()
        .split('\n')
        .findLast((l) => l.startsWith('RESULT '))
      if (code !== 0 || !line)
        reject(new Error(`${scenario}/${contender} worker exited ${code}:\n${out.slice(-2000)}`))
      else resolve(JSON.parse(line.slice('RESULT '.length)) as Measurement)
    })
  })
}

export function summarize(
  scenario: Scenario,
  runs: Map<string, Measurement[]>,
  quick: boolean
): ScenarioSummary {
  const contenders = scenario.contenders.map(({ name, label }) => {
    const measured = runs.get(name) ?? []
    const values = measured.map((m) => m.value)
    return {
      contender: name,
      label,
      runs: measured,
      median: median(values),
      min: Math.min(...values),
      max: Math.max(...values)
    }
  })
  const byName = new Map(contenders.map((c) => [c.contender, c]))
  const ratios = scenario.ratios
    .filter((ratio) => byName.has(ratio.numerator) && byName.has(ratio.denominator))
    .map((ratio) => {
      const value = byName.get(ratio.numerator)!.median / byName.get(ratio.denominator)!.median
      const goal = ratio.goal
      const met =
        goal === undefined
          ? undefined
          : (goal.atLeast === undefined || value >= goal.atLeast) &&
            (goal.atMost === undefined || value <= goal.atMost)
      return { name: `${ratio.numerator} / ${ratio.denominator}`, value, ...(goal ? { goal } : {}), met }
    })
  const goals = (scenario.goals ?? [])
    .filter((goal) => byName.has(goal.contender))
    .map((goal) => {
      const value = byName.get(goal.contender)!.median
      return {
        contender: goal.contender,
        description: goal.description,
        median: value,
        met: goal.holds(value)
      }
    })
  return {
    name: scenario.name,
    title: scenario.title,
    metric: scenario.metric,
    parameters: scenario.parameters(quick),
    contenders,
    ratios,
    goals,
    verified: contenders.every((c) => c.runs.length > 0 && c.runs.every((r) => r.verified))
  }
}

const number = (value: number, unit: string) =>
  Number.isFinite(value)
    ? `${value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(value >= 10 ? 1 : 2)}${unit ? ` ${unit}` : ''}`
    : '—'

/** The summary as a Markdown table (also what the README shows). */
export function table(summaries: ScenarioSummary[]): string {
  const lines = [
    '| scenario | contender | median | min – max | runs | verified |',
    '|---|---|---|---|---|---|'
  ]
  for (const s of summaries) {
    for (const c of s.contenders) {
      lines.push(
        `| ${s.title} | ${c.label} | ${number(c.median, s.metric.unit)} | ${number(c.min, '')} – ${number(c.max, '')} | ${c.runs.length} | ${c.runs.every((r) => r.verified) ? 'yes' : '**no**'} |`
      )
    }
  }
  lines.push('', '| scenario | ratio of medians | value | goal | met |', '|---|---|---|---|---|')
  for (const s of summaries) {
    for (const r of s.ratios) {
      const goal =
        r.goal?.atLeast !== undefined
          ? `≥ ${r.goal.atLeast}×`
          : r.goal?.atMost !== undefined
            ? `≤ ${r.goal.atMost}×`
            : ''
      lines.push(
        `| ${s.title} | ${r.name} | ${r.value.toFixed(2)}× | ${goal} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} |`
      )
    }
    for (const g of s.goals)
      lines.push(
        `| ${s.title} | ${g.description} | ${number(g.median, s.metric.unit)} |  | ${g.met ? 'yes' : '**no**'} |`
      )
  }
  return lines.join('\n')
}
