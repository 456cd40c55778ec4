/**
 * The dispatcher as a drop-in for the original one: commands shaped as its producers send
 * them, and the defects found when it was driven that way (selectors that name nothing,
 * corrupt base64, `values.name`, the producers' own Avro schemas, framing reasons).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { AvroCodec } from '../../../src/schema/avro-codec.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { commandCatalog, useDispatcher } from '../../helpers/dispatcher.ts'
import { committedOffsets } from '../../helpers/kafka.ts'

type Dispatcher = Awaited<ReturnType<typeof useDispatcher>>

async function settled(d: Dispatcher, sent: number, partitions = 1) {
  await waitFor(
    async () => {
      const offsets = await committedOffsets(d.topic, partitions, d.groupId)
      return offsets.reduce((sum, o) => sum + Number(o < 0n ? 0n : o), 0) >= sent
    },
    { timeout: 30_000, description: `${sent} commands committed` }
  )
}

const map = { type: 'map', values: 'string' }
const optional = (type: unknown) => ['null', type]

/**
 * A command schema as the original producers write them: the record named
 * `<type>_command` without a namespace, or `<type>` under `com.intuitem.commands`; no
 * `version`, no defaults; record-typed values in a nested record named `ValuesRecord`.
 */
function producerSchema(type: string, values: unknown, namespaced: boolean) {
  return {
    type: 'record',
    ...(namespaced ? { name: type, namespace: 'com.intuitem.commands' } : { name: `${type}_command` }),
    fields: [
      { name: 'message_type', type: 'string' },
      { name: 'selector', type: map },
      { name: 'values', type: values }
    ]
  }
}

const valuesRecord = (fields: Array<{ name: string; type: unknown }>) => ({
  type: 'record',
  name: 'ValuesRecord',
  fields
})

/** Every command type's values, as the producers' schemas declare them. */
const producerValues: Record<string, unknown> = {
  update_applied_control: map,
  update_requirement_assessment: map,
  update_applied_control_status: valuesRecord([{ name: 'status', type: 'string' }]),
  update_requirement_assessment_status: valuesRecord([{ name: 'result', type: 'string' }]),
  upload_attachment: valuesRecord([
    { name: 'file_name', type: 'string' },
    { name: 'file_content', type: 'string' },
    { name: 'applied_controls', type: map }
  ]),
  attach_evidence_to_applied_control: valuesRecord([{ name: 'evidence', type: map }])
}

/** Encodes `command` with the producer's own schema (registered under topic-record subjects) and sends it. */
async function sendWithProducerSchema(d: Dispatcher, command: Record<string, unknown>, schema: object) {
  const type = command.message_type as string
  const codec = new AvroCodec({
    registry: d.registry,
    schemas: { [type]: schema },
    subjectNameStrategy: 'topic-record'
  })
  await d.sendRaw(await codec.encode(command, { topic: d.topic, type }))
}

