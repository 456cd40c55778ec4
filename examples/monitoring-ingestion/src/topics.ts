/**
 * The naming convention of the pipeline's topics: `<app>.<domain>.<event>.v<N>` — lower-case
 * words (letters, digits, hyphens), a positive version. `node src/topics.ts topics.yaml`
 * checks a topics file and exits 1 naming every topic outside the convention; `npm run topics`
 * runs it before `conveyor topics apply`, so no such topic is ever created.
 */
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'

const word = '[a-z][a-z0-9]*(?:-[a-z0-9]+)*'
const convention = new RegExp(`^(${word})\\.(${word})\\.(${word})\\.v([1-9][0-9]*)$`)

export const topics = {
  recorded: 'airis-mon.metrics.recorded.v1',
  latency: 'airis-mon.metrics.inference-latency.v1',
  alerts: 'airis-mon.alerts.triggered.v1'
} as const

/** Why `name` breaks the convention, or undefined when it follows it. */
export function namingProblem(name: string): string | undefined {
  if (convention.test(name)) return undefined
  const parts = name.split('.')
  if (parts.length !== 4) return `has ${parts.length} parts, not <app>.<domain>.<event>.v<N>`
  if (!/^v[1-9][0-9]*$/.test(parts[3]!)) return `ends with "${parts[3]}", not a version v1, v2, …`
  return 'uses characters other than lower-case letters, digits and hyphens'
}

/** The topics of a `conveyor topics` file that break the convention, with the reason. */
export function checkTopicsFile(file: string): string[] {
  const declared = parse(readFileSync(file, 'utf8')) as { topics?: Record<string, unknown> }
  return Object.keys(declared.topics ?? {})
    .map((name) => [name, namingProblem(name)] as const)
    .filter(([, problem]) => problem !== undefined)
    .map(([name, problem]) => `${name}: ${problem}`)
}

if (import.meta.main) {
  const problems = checkTopicsFile(process.argv[2] ?? 'topics.yaml')
  for (const problem of problems) process.stderr.write(`${problem}\n`)
  process.exitCode = problems.length > 0 ? 1 : 0
}
