import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { main } from '../../../src/cli/main.ts'
import { testConnection, useTopic } from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'

async function cli(...args: string[]) {
  const out: string[] = []
  const err: string[] = []
  const code = await main([...args, '--brokers', testConnection().brokers.join(',')], {
    out: (t) => out.push(t),
    err: (t) => err.push(t)
  })
  return { code, out, err: err.join('\n') }
}

test('`produce` sends JSON with the envelope and `tail` prints it back with --from, --partition and --limit', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const sent = []
  for (let i = 0; i < 4; i++) {
    const result = await cli(
      'produce',
      topic,
      '--key',
      `k${i}`,
      '--value',
      JSON.stringify({ message_type: 'note', i }),
      '--json'
    )
    assert.equal(result.code, 0, result.err)
    sent.push(JSON.parse(result.out[0]!))
  }
  assert.equal(sent[0].encoding, 'json')
  const all = await cli('tail', topic, '--limit', '4', '--json')
  const lines = all.out.map((l) => JSON.parse(l))
  assert.deepEqual(lines.map((l) => l.value.i).sort(), [0, 1, 2, 3])
  assert.equal(lines[0].headers.ce_type, 'note')
  const first = sent[0]
  const one = await cli(
    'tail',
    topic,
    '--partition',
    String(first.partition),
    '--from',
    first.offset,
    '--limit',
    '1',
    '--json'
  )
  assert.equal(JSON.parse(one.out[0]!).key, 'k0')
})

test('`produce` Avro-encodes through the registry when the type has a schema, and `tail` decodes it', async (t) => {
  const { url } = await useRegistry(t)
  const topic = await useTopic(t)
  const schemas = mkdtempSync(join(tmpdir(), 'schemas-'))
  writeFileSync(
    join(schemas, 'reading_v1.avsc'),
    JSON.stringify({
      type: 'record',
      name: 'reading',
      fields: [
        { name: 'message_type', type: 'string' },
        { name: 'value', type: 'double' }
      ]
    })
  )
  const produced = await cli(
    'produce',
    topic,
    '--value',
    '{"message_type":"reading","value":2.5}',
    '--registry',
    url,
    '--schemas',
    schemas,
    '--json'
  )
  assert.equal(produced.code, 0, produced.err)
  assert.equal(JSON.parse(produced.out[0]!).encoding, 'avro')
  const invalid = await cli(
    'produce',
    topic,
    '--value',
    '{"message_type":"reading","value":"high"}',
    '--registry',
    url,
    '--schemas',
    schemas
  )
  assert.equal(invalid.code, 1)
  assert.match(invalid.err, /does not match its schema at value/)
  const tail = await cli('tail', topic, '--limit', '1', '--registry', url, '--json')
  assert.deepEqual(JSON.parse(tail.out[0]!).value, { message_type: 'reading', value: 2.5 })
})

test('`produce` puts several command types on one topic under topic-record subjects, as the dispatcher reads them', async (t) => {
  const { url, client } = await useRegistry(t)
  const topic = await useTopic(t)
  const catalog = new URL('../../../schemas/commands', import.meta.url).pathname
  const commands = [
    { message_type: 'update_applied_control', selector: { ref_id: 'AC-1' }, values: { status: 'active' } },
    {
      message_type: 'update_applied_control_status',
      selector: { ref_id: 'AC-1' },
      values: { status: 'active' }
    }
  ]
  for (const command of commands) {
    const produced = await cli(
      'produce',
      topic,
      '--value',
      JSON.stringify(command),
      '--registry',
      url,
      '--schemas',
      catalog,
      '--json'
    )
    assert.equal(produced.code, 0, produced.err)
    assert.equal(JSON.parse(produced.out[0]!).encoding, 'avro')
  }
  const subjects = (await client.listSubjects()).filter((s) => s.startsWith(topic))
  assert.deepEqual(subjects.sort(), [
    `${topic}-conveyor.commands.update_applied_control`,
    `${topic}-conveyor.commands.update_applied_control_status`
  ])
  // The topic strategy (one schema per topic) is there for topics whose consumers use it.
  const other = await useTopic(t)
  const first = await cli(
    'produce',
    other,
    '--value',
    JSON.stringify(commands[0]),
    '--registry',
    url,
    '--schemas',
    catalog,
    '--subject-strategy',
    'topic'
  )
  assert.equal(first.code, 0, first.err)
  assert.ok((await client.listSubjects()).includes(`${other}-value`))
  const wrong = await cli('produce', other, '--value', '{}', '--type', 'x', '--subject-strategy', 'by-name')
  assert.equal(wrong.code, 1)
  assert.match(wrong.err, /--subject-strategy must be topic-record, record, topic, got "by-name"/)
})
