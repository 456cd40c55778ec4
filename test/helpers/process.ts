import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import type { TestContext } from 'node:test'
import { waitFor } from '../../src/util/wait.ts'
import { cleanup } from './kafka.ts'

const consumerFixture = new URL('../fixtures/consumer-process.ts', import.meta.url).pathname

export interface HandledLine {
  key: string
  seq: number
  partition: number
  offset: string
  pid: number
}

/**
 * Starts a fixture process (the consumer one by default); resolves once it prints that it
 * owns partitions. Killed at the end of the test.
 */
export async function startConsumerProcess(
  t: TestContext,
  env: Record<string, string>,
  fixture = consumerFixture
) {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal }))
  )
  cleanup(t, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`the process exited early:\n${output}`)
      return output.includes('running')
    },
    { timeout: 30_000, description: 'the process to join its group' }
  )
  return { child: child as ChildProcess, exited, output: () => output }
}

export function readHandled(file: string): HandledLine[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as HandledLine)
}
