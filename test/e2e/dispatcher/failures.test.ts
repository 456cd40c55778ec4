import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { waitFor } from '../../../src/util/wait.ts'
import { useDispatcher } from '../../helpers/dispatcher.ts'
import { committedOffsets } from '../../helpers/kafka.ts'

const update = (selector: Record<string, string>, values: Record<string, string> = { status: 'active' }) => ({
  message_type: 'update_applied_control',
  selector,
  values
})

async function settled(d: { topic: string; groupId: string }, partitions: number, sent: number) {
  await waitFor(
    async () => {
      const offsets = await committedOffsets(d.topic, partitions, d.groupId)
      return offsets.reduce((sum, o) => sum + Number(o < 0n ? 0n : o), 0) >= sent
    },
    { timeout: 30_000, description: `${sent} commands committed` }
  )
}

describe('command dispatcher: selector outcomes', () => {
  test('target multiple follows absolute `next` links and PATCHes every match in API order', async (t) => {
    const d = await useDispatcher(t, { fake: { pageSize: 2 }, partitions: 1 })
    const controls = [1, 2, 3, 4, 5].map((i) =>
      d.fake.add('applied-controls', { ref_id: `C-${i}`, folder: 'F' })
    )
    d.fake.add('applied-controls', { ref_id: 'C-6', folder: 'other' })
    await d.send(update({ folder: 'F', target: 'multiple' }, { priority: '2' }))
    await settled(d, 1, 1)
    assert.deepEqual(d.fake.callLines(), [
      'GET /api/applied-controls/?folder=F',
      'GET /api/applied-controls/?folder=F&limit=2&offset=2',
      'GET /api/applied-controls/?folder=F&limit=2&offset=4',
      ...controls.map((c) => `PATCH /api/applied-controls/${c.id}/`)
    ])
    for (const control of controls) assert.equal(control.priority, '2')
  })

  test('relative `next` links are followed too', async (t) => {
    const d = await useDispatcher(t, { fake: { pageSize: 1, relativeNext: true }, partitions: 1 })
    const controls = [1, 2].map((i) => d.fake.add('applied-controls', { ref_id: `C-${i}`, status: 'to_do' }))
    await d.send(update({ status: 'to_do', target: 'multiple' }, { status: 'active' }))
    await settled(d, 1, 1)
    assert.deepEqual(d.fake.callLines(), [
      'GET /api/applied-controls/?status=to_do',
      'GET /api/applied-controls/?status=to_do&limit=1&offset=1',
      ...controls.map((c) => `PATCH /api/applied-controls/${c.id}/`)
    ])
  })

  test('no match: dead-lettered at once as no_match, nothing changed', async (t) => {
    const d = await useDispatcher(t)
    d.fake.add('applied-controls', { ref_id: 'AC-1' })
    await d.send(update({ ref_id: 'AC-404' }))
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'no_match')
    assert.equal(dead!.attempts, 1)
    assert.match(dead!.error!, /no object matches the selector \(selector: applied-controls\?ref_id=AC-404\)/)
    assert.deepEqual(d.fake.callLines(), ['GET /api/applied-controls/?ref_id=AC-404'])
  })

  test('several matches with target single: dead-lettered as ambiguous_selector, nothing changed', async (t) => {
    const d = await useDispatcher(t)
    d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    d.fake.add('applied-controls', { ref_id: 'AC-2', status: 'to_do' })
    await d.send(update({ status: 'to_do' }))
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'ambiguous_selector')
    assert.match(dead!.error!, /expected a single object, got 2/)
    assert.deepEqual(d.fake.callLines(), ['GET /api/applied-controls/?status=to_do'])
  })

  test('a filter value the API refuses (400): dead-lettered as invalid_selector with the API answer', async (t) => {
    const d = await useDispatcher(t)
    await d.send(update({ status: 'bogus' }))
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'invalid_selector')
    assert.match(
      dead!.error!,
      /400: \{"status":\["Select a valid choice\. bogus is not one of the available choices\."\]\}/
    )
    assert.deepEqual(d.fake.callLines(), ['GET /api/applied-controls/?status=bogus'])
  })
})

