/**
 * The package as a user gets it: `npm pack`, then a fresh project that installs the tarball
 * with plain `npm install` (no links, no source paths) and uses it under Node.js 22 and 24 —
 * a producer and a consumer compiled with the project's own `tsc` against the shipped types,
 * and the `conveyor` command line (`--help`, `kafka up`, `topics apply`, `run -c`) on a real
 * broker the installed package starts itself.
 *
 * Run with `npm run test:package` (CI does, after `npm test`); it needs the npm registry.
 */
import assert from 'node:assert/strict'
import { type SpawnOptions, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { node22 } from './node-22.ts'

const root = new URL('../../', import.meta.url).pathname
const packageName = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name as string
/** The cluster the installed package starts: its own name and ports, beside the test broker. */
const cluster = { name: 'package-test', port: 29792 }
const brokers = `127.0.0.1:${cluster.port}`
/** Starts (or finds running) the cluster, with its SASL_SSL listener (SCRAM-SHA-512) on port + 2. */
const kafkaUp = ['kafka', 'up', '--name', cluster.name, '--port', String(cluster.port), '--sasl']

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command to its end (at most `timeout` ms) and collects its output. */
function run(command: string, args: string[], options: SpawnOptions & { timeout?: number } = {}) {
  return new Promise<Result>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (chunk) => {
      stdout += chunk
    })
    child.stderr?.on('data', (chunk) => {
      stderr += chunk
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout ?? 300_000)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function ok(result: Result, what: string): Result {
  assert.equal(result.code, 0, `${what} failed (${result.code}):\n${result.stdout}\n${result.stderr}`)
  return result
}

let project: string
let tarball: string
const nodes: Array<{ label: string; binary: string }> = []

/** The environment of a command run with `binary` as `node` (so `npx` and the bin use it). */
function envFor(binary: string): NodeJS.ProcessEnv {
  // Not this runner's own context: a `node --test` in the user's project must run its tests.
  const { KAFKA_BROKERS: _k, NODE_TEST_CONTEXT: _c, ...env } = process.env
  return { ...env, PATH: `${dirname(binary)}:${process.env.PATH}` }
}

before(async () => {
  const work = mkdtempSync(join(tmpdir(), 'conveyor-package-'))
  ok(await run('npm', ['pack', '--pack-destination', work], { cwd: root }), 'npm pack')
  tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!)
  project = join(work, 'user-service')
  mkdirSync(join(project, 'src'), { recursive: true })
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'user-service', private: true, type: 'module' }, null, 2)
  )
  ok(
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', tarball, 'typescript@~5.9.0', '@types/node@^22'],
      { cwd: project }
    ),
    'npm install of the tarball'
  )
  nodes.push({ label: 'Node.js 24', binary: process.execPath }, { label: 'Node.js 22', binary: node22() })
})

after(async () => {
  if (project)
    await run('npx', ['conveyor', 'kafka', 'down', '--name', cluster.name, '--purge'], {
      cwd: project,
      env: envFor(process.execPath)
    })
})