describe('command dispatcher: a selector that names no filter never acts on every object', () => {
  test('update and link commands without filters go to the DLQ as invalid_command before any HTTP call', async (t) => {
    const d = await useDispatcher(t)
    const controls = [1, 2].map((i) => d.fake.add('applied-controls', { ref_id: `AC-${i}`, status: 'to_do' }))
    d.fake.add('evidences', { name: 'Policy' })
    // The Avro default `{}` fills in a missing selector; JSON defaults do the same.
    await d.send({ message_type: 'update_applied_control', values: { status: 'active' } })
    await d.send({ message_type: 'update_applied_control', values: { status: 'active' } }, { json: true })
    await d.send({
      message_type: 'update_applied_control',
      selector: { target: 'multiple' },
      values: { status: 'active' }
    })
    await d.send({ message_type: 'update_applied_control_status', values: { status: 'active' } })
    await d.send({
      message_type: 'update_requirement_assessment',
      selector: { ref_id: '' },
      values: { result: 'compliant' }
    })
    await d.send({
      message_type: 'attach_evidence_to_applied_control',
      values: { evidence: { name: 'Policy' } }
    })
    await d.send({
      message_type: 'attach_evidence_to_applied_control',
      selector: { ref_id: 'AC-1' },
      values: { evidence: {} }
    })
    await d.send({
      message_type: 'upload_attachment',
      values: {
        file_name: 'a.txt',
        file_content: 'aGk=',
        applied_controls: { target: 'multiple' }
      }
    })
    const dead = await d.deadLetters(8)
    assert.deepEqual(
      dead.map((r) => r.reason),
      Array(8).fill('invalid_command')
    )
    for (const record of [dead[0], dead[1], dead[2], dead[3], dead[5]])
      assert.match(record!.error!, /^the selector names no filter/)
    assert.match(dead[4]!.error!, /selector\.ref_id is empty/)
    assert.match(dead[6]!.error!, /^the selector values\.evidence names no filter/)
    assert.match(dead[7]!.error!, /^the selector values\.applied_controls names no filter/)
    assert.deepEqual(d.fake.callLines(), [], 'no HTTP call at all')
    for (const control of controls) assert.equal(control.status, 'to_do')
    assert.equal(d.fake.list('evidences').length, 1, 'no evidence created')
  })

  test('an operation configured with allowUnfiltered acts on every object when the command says target multiple', async (t) => {
    const d = await useDispatcher(t, {
      config: {
        dispatcher: {
          operations: {
            update_applied_control: { kind: 'update', resource: 'applied-controls', allowUnfiltered: true }
          }
        }
      }
    })
    const controls = [1, 2, 3].map((i) =>
      d.fake.add('applied-controls', { ref_id: `AC-${i}`, status: 'to_do' })
    )
    await d.send({
      message_type: 'update_applied_control',
      selector: { target: 'multiple' },
      values: { status: 'active' }
    })
    await settled(d, 1, 3)
    for (const control of controls) assert.equal(control.status, 'active')
  })
})

describe('command dispatcher: an absent field never turns into everything or nothing', () => {
  test('a link to a list the API does not show is refused as unexpected_answer, not written as a new list', async (t) => {
    const d = await useDispatcher(t, {
      config: {
        dispatcher: {
          operations: {
            tag_evidence: {
              kind: 'link',
              resource: 'evidences',
              field: 'tags',
              from: { resource: 'applied-controls', selectorField: 'control' }
            }
          }
        }
      }
    })
    const evidence = d.fake.add('evidences', { name: 'Policy' })
    d.fake.add('applied-controls', { ref_id: 'AC-1' })
    await d.send(
      { message_type: 'tag_evidence', selector: { name: 'Policy' }, values: { control: { ref_id: 'AC-1' } } },
      { json: true }
    )
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'unexpected_answer')
    assert.match(dead!.error!, /has no list field "tags" in the API's answer/)
    assert.ok(!d.fake.callLines().some((line) => line.startsWith('PATCH')), 'nothing written')
    assert.equal(evidence.tags, undefined)
  })
})

