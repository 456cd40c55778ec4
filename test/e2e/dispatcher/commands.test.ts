import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { waitFor } from '../../../src/util/wait.ts'
import { useDispatcher } from '../../helpers/dispatcher.ts'

/** The calls the fake recorded (chaos-failed ones excluded), once `count` have arrived. */
async function callsAfter(fake: { callLines(): string[] }, count: number) {
  return waitFor(() => (fake.callLines().length >= count ? fake.callLines() : undefined), {
    timeout: 30_000,
    description: `${count} API calls`
  })
}

describe('command dispatcher: each message type becomes the exact REST calls', () => {
  test('update_applied_control (Avro): finds the control by selector, then PATCHes values to it', async (t) => {
    const d = await useDispatcher(t)
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1', name: 'MFA', status: 'to_do' })
    d.fake.add('applied-controls', { ref_id: 'AC-2', name: 'Backups', status: 'to_do' })
    await d.send(
      {
        message_type: 'update_applied_control',
        version: 1,
        selector: { ref_id: 'AC-1' },
        values: { status: 'active', priority: '1' }
      },
      { key: 'AC-1' }
    )
    assert.deepEqual(await callsAfter(d.fake, 2), [
      'GET /api/applied-controls/?ref_id=AC-1',
      `PATCH /api/applied-controls/${control.id}/`
    ])
    assert.deepEqual(d.fake.calls[1]!.body, { status: 'active', priority: '1' })
    assert.equal(control.status, 'active')
  })

  test('update_requirement_assessment (JSON): nested filters go as query parameters', async (t) => {
    const d = await useDispatcher(t)
    const target = d.fake.add('requirement-assessments', {
      compliance_assessment: { ref_id: 'ISO_001' },
      requirement: { ref_id: 'A.5.1' },
      result: 'not_assessed'
    })
    d.fake.add('requirement-assessments', {
      compliance_assessment: { ref_id: 'ISO_001' },
      requirement: { ref_id: 'A.5.2' },
      result: 'not_assessed'
    })
    await d.send(
      {
        message_type: 'update_requirement_assessment',
        selector: { compliance_assessment__ref_id: 'ISO_001', requirement__ref_id: 'A.5.1' },
        values: { result: 'compliant' }
      },
      { json: true }
    )
    assert.deepEqual(await callsAfter(d.fake, 2), [
      'GET /api/requirement-assessments/?compliance_assessment__ref_id=ISO_001&requirement__ref_id=A.5.1',
      `PATCH /api/requirement-assessments/${target.id}/`
    ])
    assert.deepEqual(d.fake.calls[1]!.body, { result: 'compliant' })
  })

  test('update_applied_control_status and update_requirement_assessment_status PATCH only their field', async (t) => {
    const d = await useDispatcher(t)
    const control = d.fake.add('applied-controls', { ref_id: 'AC-9', status: 'to_do' })
    const assessment = d.fake.add('requirement-assessments', {
      requirement: { ref_id: 'R-1' },
      result: 'not_assessed'
    })
    await d.send(
      {
        message_type: 'update_applied_control_status',
        selector: { ref_id: 'AC-9' },
        values: { status: 'on_hold' }
      },
      { key: 'a' }
    )
    await d.send(
      {
        message_type: 'update_requirement_assessment_status',
        selector: { requirement__ref_id: 'R-1' },
        values: { result: 'non_compliant' }
      },
      { key: 'a' }
    )
    assert.deepEqual(await callsAfter(d.fake, 4), [
      'GET /api/applied-controls/?ref_id=AC-9',
      `PATCH /api/applied-controls/${control.id}/`,
      'GET /api/requirement-assessments/?requirement__ref_id=R-1',
      `PATCH /api/requirement-assessments/${assessment.id}/`
    ])
    assert.deepEqual(d.fake.calls[1]!.body, { status: 'on_hold' })
    assert.deepEqual(d.fake.calls[3]!.body, { result: 'non_compliant' })
  })

  test('upload_attachment creates the evidence by name, uploads the bytes, links it to the selected control', async (t) => {
    const d = await useDispatcher(t)
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1' })
    const content = Buffer.from('%PDF-1.7 audit report')
    await d.send({
      message_type: 'upload_attachment',
      selector: {},
      values: {
        file_name: 'report.pdf',
        file_content: content.toString('base64'),
        file_s3_bucket: null,
        applied_controls: { ref_id: 'AC-1' }
      }
    })
    const calls = await callsAfter(d.fake, 6)
    const [evidence] = d.fake.list('evidences')
    assert.ok(evidence)
    assert.deepEqual(calls, [
      'GET /api/applied-controls/?ref_id=AC-1',
      'GET /api/evidences/?name=report.pdf',
      'POST /api/evidences/',
      `POST /api/evidences/${evidence.id}/upload/`,
      `GET /api/applied-controls/${control.id}/`,
      `PATCH /api/applied-controls/${control.id}/`
    ])
    assert.deepEqual(d.fake.calls[2]!.body, { name: 'report.pdf' })
    assert.deepEqual(d.fake.calls[3]!.body, { bytes: content.length, fileName: 'report.pdf' })
    assert.deepEqual(d.fake.uploads[0]!.bytes, content)
    assert.deepEqual(d.fake.calls[5]!.body, { evidences: [evidence.id] })
  })

  test('upload_attachment to an existing evidence keeps its other links and never links twice', async (t) => {
    const d = await useDispatcher(t)
    const evidence = d.fake.add('evidences', { name: 'Policy', ref_id: 'EV-1' })
    const other = d.fake.add('evidences', { name: 'Other' })
    const linked = d.fake.add('applied-controls', {
      ref_id: 'AC-1',
      folder: 'F1',
      evidences: [other.id, evidence.id]
    })
    const unlinked = d.fake.add('applied-controls', { ref_id: 'AC-2', folder: 'F1', evidences: [other.id] })
    const empty = d.fake.add('applied-controls', { ref_id: 'AC-3', folder: 'F1', evidences: [] })
    d.fake.add('applied-controls', { ref_id: 'AC-4', folder: 'F2', evidences: [] })
    await d.send({
      message_type: 'upload_attachment',
      selector: { ref_id: 'EV-1' },
      values: {
        file_name: 'policy.txt',
        file_content: Buffer.from('v2').toString('base64'),
        applied_controls: { folder: 'F1', target: 'multiple' }
      }
    })
    const calls = await callsAfter(d.fake, 8)
    assert.deepEqual(calls.slice(0, 3), [
      'GET /api/applied-controls/?folder=F1',
      'GET /api/evidences/?ref_id=EV-1',
      `POST /api/evidences/${evidence.id}/upload/`
    ])
    assert.deepEqual(calls.slice(3), [
      `GET /api/applied-controls/${linked.id}/`,
      `GET /api/applied-controls/${unlinked.id}/`,
      `PATCH /api/applied-controls/${unlinked.id}/`,
      `GET /api/applied-controls/${empty.id}/`,
      `PATCH /api/applied-controls/${empty.id}/`
    ])
    assert.deepEqual(empty.evidences, [evidence.id])
    assert.deepEqual(linked.evidences, [other.id, evidence.id])
    assert.deepEqual(unlinked.evidences, [other.id, evidence.id])
    assert.equal(d.fake.list('evidences').length, 2, 'no evidence created')
  })

  test('attach_evidence_to_applied_control links the one evidence its values select', async (t) => {
    const d = await useDispatcher(t)
    const evidence = d.fake.add('evidences', { name: 'Pentest 2026' })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-7' })
    await d.send({
      message_type: 'attach_evidence_to_applied_control',
      selector: { ref_id: 'AC-7' },
      values: { evidence: { name: 'Pentest 2026' } }
    })
    assert.deepEqual(await callsAfter(d.fake, 4), [
      'GET /api/evidences/?name=Pentest+2026',
      'GET /api/applied-controls/?ref_id=AC-7',
      `GET /api/applied-controls/${control.id}/`,
      `PATCH /api/applied-controls/${control.id}/`
    ])
    assert.deepEqual(control.evidences, [evidence.id])
  })
})
