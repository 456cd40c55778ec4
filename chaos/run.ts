/**
 * `npm run chaos [-- options]`: the chaos run (chaos/scenario.ts) against a three-broker
 * cluster of its own (`chaos`, ports 29892–29914, stopped afterwards unless `--keep`), then
 * its report. Options, with their defaults:
 *
 *   --messages 100000 --partitions 12 --keys 2000 --transient 0.05 --permanent 0.001
 *   --kills 3 --scale 1,3,1 --broker-stop 37 --delay 2 --concurrency 16
 *   --commit-interval 1000 --retry-delay 100 --seed 1 --timeout 900
 *   --finished-metadata on|off   the runtime's finishedMetadata (default on)
 *   --compare                    first a run with finishedMetadata off
 *   --baseline <git ref>         first a run of that commit's runtime (src/, extracted
 *                                under bench/.baseline/), the "before" of a change
 *
 * With more than one run, a last table compares them. The retry policy is the runtime's
 * default (3 retries, doubling from --retry-delay, jitter), so a transient failure (one or
 * two failed attempts) always recovers and a permanent one reaches the DLQ after four.
 *   --keep                       leave the cluster running
 *
 * Exits 1 when, in the run of this runtime, a message was lost or reordered, the DLQ does
 * not hold exactly the planted failures, a message was handled again although its commit
 * covered it, twice by one owner or by a worker not owning its partition, or a commit is
 * not at the log end or moved back.
 */
import { extractBaseline } from '../bench/runtime.ts'
import { LocalKafka } from '../src/dev/kafka/index.ts'
import { type ChaosReport, formatReport } from './analysis.ts'
import { type ChaosOptions, defaultChaosOptions, runChaos } from './scenario.ts'

