/**
 * A transactional consumer on the real broker: a consume → transform → produce pipeline
 * (test/fixtures/transactional-process.ts) whose outputs a `read_committed` reader must
 * see exactly once, whatever happens to the processes: SIGKILLs mid-stream, and a member
 * frozen past its session timeout whose partitions moved while it slept.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { createProducer } from '../../../src/producer/producer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import type { PipelineProcessConfig } from '../../fixtures/transactional-process.ts'
import {
  cleanup,
  committedOffsets,
  readCommittedWithJava,
  testConnection,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'
import { startConsumerProcess } from '../../helpers/process.ts'

const fixture = new URL('../../fixtures/transactional-process.ts', import.meta.url).pathname

async function setUp(t: Parameters<typeof useTopic>[0], count: number, partitions: number) {
  const input = await useTopic(t, { partitions })
  const output = await useTopic(t, { partitions })
  const groupId = useGroup(t)
  await useProducer(t).send({
    messages: Array.from({ length: count }, (_, id) => ({
      topic: input,
      key: `k${id % 50}`,
      value: JSON.stringify({ message_type: 'reading', id, value: id })
    }))
  })
  const config: PipelineProcessConfig = {
    brokers: testConnection().brokers,
    input,
    output,
    groupId,
    sessionTimeout: 6_000
  }
  const start = (overrides: Partial<PipelineProcessConfig> = {}) =>
    startConsumerProcess(t, { PIPELINE: JSON.stringify({ ...config, ...overrides }) }, fixture)
  const consumed = async () =>
    (await committedOffsets(input, partitions, groupId)).reduce((a, b) => a + (b > 0n ? Number(b) : 0), 0)
  return { input, output, groupId, start, consumed }
}

/**
 * Every output once: ids 0…count-1 each exactly once, and nothing else, as Kafka's own Java
 * consumer reads them with read_committed up to an end marker written to each partition
 * after the run. (A reader of Kafka's: @platformatic/kafka 2.12's read_committed can let an
 * aborted transaction's record through when its abort marker comes in a later fetch; see
 * docs/consumer.md, "Transactions".)
 */
async function assertOnce(
  t: Parameters<typeof useTopic>[0],
  output: string,
  count: number,
  partitions: number
) {
  await new Promise((resolve) => setTimeout(resolve, 1_000)) // a late transaction would commit by now
  await useProducer(t).send({
    messages: Array.from({ length: partitions }, (_, partition) => ({
      topic: output,
      partition,
      value: 'end'
    }))
  })
  const ids = (await readCommittedWithJava(output, partitions)).map(
    (line) => (JSON.parse(line) as { id: number; doubled: number }).id
  )
  const seen = new Map<number, number>()
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1)
  const doubled = [...seen].filter(([, n]) => n > 1).map(([id]) => id)
  const missing = Array.from({ length: count }, (_, id) => id).filter((id) => !seen.has(id))
  assert.deepEqual(
    { doubled: doubled.slice(0, 10), missing: missing.slice(0, 10) },
    { doubled: [], missing: [] }
  )
  assert.equal(ids.length, count, 'no more outputs than inputs')
}

test('a transactional pipeline killed with SIGKILL three times mid-stream: a read_committed reader sees every output exactly once', async (t) => {
  const count = 3_000
  const run = await setUp(t, count, 6)
  const until = (share: number) =>
    waitFor(async () => (await run.consumed()) >= count * share, {
      timeout: 120_000,
      interval: 100,
      description: `${share * 100}% consumed`
    })
  let worker = await run.start({ delay: 1 })
  for (const share of [0.2, 0.45, 0.7]) {
    await until(share)
    worker.child.kill('SIGKILL')
    await worker.exited
    worker = await run.start({ delay: 1 })
  }
  await until(1)
  await assertOnce(t, run.output, count, 6)
})

test('a member frozen with SIGSTOP past its session timeout loses its partitions to a successor that fences it; woken, nothing it does is seen twice', async (t) => {
  const count = 3_000
  const run = await setUp(t, count, 4)
  const zombie = await run.start({ delay: 2 })
  await waitFor(async () => (await run.consumed()) >= count * 0.2, {
    timeout: 60_000,
    description: '20% consumed'
  })
  zombie.child.kill('SIGSTOP') // most likely inside a transaction
  const successor = await run.start({ delay: 2 })
  const frozenAt = await run.consumed()
  await waitFor(async () => (await run.consumed()) >= frozenAt + 200, {
    timeout: 60_000,
    description: 'the successor consuming'
  })
  zombie.child.kill('SIGCONT')
  await waitFor(async () => (await run.consumed()) >= count, {
    timeout: 120_000,
    description: 'everything consumed'
  })
  await assertOnce(t, run.output, count, 4).catch((error: Error) => {
    t.diagnostic(`the zombie said:\n${zombie.output()}\nthe successor said:\n${successor.output()}`)
    throw error
  })
  assert.ok(successor.output().includes('running'))
})

test('a transactional batch route sends a batch’s outputs to many partitions in one transaction: each output once, the offsets after the batch', async (t) => {
  const count = 600
  const run = await setUp(t, count, 6)
  const transport = useTransport(t)
  const producer = createProducer({ transport, topic: run.output })
  cleanup(t, () => producer.close())
  const sizes: number[] = []
  const consumer = createConsumer({
    transport,
    producer,
    groupId: run.groupId,
    topics: [run.input],
    transactional: true,
    routes: {
      reading: {
        batch: { maxSize: 100 },
        handleBatch: async (messages, context) => {
          sizes.push(messages.length)
          // Sent at once, to the partitions of their keys: the transaction takes them in turn.
          await Promise.all(
            messages.map((m) => {
              const { id, value } = m.value as { id: number; value: number }
              return context.send!('doubled', { id, doubled: value * 2 }, { key: m.key })
            })
          )
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(async () => (await run.consumed()) >= count, {
    timeout: 60_000,
    description: 'everything consumed'
  })
  assert.ok(Math.max(...sizes) > 1, 'in batches')
  await assertOnce(t, run.output, count, 6)
})
