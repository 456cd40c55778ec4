/**
 * The relations replicator's configuration: the service's (kafka, http, log, health) plus
 * `replicator` and `postgres`. The environment variables of the seed team's consumer work
 * as they did: KAFKA_SERVERS, RBAC_KAFKA_CONSUMER_TOPIC, RBAC_KAFKA_CONSUMER_GROUP_ID,
 * KAFKA_ENABLED; and `--topic`.
 */
import { type ConfigExtension, type LoadedConfig, loadConfig, type Secret } from '../../src/service/config.ts'
import { splitList } from '../../src/util/list.ts'
import type { MetricNames } from './metrics.ts'

export interface ReplicatorSection {
  /** Off (KAFKA_ENABLED=false): the command says so and exits 0. Default true. */
  enabled: boolean
  /**
   * Where the relations go: `postgres` (default; the table, positions in the same
   * transaction: exactly once) or `grpc` (a relations API, a lock per partition: effectively once).
   */
  sink: 'postgres' | 'grpc'
  /** The topic of change events. Default `outbox.event.relations`. */
  topic: string
  groupId: string
  /** Default `<topic>.dlq`. */
  deadLetterTopic?: string
  /** Partitions applied at the same time. */
  concurrency: number
  /**
   * Consecutive events of a partition applied in one transaction: at most `maxSize`
   * (default 100; 1 for a transaction per event), waiting up to `maxWait` ms for that many
   * (default 0: what has arrived).
   */
  batch: { maxSize: number; maxWait: number }
  /** Failed writes are retried for ever: from `initialDelay`, doubling, to `maxDelay` (ms), with jitter. */
  retry: { initialDelay: number; maxDelay: number }
  /** Create the positions and relations tables at start when missing. Default true. */
  migrate: boolean
  /** The sink's positions table. Default `conveyor_offsets`. */
  positionsTable: string
  /** The relations table. Default `relations`. */
  relationsTable: string
  /**
   * An invalid event: `dead-letter` (default) it and go on, or `block` the partition at it
   * until `conveyor replicator skip` releases that one event (to the dead-letter topic).
   */
  onInvalid: 'dead-letter' | 'block'
  /** The table of skip requests (`onInvalid: block`). Default `conveyor_skips`. */
  skipsTable: string
  /** `rbac`: the replicator's metrics under the seed consumer's names (`rbac_kafka_consumer_*`). Default `conveyor`. */
  metricNames: MetricNames
}

export interface PostgresSection {
  /** A connection string (`postgres://user@host:5432/db`), a secret. */
  url: Secret
  /** Sessions at most. Default 10. */
  poolSize: number
  /** How often the service checks that PostgreSQL answers (readiness), ms. Default 30 000. */
  checkInterval: number
}

export interface RelationsApiSection {
  /** `host:port` of the relations API (`sink: grpc`). */
  address: string
  /** Deadline of each call, ms. Default 10 000. */
  timeout: number
  /** TLS with the system's CAs. Default false. */
  tls: boolean
}

export interface ReplicatorConfig {
  replicator: ReplicatorSection
  postgres: PostgresSection
  relationsApi: RelationsApiSection
}

const bool = (value: string) => /^(1|true|yes|on)$/i.test(value.trim())

export const replicatorDefaults: ReplicatorConfig = {
  replicator: {
    enabled: true,
    sink: 'postgres',
    topic: 'outbox.event.relations',
    groupId: 'conveyor-replicator',
    concurrency: 16,
    batch: { maxSize: 100, maxWait: 0 },
    retry: { initialDelay: 1_000, maxDelay: 300_000 },
    migrate: true,
    positionsTable: 'conveyor_offsets',
    relationsTable: 'relations',
    onInvalid: 'dead-letter',
    skipsTable: 'conveyor_skips',
    metricNames: 'conveyor'
  },
  postgres: { url: 'postgres://postgres@127.0.0.1:5432/postgres', poolSize: 10, checkInterval: 30_000 },
  relationsApi: { address: 'localhost:9000', timeout: 10_000, tls: false }
}

