import assert from 'node:assert/strict'
import { test } from 'node:test'
import { main } from '../../../src/cli/main.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, testConnection, uniqueName, useTopic, useTransport } from '../../helpers/kafka.ts'
import { configFile, handlersModule, startService } from '../../helpers/service.ts'

async function lag(...args: string[]) {
  const out: string[] = []
  const err: string[] = []
  const code = await main(['lag', ...args, '--brokers', testConnection().brokers.join(',')], {
    out: (t) => out.push(t),
    err: (t) => err.push(t)
  })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

test('`conveyor lag` shows lag in offsets and seconds, and for a stuck partition the blocking offset, key, attempt and next retry', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const group = uniqueName('lagging')
  const config = configFile(
    [
      `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
      'http: { port: 0, host: 127.0.0.1 }',
      'metrics: { lagInterval: 500 }',
      `consumers: [{ groupId: ${group}, topics: [${topic}], handlers: ${handlersModule} }]`
    ].join('\n')
  )
  const service = await startService(t, config)
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  const send = (type: string, key: string) =>
    publisher.send([{ topic, key, value: JSON.stringify({ message_type: type }) }])
  for (let i = 0; i < 3; i++) await send('n', `k${i}`)
  await send('stuck', 'order-42')
  for (let i = 0; i < 3; i++) await send('n', `after${i}`)

  const result = await waitFor(
    async () => {
      const answer = await lag(group, '--service', service.url, '--json')
      const [partition] = JSON.parse(answer.out).partitions
      return partition?.committed === '3' && partition.blocking?.length === 1 ? partition : undefined
    },
    { timeout: 30_000, description: 'the stuck partition to show in lag' }
  )
  assert.equal(result.end, '7')
  assert.equal(result.lag, '4')
  assert.equal(typeof result.lagSeconds, 'number')
  const [blocking] = result.blocking
  assert.equal(blocking.offset, '3')
  assert.equal(blocking.key, 'order-42')
  assert.ok(blocking.attempt >= 1)
  assert.ok(Date.parse(blocking.nextRetryAt) > 0)
  assert.match(blocking.error, /the downstream API is down/)

  const text = await lag(group, '--service', service.url)
  assert.match(
    text.out,
    new RegExp(
      `${topic}/0  committed 3  end 7  lag 4 \\(\\d+ s\\)  blocked at offset 3 key order-42 attempt \\d+, next retry .*: the downstream API is down`
    )
  )
  const gauge = new RegExp(`conveyor_consumer_lag\\{group="${group}",topic="${topic}",partition="0"\\} 4`)
  await waitFor(async () => gauge.test(await (await fetch(`${service.url}/metrics`)).text()), {
    timeout: 20_000,
    description: 'the lag gauge'
  })
  assert.match(
    await (await fetch(`${service.url}/metrics`)).text(),
    new RegExp(`conveyor_consumer_lag_seconds\\{group="${group}",topic="${topic}",partition="0"\\} \\d+`)
  )
  service.child.kill('SIGTERM')
  assert.equal(await service.exited, 0)
})

test('`conveyor lag` of a group the broker does not know says so in one line and exits 1', async () => {
  const group = uniqueName('no-such-group')
  const result = await lag(group)
  assert.equal(result.code, 1)
  assert.equal(result.out, '')
  assert.match(result.err, new RegExp(`^conveyor lag: group ${group} does not exist`))
})

test('`conveyor lag` of a live group that has committed nothing says so and exits 0', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const group = uniqueName('idle')
  const transport = useTransport(t)
  const subscription = await transport.subscribe(
    { groupId: group, topics: [topic], fromBeginning: true },
    { record: () => {}, assigned: () => {}, failed: () => {} }
  )
  cleanup(t, () => subscription.close())
  const result = await waitFor(
    async () => {
      const answer = await lag(group)
      return answer.code === 0 ? answer : undefined
    },
    { timeout: 30_000, description: 'the group to be known' }
  )
  assert.equal(result.out, `group ${group} has committed no offsets yet`)
})
