/**
 * The relations replicator as a service: Debezium change events with relationships to add
 * and remove, applied in order and exactly once to a PostgreSQL relations table (the
 * positions in the same transaction), with the service's health (probe files included),
 * metrics, logs and `/status`. PostgreSQL is checked in the background: while it does not
 * answer, readiness is off (liveness stays).
 */

import { ConveyorError, ErrorCodes } from '../../src/core/errors.ts'
import { createLogger } from '../../src/instrumentation/logging.ts'
import { postgresSink, type SqlPool } from '../../src/replicator/postgres.ts'
import { createReplicator, type Replicator } from '../../src/replicator/replicator.ts'
import type { FencedSink, SkipRequests } from '../../src/replicator/sink.ts'
import { resolveSecret } from '../../src/service/config.ts'
import { type RunningService, runService } from '../../src/service/run.ts'
import type { LoadedReplicatorConfig } from './config.ts'
import { grpcRelationsSink } from './grpc-sink.ts'
import { replicatorMetrics } from './metrics.ts'
import { decodeRelationsEvent, type RelationsChange } from './relations.ts'
import { applyRelations, migrateRelations } from './relations-store.ts'

export interface RunningReplicator extends RunningService {
  replicator: Replicator<RelationsChange, unknown> | undefined
}

/** Where the relations go, and what the service watches and closes for it. */
interface Backend {
  sink: FencedSink<RelationsChange, unknown>
  skips?: SkipRequests
  healthChecks: Record<string, () => string[]>
  close(): Promise<void>
}

/** The PostgreSQL relations table, positions in the same transactions: exactly once. */
async function postgresBackend({ config, sources }: LoadedReplicatorConfig): Promise<Backend> {
  const settings = config.replicator
  const pool = await openPool({ config, sources }, config.postgres.poolSize)
  const sink = postgresSink<RelationsChange>({
    pool,
    groupId: settings.groupId,
    table: settings.positionsTable,
    skipsTable: settings.skipsTable,
    apply: applyRelations(settings.relationsTable)
  })
  try {
    if (settings.migrate) {
      await sink.migrate()
      const client = await pool.connect()
      try {
        await migrateRelations(client, settings.relationsTable)
      } finally {
        client.release()
      }
    }
  } catch (error) {
    await pool.end()
    throw error
  }
  const database = new DatabaseCheck(pool, config.postgres.checkInterval)
  await database.check()
  return {
    sink: sink as FencedSink<RelationsChange, unknown>,
    skips: sink.skips,
    healthChecks: { postgres: () => database.problems() },
    close: async () => {
      database.stop()
      await pool.end()
    }
  }
}

/** A relations API over gRPC, a lock per partition: effectively once (see grpc-sink.ts). */
async function relationsApiBackend({ config }: LoadedReplicatorConfig): Promise<Backend> {
  const api = config.relationsApi
  const sink = await grpcRelationsSink({
    address: api.address,
    groupId: config.replicator.groupId,
    timeout: api.timeout,
    tls: api.tls
  })
  return {
    sink: sink as FencedSink<RelationsChange, unknown>,
    healthChecks: {},
    close: async () => sink.close()
  }
}

type PgPool = InstanceType<PgModule['default']['Pool']>

interface PgModule {
  default: {
    Pool: new (
      options: Record<string, unknown>
    ) => SqlPool & { end(): Promise<void>; on(event: 'error', listener: () => void): unknown }
  }
}

/** node-postgres, which the replicator needs and the rest of Conveyor does not. */
async function loadPg(): Promise<PgModule['default']> {
  try {
    return ((await import('pg')) as unknown as PgModule).default
  } catch (error) {
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      'the replicator needs the pg package: npm install pg',
      {
        cause: error,
        path: 'postgres'
      }
    )
  }
}

/** A pool on the configured database (`postgres.url`), `max` sessions at most. */
export async function openPool(
  { config, sources }: Pick<LoadedReplicatorConfig, 'config' | 'sources'>,
  max: number
): Promise<PgPool> {
  const { Pool } = await loadPg()
  const pool = new Pool({
    connectionString: resolveSecret(config.postgres.url, 'postgres.url', sources),
    max,
    connectionTimeoutMillis: 10_000
  })
  pool.on('error', () => {}) // an idle session lost; the next query reports it
  return pool
}

/** Asks the database `SELECT 1` every `interval` ms; its problems while it does not answer. */
class DatabaseCheck {
  #problem: string | undefined
  readonly #timer: NodeJS.Timeout
  readonly #pool: SqlPool

  constructor(pool: SqlPool, interval: number) {
    this.#pool = pool
    this.#timer = setInterval(() => void this.check(), interval)
    this.#timer.unref()
  }

  async check(): Promise<void> {
    try {
      const client = await this.#pool.connect()
      try {
        await client.query('SELECT 1')
        client.release()
      } catch (error) {
        client.release(error as Error)
        throw error
      }
      this.#problem = undefined
    } catch (error) {
      this.#problem = `PostgreSQL does not answer: ${(error as Error).message}`
    }
  }

  problems(): string[] {
    return this.#problem === undefined ? [] : [this.#problem]
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}

export async function runRelationsReplicator(loaded: LoadedReplicatorConfig): Promise<RunningReplicator> {
  const { config, secretPaths } = loaded
  const settings = config.replicator
  const logger = createLogger({ level: config.log.level, pretty: config.log.pretty, redact: secretPaths })
  if (!settings.enabled) {
    logger.info('the replicator is disabled (replicator.enabled / KAFKA_ENABLED is false): nothing to do')
    return { url: '', replicator: undefined, stop: async () => {}, stopped: Promise.resolve() }
  }
  const backend = settings.sink === 'grpc' ? await relationsApiBackend(loaded) : await postgresBackend(loaded)
  let replicator: Replicator<RelationsChange, unknown> | undefined
  let stopMetrics = () => {}
  const service = await runService(loaded, {
    metrics: (registry) => {
      stopMetrics = replicatorMetrics(registry, settings.groupId, settings.metricNames)
    },
    members: (transport) => {
      replicator = createReplicator({
        transport,
        groupId: settings.groupId,
        topics: [settings.topic],
        sink: backend.sink,
        decode: decodeRelationsEvent,
        retry: settings.retry,
        batch: settings.batch,
        concurrency: settings.concurrency,
        onInvalid: settings.onInvalid,
        ...(backend.skips ? { skips: backend.skips } : {}),
        ...(settings.deadLetterTopic ? { deadLetterTopic: () => settings.deadLetterTopic! } : {})
      })
      const running = replicator
      return [
        {
          groupId: settings.groupId,
          topics: [settings.topic],
          start: () => running.start(),
          stop: () => running.stop(),
          status: () => running.status()
        }
      ]
    },
    healthChecks: backend.healthChecks,
    onStop: async () => {
      stopMetrics()
      await backend.close()
    }
  }).catch(async (error) => {
    stopMetrics()
    await backend.close()
    throw error
  })
  logger.info(
    { url: service.url, topic: settings.topic, group: settings.groupId, relations: settings.relationsTable },
    'replicator started'
  )
  return { ...service, replicator }
}
