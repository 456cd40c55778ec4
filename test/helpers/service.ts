import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { waitFor } from '../../src/util/wait.ts'
import { cleanup } from './kafka.ts'

const cli = new URL('../../bin/conveyor.ts', import.meta.url).pathname
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
  // The service announces itself only in its JSON log: give it a port known in advance.
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, [cli, command, '-c', config, '--port', String(port)], {
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
  const url = `http://127.0.0.1:${port}`
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}):\n${output}`)
      return fetch(`${url}/health/live`).then(
        (response) => response.ok,
        () => false
      )
    },
    { timeout: 60_000, description: 'the service to start' }
  )
  return { child, url, exited, output: () => output }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
