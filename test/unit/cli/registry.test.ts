import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import type { Command } from '../../../src/cli/command.ts'
import { availableCommands, libraryCommands, main } from '../../../src/cli/main.ts'
import { registerCommands, registeredCommands } from '../../../src/cli/registry.ts'

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err }
}

const calls: string[][] = []
const greet: Command = {
  name: 'greet',
  summary: 'an application command registered from outside src/cli/',
  async run(argv, io) {
    calls.push(argv)
    io.out(`hello ${argv[0] ?? 'world'}`)
    return argv[0] === 'fail' ? 1 : 0
  }
}
registerCommands(greet)

test('a registered command is listed by --help, after `run` and before the library tools', async () => {
  const { io, out } = capture()
  assert.equal(await main(['--help'], io), 0)
  const names = out
    .join('\n')
    .split('\n')
    .map((line) => /^ {2}(\S+) {2,}/.exec(line)?.[1])
    .filter((name) => name !== undefined)
  assert.deepEqual(names, ['run', 'greet', ...libraryCommands.slice(1).map((c) => c.name)])
  assert.match(out.join('\n'), /greet\s+an application command registered from outside src\/cli\//)
})

test('a registered command runs with its arguments, and its exit code is the exit code', async () => {
  const { io, out } = capture()
  assert.equal(await main(['greet', 'there'], io), 0)
  assert.deepEqual(out, ['hello there'])
  assert.deepEqual(calls.at(-1), ['there'])
  assert.equal(await main(['greet', 'fail'], capture().io), 1)
})

test('a command name can be registered once, and never with the name of a library command', () => {
  assert.throws(() => registerCommands({ ...greet }), /the command "greet" is already registered/)
  assert.deepEqual(
    registeredCommands().map((c) => c.name),
    ['greet']
  )
  assert.throws(
    () => availableCommands([{ ...greet, name: 'tail' }]),
    /the command "tail" is one of the library's/
  )
})

test('`conveyor --help` from the executable lists the applications after `run`: run, dispatcher, demo, replicator, produce, …', async () => {
  const bin = new URL('../../../bin/conveyor.js', import.meta.url).pathname
  const { stdout } = await promisify(execFile)(process.execPath, [bin, '--help'], { encoding: 'utf8' })
  const names = stdout
    .split('\n')
    .map((line) => /^ {2}(\S+) {2,}/.exec(line)?.[1])
    .filter((name) => name !== undefined)
  assert.deepEqual(names.slice(0, 5), ['run', 'dispatcher', 'demo', 'replicator', 'produce'])
  assert.deepEqual(
    names.slice(4),
    libraryCommands.slice(1).map((c) => c.name)
  )
})
