import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Registry } from 'prom-client'
import type { Codec } from '../codec/json.ts'
import { type ConveyorConsumer, createConsumer } from '../consumer/consumer.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { createLogger, enableLogging } from '../instrumentation/logging.ts'
import { enableMetrics } from '../instrumentation/metrics.ts'
import { type KafkaConnection, verifyConnection } from '../kafka/connection.ts'
import { KafkaTransport } from '../kafka/transport.ts'
import { createProducer } from '../producer/producer.ts'
import type { Routes } from '../routing/routes.ts'
import { AvroCodec } from '../schema/avro-codec.ts'
import { SchemaRegistryClient } from '../schema/registry-client.ts'
import type { Transport } from '../transport/types.ts'
import { type LoadedConfig, resolveSecret } from './config.ts'
import { HealthMonitor } from './health.ts'
import { startServiceHttp } from './http.ts'
import { LagMonitor } from './lag-monitor.ts'

export interface RunningService {
  url: string
  /** Drains the consumers, then closes HTTP, health and the connection. */
  stop(): Promise<void>
  /** Resolves when the service has stopped. */
  stopped: Promise<void>
}

/** What an application built on the service adds to it. */
export interface ServiceExtras {
  /** Further readiness conditions: name → problems (empty when fine). */
  healthChecks?: Record<string, () => string[]>
  /** Added to `/status`. */
  status?: () => Record<string, unknown>
  /**
   * Runs as soon as a stop begins, before the consumers drain: end waits that cannot
   * finish (their messages stay uncommitted), so the stop does not sit out the drain timeout.
   */
  onStopping?: () => void
  /** Runs after the consumers have drained, before the connection closes. */
  onStop?: () => Promise<void>
  /** Adds the application's own metrics to the service's registry (served at `/metrics`). */
  metrics?: (registry: Registry) => void
  /**
   * Consumers the application makes itself (a replicator, say) on the service's transport:
   * started after the configured ones, watched by health, lag and `/status` like them, and
   * drained with them at stop.
   */
  members?: (transport: Transport) => ServiceMember[]
}

/** A consumer an application adds to a service (see `ServiceExtras.members`). */
export interface ServiceMember {
  groupId: string
  topics: string[]
  start(): Promise<void>
  stop(): Promise<void>
  status(): unknown
}

/** The registry client a configuration describes, or `undefined` without `registry`. */
export function registryClientFor(
  config: LoadedConfig['config'],
  sources: LoadedConfig['sources']
): SchemaRegistryClient | undefined {
  if (!config.registry) return undefined
  const auth =
    config.registry.token !== undefined
      ? { token: resolveSecret(config.registry.token, 'registry.token', sources)! }
      : config.registry.username !== undefined
        ? {
            username: config.registry.username,
            password: resolveSecret(config.registry.password, 'registry.password', sources) ?? ''
          }
        : undefined
  return new SchemaRegistryClient({ url: config.registry.url, ...(auth ? { auth } : {}) })
}

/**
 * Starts a service from its configuration: checks the broker (rejected credentials fail at
 * once), then starts logs, metrics, health, the HTTP endpoints and every consumer.
 */