describe('command dispatcher: upload_attachment as the producers send it', () => {
  test('base64 that lost its padding is dead-lettered as bad_base64 and nothing is uploaded', async (t) => {
    const d = await useDispatcher(t)
    await d.send({ message_type: 'upload_attachment', values: { file_name: 'a.txt', file_content: 'abc' } })
    await d.send({ message_type: 'upload_attachment', values: { file_name: 'b.txt', file_content: 'abd=' } })
    const dead = await d.deadLetters(2)
    assert.deepEqual(
      dead.map((r) => r.reason),
      ['bad_base64', 'bad_base64']
    )
    assert.match(dead[0]!.error!, /values\.file_content is not valid base64: the padding is missing/)
    assert.match(dead[1]!.error!, /bits beyond the last byte/)
    assert.deepEqual(d.fake.callLines(), [])
    assert.equal(d.fake.uploads.length, 0)
  })

  test('values.name names the evidence to find or create; the file keeps its own name', async (t) => {
    const d = await useDispatcher(t)
    const content = Buffer.from('pentest findings')
    const command = {
      message_type: 'upload_attachment',
      values: { name: 'Pentest 2026', file_name: 'report.pdf', file_content: content.toString('base64') }
    }
    await d.send(command)
    await settled(d, 1, 3)
    const [evidence] = d.fake.list('evidences')
    assert.equal(evidence?.name, 'Pentest 2026')
    assert.deepEqual(d.fake.callLines(), [
      'GET /api/evidences/?name=Pentest+2026',
      'POST /api/evidences/',
      `POST /api/evidences/${evidence!.id}/upload/`
    ])
    assert.deepEqual(d.fake.calls[1]!.body, { name: 'Pentest 2026' })
    assert.equal(d.fake.uploads[0]!.fileName, 'report.pdf')
    // The second upload under that name finds the evidence instead of creating another.
    await d.send(command, { json: true })
    await settled(d, 2, 3)
    assert.equal(d.fake.list('evidences').length, 1)
    assert.equal(d.fake.uploads.length, 2)
  })

  test('a values field the command does not know is refused as invalid_command, not dropped', async (t) => {
    const d = await useDispatcher(t)
    await d.send(
      {
        message_type: 'upload_attachment',
        values: { file_name: 'a.txt', file_content: 'aGk=', comment: 'quarterly scan' }
      },
      { json: true }
    )
    await d.send(
      {
        message_type: 'update_applied_control_status',
        selector: { ref_id: 'AC-1' },
        values: { status: 'active', eta: 'soon' }
      },
      { json: true }
    )
    const dead = await d.deadLetters(2)
    assert.deepEqual(
      dead.map((r) => r.reason),
      ['invalid_command', 'invalid_command']
    )
    assert.match(dead[0]!.error!, /^values\.comment is not a field of this command \(known: name, file_name,/)
    assert.match(dead[1]!.error!, /^values\.eta is not a field of this command \(known: status\)/)
    assert.deepEqual(d.fake.callLines(), [])
  })

  test('a link selector that matches nothing leaves no evidence behind (every selector is resolved first)', async (t) => {
    const d = await useDispatcher(t)
    await d.send({
      message_type: 'upload_attachment',
      values: { file_name: 'a.txt', file_content: 'aGk=', applied_controls: { ref_id: 'AC-404' } }
    })
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'no_match')
    assert.deepEqual(d.fake.callLines(), ['GET /api/applied-controls/?ref_id=AC-404'])
    assert.equal(d.fake.list('evidences').length, 0)
  })

  test('an empty applied_controls map means no link, as the original dispatcher read it', async (t) => {
    const d = await useDispatcher(t)
    d.fake.add('applied-controls', { ref_id: 'AC-1' })
    await d.send({
      message_type: 'upload_attachment',
      values: { file_name: 'a.txt', file_content: 'aGk=', applied_controls: {} }
    })
    await settled(d, 1, 3)
    const [evidence] = d.fake.list('evidences')
    assert.deepEqual(d.fake.callLines(), [
      'GET /api/evidences/?name=a.txt',
      'POST /api/evidences/',
      `POST /api/evidences/${evidence!.id}/upload/`
    ])
  })
})

