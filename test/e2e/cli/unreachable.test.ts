/**
 * What a user sees when a command cannot do its work: a broker that does not answer,
 * refused credentials, a topic that does not exist, a registry that does not answer. Each
 * command runs as the user runs it (a process of bin/conveyor.ts) and must exit 1 with one
 * line on stderr that says why, never a stack trace.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { clientOptions } from '../../../src/kafka/connection.ts'
import { assertOneLineFailure, conveyor } from '../../helpers/cli.ts'
import { saslConnection, testConnection, uniqueName, useTopic } from '../../helpers/kafka.ts'

/** Nothing listens on port 1: connections are refused at once. */
const nowhere = '127.0.0.1:1'
/** Short, so the file stays fast; the default (10 s) is for people. */
const timeout = '500'

const topicsFile = join(mkdtempSync(join(tmpdir(), 'unreachable-')), 'topics.yaml')
writeFileSync(topicsFile, 'topics: {}\n')

suite('no broker answers at --brokers', { concurrency: true }, () => {
  const commands: Array<[string, string[]]> = [
    ['topics plan', ['topics', 'plan', topicsFile]],
    ['topics apply', ['topics', 'apply', topicsFile]],
    ['tail', ['tail', 'some-topic', '--limit', '1']],
    ['lag', ['lag', 'some-group']],
    ['dlq list', ['dlq', 'list', 'some-topic.dlq']],
    ['dlq show', ['dlq', 'show', 'some-topic.dlq']],
    ['dlq replay', ['dlq', 'replay', 'some-topic.dlq']],
    ['produce', ['produce', 'some-topic', '--value', '{"message_type":"note"}']],
    ['registry', ['registry', '--port', '0']]
  ]
  for (const [name, args] of commands) {
    test(`\`conveyor ${name}\` says in one line that no broker answered at the given address, and exits 1`, async () => {
      const result = await conveyor([...args, '--brokers', nowhere, '--connect-timeout', timeout])
      assertOneLineFailure(
        result,
        new RegExp(
          `^conveyor ${name.split(' ')[0]}: no Kafka broker answered at 127\\.0\\.0\\.1:1 within ${timeout} ms \\(connect ECONNREFUSED 127\\.0\\.0\\.1:1\\)$`
        )
      )
    })
  }

  test('every broker is named when none of several answers', async () => {
    const result = await conveyor([
      'lag',
      'g',
      '--brokers',
      `${nowhere},127.0.0.1:2`,
      '--connect-timeout',
      timeout
    ])
    assertOneLineFailure(
      result,
      /^conveyor lag: no Kafka broker answered at 127\.0\.0\.1:1,127\.0\.0\.1:2 within/
    )
  })
})

suite('a topic that does not exist', { concurrency: true }, () => {
  const brokers = () => testConnection().brokers.join(',')

  test('`tail` of a missing topic says the topic does not exist, and exits 1', async () => {
    const topic = uniqueName('nosuch')
    assertOneLineFailure(
      await conveyor(['tail', topic, '--limit', '1', '--brokers', brokers()]),
      new RegExp(`^conveyor tail: topic ${topic} does not exist$`)
    )
  })

  test('`dlq list` of a missing topic says the topic does not exist, and exits 1', async () => {
    const topic = uniqueName('nosuch')
    assertOneLineFailure(
      await conveyor(['dlq', 'list', topic, '--brokers', brokers()]),
      new RegExp(`^conveyor dlq: topic ${topic} does not exist$`)
    )
  })

  test('`dlq replay` of a missing topic fails the same way and creates nothing (no .replayed ledger)', async () => {
    const topic = uniqueName('nosuch')
    assertOneLineFailure(
      await conveyor(['dlq', 'replay', topic, '--brokers', brokers()]),
      new RegExp(`^conveyor dlq: topic ${topic} does not exist$`)
    )
    const admin = new Admin(clientOptions(testConnection()))
    try {
      const topics = await admin.listTopics()
      assert.ok(!topics.includes(`${topic}.replayed`), 'the replay ledger was not created')
    } finally {
      await admin.close()
    }
  })

  test('`produce` to a missing topic says the topic does not exist, and exits 1', async () => {
    const topic = uniqueName('nosuch')
    assertOneLineFailure(
      await conveyor(['produce', topic, '--value', '{"message_type":"note"}', '--brokers', brokers()]),
      new RegExp(`^conveyor produce: topic ${topic} does not exist$`)
    )
  })
})

