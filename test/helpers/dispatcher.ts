import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { CommandCodec } from '../../apps/dispatcher/commands.ts'
import { loadDispatcherConfig } from '../../apps/dispatcher/config.ts'
import { runDispatcher } from '../../apps/dispatcher/dispatcher.ts'
import { FakeCisoAssistant, type FakeOptions } from '../../apps/dispatcher/fake-ciso-assistant.ts'
import { DeadLetterHeaders } from '../../src/dead-letter/record.ts'
import { KafkaTransport } from '../../src/kafka/transport.ts'
import { ConveyorProducer } from '../../src/producer/producer.ts'
import { loadCatalog } from '../../src/schema/catalog.ts'
import {
  cleanup,
  deleteTopicsAtEnd,
  readAll,
  testConnection,
  useGroup,
  useProducer,
  useTopic
} from './kafka.ts'
import { useRegistry } from './registry.ts'

export const commandCatalog = loadCatalog(new URL('../../schemas/commands', import.meta.url).pathname)

export interface DispatcherTestOptions {
  fake?: FakeOptions
  /** Merged into the config file (JSON). */
  config?: Record<string, unknown>
  partitions?: number
  env?: Record<string, string>
}

/**
 * A fake CISO Assistant, an embedded registry, a fresh `observation`-like topic and a
 * dispatcher consuming it in this process (log level silent), all stopped at the end.
 */
export async function useDispatcher(t: TestContext, options: DispatcherTestOptions = {}) {
  const fake = await new FakeCisoAssistant(options.fake).start()
  cleanup(t, () => fake.stop())
  const { url: registryUrl, client: registry } = await useRegistry(t)
  const topic = await useTopic(t, { partitions: options.partitions ?? 3 })
  const deadLetterTopic = `${topic}.dlq`
  deleteTopicsAtEnd(t, [deadLetterTopic])
  const groupId = useGroup(t)
  const file = join(mkdtempSync(join(tmpdir(), 'dispatcher-')), 'dispatcher.json')
  const config = {
    kafka: { brokers: testConnection().brokers },
    registry: { url: registryUrl },
    http: { port: 0, host: '127.0.0.1' },
    log: { level: 'silent' },
    metrics: { lagInterval: 60_000 },
    dispatcher: {
      topic,
      groupId,
      schemas: new URL('../../schemas/commands', import.meta.url).pathname,
      retry: { retries: 2, initialDelay: 100, multiplier: 2, maxDelay: 1_000 }
    },
    api: {
      url: fake.url,
      token: 'demo-token',
      timeout: 5_000,
      retries: 2,
      backoff: { initialDelay: 20, multiplier: 2, maxDelay: 200 }
    }
  }
  for (const [section, value] of Object.entries(options.config ?? {})) {
    const base = (config as Record<string, unknown>)[section]
    ;(config as Record<string, unknown>)[section] =
      typeof base === 'object' && base !== null ? { ...(base as object), ...(value as object) } : value
  }
  writeFileSync(file, JSON.stringify(config))
  const loaded = await loadDispatcherConfig({ file, env: options.env ?? {} })
  const dispatcher = await runDispatcher(loaded)
  cleanup(t, () => dispatcher.stop())

  const transport = new KafkaTransport({ connection: testConnection() })
  cleanup(t, () => transport.close())
  const avro = new ConveyorProducer({
    transport,
    topic,
    codec: new CommandCodec({ registry, catalog: commandCatalog })
  })
  const raw = useProducer(t)
  const publisher = transport.publisher()

  return {
    fake,
    dispatcher,
    topic,
    deadLetterTopic,
    groupId,
    registry,
    /** Sends a command Avro-encoded through the registry (the default) or as JSON text. */
    async send(
      command: Record<string, unknown>,
      { key = null, json = false }: { key?: string | null; json?: boolean } = {}
    ) {
      if (json) {
        await raw.send({ messages: [{ topic, key: key ?? undefined, value: JSON.stringify(command) }] })
        return
      }
      await avro.send(command.message_type as string, command, { key })
    },
    /** Sends raw bytes (for undecodable input). */
    async sendRaw(value: string | Buffer, key?: string) {
      await publisher.send([
        {
          topic,
          key: key === undefined ? null : Buffer.from(key),
          value: Buffer.from(value),
          headers: new Map()
        }
      ])
    },
    /** The first `count` DLQ records with their `dlq_*` headers as text. */
    async deadLetters(count: number, timeout = 30_000) {
      const records = await readAll(t, deadLetterTopic, count, timeout)
      return records.map((r) => ({
        value: r.value,
        reason: r.headers.get(DeadLetterHeaders.reason)?.toString(),
        error: r.headers.get(DeadLetterHeaders.errorMessage)?.toString(),
        errorClass: r.headers.get(DeadLetterHeaders.errorClass)?.toString(),
        attempts: Number(r.headers.get(DeadLetterHeaders.attempts)?.toString())
      }))
    }
  }
}
