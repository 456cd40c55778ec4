/**
 * The identity service against a real broker ($KAFKA_BROKERS) and Conveyor's schema registry
 * (started here with `npx conveyor registry`): the API, the background queue, the read model,
 * and a dead-lettered event replayed with `npx conveyor dlq replay`.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type ConveyorProducer, createProducer, KafkaTransport, waitFor } from '@conveyorjs/conveyor'
import { buildApi } from '../src/api.ts'
import { BackgroundPublisher, type QueuedEvent } from '../src/background.ts'
import { createUserEventsConsumer, type Users } from '../src/consumer.ts'
import { deadLetterTopic, topic, type UserEvents, userEventCodec } from '../src/events.ts'

const run = promisify(execFile)
const brokers = process.env.KAFKA_BROKERS
if (!brokers) throw new Error('set KAFKA_BROKERS to a Kafka cluster (e.g. npx conveyor kafka up)')

let registry: ChildProcess
let transport: KafkaTransport
let producer: ConveyorProducer<UserEvents>
let users: Users
let stopConsumer: () => Promise<void>

before(async () => {
  // The installed bin itself (not through npx), so that SIGTERM at the end reaches it.
  const bin = fileURLToPath(new URL('../node_modules/.bin/conveyor', import.meta.url))
  registry = spawn(
    process.execPath,
    [bin, 'registry', '--port', '0', '--brokers', brokers, '--topic', `_schemas-${randomUUID()}`],
    { stdio: ['ignore', 'pipe', 'inherit'] }
  )
  let output = ''
  registry.stdout!.on('data', (chunk) => {
    output += chunk
  })
  const url = await waitFor(() => /listening on (http:\/\/\S+)/.exec(output)?.[1], {
    timeout: 60_000,
    description: 'the schema registry'
  })
  const codec = userEventCodec(url)
  transport = new KafkaTransport({ connection: { brokers: brokers.split(','), clientId: 'identity-test' } })
  await transport.ensureTopics([
    { topic, partitions: 3 },
    { topic: deadLetterTopic, partitions: 1 }
  ])
  producer = createProducer<UserEvents>({ transport, topic, codec })
  const created = createUserEventsConsumer({ transport, codec, groupId: `read-model-${randomUUID()}` })
  users = created.users
  await created.consumer.start()
  stopConsumer = () => created.consumer.stop()
})

after(async () => {
  await stopConsumer?.()
  await producer?.close()
  await transport?.close()
  if (registry && registry.exitCode === null) {
    const exited = new Promise((resolve) => registry.once('exit', resolve))
    registry.kill('SIGTERM')
    await exited
  }
})

function api(background = new BackgroundPublisher({ producer, onFailure: () => {} })) {
  return { app: buildApi({ producer, background }), background }
}

test('account changes are published synchronously (201/200 with the position) and the read model follows every event type', async () => {
  const { app, background } = api()
  const created = await app.inject({
    method: 'POST',
    url: '/users',
    payload: { email: 'ada@example.com', name: 'Ada' }
  })
  assert.equal(created.statusCode, 201)
  const { user_id: id, partition, offset } = created.json()
  assert.equal(typeof partition, 'number')
  assert.match(offset, /^\d+$/)
  await waitFor(() => users.has(id), { timeout: 30_000, description: 'the registration in the read model' })

  const steps = [
    { method: 'PATCH', url: `/users/${id}`, payload: { name: 'Ada Lovelace' } },
    { method: 'POST', url: `/users/${id}/email-verification`, payload: { email: 'ada@example.com' } },
    { method: 'POST', url: `/users/${id}/password` },
    { method: 'POST', url: `/users/${id}/login` },
    { method: 'POST', url: `/users/${id}/logout` }
  ] as const
  for (const step of steps) {
    const answer = await app.inject(step)
    assert.ok([200, 202].includes(answer.statusCode), `${step.method} ${step.url}: ${answer.body}`)
  }
  await background.close()
  await waitFor(() => users.get(id)?.logins === 1 && users.get(id)?.signedIn === false, {
    timeout: 30_000,
    description: 'the sign-in and sign-out'
  })
  assert.deepEqual(users.get(id), {
    user_id: id,
    email: 'ada@example.com',
    name: 'Ada Lovelace',
    emailVerified: true,
    signedIn: false,
    logins: 1
  })
  assert.equal((await app.inject({ method: 'DELETE', url: `/users/${id}` })).statusCode, 200)
  await waitFor(() => !users.has(id), { timeout: 30_000, description: 'the deletion' })
})

test('sign-ins are published in the background: 202 at once, and close() flushes every queued event', async () => {
  const { app, background } = api()
  const id = (
    await app.inject({ method: 'POST', url: '/users', payload: { email: 'b@example.com', name: 'B' } })
  ).json().user_id
  const answers = await Promise.all(
    Array.from({ length: 50 }, () => app.inject({ method: 'POST', url: `/users/${id}/login` }))
  )
  assert.deepEqual(new Set(answers.map((a) => a.statusCode)), new Set([202]))
  await background.close()
  assert.deepEqual(background.counts, { sent: 50, failed: 0 })
  assert.equal(background.pending, 0)
  await waitFor(() => users.get(id)?.logins === 50, { timeout: 30_000, description: '50 sign-ins applied' })
})

test('a full background queue answers 503 and queues nothing; an event that cannot be sent is reported, not dropped', async () => {
  const failures: Array<{ event: QueuedEvent; error: unknown }> = []
  const background = new BackgroundPublisher({
    producer,
    capacity: 3,
    onFailure: (event, error) => failures.push({ event, error })
  })
  const { app } = api(background)
  const answers = []
  for (let i = 0; i < 5; i++) answers.push(app.inject({ method: 'POST', url: `/users/u-${i}/logout` }))
  assert.deepEqual(
    (await Promise.all(answers)).map((a) => a.statusCode),
    [202, 202, 202, 503, 503]
  )
  // An event its schema refuses fails alone, and is reported with its payload.
  await waitFor(() => background.pending === 0, { timeout: 30_000, description: 'the queue to drain' })
  background.enqueue('user_login', { user_id: 'u-9', ip: 42 as unknown as string, at: Date.now() }, 'u-9')
  background.enqueue('user_logout', { user_id: 'u-9', at: Date.now() }, 'u-9')
  await background.close()
  assert.deepEqual(background.counts, { sent: 4, failed: 1 })
  assert.equal(failures.length, 1)
  assert.equal(failures[0]!.event.type, 'user_login')
  assert.match((failures[0]!.error as Error).message, /does not match its schema at ip/)
  assert.equal(background.enqueue('user_logout', { user_id: 'u-9', at: Date.now() }, 'u-9'), false, 'closed')
})

test('an event about an unknown user is dead-lettered as unknown_user, and `conveyor dlq replay` applies it once the user exists', async () => {
  const id = `late-${randomUUID()}`
  await producer.send(
    'user_updated',
    { user_id: id, name: 'Renamed', email: null, at: Date.now() },
    { key: id }
  )
  const cli = (...args: string[]) => run('npx', ['conveyor', ...args, '--brokers', brokers])
  const listed = await waitFor(
    async () => {
      const { stdout } = await cli('dlq', 'list', deadLetterTopic, '--reason', 'unknown_user', '--json')
      const records = JSON.parse(stdout) as Array<{ reason: string; error: string }>
      return records.find((r) => r.error.includes(id)) ? records : undefined
    },
    { timeout: 30_000, interval: 500, description: 'the update in the DLQ' }
  )
  assert.ok(listed.length >= 1)
  assert.equal(users.has(id), false)
  // The cause is fixed (the registration arrives); the dead-lettered update is replayed.
  const { app } = api()
  await app.inject({
    method: 'POST',
    url: '/users',
    payload: { user_id: id, email: 'late@example.com', name: 'Late' }
  })
  await waitFor(() => users.has(id), { timeout: 30_000, description: 'the registration' })
  const replay = await cli('dlq', 'replay', deadLetterTopic, '--reason', 'unknown_user')
  assert.match(`${replay.stdout}${replay.stderr}`, /replayed/)
  await waitFor(() => users.get(id)?.name === 'Renamed', {
    timeout: 30_000,
    description: 'the replayed update'
  })
})