suite('no schema registry answers at --registry', { concurrency: true }, () => {
  test('`tail --registry` says in one line that no registry answered at the URL, and exits 1', async (t) => {
    const topic = await useTopic(t)
    const result = await conveyor([
      'tail',
      topic,
      '--limit',
      '1',
      '--brokers',
      testConnection().brokers.join(','),
      '--registry',
      'http://127.0.0.1:1'
    ])
    assertOneLineFailure(
      result,
      /^conveyor tail: no schema registry answered at http:\/\/127\.0\.0\.1:1 \(connect ECONNREFUSED 127\.0\.0\.1:1\)$/
    )
  })

  test('`produce --registry` of a type with a schema fails the same way, and exits 1', async (t) => {
    const topic = await useTopic(t)
    const schemas = mkdtempSync(join(tmpdir(), 'unreachable-schemas-'))
    writeFileSync(
      join(schemas, 'note_v1.avsc'),
      JSON.stringify({
        type: 'record',
        name: 'note',
        fields: [
          { name: 'message_type', type: 'string' },
          { name: 'text', type: 'string' }
        ]
      })
    )
    const result = await conveyor([
      'produce',
      topic,
      '--value',
      '{"message_type":"note","text":"hi"}',
      '--schemas',
      schemas,
      '--brokers',
      testConnection().brokers.join(','),
      '--registry',
      'http://127.0.0.1:1'
    ])
    assertOneLineFailure(
      result,
      /^conveyor produce: no schema registry answered at http:\/\/127\.0\.0\.1:1 \(connect ECONNREFUSED 127\.0\.0\.1:1\)$/
    )
  })
})

const sasl = saslConnection()
const skip = sasl ? false : 'KAFKA_SASL_BROKERS is not set (the local test broker always opens one)'

suite('credentials from CONVEYOR_KAFKA_SASL_*', { skip, concurrency: true }, () => {
  const env = (password: string) => ({
    CONVEYOR_KAFKA_SASL_MECHANISM: sasl!.sasl!.mechanism,
    CONVEYOR_KAFKA_SASL_USERNAME: sasl!.sasl!.username,
    CONVEYOR_KAFKA_SASL_PASSWORD: password,
    ...(process.env.KAFKA_CA_FILE
      ? { CONVEYOR_KAFKA_TLS_CA_FILE: process.env.KAFKA_CA_FILE }
      : { CONVEYOR_KAFKA_TLS: 'true' })
  })
  const brokers = () => sasl!.brokers.join(',')

  test('the right credentials in the environment connect over SASL_SSL', async () => {
    const result = await conveyor(
      ['topics', 'plan', topicsFile, '--brokers', brokers()],
      env(sasl!.sasl!.password)
    )
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /no changes/)
  })

  for (const [name, args] of [
    ['topics', ['topics', 'plan', topicsFile]],
    ['tail', ['tail', 'some-topic', '--limit', '1']],
    ['lag', ['lag', 'some-group']],
    ['dlq', ['dlq', 'list', 'some-topic.dlq']]
  ] as Array<[string, string[]]>) {
    test(`\`conveyor ${name}\` with a refused password says authentication failed, in one line, at once, and exits 1`, async () => {
      const started = Date.now()
      const result = await conveyor(
        [...args, '--brokers', brokers(), '--connect-timeout', '30000'],
        env('not-the-password')
      )
      assertOneLineFailure(
        result,
        new RegExp(
          `^conveyor ${name}: Kafka rejected the connection to ${brokers().replaceAll('.', '\\.')} as "${sasl!.sasl!.username}" with ${sasl!.sasl!.mechanism}: authentication failed, check the username and password$`
        )
      )
      assert.ok(Date.now() - started < 20_000, 'refused credentials are not retried until the timeout')
    })
  }
})

test('incomplete SASL settings are refused before connecting, in one line naming the variable', async () => {
  const result = await conveyor(['lag', 'g', '--brokers', nowhere], {
    CONVEYOR_KAFKA_SASL_USERNAME: 'conveyor'
  })
  assertOneLineFailure(result, /^conveyor lag: CONVEYOR_KAFKA_SASL_MECHANISM is required with SASL/)
})

test('an unknown option is a usage error: one line, exit 2', async () => {
  const result = await conveyor(['tail', 'some-topic', '--no-such-option'])
  assert.equal(result.code, 2, result.stderr)
  assert.ok(!result.stderr.includes('    at '), result.stderr)
  assert.equal(result.stderr.replace(/\n$/, '').split('\n').length, 1, result.stderr)
  assert.match(result.stderr, /^conveyor tail: Unknown option '--no-such-option'/)
})