export const replicatorEnv: ConfigExtension['env'] = {
  KAFKA_SERVERS: { path: 'kafka.brokers', parse: splitList },
  KAFKA_ENABLED: { path: 'replicator.enabled', parse: bool },
  RBAC_KAFKA_CONSUMER_TOPIC: { path: 'replicator.topic' },
  RBAC_KAFKA_CONSUMER_GROUP_ID: { path: 'replicator.groupId' },
  REPLICATOR_DEAD_LETTER_TOPIC: { path: 'replicator.deadLetterTopic' },
  DATABASE_URL: { path: 'postgres.url' },
  REPLICATOR_METRIC_NAMES: { path: 'replicator.metricNames' },
  REPLICATOR_ON_INVALID: { path: 'replicator.onInvalid' },
  REPLICATOR_SINK: { path: 'replicator.sink' },
  REPLICATOR_BATCH_SIZE: { path: 'replicator.batch.maxSize', parse: Number },
  RELATION_API_SERVER: { path: 'relationsApi.address' }
}

const isDelay = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value > 0
const isTable = (value: unknown) => typeof value === 'string' && /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$/.test(value)

export const replicatorExtension: ConfigExtension = {
  defaults: {
    ...(replicatorDefaults as unknown as Record<string, unknown>),
    health: { livenessFile: '/tmp/kubernetes-liveness', readinessFile: '/tmp/kubernetes-readiness' }
  },
  env: replicatorEnv,
  flags: { topic: { path: 'replicator.topic' } },
  secrets: ['postgres.url'],
  consumersOptional: true,
  validate(raw, fail) {
    const { replicator, postgres, relationsApi } = raw as unknown as ReplicatorConfig
    if (!['postgres', 'grpc'].includes(replicator.sink)) fail('replicator.sink', 'must be postgres or grpc')
    if (replicator.sink === 'grpc') {
      if (typeof relationsApi.address !== 'string' || !/^[^\s:]+:\d+$/.test(relationsApi.address))
        fail('relationsApi.address', 'must be host:port')
      if (!isDelay(relationsApi.timeout)) fail('relationsApi.timeout', 'must be a number of ms > 0')
      if (replicator.onInvalid === 'block')
        fail('replicator.onInvalid', 'block keeps its skip requests in PostgreSQL: it needs sink: postgres')
    }
    if (typeof replicator.enabled !== 'boolean') fail('replicator.enabled', 'must be true or false')
    if (typeof replicator.topic !== 'string' || replicator.topic.length === 0)
      fail('replicator.topic', 'is required')
    if (typeof replicator.groupId !== 'string' || replicator.groupId.length === 0)
      fail('replicator.groupId', 'is required')
    if (!Number.isInteger(replicator.concurrency) || replicator.concurrency < 1)
      fail('replicator.concurrency', 'must be an integer ≥ 1')
    if (!Number.isInteger(replicator.batch?.maxSize) || replicator.batch.maxSize < 1)
      fail('replicator.batch.maxSize', 'must be an integer ≥ 1')
    if (typeof replicator.batch.maxWait !== 'number' || !(replicator.batch.maxWait >= 0))
      fail('replicator.batch.maxWait', 'must be a number of ms ≥ 0')
    for (const key of ['initialDelay', 'maxDelay'] as const)
      if (!isDelay(replicator.retry?.[key])) fail(`replicator.retry.${key}`, 'must be a number of ms > 0')
    if (replicator.retry.maxDelay < replicator.retry.initialDelay)
      fail('replicator.retry.maxDelay', 'must be at least replicator.retry.initialDelay')
    if (typeof replicator.migrate !== 'boolean') fail('replicator.migrate', 'must be true or false')
    if (!['dead-letter', 'block'].includes(replicator.onInvalid))
      fail('replicator.onInvalid', 'must be dead-letter or block')
    for (const key of ['positionsTable', 'relationsTable', 'skipsTable'] as const)
      if (!isTable(replicator[key]))
        fail(`replicator.${key}`, 'must be a table name, optionally schema.table')
    if (!['conveyor', 'rbac'].includes(replicator.metricNames))
      fail('replicator.metricNames', 'must be conveyor or rbac')
    if (postgres.url === undefined) fail('postgres.url', 'is required (or DATABASE_URL)')
    if (!Number.isInteger(postgres.poolSize) || postgres.poolSize < 1)
      fail('postgres.poolSize', 'must be an integer ≥ 1')
    if (!isDelay(postgres.checkInterval)) fail('postgres.checkInterval', 'must be a number of ms > 0')
  }
}

export type LoadedReplicatorConfig = LoadedConfig & { config: LoadedConfig['config'] & ReplicatorConfig }

export async function loadReplicatorConfig(options: {
  file?: string
  env?: NodeJS.ProcessEnv
  flags?: Record<string, string | undefined>
}): Promise<LoadedReplicatorConfig> {
  return (await loadConfig({ ...options, extension: replicatorExtension })) as LoadedReplicatorConfig
}
