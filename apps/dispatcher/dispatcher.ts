/**
 * The command dispatcher: a Conveyor service that consumes commands from `observation`,
 * decodes them (Avro through the registry, or JSON), and carries each out on a REST API
 * through the operation its `message_type` maps to. Failures follow the API client's
 * classes: transient ones are retried (per call, then per command) and finally
 * dead-lettered; refusals are dead-lettered at once with the API's answer; refused
 * credentials and outages make commands wait, uncommitted, and turn readiness off.
 */
import { readFileSync } from 'node:fs'
import { Counter } from 'prom-client'
import { createLogger } from '../../src/instrumentation/logging.ts'
import { bounded } from '../../src/retry/policy.ts'
import type { Routes } from '../../src/routing/routes.ts'
import { loadCatalog, registerCatalog } from '../../src/schema/catalog.ts'
import { resolveSecret } from '../../src/service/config.ts'
import { type RunningService, registryClientFor, runService } from '../../src/service/run.ts'
import { ApiClient } from './api-client.ts'
import { CommandCodec } from './commands.ts'
import { type LoadedDispatcherConfig, tokenReader } from './config.ts'
import { KeyedLock, type Operation, operationHandler, profiles } from './operations.ts'
import { S3Reader } from './s3.ts'

export interface RunningDispatcher extends RunningService {
  api: ApiClient
  /** The message types it handles, and their operations. */
  operations: Record<string, Operation>
}

/** Subject of a command type's schemas: `<topic>-<record full name>` (the topic-record strategy). */
export function commandSubject(topic: string, schemaSource: string): string {
  const schema = JSON.parse(schemaSource) as { name: string; namespace?: string }
  return `${topic}-${schema.name.includes('.') || !schema.namespace ? schema.name : `${schema.namespace}.${schema.name}`}`
}

export async function runDispatcher(loaded: LoadedDispatcherConfig): Promise<RunningDispatcher> {
  const { config, sources, secretPaths } = loaded
  const settings = config.dispatcher
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty, redact: secretPaths })
  const profile = settings.profile === 'none' ? undefined : profiles[settings.profile]
  let callRetries: Counter | undefined
  const operations = { ...profile?.operations, ...settings.operations }
  const api = new ApiClient({
    url: config.api.url,
    token: tokenReader(config.api, sources),
    authScheme: config.api.authScheme,
    timeout: config.api.timeout,
    retries: config.api.retries,
    backoff: config.api.backoff,
    probeBackoff: config.api.probeBackoff,
    outageThreshold: config.api.outageThreshold,
    verifyCertificate: config.api.verifyCertificate,
    ...(config.api.caFile ? { ca: readFileSync(config.api.caFile) } : {}),
    ...((config.api.probePath ?? profile?.probePath) !== undefined
      ? { probePath: config.api.probePath ?? profile!.probePath }
      : {}),
    logger: logger.child({ component: 'api' }),
    onRetry: (retry) => callRetries?.inc({ method: retry.method, reason: retry.reason })
  })
  const s3 = config.s3
    ? new S3Reader({
        url: config.s3.url,
        region: config.s3.region,
        accessKey: resolveSecret(config.s3.accessKey, 's3.accessKey', sources)!,
        secretKey: resolveSecret(config.s3.secretKey, 's3.secretKey', sources)!
      })
    : undefined
  const catalog = loadCatalog(settings.schemas)
  const registry = registryClientFor(config, sources)
  if (registry && settings.registerSchemas) {
    const types = Object.keys(operations).filter((type) => catalog.has(type))
    await registerCatalog(registry, catalog, types, (type) =>
      commandSubject(settings.topic, catalog.get(type)!.at(-1)!.source)
    )
  }
  const deps = { api, locks: new KeyedLock(), ...(s3 ? { s3 } : {}) }
  const retry = bounded({ ...settings.retry })
  const routes: Routes = Object.fromEntries(
    Object.entries(operations).map(([type, operation]) => [
      type,
      {
        handler: operationHandler(operation, deps),
        retry,
        ...(settings.deadLetterTopic ? { deadLetterTopic: settings.deadLetterTopic } : {})
      }
    ])
  )
  const service = await runService(
    {
      ...loaded,
      config: {
        ...config,
        consumers: [
          ...config.consumers,
          {
            groupId: settings.groupId,
            topics: [settings.topic],
            ordering: settings.ordering,
            concurrency: settings.concurrency,
            codec: new CommandCodec({
              catalog,
              logger: logger.child({ component: 'commands' }),
              ...(registry ? { registry } : {})
            }),
            routes
          }
        ]
      }
    },
    {
      healthChecks: { api: () => api.problems() },
      status: () => ({ api: api.availability() }),
      metrics: (registry) => {
        callRetries = new Counter({
          name: 'conveyor_api_call_retries_total',
          help: 'API calls that failed transiently and are repeated (up to api.retries per call), by method and reason.',
          labelNames: ['method', 'reason'],
          registers: [registry]
        })
      },
      onStopping: () => api.stopWaiting(),
      onStop: () => api.close()
    }
  ).catch(async (error) => {
    await api.close()
    throw error
  })
  logger.info(
    { url: service.url, api: api.url.href, topic: settings.topic, types: Object.keys(operations) },
    'dispatcher started'
  )
  return { ...service, api, operations }
}