describe('command dispatcher: failure classes', () => {
  test('a validation error (400 on PATCH): dead-lettered at once as api_rejected with the response body', async (t) => {
    const d = await useDispatcher(t)
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    await d.send(update({ ref_id: 'AC-1' }, { status: 'finished' }))
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'api_rejected')
    assert.equal(dead!.attempts, 1)
    assert.equal(dead!.errorClass, 'ApiError')
    assert.equal(
      dead!.error,
      `PATCH /api/applied-controls/${control.id}/ → 400: {"status":["\\"finished\\" is not a valid choice."]}`
    )
    assert.deepEqual(d.fake.callLines(), [
      'GET /api/applied-controls/?ref_id=AC-1',
      `PATCH /api/applied-controls/${control.id}/`
    ])
    assert.equal(control.status, 'to_do')
  })

  test('transient failures (503, reset, 429) are retried with backoff until the call succeeds', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    d.fake.failNext({ match: 'PATCH', status: 503 })
    d.fake.failNext({ match: 'PATCH', status: 'reset' })
    d.fake.failNext({ match: 'PATCH', status: 429 })
    d.fake.failNext({ match: 'PATCH', status: 500 })
    await d.send(update({ ref_id: 'AC-1' }))
    await settled(d, 1, 1)
    assert.equal(control.status, 'active')
    const patches = d.fake.calls.filter((c) => c.method === 'PATCH').map((c) => c.status)
    assert.deepEqual(patches, [503, -1, 429, 500, 200])
    // Three calls failed within the first attempt (retries: 2), the command's second attempt succeeded.
    assert.deepEqual(d.fake.callLines(), [
      'GET /api/applied-controls/?ref_id=AC-1',
      'GET /api/applied-controls/?ref_id=AC-1',
      `PATCH /api/applied-controls/${control.id}/`
    ])
  })

  test('transient failures past every retry: dead-lettered as retries_exhausted with the last answer', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    // 3 attempts of the command (retries 2) × 3 tries of the call (api.retries 2).
    d.fake.failNext({ match: 'PATCH', status: 500, times: 9 })
    await d.send(update({ ref_id: 'AC-1' }))
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'retries_exhausted')
    assert.equal(dead!.attempts, 3)
    assert.match(
      dead!.error!,
      new RegExp(`PATCH /api/applied-controls/${control.id}/ → 500: .*planned failure 500`)
    )
    assert.equal(d.fake.calls.filter((c) => c.method === 'PATCH').length, 9)
  })

  test('bad base64, missing fields, wrong types, unknown types and undecodable bytes are dead-lettered with the reason, no API call', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    await d.send({
      message_type: 'upload_attachment',
      values: { file_name: 'a.txt', file_content: 'not base64!!' }
    })
    await d.send({ message_type: 'upload_attachment', values: { file_content: 'aGk=' } }, { json: true })
    await d.send({ message_type: 'update_applied_control', selector: 'AC-1', values: {} }, { json: true })
    await d.send({ message_type: 'delete_everything', selector: {} }, { json: true })
    await d.sendRaw(Buffer.from([0, 0, 0, 0x7f, 0x7f, 1, 2, 3]))
    await d.sendRaw('{"message_type": "update_applied_control", ')
    await d.send({ message_type: 'upload_attachment', values: { file_name: 'b.txt' } })
    const dead = await d.deadLetters(7)
    assert.deepEqual(
      dead.map((r) => r.reason),
      [
        'bad_base64',
        'invalid_command',
        'invalid_command',
        'unknown_message_type',
        'unknown_schema_id',
        'invalid_json',
        'invalid_command'
      ]
    )
    assert.match(dead[0]!.error!, /values\.file_content is not valid base64/)
    assert.match(dead[1]!.error!, /upload_attachment v1: values\.file_name is required/)
    assert.match(dead[2]!.error!, /selector must be object/)
    assert.match(dead[6]!.error!, /values\.file_content \(base64\) or values\.file_s3_bucket is required/)
    assert.deepEqual(d.fake.callLines(), [])
  })
})

describe('command dispatcher: a retry after a half-done attempt repeats nothing', () => {
  test('the evidence is created once and linked once when answers are lost after the work was done', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1' })
    d.fake.failNext({ match: 'POST /api/evidences/', when: 'after', status: 502 })
    d.fake.failNext({ match: 'PATCH /api/applied-controls/', when: 'after', status: 'reset' })
    await d.send({
      message_type: 'upload_attachment',
      values: {
        file_name: 'scan.txt',
        file_content: Buffer.from('clean').toString('base64'),
        applied_controls: { ref_id: 'AC-1' }
      }
    })
    await settled(d, 1, 1)
    const evidences = d.fake.list('evidences')
    assert.equal(evidences.length, 1, 'one evidence')
    assert.deepEqual(control.evidences, [evidences[0]!.id])
    assert.equal(d.fake.calls.filter((c) => c.method === 'POST' && c.path === '/api/evidences/').length, 1)
    // The PATCH whose answer was lost is repeated with the same list: the same effect.
    const patches = d.fake.calls.filter((c) => c.method === 'PATCH')
    assert.deepEqual(
      patches.map((c) => c.body),
      [{ evidences: [evidences[0]!.id] }, { evidences: [evidences[0]!.id] }]
    )
    assert.equal(d.fake.uploads.length, 1)
    await sleep(200)
    assert.equal((await committedOffsets(d.topic, 1, d.groupId))[0], 1n)
  })
})
