/**
 * `npm run bench [-- <scenario> …] [--quick] [--repeats N] [--baseline <git ref>]`: starts (or
 * reuses) the local benchmark broker, runs each scenario's contenders back to back on the same
 * data, and prints a table of medians, min–max and ratios. Results are saved as JSON under
 * bench/results/; a full run also writes bench/results/summary.md and the README's table.
 *
 * A/B against an earlier commit: `BENCH_BASELINE=<git ref> npm run bench -- consume latency`
 * (or `--baseline <ref>`) measures each scenario's Conveyor contenders (`runtimeContenders`,
 * e.g. `conveyor`) a second time as `<name>@base`, in the same run and alternating with the
 * others: the same measurement code, with Conveyor's runtime (what the measurement loads
 * through `runtime()`, bench/runtime.ts) taken from that commit's `src/` instead of the
 * working tree's. The table then shows the ratio `conveyor / conveyor@base` (above 1: the
 * working tree is faster, for higher-is-better metrics). The commit's `src/` is extracted
 * once per commit into bench/.baseline/<sha>/ (git-ignored; delete it freely) and handed to
 * the workers in CONVEYOR_BENCH_BASELINE_SRC. A baseline run never writes the README's table.
 * `BENCH_CONTENDERS=conveyor,conveyor@base` measures only those two.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { defaultKafkaVersion } from '../src/dev/kafka/index.ts'
import {
  type BenchContext,
  type Measurement,
  measureInWorker,
  type Scenario,
  type ScenarioSummary,
  summarize,
  table,
  withBaseline
} from './harness.ts'
import { benchConnection, kafkaToolsVersion } from './lib.ts'
import { baselineVariable, extractBaseline } from './runtime.ts'

const order = ['consume', 'io-bound', 'produce', 'latency', 'memory', 'replicate', 'pipeline']
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const flagValue = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined)
const repeatsOverride = flagValue('--repeats') === undefined ? undefined : Number(flagValue('--repeats'))
/** `--profile <contender>`: that contender's workers write V8 CPU profiles into bench/profiles/. */
const profiled = flagValue('--profile')
const wanted = args.filter(
  (a, i) => !a.startsWith('--') && !['--repeats', '--profile', '--baseline'].includes(args[i - 1]!)
)
const unknown = wanted.filter((w) => !order.includes(w))
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario(s) ${unknown.join(', ')}; available: ${order.join(', ')}\n`)
  process.exit(2)
}
const log = (line: string) => process.stderr.write(`${line}\n`)

const baselineRef = flagValue('--baseline') ?? process.env.BENCH_BASELINE
const baseline = baselineRef ? extractBaseline(baselineRef, log) : undefined
if (baseline) process.env[baselineVariable] = baseline.src
/** In each result file (left out without a baseline). */
const baselineCommit = baseline && { ref: baseline.ref, sha: baseline.sha }
const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model?.trim(),
  memoryGB: Math.round(totalmem() / 1024 ** 3),
  node: process.version,
  kafka: process.env.KAFKA_BROKERS ? 'external' : `Apache Kafka ${defaultKafkaVersion} (local, 1 broker)`,
  kafkaTools: kafkaToolsVersion
}
const started = Date.now()
const context: BenchContext = { connection: await benchConnection(), quick, log }
const summaries: ScenarioSummary[] = []
const results = new URL('./results/', import.meta.url)
mkdirSync(results, { recursive: true })

for (const name of wanted.length > 0 ? order.filter((o) => wanted.includes(o)) : order) {
  const { scenario } = (await import(new URL(`./scenarios/${name}.ts`, import.meta.url).href)) as {
    scenario: Scenario
  }
  log(`\n== ${scenario.name}: ${scenario.title}`)
  const scenarioStarted = Date.now()
  const prepared = await scenario.prepare(context)
  const repeats = repeatsOverride ?? scenario.repeats(quick)
  if (baseline) withBaseline(scenario, `${baseline.ref} (${baseline.sha.slice(0, 7)})`)
  // BENCH_CONTENDERS=conveyor,platformatic measures only those (for quick before/after comparisons).
  const only = process.env.BENCH_CONTENDERS?.split(',')
  if (only) scenario.contenders = scenario.contenders.filter((c) => only.includes(c.name))
  const runs = new Map<string, Measurement[]>()
  try {
    for (let round = 0; round < repeats; round += 1) {
      const contenders = round % 2 === 0 ? scenario.contenders : [...scenario.contenders].reverse()
      for (const { name: contender } of contenders) {
        const measurement = await measureInWorker(
          scenario.name,
          contender,
          prepared,
          quick,
          contender === profiled ? new URL('./profiles/', import.meta.url).pathname : undefined
        )
        runs.set(contender, [...(runs.get(contender) ?? []), measurement])
        log(
          `  ${contender} run ${round + 1}/${repeats}: ${measurement.value.toFixed(1)} ${scenario.metric.unit}${measurement.verified ? '' : '  NOT VERIFIED'}`
        )
      }
    }
  } finally {
    await scenario.cleanup?.(prepared, context)
  }
  const summary = summarize(scenario, runs, quick)
  summaries.push(summary)
  const seconds = Math.round((Date.now() - scenarioStarted) / 1000)
  writeFileSync(
    new URL(`./${scenario.name}.json`, results),
    `${JSON.stringify({ ...summary, machine, baseline: baselineCommit, seconds, date: new Date().toISOString() }, null, 2)}\n`
  )
  log(`  (${seconds} s)`)
}

const markdown = table(summaries)
process.stdout.write(`\n${markdown}\n`)
const total = Math.round((Date.now() - started) / 1000)
const machineLine = `Measured ${new Date().toISOString().slice(0, 10)} on ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGB} GB, Node ${machine.node}, ${machine.kafka}; Kafka tools ${machine.kafkaTools}; the full run took ${Math.round(total / 60)} min.`
process.stdout.write(`\n${machineLine}\n`)
if (baseline)
  process.stdout.write(
    `\n<name>@base: the same measurement on the runtime of ${baseline.ref} (${baseline.sha}).\n`
  )
if (wanted.length === 0 && !quick && !baseline) {
  writeFileSync(new URL('./summary.md', results), `${markdown}\n\n${machineLine}\n`)
  const readme = new URL('../README.md', import.meta.url)
  const text = readFileSync(readme, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  if (text.includes(start) && text.includes(end)) {
    writeFileSync(
      readme,
      `${text.slice(0, text.indexOf(start) + start.length)}\n${markdown}\n\n${machineLine}\n${text.slice(text.indexOf(end))}`
    )
  }
}
const failures = [
  ...summaries.filter((s) => !s.verified).map((s) => `${s.name}: a run did not verify its own output`),
  ...summaries.flatMap((s) =>
    s.ratios.filter((r) => r.met === false).map((r) => `${s.name}: ${r.name} missed its goal`)
  ),
  ...summaries.flatMap((s) => s.goals.filter((g) => !g.met).map((g) => `${s.name}: ${g.description} missed`))
]
for (const failure of failures) log(failure)
// A missed goal is a finding to report, not a broken run; an unverified run is a broken run.
process.exit(summaries.every((s) => s.verified) ? 0 : 1)
