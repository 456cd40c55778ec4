import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import type { Command } from '../../../src/cli/command.ts'
import { main } from '../../../src/cli/main.ts'

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err }
}

function failing(name: string, fail: () => Promise<unknown>): Command {
  return {
    name,
    summary: 'fails',
    async run() {
      await fail()
      return 0
    }
  }
}

test("a Kafka client error escaping a command is one line with its root cause, not the client's stack trace", async () => {
  const command = failing('probe', async () => {
    const admin = new Admin({ clientId: 'probe', bootstrapBrokers: ['127.0.0.1:1'], retries: 0 })
    try {
      await admin.listTopics()
    } finally {
      await admin.close()
    }
  })
  const { io, err } = capture()
  assert.equal(await main(['probe'], io, [command]), 1)
  assert.deepEqual(err, ['conveyor probe: Kafka: Listing topics failed: connect ECONNREFUSED 127.0.0.1:1'])
})

test("the client's `Unknown topic` is said as the topic not existing", async () => {
  const { io, err } = capture()
  const error = Object.assign(new Error('Unknown topic orders.'), { code: 'PLT_KFK_USER' })
  assert.equal(await main(['probe'], io, [failing('probe', () => Promise.reject(error))]), 1)
  assert.deepEqual(err, ['conveyor probe: topic orders does not exist'])
})

test('any other error is one line too: the message, then its causes', async () => {
  const { io, err } = capture()
  const error = new Error('could not write the report\nat all', {
    cause: new Error('EACCES: permission denied')
  })
  assert.equal(await main(['probe'], io, [failing('probe', () => Promise.reject(error))]), 1)
  assert.deepEqual(err, ['conveyor probe: could not write the report at all: EACCES: permission denied'])
})
