/**
 * The registry client's protocol details against small local HTTP(S) servers that answer
 * as registries do (headers, auth, TLS, error codes). Its behaviour against a real
 * registry is tested in test/e2e/registry.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { ensureTlsMaterial } from '../../../src/dev/kafka/tls.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void

async function serve(
  t: { after: (fn: () => unknown) => void },
  handler: Handler,
  tls?: { pfx: Buffer; passphrase: string }
) {
  const listener = (request: IncomingMessage, response: ServerResponse) => {
    let body = ''
    request.on('data', (chunk) => {
      body += chunk
    })
    request.on('end', () => handler(request, body, response))
  }
  const server = tls ? createHttpsServer(tls, listener) : createHttpServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  return `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const json = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' })
  response.end(JSON.stringify(body))
}

test('requests carry the registry content type and basic or bearer credentials', async (t) => {
  const seen: Array<Record<string, string | undefined>> = []
  const url = await serve(t, (request, body, response) => {
    seen.push({
      auth: request.headers.authorization,
      type: request.headers['content-type'],
      accept: request.headers.accept,
      body
    })
    json(response, 200, { id: 7 })
  })
  await new SchemaRegistryClient({ url, auth: { username: 'svc', password: 's3cret' } }).register('a', {
    schema: '"string"'
  })
  await new SchemaRegistryClient({ url, auth: { token: 'tok' } }).register('a', {
    schema: '"int"',
    schemaType: 'AVRO'
  })
  assert.equal(seen[0]?.auth, `Basic ${Buffer.from('svc:s3cret').toString('base64')}`)
  assert.equal(seen[1]?.auth, 'Bearer tok')
  assert.equal(seen[0]?.type, 'application/vnd.schemaregistry.v1+json')
  assert.match(seen[0]?.accept ?? '', /application\/vnd\.schemaregistry\.v1\+json/)
  assert.deepEqual(
    JSON.parse(seen[1]?.body ?? ''),
    { schema: '"int"' },
    'AVRO is left implicit for older registries'
  )
})

test('ids and schemas are cached: the hot path makes no second call', async (t) => {
  let calls = 0
  const url = await serve(t, (request, _body, response) => {
    calls++
    if (request.url?.startsWith('/schemas/ids/')) json(response, 200, { schema: '"string"' })
    else json(response, 200, { id: 3 })
  })
  const client = new SchemaRegistryClient({ url })
  for (let i = 0; i < 3; i++) {
    await client.register('s', { schema: '"string"' })
    assert.deepEqual(
      await client.getById(3),
      { schema: '"string"', schemaType: 'AVRO', references: [] },
      'schemaType absent means AVRO'
    )
  }
  assert.equal(calls, 2)
})

test('a 409 with error code 409 or 40901 is an incompatible schema; 5xx is retried then retryable; 4xx is not retried', async (t) => {
  let failures = 0
  const url = await serve(t, (request, _body, response) => {
    if (request.url?.includes('old')) return json(response, 409, { error_code: 409, message: 'incompatible' })
    if (request.url?.includes('new'))
      return json(response, 409, { error_code: 40901, message: 'incompatible' })
    if (request.url?.includes('flaky')) {
      failures++
      return json(response, 503, { error_code: 50003, message: 'forwarding failed' })
    }
    json(response, 404, { error_code: 40401, message: 'Subject not found' })
  })
  const client = new SchemaRegistryClient({ url, retries: 2 })
  for (const subject of ['old', 'new']) {
    await assert.rejects(client.register(subject, { schema: '"int"' }), {
      code: ErrorCodes.INCOMPATIBLE_SCHEMA,
      status: 409
    })
  }
  await assert.rejects(client.register('flaky', { schema: '"int"' }), {
    code: ErrorCodes.REGISTRY,
    retryable: true,
    errorCode: 50003
  })
  assert.equal(failures, 3, 'the first try and two retries')
  await assert.rejects(client.getVersion('missing', 1), {
    code: ErrorCodes.REGISTRY,
    retryable: false,
    errorCode: 40401
  })
})

test('an unreachable registry is a retryable error', async () => {
  const client = new SchemaRegistryClient({ url: 'http://127.0.0.1:1', retries: 1, timeout: 500 })
  await assert.rejects(client.getById(1), { code: ErrorCodes.REGISTRY, retryable: true })
})

test('TLS with a private CA: the client trusts the CA file it is given', async (t) => {
  const material = ensureTlsMaterial(join(mkdtempSync(join(tmpdir(), 'tls-')), 'tls'))
  const url = await serve(t, (_request, _body, response) => json(response, 200, ['a']), {
    pfx: readFileSync(material.keystoreFile),
    passphrase: material.keystorePassword
  })
  assert.deepEqual(await new SchemaRegistryClient({ url, tls: { caFile: material.caFile } }).listSubjects(), [
    'a'
  ])
  await assert.rejects(
    new SchemaRegistryClient({ url, retries: 0 }).listSubjects(),
    { code: ErrorCodes.REGISTRY },
    'an unknown CA is refused'
  )
})
