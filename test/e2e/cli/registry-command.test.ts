import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, testConnection, uniqueName } from '../../helpers/kafka.ts'

const cli = new URL('../../../bin/conveyor.ts', import.meta.url).pathname

test('`conveyor registry` serves the registry API until SIGTERM, then exits 0', async (t) => {
  const topic = uniqueName('_schemas')
  const child = spawn(
    process.execPath,
    [cli, 'registry', '--brokers', testConnection().brokers.join(','), '--port', '0', '--topic', topic],
    {
      stdio: ['ignore', 'pipe', 'pipe']
    }
  )
  cleanup(t, () => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(output)?.[1], {
    timeout: 30_000,
    description: 'the registry to listen'
  })
  const response = await fetch(`${url}/subjects`)
  assert.equal(response.status, 200)
  assert.deepEqual(await response.json(), [])
  child.kill('SIGTERM')
  assert.equal(await exited, 0, output)
})
