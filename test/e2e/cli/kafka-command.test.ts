import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { after, test } from 'node:test'
import { promisify } from 'node:util'
import { isAlive } from '../../../src/dev/kafka/process.ts'

const run = promisify(execFile)
const cli = new URL('../../../bin/conveyor.ts', import.meta.url).pathname
const port = String(process.env.CONVEYOR_TEST_CLI_PORT ?? 29392)
const cluster = ['--name', 'test-cli', '--port', port]

function kafka(...args: string[]) {
  return run(process.execPath, [cli, 'kafka', ...args, ...cluster, '--json'], { encoding: 'utf8' }).then(
    ({ stdout }) => ({ code: 0, json: JSON.parse(stdout) }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      json: parse(error.stdout),
      stderr: error.stderr
    })
  )
}

function parse(text: string) {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Pids of every running process whose command line mentions this cluster's directory. */
function processesOfCluster(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('/clusters/test-cli/')
      } catch {
        return false
      }
    })
    .map(Number)
    .filter(isAlive)
}

after(() => kafka('down', '--purge'))

test('`kafka up` twice starts one broker, and `down` leaves no java process behind', async () => {
  await kafka('down', '--purge')
  const first = await kafka('up')
  assert.equal(first.code, 0, `kafka up failed: ${'stderr' in first ? first.stderr : ''}`)
  const [broker] = first.json.brokers
  assert.equal(broker.running, true)
  assert.equal(first.json.bootstrap[0], `127.0.0.1:${port}`, 'prints its address')
  assert.match(broker.logFile, /server\.log$/, 'prints where the log goes')

  const second = await kafka('up')
  assert.equal(second.code, 0)
  assert.equal(second.json.brokers[0].pid, broker.pid, 'the second `up` finds the running broker')
  assert.deepEqual(processesOfCluster(), [broker.pid], 'exactly one broker process runs')

  const status = await kafka('status')
  assert.equal(status.code, 0, '`status` exits 0 while every broker runs')

  const down = await kafka('down')
  assert.equal(down.code, 0)
  assert.equal(isAlive(broker.pid), false, 'the broker process is gone')
  assert.deepEqual(processesOfCluster(), [], 'no process of the cluster is left')
  const stopped = await kafka('status')
  assert.equal(stopped.code, 3, '`status` exits 3 when a broker is not running')
})

test('`kafka up` with options that differ from the existing cluster says how to fix it', async () => {
  await kafka('down', '--purge')
  assert.equal((await kafka('up')).code, 0)
  const clash = await run(process.execPath, [cli, 'kafka', 'up', ...cluster, '--brokers', '3']).catch(
    (e) => e
  )
  assert.equal(clash.code, 1)
  assert.match(clash.stderr, /exists with 1 broker\(s\) \(asked 3\); run `down --purge` first/)
})
