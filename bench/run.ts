/**
 * `npm run bench [-- <scenario> …] [--quick]`: runs benchmark scenarios, prints their
 * results and saves them as JSON under bench/results/.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'

const directory = new URL('./scenarios/', import.meta.url).pathname
const available = readdirSync(directory)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.replace(/\.ts$/, ''))
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const wanted = args.filter((a) => !a.startsWith('--'))
const unknown = wanted.filter((w) => !available.includes(w))
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario(s) ${unknown.join(', ')}; available: ${available.join(', ')}\n`)
  process.exit(2)
}
const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model,
  memoryGB: Math.round(totalmem() / 1024 ** 3),
  node: process.version
}
let failed = false
for (const scenario of wanted.length > 0 ? wanted : available) {
  const module = (await import(join(directory, `${scenario}.ts`))) as {
    run(options: { quick: boolean }): Promise<{ verified: boolean }>
  }
  process.stderr.write(`== ${scenario}\n`)
  const result = { ...(await module.run({ quick })), machine, date: new Date().toISOString() }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(
    new URL(`./results/${scenario}.json`, import.meta.url),
    `${JSON.stringify(result, null, 2)}\n`
  )
  if (!result.verified) {
    process.stderr.write(`${scenario}: the run did not verify its own output\n`)
    failed = true
  }
}
process.exit(failed ? 1 : 0)
