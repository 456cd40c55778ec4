import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test } from 'node:test'
import {
  Channels,
  type DeadLetteredEvent,
  type MessageHandledEvent
} from '../../../src/instrumentation/channels.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { useDispatcher } from '../../helpers/dispatcher.ts'
import { cleanup } from '../../helpers/kafka.ts'

const total = 2_000
const controls = 200
const assessments = 100
const statuses = ['to_do', 'in_progress', 'on_hold', 'active']
const results = ['compliant', 'partially_compliant', 'non_compliant']

type Planned = { key: string; reason: string }

/** Command `i` of the run: its key (the object it acts on, so order holds per object) and payload. */
function commandFor(i: number): {
  key: string
  command: Record<string, unknown>
  json?: boolean
  planted?: Planned
} {
  const ref = `AC-${i % controls}`
  if (i % 20 === 19) {
    const key = `planted-${i}`
    switch (((i / 20) % 4) | 0) {
      case 0:
        return {
          key,
          planted: { key, reason: 'no_match' },
          command: {
            message_type: 'update_applied_control',
            selector: { ref_id: `missing-${i}` },
            values: { priority: '1' }
          }
        }
      case 1:
        return {
          key,
          planted: { key, reason: 'api_rejected' },
          command: {
            message_type: 'update_applied_control_status',
            selector: { ref_id: ref },
            values: { status: `bogus-${i}` }
          }
        }
      case 2:
        return {
          key,
          planted: { key, reason: 'bad_base64' },
          command: {
            message_type: 'upload_attachment',
            values: { file_name: `bad-${i}.txt`, file_content: '%%%' }
          }
        }
      default:
        return {
          key,
          planted: { key, reason: 'ambiguous_selector' },
          command: {
            message_type: 'update_applied_control',
            selector: { folder: 'F' },
            values: { priority: '1' }
          }
        }
    }
  }
  switch (i % 4) {
    case 0:
      return {
        key: ref,
        command: {
          message_type: 'update_applied_control',
          selector: { ref_id: ref },
          values: { description: `cmd-${i}` }
        }
      }
    case 1: {
      const requirement = `R-${i % assessments}`
      return {
        key: requirement,
        json: true,
        command: {
          message_type: 'update_requirement_assessment',
          selector: { requirement__ref_id: requirement },
          values: { result: results[i % 3]!, observation: `cmd-${i}` }
        }
      }
    }
    case 2:
      return {
        key: ref,
        command: {
          message_type: 'upload_attachment',
          values: {
            file_name: `ev-${i}.txt`,
            file_content: Buffer.from(`evidence of command ${i}`).toString('base64'),
            applied_controls: { ref_id: ref }
          }
        }
      }
    default:
      return {
        key: ref,
        command: {
          message_type: 'update_applied_control_status',
          selector: { ref_id: ref },
          values: { status: statuses[Math.floor(i / controls) % statuses.length]! }
        }
      }
  }
}

/** Consecutive repeats collapsed: a PATCH repeated after a lost answer is the same effect. */
function collapse(values: unknown[]): unknown[] {
  return values.filter(
    (value, index) => index === 0 || JSON.stringify(value) !== JSON.stringify(values[index - 1])
  )
}

