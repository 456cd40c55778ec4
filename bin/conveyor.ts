/**
 * The `conveyor` command line: the library's commands (src/cli/) and the applications'
 * (apps/commands.ts), registered here, the one place that knows both. `npm run conveyor`,
 * `npm start` and bin/conveyor.js (the package's bin) run this file.
 */
import { applicationCommands } from '../apps/commands.ts'
import { main } from '../src/cli/main.ts'
import { registerCommands } from '../src/cli/registry.ts'

registerCommands(...applicationCommands)
process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`)
})
