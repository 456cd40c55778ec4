import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { main } from '../../../src/cli/main.ts'
import { deleteTopicsAtEnd, testConnection, uniqueName } from '../../helpers/kafka.ts'

async function topics(...args: string[]) {
  const out: string[] = []
  const err: string[] = []
  const code = await main(['topics', ...args, '--brokers', testConnection().brokers.join(',')], {
    out: (t) => out.push(t),
    err: (t) => err.push(t)
  })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

test('`topics apply` converges and is idempotent; `plan` after it shows no change, and later edits show exactly themselves', async (t) => {
  const events = uniqueName('events')
  const table = uniqueName('table')
  deleteTopicsAtEnd(t, [events, table])
  const file = join(mkdtempSync(join(tmpdir(), 'topics-')), 'topics.yaml')
  const write = (eventsPartitions: number, retention: string) =>
    writeFileSync(
      file,
      `topics:\n  ${events}:\n    partitions: ${eventsPartitions}\n    retention: ${retention}\n    cleanupPolicy: delete\n  ${table}:\n    partitions: 1\n    cleanupPolicy: compact\n    config:\n      min.cleanable.dirty.ratio: 0.1\n`
    )
  write(2, '7d')

  const first = await topics('plan', file)
  assert.equal(first.code, 0)
  assert.match(
    first.out,
    new RegExp(
      `\\+ create ${events}: 2 partitions, replication default, retention.ms=604800000, cleanup.policy=delete`
    )
  )
  assert.match(first.out, new RegExp(`\\+ create ${table}: 1 partitions, .*cleanup.policy=compact`))

  assert.equal((await topics('apply', file)).code, 0)
  assert.equal((await topics('plan', file)).out, 'no changes: the cluster matches the file')
  const again = await topics('apply', file)
  assert.equal(again.code, 0)
  assert.match(again.out, /applied 0 change\(s\)/, 'a second apply changes nothing')

  write(4, '1d')
  const edited = await topics('plan', file, '--json')
  assert.deepEqual(JSON.parse(edited.out).changes, [
    { action: 'add-partitions', topic: events, from: 2, to: 4 },
    { action: 'set-config', topic: events, name: 'retention.ms', from: '604800000', to: '86400000' }
  ])
  assert.equal((await topics('apply', file)).code, 0)
  assert.equal((await topics('plan', file)).out, 'no changes: the cluster matches the file')

  write(1, '1d')
  const impossible = await topics('plan', file)
  assert.equal(impossible.code, 1)
  assert.match(impossible.out, /! .*partitions 4 → 1: Kafka cannot remove partitions/)
})

test('a bad topics file names the field', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'topics-')), 'topics.yaml')
  writeFileSync(file, 'topics:\n  orders:\n    partitions: 0\n')
  const result = await topics('plan', file)
  assert.equal(result.code, 1)
  assert.match(result.err, /topics > orders > partitions: must be an integer > 0/)
})
