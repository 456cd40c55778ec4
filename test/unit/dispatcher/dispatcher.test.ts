import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import aws4 from 'aws4'
import { ApiClient } from '../../../apps/dispatcher/api-client.ts'
import { CommandCodec } from '../../../apps/dispatcher/commands.ts'
import { dispatcherDefaults, dispatcherEnv, loadDispatcherConfig } from '../../../apps/dispatcher/config.ts'
import { contentDisposition, decodeBase64, KeyedLock } from '../../../apps/dispatcher/operations.ts'
import { signV4 } from '../../../apps/dispatcher/s3.ts'
import { parseSelector, requireFilter } from '../../../apps/dispatcher/selectors.ts'
import { loadCatalog } from '../../../src/schema/catalog.ts'

const emptyHash = createHash('sha256').update('').digest('hex')
const catalog = loadCatalog(new URL('../../../schemas/commands', import.meta.url).pathname)
const context = { topic: 'observation', headers: new Map<string, Buffer>() }
const json = (value: unknown) => Buffer.from(JSON.stringify(value))

describe('S3 Signature Version 4', () => {
  test('reproduces the AWS test suite vector get-vanilla', () => {
    const authorization = signV4({
      method: 'GET',
      url: new URL('https://example.amazonaws.com/'),
      headers: { host: 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z' },
      payloadHash: emptyHash,
      accessKey: 'AKIDEXAMPLE',
      secretKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      region: 'us-east-1',
      service: 'service',
      amzDate: '20150830T123600Z'
    })
    assert.equal(
      authorization,
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'
    )
  })

  test('agrees with the aws4 package for S3 keys with spaces, unicode and reserved characters, and queries', () => {
    for (const path of [
      '/bucket/a b.txt',
      '/bucket/dir/été (1)!.pdf',
      "/bucket/it's*.txt",
      '/bucket/k?b=2&a=1'
    ]) {
      const url = new URL(
        `http://127.0.0.1:9000${path.replace(/[^/?&=]+/g, (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))}`
      )
      const headers = { host: url.host, 'x-amz-content-sha256': emptyHash, 'x-amz-date': '20261123T101500Z' }
      const ours = signV4({
        method: 'GET',
        url,
        headers,
        payloadHash: emptyHash,
        accessKey: 'AK',
        secretKey: 'SK',
        region: 'eu-west-3',
        service: 's3',
        amzDate: '20261123T101500Z'
      })
      const theirs = aws4.sign(
        {
          host: url.host,
          path: `${url.pathname}${url.search}`,
          method: 'GET',
          service: 's3',
          region: 'eu-west-3',
          headers
        },
        { accessKeyId: 'AK', secretAccessKey: 'SK' }
      ).headers?.Authorization
      assert.equal(ours, theirs, path)
    }
  })
})

describe('command payload checks', () => {
  test('base64: the padded standard alphabet and the URL-safe one (padding optional) decode; whitespace is ignored', () => {
    assert.equal(decodeBase64('aGVsbG8=', 'f').toString(), 'hello')
    assert.equal(decodeBase64('aGVs\nbG8=', 'f').toString(), 'hello')
    assert.equal(decodeBase64('aGk=', 'f').toString(), 'hi')
    assert.equal(decodeBase64('AAAA', 'f').length, 3)
    assert.deepEqual(decodeBase64('-_8=', 'f'), Buffer.from([0xfb, 0xff]))
    assert.deepEqual(decodeBase64('-_8', 'f'), Buffer.from([0xfb, 0xff]))
  })

  test('base64 that lost its padding or tail, or was altered, is refused as bad_base64 (a corrupt file is never uploaded)', () => {
    const refused = {
      abc: /padding is missing/, // a standard text that lost its "=": Buffer.from would give 2 bytes
      aGVsbG8: /padding is missing/,
      'abd=': /bits beyond the last byte/, // the last character was altered
      'YR==': /bits beyond the last byte/,
      'aGl=': /bits beyond the last byte/,
      a: /single character/,
      'aGVsbG8===': /more than two padding/,
      'aGk=aGk=': /"=" before the end/,
      '+-8=': /mixes the standard and URL-safe/,
      'not base64!!': /outside the base64 alphabet/,
      '%%%': /outside the base64 alphabet/,
      'aGVsbG8=A': /"=" before the end/,
      'YQ=': /padding does not complete/,
      '': /is empty/
    }
    for (const [text, why] of Object.entries(refused))
      assert.throws(
        () => decodeBase64(text, 'values.file_content'),
        { reason: 'bad_base64', message: why },
        JSON.stringify(text)
      )
  })

  test('Content-Disposition quotes the name, and adds filename* for non-ASCII names', () => {
    assert.equal(contentDisposition('report.pdf'), 'attachment; filename="report.pdf"')
    assert.equal(contentDisposition('a "b".pdf'), 'attachment; filename="a \\"b\\".pdf"')
    assert.equal(
      contentDisposition('récap été.pdf'),
      `attachment; filename="r_cap _t_.pdf"; filename*=UTF-8''r%C3%A9cap%20%C3%A9t%C3%A9.pdf`
    )
  })

  test('selectors: target is single by default, must be single or multiple, filters are strings', () => {
    assert.deepEqual(parseSelector({ ref_id: 'A' }), { filters: { ref_id: 'A' }, target: 'single' })
    assert.deepEqual(parseSelector({ ref_id: 'A', target: 'multiple' }), {
      filters: { ref_id: 'A' },
      target: 'multiple'
    })
    assert.throws(() => parseSelector({ target: 'all' }), { reason: 'invalid_selector' })
    assert.throws(() => parseSelector({ ref_id: 1 }), /selector\.ref_id must be a string/)
    assert.throws(() => parseSelector('AC-1'), { reason: 'invalid_command' })
  })

  test('selectors: an empty filter value is refused (APIs skip it, so it would match every object)', () => {
    assert.throws(() => parseSelector({ ref_id: '' }), {
      reason: 'invalid_command',
      message: 'selector.ref_id is empty: an empty filter matches every object'
    })
  })

  test('selectors: one without filters is refused unless the operation opts in', () => {
    for (const selector of [undefined, {}, { target: 'multiple' }])
      assert.throws(() => requireFilter(parseSelector(selector)), {
        reason: 'invalid_command',
        message: /^the selector names no filter/
      })
    assert.throws(() => requireFilter(parseSelector({}, 'values.evidence'), 'values.evidence'), {
      message: /^the selector values\.evidence names no filter/
    })
    assert.deepEqual(requireFilter(parseSelector({ target: 'multiple' }), 'selector', true), {
      filters: {},
      target: 'multiple'
    })
  })

  test('KeyedLock runs work of one key one at a time, other keys in parallel', async () => {
    const lock = new KeyedLock()
    const log: string[] = []
    const step = (name: string, ms: number) => async () => {
      log.push(`start ${name}`)
      await new Promise((resolve) => setTimeout(resolve, ms))
      log.push(`end ${name}`)
    }
    await Promise.all([
      lock.run('a', step('a1', 30)),
      lock.run('a', step('a2', 1)),
      lock.run('b', step('b1', 1))
    ])
    assert.deepEqual(log, ['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2'])
  })
})

describe('JSON commands are validated against a JSON Schema derived from the Avro catalog', () => {
  const codec = new CommandCodec({ catalog })

  test('a valid command gets its Avro defaults (version, selector, nullable fields)', async () => {
    const value = await codec.decode(
      json({ message_type: 'upload_attachment', values: { file_name: 'a.txt', file_content: 'aGk=' } }),
      context
    )
    assert.deepEqual(value, {
      message_type: 'upload_attachment',
      version: 1,
      selector: {},
      values: {
        file_name: 'a.txt',
        file_content: 'aGk=',
        file_s3_bucket: null,
        file_s3_key: null,
        applied_controls: null,
        name: null
      }
    })
  })

  test('a missing or mistyped field is a decode error naming it', async () => {
    await assert.rejects(
      codec.decode(json({ message_type: 'update_applied_control', selector: { ref_id: 'A' } }), context),
      { reason: 'invalid_command', message: 'update_applied_control v1: values is required' }
    )
    await assert.rejects(
      codec.decode(
        json({
          message_type: 'update_applied_control',
          selector: { ref_id: 7 },
          values: { status: 'active' }
        }),
        context
      ),
      { reason: 'invalid_command', message: /selector\.ref_id must be string/ }
    )
    await assert.rejects(codec.decode(json({ selector: {} }), context), { reason: 'invalid_command' })
    await assert.rejects(
      codec.decode(json({ message_type: 'update_applied_control', version: 9, values: {} }), context),
      { reason: 'unknown_version', message: /has no version 9 \(known: 1\)/ }
    )
  })

  test('Avro in the wire format without a registry is a decode error, not a crash', async () => {
    await assert.rejects(codec.decode(Buffer.from([0, 0, 0, 0, 1, 2]), context), { reason: 'no_registry' })
  })
})

describe('dispatcher configuration', () => {
  test('the original dispatcher environment variables still work', async () => {
    const { config, secretPaths } = await loadDispatcherConfig({
      env: {
        API_URL: 'https://ciso.example.com/api',
        USER_TOKEN: 'pat-123',
        VERIFY_CERTIFICATE: 'False',
        BOOTSTRAP_SERVERS: 'k1:9092,k2:9092',
        ERRORS_TOPIC: 'errors',
        MAX_RETRIES: '5',
        S3_URL: 'minio:9000',
        S3_ACCESS_KEY: 'ak',
        S3_SECRET_KEY: 'sk'
      }
    })
    assert.equal(config.api.url, 'https://ciso.example.com/api')
    assert.equal(config.api.token, 'pat-123')
    assert.equal(config.api.verifyCertificate, false)
    assert.deepEqual(config.kafka.brokers, ['k1:9092', 'k2:9092'])
    assert.equal(config.dispatcher.deadLetterTopic, 'errors')
    assert.equal(config.dispatcher.retry.retries, 5)
    assert.equal(config.dispatcher.retry.initialDelay, 1_000, 'other retry settings keep their defaults')
    assert.deepEqual(config.s3, {
      url: 'http://minio:9000',
      accessKey: 'ak',
      secretKey: 'sk',
      region: 'us-east-1'
    })
    for (const path of ['api.token', 's3.accessKey', 's3.secretKey'])
      assert.ok(secretPaths.includes(path), path)
  })

  test('defaults: observation, CISO Assistant at localhost:8000, 3 retries with exponential backoff', async () => {
    const { config } = await loadDispatcherConfig({ env: { USER_TOKEN: 'pat-1' } })
    assert.equal(config.dispatcher.topic, 'observation')
    assert.equal(config.dispatcher.profile, 'ciso-assistant')
    assert.equal(config.api.url, 'http://localhost:8000/api')
    assert.deepEqual(config.dispatcher.retry, {
      retries: 3,
      initialDelay: 1_000,
      multiplier: 2,
      maxDelay: 30_000
    })
    assert.equal(config.api.retries, 3)
  })

  test('without a token the CISO Assistant profile refuses to start, naming api.token and USER_TOKEN', async () => {
    await assert.rejects(loadDispatcherConfig({ env: {} }), {
      message: 'api.token (from default): is required: set api.token or USER_TOKEN'
    })
  })

  test('an API without a token is allowed only when the configuration says api.anonymous', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'dispatcher-config-'))
    const file = (name: string, config: unknown) => {
      writeFileSync(join(directory, name), JSON.stringify(config))
      return join(directory, name)
    }
    const operations = { close_ticket: { kind: 'update', resource: 'tickets' } }
    await assert.rejects(
      loadDispatcherConfig({
        file: file('none.json', { dispatcher: { profile: 'none', operations } }),
        env: {}
      }),
      { message: /api\.token .*is required: set api\.token or USER_TOKEN \(or api\.anonymous: true/ }
    )
    const { config } = await loadDispatcherConfig({
      file: file('anonymous.json', { dispatcher: { profile: 'none', operations }, api: { anonymous: true } }),
      env: {}
    })
    assert.equal(config.api.anonymous, true)
    await assert.rejects(
      loadDispatcherConfig({ file: file('ciso.json', { api: { anonymous: true } }), env: {} }),
      { message: /api\.anonymous .*the ciso-assistant profile's API needs a token/ }
    )
  })

  test('an invalid value is refused with the setting and where it came from', async () => {
    await assert.rejects(loadDispatcherConfig({ env: { API_URL: 'localhost:8000' } }), {
      message: /api\.url \(from env API_URL\): must be an http\(s\) URL/
    })
    await assert.rejects(loadDispatcherConfig({ env: { MAX_RETRIES: 'many' } }), {
      message: /dispatcher\.retry\.retries \(from env MAX_RETRIES\): must be an integer ≥ 0/
    })
    await assert.rejects(loadDispatcherConfig({ env: { DISPATCHER_PROFILE: 'jira' } }), {
      message: /dispatcher\.profile \(from env DISPATCHER_PROFILE\): must be none or one of ciso-assistant/
    })
  })
})

