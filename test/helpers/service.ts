import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { waitFor } from '../../src/util/wait.ts'
import { cleanup } from './kafka.ts'

const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname
export const handlersModule = new URL('../fixtures/service-handlers.ts', import.meta.url).pathname

/** Writes a service config file (YAML) in a fresh directory and returns its path. */
export function configFile(yaml: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'service-')), 'service.yaml')
  writeFileSync(path, yaml)
  return path
}

/** Runs `conveyor run -c <config>` as a process; resolves once its HTTP endpoints answer. */
export async function startService(
  t: TestContext,
  config: string,
  env: Record<string, string> = {},
  command: 'run' | 'dispatcher' = 'run'
) {
  const child: ChildProcess = spawn(process.execPath, [cli, command, '-c', config], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout?.on('data', (chunk) => {
    output += chunk
  })
  child.stderr?.on('data', (chunk) => {
    output += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  cleanup(t, () => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const url = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}):\n${output}`)
      return /conveyor (?:service|dispatcher) on (http:\/\/\S+)/.exec(output)?.[1]
    },
    { timeout: 60_000, description: 'the service to start' }
  )
  return { child, url, exited, output: () => output }
}