describe(`${packageName} installed from its tarball`, () => {
  test('the tarball holds the built package only: no tests, benchmarks or TypeScript sources', () => {
    const installed = join(project, 'node_modules', ...packageName.split('/'))
    const files = readdirSync(installed, { recursive: true }).map(String)
    assert.ok(files.includes(join('dist', 'src', 'index.js')))
    assert.ok(files.includes(join('dist', 'src', 'index.d.ts')))
    assert.ok(files.includes(join('schemas', 'commands', 'upload_attachment_v1.avsc')))
    const unwanted = files.filter(
      (f) =>
        /^(test|bench|src|apps|examples)\//.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')) ||
        f.includes('api-temp')
    )
    assert.deepEqual(unwanted, [])
  })

  test("a producer, a consumer and the README's first consumer compile with the user's own tsc against the shipped types; a wrong option does not", async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          outDir: 'build',
          rootDir: 'src',
          types: ['node'],
          // As \`tsc --init\` writes it: @platformatic/kafka's own declarations do not
          // compile on their own (undici's RequestInit, untyped debug). The user's code is
          // still checked against Conveyor's types (the wrong option below proves it).
          skipLibCheck: true
        },
        include: ['src']
      })
    )
    writeFileSync(
      join(project, 'src', 'producer.ts'),
      `import { createProducer, KafkaTransport } from '${packageName}'

type Events = { order_placed: { order_id: string; total: number } }

const [topic, count] = [process.argv[2]!, Number(process.argv[3])]
const transport = new KafkaTransport({ connection: { brokers: ['${brokers}'], clientId: 'user-producer' } })
const producer = createProducer<Events>({ transport, topic })
for (let i = 0; i < count; i++) {
  const position = await producer.send('order_placed', { order_id: \`o-\${i}\`, total: i * 10 }, { key: \`o-\${i}\` })
  console.log(JSON.stringify({ partition: position.partition, offset: String(position.offset) }))
}
await producer.close()
await transport.close()
`
    )
    writeFileSync(
      join(project, 'src', 'consumer.ts'),
      `import { createConsumer, KafkaTransport, type Message } from '${packageName}'

const [topic, groupId, expected] = [process.argv[2]!, process.argv[3]!, Number(process.argv[4])]
const transport = new KafkaTransport({ connection: { brokers: ['${brokers}'], clientId: 'user-consumer' } })
const seen: string[] = []
const consumer = createConsumer({
  transport,
  groupId,
  topics: [topic],
  routes: {
    order_placed: {
      handler: (message: Message<{ order_id: string; total: number }>) => {
        seen.push(message.value.order_id)
      }
    }
  }
})
await consumer.start()
const deadline = Date.now() + 60_000
while (seen.length < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
await consumer.stop()
await transport.close()
console.log(JSON.stringify(seen.sort()))
`
    )
    // The README's first consumer, as a user would paste it.
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const install = readme.slice(readme.indexOf('## Install'))
    const snippet = /```ts\n([\s\S]*?)```/.exec(install)?.[1]
    assert.ok(snippet?.includes(packageName), "the README's Install section has a TypeScript consumer")
    writeFileSync(join(project, 'src', 'readme.ts'), snippet!)
    ok(await run('npx', ['tsc', '-p', '.'], { cwd: project, env: envFor(process.execPath) }), 'tsc')
    assert.ok(existsSync(join(project, 'build', 'producer.js')))
    // The types are real: a wrong option type is a compile error.
    writeFileSync(
      join(project, 'src', 'wrong.ts'),
      `import { createConsumer } from '${packageName}'\ncreateConsumer({ groupId: 42, topics: 'orders', routes: {} })\n`
    )
    const wrong = await run('npx', ['tsc', '-p', '.', '--noEmit'], {
      cwd: project,
      env: envFor(process.execPath)
    })
    assert.notEqual(wrong.code, 0)
    assert.match(wrong.stdout, /src\/wrong\.ts.*error TS2322/s)
    writeFileSync(join(project, 'src', 'wrong.ts'), 'export {}\n')
  })

  for (const index of [0, 1])
    test(`under ${index === 0 ? 'Node.js 24' : 'Node.js 22'}: npx conveyor --help, kafka up, topics apply, run -c, and the compiled producer and consumer`, async () => {
      const { label, binary } = nodes[index]!
      const env = envFor(binary)
      const version = ok(await run('node', ['--version'], { cwd: project, env }), 'node --version')
      assert.match(version.stdout, index === 0 ? /^v24\./ : /^v22\./, label)
      const cli = (args: string[], timeout?: number) =>
        run('npx', ['conveyor', ...args], { cwd: project, env, ...(timeout ? { timeout } : {}) })

      const help = ok(await cli(['--help']), 'conveyor --help')
      assert.match(help.stdout, /^Usage: conveyor <command>/)
      assert.match(help.stdout, /dispatcher {2}/)
      const up = ok(await cli(kafkaUp, 600_000), 'kafka up')
      assert.match(`${up.stdout}${up.stderr}`, new RegExp(brokers.replaceAll('.', '\\.')))

      const topic = `orders-${index}`
      writeFileSync(join(project, 'topics.yaml'), `topics:\n  ${topic}: { partitions: 3 }\n`)
      ok(await cli(['topics', 'apply', 'topics.yaml', '--brokers', brokers]), 'topics apply')

      // The compiled producer and consumer, with this Node.js.
      const produced = ok(
        await run('node', ['build/producer.js', topic, '5'], { cwd: project, env }),
        'producer'
      )
      assert.equal(produced.stdout.trim().split('\n').length, 5)
      const consumed = ok(
        await run('node', ['build/consumer.js', topic, `user-consumer-${index}`, '5'], { cwd: project, env }),
        'consumer'
      )
      assert.deepEqual(JSON.parse(consumed.stdout.trim().split('\n').at(-1)!), [
        'o-0',
        'o-1',
        'o-2',
        'o-3',
        'o-4'
      ])

      // `conveyor run -c` with a handlers module of the user's, until SIGTERM.
      const handled = join(project, `handled-${index}.log`)
      writeFileSync(
        join(project, 'handlers.js'),
        `import { appendFileSync } from 'node:fs'\nexport const routes = {\n  order_placed: { handler: (m) => appendFileSync(process.env.HANDLED_LOG, m.value.order_id + '\\n') }\n}\n`
      )
      writeFileSync(
        join(project, 'service.yaml'),
        [
          `kafka: { brokers: [${brokers}] }`,
          `http: { port: 0, host: 127.0.0.1 }`,
          'log: { level: warn }',
          `consumers: [{ groupId: user-service-${index}, topics: [${topic}], handlers: ./handlers.js }]`
        ].join('\n')
      )
      // Run through the bin itself (not npx), so that SIGTERM reaches the service directly.
      const service = spawn('node', [join('node_modules', '.bin', 'conveyor'), 'run', '-c', 'service.yaml'], {
        cwd: project,
        env: { ...env, HANDLED_LOG: handled },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      let output = ''
      service.stdout.on('data', (chunk) => {
        output += chunk
      })
      service.stderr.on('data', (chunk) => {
        output += chunk
      })
      const exited = new Promise<number | null>((resolve) => service.on('exit', resolve))
      const deadline = Date.now() + 90_000
      const lines = () => (existsSync(handled) ? readFileSync(handled, 'utf8').trim().split('\n') : [])
      while (lines().length < 5 && Date.now() < deadline && service.exitCode === null) await sleep(200)
      assert.deepEqual(lines().sort(), ['o-0', 'o-1', 'o-2', 'o-3', 'o-4'], output)
      service.kill('SIGTERM')
      assert.equal(await exited, 0, output)
    })
})

