import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, type TestContext, test } from 'node:test'
import aws4 from 'aws4'
import { waitFor } from '../../../src/util/wait.ts'
import { useDispatcher } from '../../helpers/dispatcher.ts'
import { cleanup } from '../../helpers/kafka.ts'

/**
 * A minimal S3-compatible server for GETs that checks each request's Signature Version 4
 * with an independent signer (the `aws4` package): a signature it does not reproduce is a
 * 403 SignatureDoesNotMatch, a missing object a 404 NoSuchKey, as S3 answers.
 */
async function useObjectStore(
  t: TestContext,
  credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret-key' }
) {
  const objects = new Map<string, Buffer>()
  const requests: string[] = []
  const server = createServer((request, response) => {
    const headers = {
      'x-amz-date': String(request.headers['x-amz-date']),
      'x-amz-content-sha256': String(request.headers['x-amz-content-sha256'])
    }
    const expected = aws4.sign(
      {
        host: request.headers.host,
        path: request.url,
        method: request.method,
        service: 's3',
        region: 'us-east-1',
        headers
      },
      credentials
    ).headers?.Authorization
    requests.push(`${request.method} ${request.url}`)
    const error = (status: number, code: string) => {
      response.writeHead(status, { 'content-type': 'application/xml' })
      response.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code></Error>`)
    }
    if (request.headers.authorization !== expected) return error(403, 'SignatureDoesNotMatch')
    const object = objects.get(decodeURIComponent(request.url ?? ''))
    if (!object) return error(404, 'NoSuchKey')
    response.writeHead(200, { 'content-type': 'application/octet-stream' })
    response.end(object)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanup(t, () => new Promise((resolve) => server.close(resolve)))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentials,
    requests,
    put(bucket: string, key: string, body: Buffer) {
      objects.set(`/${bucket}/${key}`, body)
    }
  }
}

describe('command dispatcher: upload_attachment from an S3-compatible object store', () => {
  test('the file is read from the bucket (key = file name, or file_s3_key) signed with SigV4 (checked by an independent signer) and uploaded', async (t) => {
    const store = await useObjectStore(t)
    const report = Buffer.from('%PDF-1.7 quarterly report')
    const scan = Buffer.from('scan results')
    store.put('evidence', 'q4.pdf', report)
    store.put('evidence', 'scans/2026/11/scan one (final).txt', scan)
    const d = await useDispatcher(t, {
      partitions: 1,
      config: { s3: { url: store.url, accessKey: 'AKIDTEST', secretKey: 'secret-key' } }
    })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1' })
    await d.send({
      message_type: 'upload_attachment',
      values: { file_name: 'q4.pdf', file_s3_bucket: 'evidence', applied_controls: { ref_id: 'AC-1' } }
    })
    await d.send({
      message_type: 'upload_attachment',
      values: {
        file_name: 'scan.txt',
        file_s3_bucket: 'evidence',
        file_s3_key: 'scans/2026/11/scan one (final).txt'
      }
    })
    await waitFor(() => d.fake.uploads.length === 2, { timeout: 30_000, description: 'two uploads' })
    assert.deepEqual(
      d.fake.uploads.map((u) => [u.fileName, u.bytes.toString()]),
      [
        ['q4.pdf', report.toString()],
        ['scan.txt', scan.toString()]
      ]
    )
    assert.equal((control.evidences as string[]).length, 1)
    assert.deepEqual(store.requests, [
      'GET /evidence/q4.pdf',
      'GET /evidence/scans/2026/11/scan%20one%20%28final%29.txt'
    ])
  })

  test('refused object store credentials are retried, then dead-lettered with the store answer', async (t) => {
    const store = await useObjectStore(t)
    store.put('evidence', 'present.txt', Buffer.from('x'))
    const d = await useDispatcher(t, {
      partitions: 1,
      config: { s3: { url: store.url, accessKey: 'AKIDTEST', secretKey: 'wrong-secret' } }
    })
    await d.send({
      message_type: 'upload_attachment',
      values: { file_name: 'present.txt', file_s3_bucket: 'evidence' }
    })
    const [refused] = await d.deadLetters(1)
    assert.equal(refused!.reason, 'retries_exhausted')
    assert.match(refused!.error!, /GET s3:\/\/evidence\/present\.txt → 403: .*SignatureDoesNotMatch/)
    assert.equal(store.requests.length, 3, 'three attempts')
    assert.deepEqual(d.fake.callLines(), [], 'nothing reached the API')
  })

  test('an object that does not exist goes to the DLQ at once', async (t) => {
    const store = await useObjectStore(t)
    const d = await useDispatcher(t, {
      partitions: 1,
      config: { s3: { url: store.url, accessKey: 'AKIDTEST', secretKey: 'secret-key' } }
    })
    await d.send({
      message_type: 'upload_attachment',
      values: { file_name: 'absent.pdf', file_s3_bucket: 'evidence' }
    })
    const [dead] = await d.deadLetters(1)
    assert.equal(dead!.reason, 's3_object_missing')
    assert.equal(dead!.attempts, 1)
    assert.match(dead!.error!, /GET s3:\/\/evidence\/absent\.pdf → 404: .*NoSuchKey/)
  })
})
