/**
 * Measures one contender of one scenario in this fresh process and prints
 * `RESULT <json>` (see bench/harness.ts). Run by the harness, not by hand.
 */
import { readFileSync } from 'node:fs'
import type { Scenario } from './harness.ts'
import { benchConnection } from './lib.ts'

const [scenarioName, contender, input, mode] = process.argv.slice(2)
const { scenario } = (await import(new URL(`./scenarios/${scenarioName}.ts`, import.meta.url).href)) as {
  scenario: Scenario
}
const prepared = JSON.parse(readFileSync(input!, 'utf8'))
const connection = await benchConnection({ quiet: true })
const measurement = await scenario.measure(contender!, prepared, {
  connection,
  quick: mode === 'quick',
  log: (line) => process.stderr.write(`  [${scenarioName}/${contender}] ${line}\n`)
})
process.stdout.write(`RESULT ${JSON.stringify(measurement)}\n`)
process.exit(0)
