import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)
const cli = new URL('../../bin/conveyor.ts', import.meta.url).pathname

/**
 * The test's environment without the settings the command line or the dispatcher read
 * (CONVEYOR_KAFKA_*, CONVEYOR_REGISTRY_URL, CONVEYOR_DEBUG, USER_TOKEN, API_TOKEN), so each
 * test sets exactly what it means.
 */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) =>
      !name.startsWith('CONVEYOR_KAFKA_') &&
      !['CONVEYOR_REGISTRY_URL', 'CONVEYOR_DEBUG', 'USER_TOKEN', 'API_TOKEN'].includes(name)
  )
)

/** Runs `conveyor <args>` as a user does (a process of bin/conveyor.ts) to its end, at most a minute. */
export async function conveyor(
  args: string[],
  env: Record<string, string> = {}
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [cli, ...args], {
    env: { ...cleanEnv, ...env },
    encoding: 'utf8',
    timeout: 60_000
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      stdout: error.stdout,
      stderr: error.stderr
    })
  )
}

/** Exit 1, and stderr is exactly one line (matching `line`) with no stack trace in it. */
export function assertOneLineFailure(result: { code: number; stdout: string; stderr: string }, line: RegExp) {
  assert.equal(result.code, 1, `exit code 1\nstderr: ${result.stderr}`)
  assert.ok(!result.stderr.includes('    at '), `no stack trace:\n${result.stderr}`)
  const lines = result.stderr.replace(/\n$/, '').split('\n')
  assert.equal(lines.length, 1, `exactly one line on stderr:\n${result.stderr}`)
  assert.match(lines[0]!, line)
}
