/**
 * `conveyor dispatcher`: the command dispatcher as a service.
 * `conveyor demo` (`npm start`): a local broker, the embedded registry, a fake CISO
 * Assistant (or a real one at API_URL), the dispatcher, and a producer of sample commands.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Admin } from '@platformatic/kafka'
import type { Command, CommandIO } from '../../src/cli/command.ts'
import { serviceCommand } from '../../src/cli/commands/run.ts'
import { integerOption } from '../../src/cli/options.ts'
import { LocalKafka } from '../../src/dev/kafka/index.ts'
import { Channels, type MessageHandledEvent } from '../../src/instrumentation/channels.ts'
import { clientOptions } from '../../src/kafka/connection.ts'
import { KafkaTransport } from '../../src/kafka/transport.ts'
import { ConveyorProducer } from '../../src/producer/producer.ts'
import { EmbeddedRegistry } from '../../src/registry/registry.ts'
import { loadCatalog } from '../../src/schema/catalog.ts'
import { SchemaRegistryClient } from '../../src/schema/registry-client.ts'
import { stopOnSignals } from '../../src/service/signals.ts'
import { CommandCodec } from './commands.ts'
import { builtInCatalog, loadDispatcherConfig } from './config.ts'
import { runDispatcher } from './dispatcher.ts'
import { FakeCisoAssistant } from './fake-ciso-assistant.ts'

const dispatcherUsage = `Usage: conveyor dispatcher [-c <config>] [--brokers HOST:PORT,…] [--port N] [--log-level LEVEL]

Consumes commands from the \`observation\` topic (Avro through the schema registry, or JSON)
and carries each out as calls to a REST API (CISO Assistant by default): retries with
backoff, then the dead-letter queue; a refused token or an outage makes commands wait.
Configuration: the file (YAML, JSON, TS), then environment variables (API_URL, USER_TOKEN,
BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, ERRORS_TOPIC, MAX_RETRIES, S3_URL, … and the
CONVEYOR_* ones), then flags. See docs/dispatcher.md.`

export const dispatcherCommand: Command = serviceCommand({
  name: 'dispatcher',
  summary: 'carry out commands from Kafka as REST API calls (CISO Assistant and others)',
  usage: dispatcherUsage,
  load: loadDispatcherConfig,
  start: runDispatcher
})

const demoUsage = `Usage: conveyor demo [--limit N] [--interval MS] [--port 8080] [--registry-port 8081] [--api-port 8000]

Starts everything the command dispatcher needs on this machine and shows commands flowing:
a local Kafka broker (cluster "dev", 127.0.0.1:9092), the embedded schema registry, a fake
CISO Assistant API (or the real one at API_URL, with USER_TOKEN), the dispatcher, and a
producer that sends a sample command every --interval ms (Avro and JSON; every tenth one is
planted to fail and lands in observation.dlq). Ctrl-C stops it (the broker keeps running:
\`npm run kafka -- down\`). With --limit N it sends N commands, waits until each is carried
out or dead-lettered, prints a summary and exits (0 when every command ended as expected).`

type Sample = { command: Record<string, unknown>; key: string; json?: boolean; planted?: boolean }

/** The demo's sample commands, cycling over the fake API's seeded objects. */
export function sampleCommand(n: number): Sample {
  const ref = `AC-${(n % 8) + 1}`
  const requirement = `A.5.${(n % 8) + 1}`
  if (n % 10 === 9)
    return {
      key: 'AC-404',
      planted: true,
      command: {
        message_type: 'update_applied_control',
        selector: { ref_id: 'AC-404' },
        values: { status: 'active' }
      }
    }
  switch (n % 5) {
    case 0:
      return {
        key: ref,
        command: {
          message_type: 'update_applied_control_status',
          selector: { ref_id: ref },
          values: { status: ['in_progress', 'active', 'on_hold'][n % 3]! }
        }
      }
    case 1:
      return {
        key: requirement,
        json: true,
        command: {
          message_type: 'update_requirement_assessment',
          version: 1,
          selector: { compliance_assessment__ref_id: 'ISO_001', requirement__ref_id: requirement },
          values: {
            result: ['compliant', 'partially_compliant', 'non_compliant'][n % 3]!,
            observation: `demo #${n}`
          }
        }
      }
    case 2:
      return {
        key: ref,
        command: {
          message_type: 'upload_attachment',
          selector: {},
          values: {
            file_name: `scan-${n}.txt`,
            file_content: Buffer.from(`vulnerability scan #${n}: 0 critical\n`).toString('base64'),
            applied_controls: { ref_id: ref }
          }
        }
      }
    case 3:
      return {
        key: ref,
        command: {
          message_type: 'update_applied_control',
          selector: { ref_id: ref },
          values: { priority: String((n % 4) + 1), eta: '2026-12-31' }
        }
      }
    default:
      return {
        key: ref,
        command: {
          message_type: 'attach_evidence_to_applied_control',
          selector: { ref_id: ref },
          values: { evidence: { name: 'Security policy' } }
        }
      }
  }
}