describe('API client', () => {
  test('pagination links keep their path and query on the configured API origin (never another host)', () => {
    const api = new ApiClient({ url: 'https://ciso.example.com/api' })
    assert.equal(
      api.resolve('http://backend:8000/api/applied-controls/?limit=2&offset=2').href,
      'https://ciso.example.com/api/applied-controls/?limit=2&offset=2'
    )
    assert.equal(
      api.resolve('applied-controls/', { ref_id: 'A B' }).href,
      'https://ciso.example.com/api/applied-controls/?ref_id=A+B'
    )
    void api.close()
  })
})

describe('dispatcher documentation', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const guide = readFileSync(new URL('../../../docs/dispatcher.md', import.meta.url), 'utf8')

  test('README and docs/dispatcher.md name every environment variable the dispatcher reads', () => {
    for (const name of Object.keys(dispatcherEnv)) {
      assert.ok(readme.includes(`\`${name}\``), `README lacks ${name}`)
      assert.ok(guide.includes(`\`${name}\``), `docs/dispatcher.md lacks ${name}`)
    }
  })

  test('README and docs/dispatcher.md name every setting of the dispatcher, api and s3 sections', () => {
    const leaves = (value: unknown, path: string): string[] =>
      typeof value === 'object' && value !== null && !Array.isArray(value) && !path.endsWith('ackoff')
        ? Object.entries(value).flatMap(([key, inner]) => leaves(inner, path ? `${path}.${key}` : key))
        : [path]
    const keys = [
      ...leaves(dispatcherDefaults, ''),
      'dispatcher.deadLetterTopic',
      'dispatcher.operations',
      'api.token',
      'api.probePath',
      'api.caFile',
      's3.url',
      's3.region'
    ]
    for (const key of keys) {
      const last = key.split('.').at(-1)!
      assert.ok(readme.includes(key) || readme.includes(`\`${last}\``), `README lacks ${key}`)
      assert.ok(guide.includes(`\`${key}\``), `docs/dispatcher.md lacks ${key}`)
    }
  })
})
