/**
 * The dispatcher's configuration: the service's (kafka, registry, http, log, health) plus
 * `dispatcher`, `api` and `s3`. The environment variables of the original CISO Assistant
 * dispatcher (API_URL, USER_TOKEN, BOOTSTRAP_SERVERS, ERRORS_TOPIC, S3_URL …) work as they did.
 */
import { join } from 'node:path'
import type { Ordering } from '../../src/consumer/consumer.ts'
import {
  type ConfigExtension,
  type LoadedConfig,
  loadConfig,
  resolveSecret,
  type Secret,
  type Sources
} from '../../src/service/config.ts'
import { splitList } from '../../src/util/list.ts'
import { packageRoot } from '../../src/util/package-root.ts'
import type { Backoff } from './api-client.ts'
import { type Operation, profiles } from './operations.ts'

export interface DispatcherSection {
  /** The topic commands arrive on. Default `observation`. */
  topic: string
  groupId: string
  /** Default `<topic>.dlq`. */
  deadLetterTopic?: string
  ordering: Ordering
  concurrency: number
  /** Built-in operations: `ciso-assistant` (default) or `none`. */
  profile: string
  /** Message type → operation, added to (or replacing) the profile's. */
  operations?: Record<string, Operation>
  /** The schema catalog of the commands. Default: Conveyor's `schemas/commands/`. */
  schemas: string
  /** Register the catalog's schemas in the registry at start-up. Default true. */
  registerSchemas: boolean
  /** Retries of a whole command after its calls' own retries failed, then the DLQ. */
  retry: { retries: number; initialDelay: number; multiplier: number; maxDelay: number }
}

export interface ApiSection {
  url: string
  token?: Secret
  /** Call the API without a token (refused by profiles whose API always needs one). Default false. */
  anonymous: boolean
  authScheme: string
  timeout: number
  /** Retries of one HTTP call after a transient failure. */
  retries: number
  backoff: Backoff
  probePath?: string
  /** Delays between probe calls while the API is closed. */
  probeBackoff: Backoff
  outageThreshold: number
  verifyCertificate: boolean
  caFile?: string
}

export interface S3Section {
  url: string
  accessKey: Secret
  secretKey: Secret
  region: string
}

export interface DispatcherConfig {
  dispatcher: DispatcherSection
  api: ApiSection
  s3?: S3Section
}

/** The catalog shipped with Conveyor: `schemas/commands/`. */
export const builtInCatalog = join(packageRoot(import.meta.url), 'schemas', 'commands')

