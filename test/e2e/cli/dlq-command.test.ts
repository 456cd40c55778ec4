import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Consumer } from '@platformatic/kafka'
import { main } from '../../../src/cli/main.ts'
import { deadLetterRecord } from '../../../src/dead-letter/record.ts'
import { ReplayedFromHeader } from '../../../src/dead-letter/replay.ts'
import { clientOptions } from '../../../src/kafka/connection.ts'
import type { InboundRecord } from '../../../src/transport/types.ts'
import {
  cleanup,
  committedOffsets,
  deleteTopicsAtEnd,
  readAll,
  testConnection,
  useGroup,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

async function dlq(...args: string[]) {
  const out: string[] = []
  const err: string[] = []
  const code = await main(['dlq', ...args, '--brokers', testConnection().brokers.join(',')], {
    out: (t) => out.push(t),
    err: (t) => err.push(t)
  })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

test('`dlq replay` of 10 000 records filtered by reason replays exactly the matching ones once, with progress; a second run replays nothing', async (t) => {
  const source = await useTopic(t, { partitions: 2 })
  const dead = await useTopic(t, { partitions: 2 })
  deleteTopicsAtEnd(t, [`${dead}.replayed`])
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  const total = 10_000
  const reasonOf = (i: number) => (i % 5 < 3 ? 'retries_exhausted' : 'invalid_json')
  for (let start = 0; start < total; start += 1_000) {
    await publisher.send(
      Array.from({ length: 1_000 }, (_, n) => {
        const i = start + n
        return {
          topic: dead,
          key: `k${i}`,
          value: JSON.stringify({ message_type: 'w', i }),
          headers: {
            dlq_source_topic: source,
            dlq_source_partition: String(i % 2),
            dlq_source_offset: String(i),
            dlq_reason: reasonOf(i),
            dlq_error_class: 'Error',
            dlq_error_message: 'boom',
            dlq_last_failure_time: new Date().toISOString(),
            traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
          }
        }
      })
    )
  }
  const expected = Array.from({ length: total }, (_, i) => i).filter(
    (i) => reasonOf(i) === 'retries_exhausted'
  )
  // A live consumer group of the DLQ topic, with its own committed position.
  const liveGroup = useGroup(t)
  const live = new Consumer({ ...clientOptions(testConnection()), groupId: liveGroup })
  await live
    .commit({
      offsets: [
        { topic: dead, partition: 0, offset: 100n, leaderEpoch: -1 },
        { topic: dead, partition: 1, offset: 200n, leaderEpoch: -1 }
      ]
    })
    .catch(async () => {
      // Committing needs a group generation: join first, then commit.
      const stream = await live.consume({ topics: [dead], mode: 'latest' })
      await live.commit({
        offsets: [
          { topic: dead, partition: 0, offset: 100n, leaderEpoch: -1 },
          { topic: dead, partition: 1, offset: 200n, leaderEpoch: -1 }
        ]
      })
      await stream.close()
    })
  await live.close(true)

  const dry = await dlq('replay', dead, '--reason', 'retries_exhausted', '--dry-run')
  assert.match(dry.out, new RegExp(`dry run: ${expected.length} record\\(s\\) would be replayed`))

  const first = await dlq('replay', dead, '--reason', 'retries_exhausted')
  assert.equal(first.code, 0)
  assert.match(first.out, new RegExp(`replayed ${expected.length} record\\(s\\)`))
  assert.match(
    first.err,
    new RegExp(`replayed ${expected.length}/${expected.length} \\(100%\\)`),
    'progress reaches 100%'
  )
  assert.ok(first.err.split('\n').length >= 5, 'progress is shown along the way')

  const replayed = await readAll(t, source, expected.length)
  const values = replayed.map((r) => JSON.parse(r.value!.toString()).i as number).sort((a, b) => a - b)
  assert.deepEqual(values, expected, 'exactly the matching records, each once')
  const one = replayed[0]!
  assert.match(one.headers.get(ReplayedFromHeader)!.toString(), new RegExp(`^${dead}/\\d/\\d+$`))
  assert.equal(
    one.headers.get('traceparent')?.toString(),
    '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    'original headers kept'
  )
  assert.equal(
    [...one.headers.keys()].some((k) => k.startsWith('dlq_')),
    false,
    'dlq_* headers dropped'
  )
  assert.equal(
    one.partition,
    Number(one.headers.get(ReplayedFromHeader)!.toString().split('/')[2]) % 2,
    'back to its source partition'
  )

  const second = await dlq('replay', dead, '--reason', 'retries_exhausted')
  assert.match(second.out, /replayed 0 record\(s\) \(6000 match, 6000 already replayed\)/)

  const listed = await dlq('list', dead, '--reason', 'invalid_json', '--source-partition', '1', '--json')
  assert.equal(JSON.parse(listed.out).length, 2_000, 'list filters by reason and source partition')
  assert.deepEqual(
    await committedOffsets(dead, 2, liveGroup),
    [100n, 200n],
    "the live group's offsets did not move"
  )
})

test('records produced by a replay are not replayed again unless asked, so a replay cannot loop', async (t) => {
  const dead = await useTopic(t)
  deleteTopicsAtEnd(t, [`${dead}.replayed`])
  const target = await useTopic(t)
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  await publisher.send([
    {
      topic: dead,
      key: 'a',
      value: '{}',
      headers: { dlq_source_topic: target, dlq_reason: 'retries_exhausted', [ReplayedFromHeader]: 'x/0/1' }
    },
    {
      topic: dead,
      key: 'b',
      value: '{}',
      headers: { dlq_source_topic: target, dlq_reason: 'retries_exhausted' }
    }
  ])
  const result = await dlq('replay', dead, '--json')
  assert.deepEqual(JSON.parse(result.out), { matched: 1, alreadyReplayed: 0, replayed: 1 })
  const withReplayed = await dlq('replay', dead, '--include-replayed', '--json')
  assert.deepEqual(JSON.parse(withReplayed.out), { matched: 2, alreadyReplayed: 1, replayed: 1 })
})

/** A record of `topic`'s partition 0 at `offset`, as the consumer received it. */
function received(topic: string, offset: number, value: string): InboundRecord {
  return {
    topic,
    partition: 0,
    offset: BigInt(offset),
    key: Buffer.from(`k${offset}`),
    value: Buffer.from(value),
    headers: new Map(),
    timestamp: Date.now()
  }
}

/** The DLQ record the runtime writes when group orders-service gives up on `record`. */
function deadLetterCopy(record: InboundRecord, dlqTopic: string) {
  return deadLetterRecord(record, {
    topic: dlqTopic,
    groupId: 'orders-service',
    reason: 'retries_exhausted',
    error: new Error('the API is down'),
    attempts: 4,
    firstFailure: new Date(),
    lastFailure: new Date()
  })
}

test('a source record dead-lettered twice (again after a crash) is listed once with its copies and replayed once', async (t) => {
  const source = await useTopic(t)
  const dead = await useTopic(t)
  deleteTopicsAtEnd(t, [`${dead}.replayed`])
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  const twice = received(source, 7, '{"message_type":"w","n":7}')
  const once = received(source, 8, '{"message_type":"w","n":8}')
  // The second copy of offset 7 was written by the member that took over after a crash.
  await publisher.send([deadLetterCopy(twice, dead), deadLetterCopy(once, dead), deadLetterCopy(twice, dead)])

  const listed = await dlq('list', dead)
  assert.equal(listed.out.split('\n').length, 2, listed.out)
  assert.match(listed.out, new RegExp(`^0/2  ${source}/0/7 \\(×2\\)  retries_exhausted`, 'm'))
  assert.match(listed.err, /2 record\(s\) \(1 duplicate copies not shown; --copies lists them\)/)
  const all = await dlq('list', dead, '--copies', '--json')
  assert.equal(JSON.parse(all.out).length, 3)
  assert.equal(JSON.parse(all.out)[0].id, `orders-service/${source}/0/7`)

  const replay = await dlq('replay', dead)
  assert.match(
    replay.out,
    /replayed 2 record\(s\) \(2 match, 0 already replayed, 1 duplicate copies left out\)/
  )
  const replayed = await readAll(t, source, 2)
  assert.deepEqual(replayed.map((r) => r.value?.toString()).sort(), [
    '{"message_type":"w","n":7}',
    '{"message_type":"w","n":8}'
  ])
  const again = await dlq('replay', dead, '--json')
  assert.deepEqual(JSON.parse(again.out), { matched: 2, duplicates: 1, alreadyReplayed: 2, replayed: 0 })
})

test('a record that fails again after its replay is a new failure: the next replay writes it again', async (t) => {
  const source = await useTopic(t)
  const dead = await useTopic(t)
  deleteTopicsAtEnd(t, [`${dead}.replayed`])
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  const record = received(source, 3, '{"message_type":"w"}')
  const copy = () => deadLetterCopy(record, dead)
  await publisher.send([copy()])
  assert.deepEqual(JSON.parse((await dlq('replay', dead, '--json')).out), {
    matched: 1,
    alreadyReplayed: 0,
    replayed: 1
  })
  // Read again on purpose (an offset reset, say), it fails again: a copy written after the replay.
  await new Promise((resolve) => setTimeout(resolve, 20))
  await publisher.send([copy()])
  assert.deepEqual(JSON.parse((await dlq('replay', dead, '--json')).out), {
    matched: 1,
    duplicates: 1,
    alreadyReplayed: 0,
    replayed: 1
  })
  assert.equal((await readAll(t, source, 2)).length, 2)
})