describe("command dispatcher: commands written with the producers' own Avro schemas", () => {
  for (const namespaced of [false, true])
    test(`every command type encoded with the producer schema ${namespaced ? 'under com.intuitem.commands' : '<type>_command without a namespace'} is carried out`, async (t) => {
      const d = await useDispatcher(t, { partitions: 1 })
      const control = d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do', priority: '3' })
      const assessment = d.fake.add('requirement-assessments', {
        requirement: { ref_id: 'A.5.1' },
        result: 'not_assessed'
      })
      const policy = d.fake.add('evidences', { name: 'Policy' })
      const commands: Record<string, Record<string, unknown>> = {
        update_applied_control: { selector: { ref_id: 'AC-1' }, values: { priority: '1' } },
        update_requirement_assessment: {
          selector: { requirement__ref_id: 'A.5.1' },
          values: { observation: 'seen' }
        },
        update_applied_control_status: { selector: { ref_id: 'AC-1' }, values: { status: 'active' } },
        update_requirement_assessment_status: {
          selector: { requirement__ref_id: 'A.5.1' },
          values: { result: 'compliant' }
        },
        upload_attachment: {
          selector: {},
          values: {
            file_name: 'scan.txt',
            file_content: Buffer.from('clean').toString('base64'),
            applied_controls: { ref_id: 'AC-1' }
          }
        },
        attach_evidence_to_applied_control: {
          selector: { ref_id: 'AC-1' },
          values: { evidence: { name: 'Policy' } }
        }
      }
      for (const [type, command] of Object.entries(commands))
        await sendWithProducerSchema(
          d,
          { message_type: type, ...command },
          producerSchema(type, producerValues[type], namespaced)
        )
      await settled(d, 6)
      assert.equal(control.priority, '1')
      assert.equal(control.status, 'active')
      assert.equal(assessment.observation, 'seen')
      assert.equal(assessment.result, 'compliant')
      const scan = d.fake.list('evidences').find((e) => e.name === 'scan.txt')
      assert.ok(scan, 'the evidence was created')
      assert.deepEqual(d.fake.uploads[0]!.bytes, Buffer.from('clean'))
      assert.deepEqual(control.evidences, [scan.id, policy.id])
    })

  test('fields the reader schema does not know are skipped by Avro resolution and reported once per schema', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    const reported: Array<{ schemaId: number; type: string; fields: string[] }> = []
    const codec = new AvroCodec({
      registry: d.registry,
      schemas: {
        update_applied_control_status: commandCatalog.get('update_applied_control_status')!.at(-1)!.source
      },
      onIgnoredFields: (event) => reported.push(event)
    })
    const schema = producerSchema(
      'update_applied_control_status',
      valuesRecord([
        { name: 'status', type: 'string' },
        { name: 'comment', type: optional('string') }
      ]),
      true
    )
    const writer = new AvroCodec({
      registry: d.registry,
      schemas: { update_applied_control_status: schema },
      subjectNameStrategy: 'topic-record'
    })
    const command = {
      message_type: 'update_applied_control_status',
      selector: { ref_id: 'AC-1' },
      values: { status: 'active', comment: 'done' }
    }
    const context = { topic: d.topic, type: command.message_type }
    for (let i = 0; i < 2; i++) {
      const value = await codec.decode(await writer.encode(command, context))
      assert.deepEqual(JSON.parse(JSON.stringify(value)), {
        message_type: 'update_applied_control_status',
        version: 1,
        selector: { ref_id: 'AC-1' },
        values: { status: 'active' }
      })
    }
    assert.equal(reported.length, 1)
    assert.deepEqual(reported[0]!.fields, ['values.comment'])
  })
})

describe('command dispatcher: an unknown message type', () => {
  test('is dead-lettered as unknown_message_type, naming the types the dispatcher knows', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    await d.send({ message_type: 'delete_everything', selector: { ref_id: 'AC-1' } }, { json: true })
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 'unknown_message_type')
    assert.equal(
      dead!.error,
      'the message cannot be routed: no route handles type "delete_everything" (known: update_applied_control, update_requirement_assessment, update_applied_control_status, update_requirement_assessment_status, upload_attachment, attach_evidence_to_applied_control)'
    )
    assert.deepEqual(d.fake.callLines(), [])
  })
})

describe('command dispatcher: framing errors are reported as such when the topic carries Avro', () => {
  test('a short value or a wrong magic byte is bad_magic_byte; text that starts like JSON is invalid_json', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    await d.sendRaw(Buffer.from([0, 0, 1]))
    await d.sendRaw(Buffer.from([5, 0, 0, 0, 1, 2, 3]))
    await d.sendRaw('hello')
    await d.sendRaw('{"message_type": ')
    const dead = await d.deadLetters(4)
    assert.deepEqual(
      dead.map((r) => r.reason),
      ['bad_magic_byte', 'bad_magic_byte', 'bad_magic_byte', 'invalid_json']
    )
    assert.match(dead[0]!.error!, /too short for the schema registry wire format: 3 bytes/)
    assert.match(
      dead[1]!.error!,
      /neither Avro in the wire format \(magic byte 0\) nor a JSON object: it starts with bytes 05 00 00 00 01 02 03/
    )
    assert.match(dead[2]!.error!, /nor a JSON object: it starts "hello"/)
    assert.equal(
      dead[3]!.error,
      'the value is not valid JSON: Unexpected end of JSON input; it starts "{\\"message_type\\": "'
    )
  })
})