/** Seeds the fake API with what the sample commands act on. */
export function seedDemoData(fake: FakeCisoAssistant): void {
  const names = ['MFA', 'Backups', 'EDR', 'Patching', 'Logging', 'Encryption', 'Awareness', 'Access reviews']
  names.forEach((name, i) => {
    fake.add('applied-controls', { ref_id: `AC-${i + 1}`, name, status: 'to_do', priority: '3' })
    fake.add('requirement-assessments', {
      compliance_assessment: { ref_id: 'ISO_001' },
      requirement: { ref_id: `A.5.${i + 1}` },
      result: 'not_assessed'
    })
  })
  fake.add('evidences', { name: 'Security policy' })
}

async function ensureTopics(brokers: string[], topics: string[]): Promise<void> {
  const admin = new Admin(clientOptions({ brokers, clientId: 'conveyor-demo' }))
  try {
    const existing = new Set(await admin.listTopics())
    const missing = topics.filter((t) => !existing.has(t))
    if (missing.length > 0) await admin.createTopics({ topics: missing, partitions: 3, replicas: 1 })
  } finally {
    await admin.close()
  }
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'start a broker, registry, fake API, the dispatcher and sample commands (npm start)',
  async run(argv, io) {
    const { values } = parseArgs({
      args: argv,
      options: {
        limit: { type: 'string' },
        interval: { type: 'string', default: '1000' },
        port: { type: 'string', default: '8080' },
        'registry-port': { type: 'string', default: '8081' },
        'api-port': { type: 'string', default: '8000' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (values.help) {
      io.out(demoUsage)
      return 0
    }
    return runDemo(
      {
        limit: values.limit === undefined ? undefined : integerOption(values.limit, '--limit', { min: 0 }),
        interval: integerOption(values.interval, '--interval', { min: 0 }),
        port: integerOption(values.port, '--port', { min: 0 }),
        registryPort: integerOption(values['registry-port'], '--registry-port', { min: 0 }),
        apiPort: integerOption(values['api-port'], '--api-port', { min: 0 })
      },
      io
    )
  }
}

async function runDemo(
  options: {
    limit: number | undefined
    interval: number
    port: number
    registryPort: number
    apiPort: number
  },
  io: CommandIO
): Promise<number> {
  const say = (line: string) => io.out(line)
  const kafka = await new LocalKafka({ log: (line) => io.err(line) }).up()
  const brokers = kafka.bootstrap
  // What has started so far, stopped again when a later part cannot start (a port in use):
  // the command then ends with its one-line reason instead of hanging on open servers.
  const started: Array<() => Promise<void>> = []
  const start = async <T>(part: Promise<T>, stop: (value: T) => Promise<void>): Promise<T> => {
    const value = await part
    started.unshift(() => stop(value))
    return value
  }
  let registryUrl: string
  let fake: FakeCisoAssistant | undefined
  let dispatcher: Awaited<ReturnType<typeof runDispatcher>>
  let file: string
  const realApi = process.env.API_URL
  try {
    const registry = new EmbeddedRegistry({
      connection: { brokers, clientId: 'conveyor-demo-registry' },
      topic: '_schemas',
      port: options.registryPort
    })
    registryUrl = await start(registry.start(), () => registry.stop())
    say(`schema registry: ${registryUrl}`)
    if (!realApi) {
      fake = await start(
        new FakeCisoAssistant({ port: options.apiPort, tokens: ['demo-token'] }).start(),
        (f) => f.stop()
      )
      seedDemoData(fake)
      say(
        `fake CISO Assistant API: ${fake.url} (token demo-token; set API_URL and USER_TOKEN for a real one)`
      )
    } else say(`CISO Assistant API: ${realApi}`)
    await ensureTopics(brokers, ['observation', 'observation.dlq'])

    const config = {
      kafka: { brokers },
      registry: { url: registryUrl },
      http: { port: options.port, host: '127.0.0.1' },
      log: { level: 'warn', pretty: true },
      dispatcher: { topic: 'observation', groupId: 'conveyor-dispatcher-demo' },
      api: { url: fake?.url ?? realApi, ...(fake ? { token: 'demo-token' } : {}) }
    }
    file = join(mkdtempSync(join(tmpdir(), 'conveyor-demo-')), 'dispatcher.json')
    writeFileSync(file, JSON.stringify(config, null, 2))
    dispatcher = await runDispatcher(await loadDispatcherConfig({ file }))
  } catch (error) {
    for (const stop of started) await stop().catch(() => {})
    throw error
  }
  say(`dispatcher: ${dispatcher.url}/status  (health: /health/ready, metrics: /metrics; config ${file})`)

  const pending = new Map<string, { n: number; type: string; planted: boolean; sentAt: number }>()
  const outcomes = { done: 0, deadLettered: 0, unexpected: 0 }
  const onHandled = (event: unknown) => {
    const { groupId, record, outcome } = event as MessageHandledEvent
    if (groupId !== 'conveyor-dispatcher-demo') return
    const sent = pending.get(`${record.partition}:${record.offset}`)
    if (!sent) return
    pending.delete(`${record.partition}:${record.offset}`)
    const took = Date.now() - sent.sentAt
    if (outcome === 'processed') {
      outcomes.done += 1
      if (sent.planted) outcomes.unexpected += 1
      say(`  ✓ #${sent.n} ${sent.type} carried out (${took} ms)`)
    } else {
      outcomes.deadLettered += 1
      if (!sent.planted) outcomes.unexpected += 1
      say(
        `  ✗ #${sent.n} ${sent.type} dead-lettered to observation.dlq${sent.planted ? ' (planted: no such control)' : ''}`
      )
    }
  }
  subscribe(Channels.messageHandled, onHandled)

  const transport = new KafkaTransport({ connection: { brokers, clientId: 'conveyor-demo-producer' } })
  const catalog = loadCatalog(builtInCatalog)
  const avro = new ConveyorProducer({
    transport,
    topic: 'observation',
    codec: new CommandCodec({ registry: new SchemaRegistryClient({ url: registryUrl }), catalog })
  })
  const json = new ConveyorProducer({ transport, topic: 'observation' })
  let stopping = false
  const sender = (async () => {
    for (let n = 0; !stopping && (options.limit === undefined || n < options.limit); n += 1) {
      const sample = sampleCommand(n)
      const type = sample.command.message_type as string
      const position = await (sample.json ? json : avro).send(type, sample.command, { key: sample.key })
      pending.set(`${position.partition}:${position.offset}`, {
        n,
        type,
        planted: sample.planted === true,
        sentAt: Date.now()
      })
      say(
        `→ #${n} ${type} ${JSON.stringify(sample.command.selector)} (${sample.json ? 'JSON' : 'Avro'}, key ${sample.key})`
      )
      await new Promise((resolve) => setTimeout(resolve, options.interval))
    }
  })()

  const shutdown = async () => {
    stopping = true
    await sender.catch(() => {})
    unsubscribe(Channels.messageHandled, onHandled)
    await avro.close()
    await json.close()
    await transport.close()
    await dispatcher.stop()
    for (const stop of started) await stop()
  }

  if (options.limit === undefined) {
    await new Promise<void>((resolve) =>
      stopOnSignals([
        {
          stop: async () => {
            await shutdown()
            say('stopped (the broker keeps running: npm run kafka -- down)')
            resolve()
          }
        }
      ])
    )
    return 0
  }
  await sender
  const deadline = Date.now() + 120_000
  while (pending.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  const expectedDead = Array.from({ length: options.limit }, (_, n) => sampleCommand(n)).filter(
    (s) => s.planted
  ).length
  say(
    `${options.limit} commands: ${outcomes.done} carried out, ${outcomes.deadLettered} dead-lettered (${expectedDead} planted), ${pending.size} unfinished`
  )
  await shutdown()
  return pending.size === 0 && outcomes.unexpected === 0 && outcomes.deadLettered === expectedDead ? 0 : 1
}