describe('the examples, each a project of its own on the installed package', () => {
  const examples = readdirSync(join(root, 'examples'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)

  test('there are examples to run', () => {
    assert.ok(examples.length > 0)
  })

  for (const name of examples)
    test(`examples/${name}: npm install with the tarball, then its own npm test against the real broker`, async () => {
      const env = envFor(process.execPath)
      const up = ok(
        await run('npx', ['conveyor', ...kafkaUp], { cwd: project, env, timeout: 600_000 }),
        'kafka up'
      )
      // The SASL_SSL listener, for the examples that connect with SCRAM over TLS.
      const sasl = /SASL_SSL:\s+(\S+)\s+(\S+) user "([^"]+)" password "([^"]+)", CA (\S+)/.exec(up.stdout)
      assert.ok(sasl, `kafka up names its SASL_SSL listener:\n${up.stdout}`)
      const saslEnv = {
        KAFKA_SASL_BROKERS: sasl[1]!,
        KAFKA_SASL_MECHANISM: sasl[2]!,
        KAFKA_SASL_USERNAME: sasl[3]!,
        KAFKA_SASL_PASSWORD: sasl[4]!,
        KAFKA_CA_FILE: sasl[5]!
      }
      const logFile = /broker 1: running, .*, log (\S+)/.exec(up.stdout)?.[1]
      const copy = join(dirname(project), 'examples', name)
      cpSync(join(root, 'examples', name), copy, {
        recursive: true,
        filter: (source) => !source.includes('node_modules')
      })
      ok(
        await run('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: copy, env }),
        `npm install in ${name}`
      )
      const tested = await run('npm', ['test'], {
        cwd: copy,
        env: { ...env, ...saslEnv, KAFKA_BROKERS: brokers },
        timeout: 600_000
      })
      ok(tested, `npm test in examples/${name}`)
      assert.match(`${tested.stdout}${tested.stderr}`, /ℹ pass [1-9]\d*\nℹ fail 0\n/)
      if (name === 'agent-events') {
        // What the broker stored: snappy batches from an idempotent producer (a producer id and sequences).
        assert.ok(logFile, 'the broker names its log file')
        const batches = recordBatches(join(dirname(dirname(logFile)), 'data'), 'compliance.agents.events.v1')
        assert.ok(batches.length > 0, 'batches on disk')
        for (const batch of batches) {
          assert.equal(batch.compression, 'snappy')
          assert.ok(batch.producerId >= 0n && batch.baseSequence >= 0, 'written by an idempotent producer')
        }
      }
    })
})

/**
 * The record batches of a topic's log segments on the broker's disk, read in Kafka's own
 * storage format (magic 2): per batch, its compression codec (the attributes' low 3 bits)
 * and its producer id and base sequence (-1 when the producer was not idempotent).
 */
function recordBatches(dataDir: string, topic: string) {
  const codecs = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
  const batches: Array<{ compression: string; producerId: bigint; baseSequence: number }> = []
  for (const folder of readdirSync(dataDir).filter((f) => f.startsWith(`${topic}-`))) {
    for (const file of readdirSync(join(dataDir, folder)).filter((f) => f.endsWith('.log'))) {
      const log = readFileSync(join(dataDir, folder, file))
      for (let at = 0; at + 61 <= log.length; ) {
        const length = log.readInt32BE(at + 8)
        if (length <= 0) break
        assert.equal(log.readInt8(at + 16), 2, 'magic 2')
        batches.push({
          compression: codecs[log.readInt16BE(at + 21) & 7]!,
          producerId: log.readBigInt64BE(at + 43),
          baseSequence: log.readInt32BE(at + 53)
        })
        at += 12 + length
      }
    }
  }
  return batches
}
