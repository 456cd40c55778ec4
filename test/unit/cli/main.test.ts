import assert from 'node:assert/strict'
import { test } from 'node:test'
import { main } from '../../../src/cli/main.ts'

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err }
}

test('the CLI lists its commands with --help and exits 0', async () => {
  const { io, out } = capture()
  assert.equal(await main(['--help'], io), 0)
  assert.match(out.join('\n'), /kafka\s+start, stop and inspect a local Apache Kafka broker/)
})

test('an unknown command exits 2 and names the command', async () => {
  const { io, err } = capture()
  assert.equal(await main(['frobnicate'], io), 2)
  assert.match(err.join('\n'), /unknown command "frobnicate"/)
})

test('an invalid option value exits 1 with a one-line reason naming the flag', async () => {
  const { io, err } = capture()
  assert.equal(await main(['kafka', 'status', '--brokers', 'two'], io), 1)
  assert.equal(err.join('\n'), 'conveyor kafka: --brokers must be an integer, got "two"')
})

test('a cluster size other than 1 or 3 is refused before anything starts', async () => {
  const { io, err } = capture()
  assert.equal(await main(['kafka', 'up', '--brokers', '2', '--name', 'never-started'], io), 1)
  assert.match(err.join('\n'), /brokers must be 1 or 3, got 2/)
})