const args = process.argv.slice(2)
const flags: Record<string, keyof ChaosOptions> = {
  '--messages': 'messages',
  '--partitions': 'partitions',
  '--keys': 'keys',
  '--transient': 'transient',
  '--permanent': 'permanent',
  '--kills': 'kills',
  '--broker-stop': 'brokerStop',
  '--delay': 'delay',
  '--concurrency': 'concurrency',
  '--commit-interval': 'commitInterval',
  '--seed': 'seed'
}
const options: ChaosOptions = { ...defaultChaosOptions }
let compare = false
let keep = false
let baseline: string | undefined
for (let j = 0; j < args.length; j++) {
  const flag = args[j]!
  const value = args[j + 1]
  const numeric = flags[flag]
  if (numeric !== undefined) {
    const n = Number(value)
    if (value === undefined || !Number.isFinite(n) || n < 0) fail(`${flag} needs a number, got ${value}`)
    ;(options as unknown as Record<string, number>)[numeric] = n
    j++
  } else if (flag === '--scale') {
    const sizes = (value ?? '').split(',').map(Number)
    if (sizes.length === 0 || sizes.some((s) => !Number.isInteger(s) || s < 1))
      fail(`--scale needs group sizes like 1,3,1, got ${value}`)
    options.scale = sizes
    j++
  } else if (flag === '--timeout') {
    options.timeout = Number(value) * 1_000
    j++
  } else if (flag === '--finished-metadata') {
    if (value !== 'on' && value !== 'off') fail(`--finished-metadata is on or off, got ${value}`)
    options.finishedMetadata = value === 'on'
    j++
  } else if (flag === '--baseline') {
    if (!value) fail('--baseline needs a git ref')
    baseline = value
    j++
  } else if (flag === '--retry-delay') {
    options.retryDelay = Number(value)
    j++
  } else if (flag === '--compare') compare = true
  else if (flag === '--keep') keep = true
  else fail(`unknown option ${flag}`)
}

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`)
  process.exit(2)
}

/** What must hold for the run to pass. */
export function problems(report: ChaosReport): string[] {
  const found: string[] = []
  if (report.lost.length > 0) found.push(`${report.lost.length} lost`)
  if (report.reorders > 0) found.push(`${report.reorders} reordered`)
  if (report.dlq.missing.length + report.dlq.unexpected.length + report.dlq.splitIdentities > 0)
    found.push('the DLQ does not hold exactly the planted failures')
  if (report.rehandledDespiteCommit > 0) found.push('messages handled again although committed as finished')
  if (report.rehandledWithinOwnership > 0) found.push('messages handled twice by one owner')
  if (report.handledUnowned > 0) found.push('messages handled by a worker that did not own their partition')
  if (report.committedAtEnd < report.partitions) found.push('commits short of the log end')
  if (report.commitRegressions > 0) found.push('commits moved backwards')
  return found
}

const cluster = new LocalKafka({
  name: 'chaos',
  brokers: 3,
  port: Number(process.env.CONVEYOR_CHAOS_KAFKA_PORT ?? 29892),
  heap: '768m',
  log: (line) => process.stderr.write(`[kafka] ${line}\n`)
})
const say = (line: string) => process.stderr.write(`${line}\n`)
const print = (line = '') => process.stdout.write(`${line}\n`)

const describe = (o: ChaosOptions) =>
  `${o.messages} messages, ${o.partitions} partitions, ${o.keys} keys, key ordering; ` +
  `${o.transient * 100}% transient and ${o.permanent * 100}% permanent failures; ` +
  `${o.kills} SIGKILLs, group ${o.scale.join(' → ')}, one broker stopped for ${o.brokerStop} s; ` +
  `handler ${o.delay} ms, concurrency ${o.concurrency}, commits every ${o.commitInterval} ms, ` +
  `retries from ${o.retryDelay} ms, seed ${o.seed}`

interface Variant {
  label: string
  options: ChaosOptions
  /** A run of an earlier runtime shows the "before": its failures do not fail the command. */
  before: boolean
}
const variants: Variant[] = []
if (baseline) {
  const { ref, sha, src } = extractBaseline(baseline, say)
  variants.push({
    label: `runtime of ${ref} (${sha.slice(0, 7)})`,
    options: { ...options, runtime: src },
    before: true
  })
}
if (compare)
  variants.push({
    label: 'finishedMetadata off',
    options: { ...options, finishedMetadata: false },
    before: true
  })
variants.push({
  label: `this runtime, finishedMetadata ${options.finishedMetadata ? 'on' : 'off'}`,
  options,
  before: false
})

let failed = false
try {
  const info = await cluster.up()
  const kafka = { connection: { brokers: info.bootstrap, clientId: 'conveyor-chaos' }, cluster, brokers: 3 }
  print(`chaos: ${describe(options)}`)
  const reports: Array<{ label: string; report: ChaosReport }> = []
  for (const variant of variants) {
    say(`== ${variant.label}`)
    const result = await runChaos(variant.options, kafka, say)
    reports.push({ label: variant.label, report: result.report })
    print(`\n== ${variant.label} (${result.seconds.toFixed(0)} s)`)
    print(formatReport(result.report).trimEnd())
    for (const crash of result.crashes) print(`crash: ${crash}`)
    const found = problems(result.report)
    if (result.crashes.length > 0) found.push(`${result.crashes.length} worker crash(es)`)
    print(found.length === 0 ? 'result: pass' : `result: FAIL (${found.join('; ')})`)
    if (!variant.before) failed ||= found.length > 0
  }
  if (reports.length > 1) {
    const last = reports.at(-1)!.report
    print('\nre-handled messages, and DLQ copies beyond one per failure:')
    for (const { label, report } of reports) {
      const ratio = last.rehandled === 0 ? '∞' : (report.rehandled / last.rehandled).toFixed(1)
      print(
        `  ${label.padEnd(44)} ${String(report.rehandled).padStart(7)} (${((100 * report.rehandled) / report.messages).toFixed(2)}%)` +
          `  ${ratio}× this runtime's; DLQ duplicates ${report.dlq.duplicateCopies}; commit regressions ${report.commitRegressions}`
      )
    }
  }
} finally {
  if (!keep) await cluster.down()
}
process.exit(failed ? 1 : 0)
