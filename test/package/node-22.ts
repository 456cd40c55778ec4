/**
 * A Node.js 22 binary from the `node` package on the npm registry, kept in Conveyor's cache
 * (`~/.cache/conveyor/node-22`). Run as a script, it runs its arguments with that binary:
 * `node test/package/node-22.ts --test 'test/unit/**\/*.test.ts'` (npm run test:node22).
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

const cache = process.env.CONVEYOR_HOME ?? join(homedir(), '.cache', 'conveyor')

/** The path of the Node.js 22 binary, installed on first use. */
export function node22(): string {
  const prefix = join(cache, 'node-22')
  const binary = join(prefix, 'node_modules', 'node', 'bin', 'node')
  if (!existsSync(binary)) {
    mkdirSync(prefix, { recursive: true })
    writeFileSync(
      join(prefix, 'package.json'),
      JSON.stringify({ name: 'conveyor-node-22', private: true, allowScripts: { node: true } })
    )
    const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', 'node@22'], {
      cwd: prefix,
      stdio: 'inherit'
    })
    if (install.status !== 0 || !existsSync(binary)) throw new Error('npm install node@22 failed')
  }
  return binary
}

if (import.meta.main) {
  const child = spawn(node22(), process.argv.slice(2), { stdio: 'inherit' })
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 1 : 0)
  })
}
