/**
 * The behaviour every transport must give the consumer runtime. Run against the real
 * broker (test/e2e/contract) and the in-memory transport (test/unit/testing), so what
 * users test with the memory transport holds on Kafka.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { test } from 'node:test'
import { createConsumer } from '../../src/consumer/consumer.ts'
import { DeadLetterHeaders } from '../../src/dead-letter/record.ts'
import { bounded } from '../../src/retry/policy.ts'
import type { InboundRecord, OutboundRecord, Transport } from '../../src/transport/types.ts'
import { waitFor } from '../../src/util/wait.ts'
import { cleanup } from '../helpers/kafka.ts'

export interface ContractFixture {
  transport: Transport
  topic(partitions: number): Promise<string>
  group(): string
  produce(records: OutboundRecord[]): Promise<void>
  /** Reads `count` records of a topic from its beginning. */
  read(topic: string, count: number): Promise<Pick<InboundRecord, 'key' | 'value' | 'headers'>[]>
  committed(groupId: string, topic: string, partition: number): Promise<bigint | undefined>
}

export function consumerContract(name: string, setup: (t: TestContext) => Promise<ContractFixture>): void {
  const json = (value: unknown) => JSON.stringify(value)

  test(`${name}: key mode hands each key's messages over in the order they were produced`, async (t) => {
    const f = await setup(t)
    const topic = await f.topic(3)
    const records: OutboundRecord[] = []
    for (let seq = 0; seq < 50; seq++) {
      for (let k = 0; k < 6; k++)
        records.push({ topic, key: `k${k}`, value: json({ message_type: 'w', k, seq }) })
    }
    await f.produce(records)
    const seen = new Map<number, number[]>()
    const consumer = createConsumer({
      transport: f.transport,
      groupId: f.group(),
      topics: [topic],
      ordering: 'key',
      routes: {
        w: {
          handler: async (m) => {
            const { k, seq } = m.value as { k: number; seq: number }
            seen.set(k, [...(seen.get(k) ?? []), seq])
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 2))
          }
        }
      }
    })
    await consumer.start()
    cleanup(t, () => consumer.stop())
    await waitFor(() => [...seen.values()].reduce((n, s) => n + s.length, 0) >= 300, { timeout: 30_000 })
    for (const [k, seqs] of seen)
      assert.deepEqual(
        seqs,
        Array.from({ length: 50 }, (_, i) => i),
        `key k${k} in order`
      )
  })

  test(`${name}: a failing message is dead-lettered with its bytes and reason, and the offset after it committed`, async (t) => {
    const f = await setup(t)
    const topic = await f.topic(1)
    const groupId = f.group()
    const poison = json({ message_type: 'w', fail: true })
    await f.produce([
      { topic, key: 'a', value: poison },
      { topic, key: 'b', value: json({ message_type: 'w' }) }
    ])
    let done = 0
    const consumer = createConsumer({
      transport: f.transport,
      groupId,
      topics: [topic],
      commitInterval: 50,
      routes: {
        w: {
          retry: bounded({ retries: 2, initialDelay: 5, maxDelay: 10 }),
          handler: (m) => {
            if ((m.value as { fail?: boolean }).fail) throw new RangeError('no')
            done++
          }
        }
      }
    })
    await consumer.start()
    cleanup(t, () => consumer.stop())
    await waitFor(() => done === 1, { timeout: 30_000 })
    const [dead] = await f.read(`${topic}.dlq`, 1)
    assert.equal(dead?.value?.toString(), poison)
    assert.equal(dead?.key?.toString(), 'a')
    assert.equal(dead?.headers.get(DeadLetterHeaders.reason)?.toString(), 'retries_exhausted')
    assert.equal(dead?.headers.get(DeadLetterHeaders.attempts)?.toString(), '3')
    assert.equal(dead?.headers.get(DeadLetterHeaders.errorClass)?.toString(), 'RangeError')
    await waitFor(async () => (await f.committed(groupId, topic, 0)) === 2n, { timeout: 10_000 })
  })

  test(`${name}: after stop() a new consumer of the group resumes where the first one finished`, async (t) => {
    const f = await setup(t)
    const topic = await f.topic(2)
    const groupId = f.group()
    await f.produce(
      Array.from({ length: 100 }, (_, i) => ({
        topic,
        key: `k${i % 5}`,
        value: json({ message_type: 'w', i })
      }))
    )
    const handled: number[] = []
    const routes = {
      w: { handler: (m: { value: unknown }) => void handled.push((m.value as { i: number }).i) }
    }
    const first = createConsumer({ transport: f.transport, groupId, topics: [topic], routes })
    await first.start()
    await waitFor(() => handled.length >= 30, { timeout: 30_000 })
    await first.stop()
    const second = createConsumer({ transport: f.transport, groupId, topics: [topic], routes })
    await second.start()
    cleanup(t, () => second.stop())
    await waitFor(() => handled.length >= 100, { timeout: 30_000 })
    assert.deepEqual(
      [...handled].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
      'each once'
    )
  })

  test(`${name}: a member joining takes over partitions with the first member's finished work committed, so nothing is handled twice`, async (t) => {
    const f = await setup(t)
    const topic = await f.topic(4)
    const groupId = f.group()
    const total = 400
    await f.produce(
      Array.from({ length: total }, (_, i) => ({
        topic,
        key: `k${i % 40}`,
        value: json({ message_type: 'w', i })
      }))
    )
    const handled: number[] = []
    const options = {
      transport: f.transport,
      groupId,
      topics: [topic],
      ordering: 'key' as const,
      // No commit on a timer during the test: only the rebalance's own commit can spare the
      // new owner the work the first member finished.
      commitInterval: 600_000,
      heartbeatInterval: 500,
      sessionTimeout: 10_000,
      routes: {
        w: {
          handler: async (m: { value: unknown }) => {
            await new Promise((resolve) => setTimeout(resolve, 5))
            handled.push((m.value as { i: number }).i)
          }
        }
      }
    }
    const first = createConsumer(options)
    await first.start()
    cleanup(t, () => first.stop())
    await waitFor(() => handled.length >= 40, { timeout: 30_000 })
    const second = createConsumer(options)
    await second.start()
    cleanup(t, () => second.stop())
    await waitFor(() => new Set(handled).size >= total, { timeout: 60_000, description: 'every message' })
    await new Promise((resolve) => setTimeout(resolve, 500)) // a late duplicate would show by now
    const twice = handled.filter((i, at) => handled.indexOf(i) !== at)
    assert.deepEqual(twice, [], 'no message handled by both members')
  })

  test(`${name}: an undecodable value is dead-lettered with reason invalid_json`, async (t) => {
    const f = await setup(t)
    const topic = await f.topic(1)
    await f.produce([{ topic, key: 'k', value: '{nope' }])
    const consumer = createConsumer({
      transport: f.transport,
      groupId: f.group(),
      topics: [topic],
      routes: { w: { handler: () => {} } }
    })
    await consumer.start()
    cleanup(t, () => consumer.stop())
    const [dead] = await f.read(`${topic}.dlq`, 1)
    assert.equal(dead?.headers.get(DeadLetterHeaders.reason)?.toString(), 'invalid_json')
  })
}
