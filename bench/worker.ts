/**
 * Measures one contender of one scenario in this fresh process and prints
 * `RESULT <json>` (see bench/harness.ts). Run by the harness, not by hand. A contender
 * named `<name>@base` runs `<name>`'s measurement on the baseline's runtime (bench/runtime.ts).
 */
import { readFileSync } from 'node:fs'
import type { Scenario } from './harness.ts'
import { benchConnection } from './lib.ts'
import { baselineSuffix, runtimeLoads, useBaselineRuntime } from './runtime.ts'

const [scenarioName, contender, input, mode] = process.argv.slice(2)
const { scenario } = (await import(new URL(`./scenarios/${scenarioName}.ts`, import.meta.url).href)) as {
  scenario: Scenario
}
const onBaseline = contender!.endsWith(baselineSuffix)
if (onBaseline) useBaselineRuntime()
const measured = onBaseline ? contender!.slice(0, -baselineSuffix.length) : contender!
const prepared = JSON.parse(readFileSync(input!, 'utf8'))
const connection = await benchConnection({ quiet: true })
const measurement = await scenario.measure(measured, prepared, {
  connection,
  quick: mode === 'quick',
  log: (line) => process.stderr.write(`  [${scenarioName}/${contender}] ${line}\n`)
})
// Had the measurement imported Conveyor statically, both sides would have run this checkout's code.
if (onBaseline && runtimeLoads() === 0)
  throw new Error(`${scenarioName}/${measured} does not load Conveyor through runtime() (bench/runtime.ts)`)
process.stdout.write(`RESULT ${JSON.stringify(measurement)}\n`)
process.exit(0)