const bool = (value: string) => /^(1|true|yes|on)$/i.test(value.trim())
const withScheme = (value: string) => (/^https?:\/\//.test(value) ? value : `http://${value}`)

export const dispatcherDefaults: DispatcherConfig = {
  dispatcher: {
    topic: 'observation',
    groupId: 'conveyor-dispatcher',
    ordering: 'key',
    concurrency: 16,
    profile: 'ciso-assistant',
    schemas: builtInCatalog,
    registerSchemas: true,
    retry: { retries: 3, initialDelay: 1_000, multiplier: 2, maxDelay: 30_000 }
  },
  api: {
    url: 'http://localhost:8000/api',
    anonymous: false,
    authScheme: 'Token',
    timeout: 30_000,
    retries: 3,
    backoff: { initialDelay: 500, multiplier: 2, maxDelay: 10_000 },
    probeBackoff: { initialDelay: 1_000, multiplier: 2, maxDelay: 30_000 },
    outageThreshold: 5,
    verifyCertificate: true
  }
}

/** Every environment variable the dispatcher reads, with the setting it sets. */
export const dispatcherEnv: ConfigExtension['env'] = {
  API_URL: { path: 'api.url' },
  USER_TOKEN: { path: 'api.token' },
  API_TOKEN: { path: 'api.token' },
  API_TIMEOUT: { path: 'api.timeout', parse: Number },
  API_RETRIES: { path: 'api.retries', parse: Number },
  VERIFY_CERTIFICATE: { path: 'api.verifyCertificate', parse: bool },
  API_CA_FILE: { path: 'api.caFile' },
  MAX_RETRIES: { path: 'dispatcher.retry.retries', parse: Number },
  BOOTSTRAP_SERVERS: { path: 'kafka.brokers', parse: splitList },
  SCHEMA_REGISTRY_URL: { path: 'registry.url' },
  OBSERVATION_TOPIC: { path: 'dispatcher.topic' },
  ERRORS_TOPIC: { path: 'dispatcher.deadLetterTopic' },
  DISPATCHER_GROUP_ID: { path: 'dispatcher.groupId' },
  DISPATCHER_CONCURRENCY: { path: 'dispatcher.concurrency', parse: Number },
  DISPATCHER_PROFILE: { path: 'dispatcher.profile' },
  S3_URL: { path: 's3.url', parse: withScheme },
  S3_ACCESS_KEY: { path: 's3.accessKey' },
  S3_SECRET_KEY: { path: 's3.secretKey' },
  S3_REGION: { path: 's3.region' }
}

const isCount = (value: unknown) => Number.isInteger(value) && (value as number) >= 0
const isDelay = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value > 0

function validateOperation(operation: unknown, path: string, fail: (path: string, message: string) => never) {
  const op = operation as Record<string, unknown> | null
  if (typeof op !== 'object' || op === null) fail(path, 'must be an operation { kind, resource, … }')
  if (!['update', 'upload', 'link'].includes(op.kind as string))
    fail(`${path}.kind`, 'must be update, upload or link')
  if (typeof op.resource !== 'string' || !/^[\w-]+(\/[\w-]+)*$/.test(op.resource))
    fail(`${path}.resource`, 'must be a resource path such as applied-controls')
  if (op.kind === 'update') {
    if (op.method !== undefined && op.method !== 'PATCH' && op.method !== 'PUT')
      fail(`${path}.method`, 'must be PATCH or PUT')
    if (
      op.fields !== undefined &&
      (!Array.isArray(op.fields) || op.fields.some((f) => typeof f !== 'string'))
    )
      fail(`${path}.fields`, 'must list field names')
  }
  if (op.allowUnfiltered !== undefined && typeof op.allowUnfiltered !== 'boolean')
    fail(`${path}.allowUnfiltered`, 'must be true or false')
  if (op.allowUnfiltered !== undefined && op.kind === 'upload')
    fail(
      `${path}.allowUnfiltered`,
      'applies to update and link operations (an upload finds its object by name)'
    )
  if (op.kind === 'link') {
    if (typeof op.field !== 'string') fail(`${path}.field`, 'names the list field to add to (e.g. evidences)')
    const from = op.from as Record<string, unknown> | undefined
    if (typeof from?.resource !== 'string' || typeof from?.selectorField !== 'string')
      fail(`${path}.from`, 'must be { resource, selectorField }')
  }
  if (op.kind === 'upload' && op.link !== undefined) {
    const link = op.link as Record<string, unknown>
    if (
      typeof link.resource !== 'string' ||
      typeof link.field !== 'string' ||
      typeof link.selectorField !== 'string'
    )
      fail(`${path}.link`, 'must be { resource, field, selectorField }')
  }
}

export const dispatcherExtension: ConfigExtension = {
  defaults: dispatcherDefaults as unknown as Record<string, unknown>,
  env: dispatcherEnv,
  secrets: ['api.token', 's3.accessKey', 's3.secretKey'],
  consumersOptional: true,
  validate(raw, fail) {
    const { dispatcher, api, s3 } = raw as unknown as DispatcherConfig
    if (typeof dispatcher.topic !== 'string' || dispatcher.topic.length === 0)
      fail('dispatcher.topic', 'is required')
    if (typeof dispatcher.groupId !== 'string' || dispatcher.groupId.length === 0)
      fail('dispatcher.groupId', 'is required')
    if (!['partition', 'key', 'unordered'].includes(dispatcher.ordering))
      fail('dispatcher.ordering', 'must be partition, key or unordered')
    if (!Number.isInteger(dispatcher.concurrency) || dispatcher.concurrency < 1)
      fail('dispatcher.concurrency', 'must be an integer ≥ 1')
    if (dispatcher.profile !== 'none' && !(dispatcher.profile in profiles))
      fail('dispatcher.profile', `must be none or one of ${Object.keys(profiles).join(', ')}`)
    for (const [type, operation] of Object.entries(dispatcher.operations ?? {}))
      validateOperation(operation, `dispatcher.operations.${type}`, fail)
    if (!isCount(dispatcher.retry.retries)) fail('dispatcher.retry.retries', 'must be an integer ≥ 0')
    for (const key of ['initialDelay', 'maxDelay'] as const)
      if (!isDelay(dispatcher.retry[key])) fail(`dispatcher.retry.${key}`, 'must be a number of ms > 0')
    if (typeof api.url !== 'string' || !/^https?:\/\/[^/]+/.test(api.url))
      fail('api.url', `must be an http(s) URL, got ${JSON.stringify(api.url)}`)
    if (!isDelay(api.timeout)) fail('api.timeout', 'must be a number of ms > 0')
    if (!isCount(api.retries)) fail('api.retries', 'must be an integer ≥ 0')
    for (const key of ['backoff', 'probeBackoff'] as const) {
      const b = api[key]
      if (!isDelay(b?.initialDelay) || !isDelay(b?.maxDelay) || !(b.multiplier >= 1))
        fail(`api.${key}`, 'must be { initialDelay > 0, multiplier ≥ 1, maxDelay > 0 } (ms)')
    }
    if (!Number.isInteger(api.outageThreshold) || api.outageThreshold < 1)
      fail('api.outageThreshold', 'must be an integer ≥ 1')
    if (typeof api.verifyCertificate !== 'boolean') fail('api.verifyCertificate', 'must be true or false')
    if (typeof api.anonymous !== 'boolean') fail('api.anonymous', 'must be true or false')
    const profile = dispatcher.profile === 'none' ? undefined : profiles[dispatcher.profile]
    if (api.token === undefined && !api.anonymous)
      fail(
        'api.token',
        `is required: set api.token or USER_TOKEN${profile?.needsToken ? '' : ' (or api.anonymous: true for an API that needs none)'}`
      )
    if (api.anonymous && profile?.needsToken)
      fail('api.anonymous', `the ${profile.name} profile's API needs a token: set api.token or USER_TOKEN`)
    if (s3 !== undefined) {
      if (typeof s3.url !== 'string' || !/^https?:\/\/[^/]+/.test(s3.url))
        fail('s3.url', 'must be an http(s) URL')
      if (s3.accessKey === undefined) fail('s3.accessKey', 'is required with s3.url')
      if (s3.secretKey === undefined) fail('s3.secretKey', 'is required with s3.url')
      s3.region ??= 'us-east-1'
    }
  }
}

export type LoadedDispatcherConfig = LoadedConfig & { config: LoadedConfig['config'] & DispatcherConfig }

export async function loadDispatcherConfig(options: {
  file?: string
  env?: NodeJS.ProcessEnv
  flags?: Record<string, string | undefined>
}): Promise<LoadedDispatcherConfig> {
  return (await loadConfig({ ...options, extension: dispatcherExtension })) as LoadedDispatcherConfig
}

/** The token as a function: a `{ file }` secret is read again (at most once a second), so it can be renewed in place. */
export function tokenReader(config: ApiSection, sources: Sources): (() => string | undefined) | undefined {
  const token = config.token
  if (token === undefined) return undefined
  if (typeof token === 'object' && 'file' in token) {
    let cached: { value: string | undefined; at: number } | undefined
    return () => {
      if (!cached || Date.now() - cached.at > 1_000) {
        try {
          cached = { value: resolveSecret(token, 'api.token', sources), at: Date.now() }
        } catch {
          cached = { value: cached?.value, at: Date.now() } // mid-rename: keep the last token read
        }
      }
      return cached.value
    }
  }
  const value = resolveSecret(token, 'api.token', sources)
  return () => value
}