export async function runService(
  { config, sources, secretPaths }: LoadedConfig,
  extras: ServiceExtras = {}
): Promise<RunningService> {
  const connection: KafkaConnection = {
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId ?? 'conveyor-service',
    ...(config.kafka.sasl
      ? {
          sasl: {
            mechanism: config.kafka.sasl.mechanism,
            username: config.kafka.sasl.username,
            password: resolveSecret(config.kafka.sasl.password, 'kafka.sasl.password', sources)!
          }
        }
      : {}),
    ...(config.kafka.tls ? { tls: config.kafka.tls } : {})
  }
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty, redact: secretPaths })
  await verifyConnection(connection, { timeout: 30_000 })
  const disableLogging = enableLogging({ logger, sampleEvery: config.log.sampleEvery })
  const metrics = enableMetrics()
  extras.metrics?.(metrics.registry)
  const members: ServiceMember[] = []
  const groups = () => [...config.consumers.map((c) => c.groupId), ...members.map((m) => m.groupId)]
  const health = new HealthMonitor({
    groups: config.consumers.map((c) => c.groupId),
    ...config.health,
    ...(extras.healthChecks ? { checks: extras.healthChecks } : {})
  }).start()
  const consumers: ConveyorConsumer[] = []
  const { url, server } = await startServiceHttp({
    port: config.http.port,
    host: config.http.host,
    health,
    metrics: metrics.registry,
    status: () => ({
      consumers: [...consumers.map((c) => c.status()), ...members.map((m) => m.status())],
      ...extras.status?.()
    })
  }).catch((error) => {
    // Nothing else has started: leave no timer or hook behind, so the process can exit.
    health.stop()
    metrics.disable()
    disableLogging()
    throw error
  })
  const transport = new KafkaTransport({
    connection,
    ...(config.producer?.compression ? { compression: config.producer.compression } : {})
  })
  const producer = config.producer
    ? createProducer({ transport, ...(config.producer.source ? { source: config.producer.source } : {}) })
    : undefined
  const registry = registryClientFor(config, sources)
  for (const [index, declared] of config.consumers.entries()) {
    const routes = declared.routes ?? (await loadRoutes(declared.handlers!, `consumers.${index}.handlers`))
    const codec: Codec | undefined =
      typeof declared.codec === 'object'
        ? declared.codec
        : declared.codec === 'avro'
          ? new AvroCodec({ registry: registry! })
          : undefined
    consumers.push(
      createConsumer({
        transport,
        groupId: declared.groupId,
        topics: declared.topics,
        routes,
        ...(producer ? { producer } : {}),
        ...(declared.ordering ? { ordering: declared.ordering } : {}),
        ...(declared.concurrency ? { concurrency: declared.concurrency } : {}),
        ...(codec ? { codec } : {})
      })
    )
  }
  members.push(...(extras.members?.(transport) ?? []))
  health.watch(members.map((m) => m.groupId))
  try {
    for (const consumer of consumers) await consumer.start()
    for (const member of members) await member.start()
  } catch (error) {
    // Leave nothing running behind a service that did not start.
    await Promise.allSettled([...consumers.map((c) => c.stop()), ...members.map((m) => m.stop())])
    await producer?.close().catch(() => {})
    health.stop()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await transport.close().catch(() => {})
    metrics.disable()
    disableLogging()
    throw error
  }
  const lag = new LagMonitor({
    connection,
    groups: groups(),
    registry: metrics.registry
  }).start()
  logger.info(
    {
      url,
      consumers: [...config.consumers, ...members].map((c) => ({ group: c.groupId, topics: c.topics })),
      brokers: connection.brokers
    },
    'service started'
  )

  let resolveStopped: () => void = () => {}
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve
  })
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      logger.info('service stopping')
      // The consumers mark themselves stopping at once (a handler failing from now on is
      // abandoned, never retried or dead-lettered); only then are the waits ended.
      const drained = Promise.allSettled([...consumers.map((c) => c.stop()), ...members.map((m) => m.stop())])
      extras.onStopping?.()
      for (const result of await drained)
        if (result.status === 'rejected')
          logger.error({ err: result.reason }, 'a consumer failed to stop cleanly')
      await lag.stop()
      await extras.onStop?.()
      await producer?.close()
      health.stop()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await transport.close()
      metrics.disable()
      logger.info('service stopped')
      disableLogging()
      resolveStopped()
    })()
    return stopping
  }
  return { url, stop, stopped }
}

async function loadRoutes(module: string, path: string): Promise<Routes> {
  const file = isAbsolute(module) ? module : resolve(module)
  const loaded = (await import(pathToFileURL(file).href)) as {
    routes?: Routes
    default?: { routes?: Routes }
  }
  const routes = loaded.routes ?? loaded.default?.routes
  if (!routes)
    throw new ConveyorError(ErrorCodes.INVALID_OPTION, `${path}: ${module} exports no \`routes\``, { path })
  return routes
}