test('chaos: 2,000 commands, 20% transient API failures and a 10 s outage: each carried out once in effect, in order, only the planted ones dead-lettered', async (t) => {
  const d = await useDispatcher(t, {
    partitions: 3,
    fake: { chaos: { failRate: 0.2, seed: 20261123 } },
    config: {
      dispatcher: { retry: { retries: 3, initialDelay: 200, multiplier: 2, maxDelay: 2_000 } },
      api: { retries: 3, probeBackoff: { initialDelay: 200, multiplier: 2, maxDelay: 1_000 } }
    }
  })
  for (let i = 0; i < controls; i += 1)
    d.fake.add('applied-controls', { ref_id: `AC-${i}`, folder: 'F', status: 'to_do' })
  for (let i = 0; i < assessments; i += 1)
    d.fake.add('requirement-assessments', { requirement: { ref_id: `R-${i}` }, result: 'not_assessed' })

  const deadLettered: Array<{ key: string; reason: string }> = []
  let handled = 0
  const onDeadLetter = (event: unknown) => {
    const e = event as DeadLetteredEvent
    if (e.groupId === d.groupId) deadLettered.push({ key: e.record.key?.toString() ?? '', reason: e.reason })
  }
  const onHandled = (event: unknown) => {
    if ((event as MessageHandledEvent).groupId === d.groupId) handled += 1
  }
  subscribe(Channels.deadLettered, onDeadLetter)
  subscribe(Channels.messageHandled, onHandled)
  cleanup(t, () => {
    unsubscribe(Channels.deadLettered, onDeadLetter)
    unsubscribe(Channels.messageHandled, onHandled)
  })

  const commands = Array.from({ length: total }, (_, i) => commandFor(i))
  let outage: Promise<void> | undefined
  for (const [i, { key, command, json }] of commands.entries()) {
    await d.send(command, { key, json: json === true })
    if (i === total / 2)
      outage = waitFor(() => handled >= total / 4, { timeout: 120_000 }).then(() => d.fake.outage(10_000))
  }
  await outage
  await waitFor(() => handled >= total, {
    timeout: 240_000,
    interval: 200,
    description: `${total} commands handled`
  })

  // Nothing dead-lettered but the planted permanent failures, each with its reason.
  const planted = commands.flatMap((c) => (c.planted ? [c.planted] : []))
  assert.deepEqual(
    deadLettered.sort((a, b) => a.key.localeCompare(b.key)),
    planted.sort((a, b) => a.key.localeCompare(b.key))
  )
  assert.ok(d.fake.calls.filter((c) => c.chaos).length > total / 2, 'the fake failed many calls')
  assert.ok(d.fake.calls.some((c) => c.status === 503 || c.status === -1))

  // Each control: its PATCHes, collapsed, are exactly its commands' values, in order.
  const expected = new Map<string, unknown[]>()
  for (const { command, planted: isPlanted } of commands) {
    if (isPlanted) continue
    const type = command.message_type as string
    if (type === 'update_applied_control' || type === 'update_applied_control_status') {
      const ref = (command.selector as { ref_id: string }).ref_id
      expected.set(ref, [...(expected.get(ref) ?? []), command.values])
    }
  }
  for (const control of d.fake.list('applied-controls')) {
    const history = ((control as { history?: Array<Record<string, unknown>> }).history ?? []).filter(
      (patch) => !('evidences' in patch)
    )
    assert.deepEqual(
      collapse(history),
      expected.get(control.ref_id as string) ?? [],
      `${control.ref_id} history`
    )
  }

  // Each upload: exactly one evidence with its bytes, linked once to its control.
  const uploads = commands.filter((c) => !c.planted && c.command.message_type === 'upload_attachment')
  assert.equal(d.fake.list('evidences').length, uploads.length, 'no duplicate evidence')
  const byId = new Map(d.fake.list('applied-controls').map((c) => [c.id, c]))
  for (const { command } of uploads) {
    const values = command.values as {
      file_name: string
      file_content: string
      applied_controls: { ref_id: string }
    }
    const [evidence, ...more] = d.fake.find('evidences', { name: values.file_name })
    assert.ok(evidence && more.length === 0, `one evidence named ${values.file_name}`)
    assert.equal(
      d.fake.uploads
        .filter((u) => u.evidence === evidence.id)
        .at(-1)
        ?.bytes.toString('base64'),
      values.file_content
    )
    const control = [...byId.values()].find((c) => c.ref_id === values.applied_controls.ref_id)!
    assert.equal((control.evidences as string[]).filter((id) => id === evidence.id).length, 1)
  }
  for (const control of byId.values()) {
    const links = control.evidences as string[]
    assert.equal(new Set(links).size, links.length, `${control.ref_id} links each evidence once`)
  }

  // Each requirement assessment ends with its last command's result.
  for (const assessment of d.fake.list('requirement-assessments')) {
    const ref = (assessment.requirement as { ref_id: string }).ref_id
    const last = commands.filter((c) => !c.planted && c.key === ref).at(-1)?.command.values as
      | {
          result: string
          observation: string
        }
      | undefined
    assert.equal(assessment.result, last?.result ?? 'not_assessed')
    assert.equal(assessment.observation, last?.observation)
  }
})
