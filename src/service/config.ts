/**
 * Service configuration: one file (TypeScript/JavaScript module, JSON or YAML), then
 * environment variables, then command-line flags, each overriding the one before.
 * Validated at start; an error names the field and where its value came from. Secrets
 * (`password`, `token`) may be given as `{ env: NAME }` or `{ file: PATH }` and are never
 * printed: their paths are added to the log redaction list.
 */
import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parse as parseYaml } from 'yaml'
import type { Codec } from '../codec/json.ts'
import type { Ordering } from '../consumer/consumer.ts'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { Routes } from '../routing/routes.ts'
import { splitList } from '../util/list.ts'

export type Secret = string | { env: string } | { file: string }

export interface ServiceConfig {
  kafka: {
    brokers: string[]
    clientId?: string
    sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: Secret }
    tls?: boolean | { caFile?: string; certFile?: string; keyFile?: string }
  }
  registry?: { url: string; username?: string; password?: Secret; token?: Secret }
  http: { port: number; host: string }
  log: { level: string; pretty?: boolean; sampleEvery: number; redact: string[] }
  health: { livenessFile?: string; readinessFile?: string; stallTimeout?: number }
  /** A producer handlers reach through `context.send` (idempotent, acks=all). */
  producer?: { compression?: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'; source?: string }
  /** How often consumer lag is measured for `/metrics`, ms. Default 15 000. */
  metrics?: { lagInterval?: number }
  consumers: Array<{
    groupId: string
    topics: string[]
    ordering?: Ordering
    concurrency?: number
    /** `json` (default), `avro` (through `registry`), or a codec object in a TS/JS config. */
    codec?: 'json' | 'avro' | Codec
    /** Routes: given in a TS/JS config, or loaded from this module's `routes` export. */
    routes?: Routes
    handlers?: string
  }>
}

/** Where each setting came from, for error messages: `file <path>`, `env NAME`, `flag --name`. */
export type Sources = Map<string, string>

/**
 * An application's own sections of the configuration (e.g. the command dispatcher's
 * `dispatcher`, `api`, `s3`): their defaults, environment variables, secrets and checks.
 */
export interface ConfigExtension {
  defaults: Record<string, unknown>
  env: Record<string, { path: string; parse?: (value: string) => unknown }>
  /** Paths of secrets (redacted from logs), e.g. `api.token`. */
  secrets: string[]
  /** Throw through `fail(path, message)`, which names where the value came from. */
  validate(config: Record<string, unknown>, fail: (path: string, message: string) => never): void
  /** Set when the application declares its consumers itself. */
  consumersOptional?: boolean
  /** The application's own command-line flags (without `--`), each setting a path. */
  flags?: Record<string, { path: string; parse?: (value: string) => unknown }>
}

export interface LoadedConfig {
  config: ServiceConfig
  sources: Sources
  /** Log redaction paths for every secret (never printed). */
  secretPaths: string[]
}

const envMap: Record<string, { path: string; parse?: (value: string) => unknown }> = {
  CONVEYOR_KAFKA_BROKERS: {
    path: 'kafka.brokers',
    parse: splitList
  },
  CONVEYOR_KAFKA_CLIENT_ID: { path: 'kafka.clientId' },
  CONVEYOR_KAFKA_SASL_MECHANISM: { path: 'kafka.sasl.mechanism' },
  CONVEYOR_KAFKA_SASL_USERNAME: { path: 'kafka.sasl.username' },
  CONVEYOR_KAFKA_SASL_PASSWORD: { path: 'kafka.sasl.password' },
  CONVEYOR_REGISTRY_URL: { path: 'registry.url' },
  CONVEYOR_HTTP_PORT: { path: 'http.port', parse: Number },
  CONVEYOR_LOG_LEVEL: { path: 'log.level' }
}

const flagMap: Record<string, { path: string; parse?: (value: string) => unknown }> = {
  brokers: {
    path: 'kafka.brokers',
    parse: splitList
  },
  port: { path: 'http.port', parse: Number },
  'log-level': { path: 'log.level' }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {}
    node = node[part] as Record<string, unknown>
  }
  node[parts.at(-1)!] = value
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype
  )
}

/** Nested objects merge key by key; everything else (arrays, secrets, codecs) is replaced. */
function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const current = target[key]
    if (isPlainObject(value) && isPlainObject(current) && !('env' in value) && !('file' in value)) {
      const copy = { ...current }
      mergeInto(copy, value)
      target[key] = copy
    } else target[key] = value
  }
}

function record(sources: Sources, value: unknown, path: string, source: string): void {
  if (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !('env' in value) &&
    !('file' in value)
  ) {
    for (const [key, inner] of Object.entries(value))
      record(sources, inner, path ? `${path}.${key}` : key, source)
  } else sources.set(path, source)
}

async function readFile(file: string): Promise<Record<string, unknown>> {
  const path = isAbsolute(file) ? file : resolve(file)
  if (/\.(ts|mts|js|mjs)$/.test(path)) {
    const module = (await import(pathToFileURL(path).href)) as { default?: unknown }
    return (module.default ?? module) as Record<string, unknown>
  }
  const text = readFileSync(path, 'utf8')
  return (path.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>
}

function fail(path: string, sources: Sources, message: string): never {
  const source = sources.get(path) ?? [...sources].find(([p]) => p.startsWith(`${path}.`))?.[1] ?? 'default'
  throw new ConveyorError(ErrorCodes.INVALID_OPTION, `${path} (from ${source}): ${message}`, { path })
}

/** Resolves a secret to its value (reads the env var or file); the value is never logged. */
export function resolveSecret(
  secret: Secret | undefined,
  path: string,
  sources: Sources
): string | undefined {
  if (secret === undefined) return undefined
  if (typeof secret === 'string') return secret
  if ('env' in secret) {
    const value = process.env[secret.env]
    if (value === undefined) fail(path, sources, `environment variable ${secret.env} is not set`)
    return value
  }
  try {
    return readFileSync(secret.file, 'utf8').trim()
  } catch {
    return fail(path, sources, `cannot read the secret file ${secret.file}`)
  }
}

export async function loadConfig({
  file,
  env = process.env,
  flags = {},
  extension
}: {
  file?: string
  env?: NodeJS.ProcessEnv
  flags?: Record<string, string | undefined>
  extension?: ConfigExtension
}): Promise<LoadedConfig> {
  const sources: Sources = new Map()
  const merged: Record<string, unknown> = {
    kafka: { brokers: ['127.0.0.1:9092'] },
    http: { port: 8080, host: '0.0.0.0' },
    log: { level: 'info', sampleEvery: 1, redact: [] },
    health: {},
    consumers: []
  }
  if (extension) mergeInto(merged, structuredClone(extension.defaults))
  record(sources, merged, '', 'default')
  if (file) {
    let fromFile: Record<string, unknown>
    try {
      fromFile = await readFile(file)
    } catch (error) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `cannot read the config file ${file}: ${(error as Error).message}`,
        { path: 'config', cause: error }
      )
    }
    mergeInto(merged, fromFile ?? {})
    record(sources, fromFile, '', `file ${file}`)
  }
  for (const [name, { path, parse }] of Object.entries({ ...envMap, ...extension?.env })) {
    const value = env[name]
    if (value === undefined) continue
    setPath(merged, path, parse ? parse(value) : value)
    sources.set(path, `env ${name}`)
  }
  for (const [name, { path, parse }] of Object.entries({ ...flagMap, ...extension?.flags })) {
    const value = flags[name]
    if (value === undefined) continue
    setPath(merged, path, parse ? parse(value) : value)
    sources.set(path, `flag --${name}`)
  }
  const config = merged as unknown as ServiceConfig
  validate(config, sources, extension?.consumersOptional ?? false)
  extension?.validate(merged, (path, message) => fail(path, sources, message))
  const secretPaths = [
    'kafka.sasl.password',
    'registry.password',
    'registry.token',
    ...(extension?.secrets ?? []),
    ...config.log.redact
  ]
  return { config, sources, secretPaths }
}

function validate(config: ServiceConfig, sources: Sources, consumersOptional: boolean): void {
  const { kafka, http, log, consumers } = config
  if (
    !Array.isArray(kafka?.brokers) ||
    kafka.brokers.length === 0 ||
    kafka.brokers.some((b) => !/^[^\s:]+:\d+$/.test(String(b)))
  ) {
    fail('kafka.brokers', sources, 'must list one or more host:port addresses')
  }
  if (kafka.sasl !== undefined) {
    if (!['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'].includes(kafka.sasl.mechanism)) {
      fail('kafka.sasl.mechanism', sources, 'must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512')
    }
    if (typeof kafka.sasl.username !== 'string' || kafka.sasl.username.length === 0)
      fail('kafka.sasl.username', sources, 'is required with SASL')
    if (kafka.sasl.password === undefined)
      fail('kafka.sasl.password', sources, 'is required with SASL (a string, { env } or { file })')
  }
  if (config.registry !== undefined && !/^https?:\/\/.+/.test(String(config.registry.url))) {
    fail('registry.url', sources, 'must be an http(s) URL')
  }
  if (
    config.producer?.compression !== undefined &&
    !['none', 'gzip', 'snappy', 'lz4', 'zstd'].includes(config.producer.compression)
  ) {
    fail('producer.compression', sources, 'must be none, gzip, snappy, lz4 or zstd')
  }
  if (!Number.isInteger(http.port) || http.port < 0 || http.port > 65_535)
    fail('http.port', sources, 'must be a port number (0–65535)')
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(log.level)) {
    fail('log.level', sources, 'must be fatal, error, warn, info, debug, trace or silent')
  }
  if (!Number.isInteger(log.sampleEvery) || log.sampleEvery < 1)
    fail('log.sampleEvery', sources, 'must be an integer ≥ 1')
  if (!Array.isArray(consumers) || (consumers.length === 0 && !consumersOptional))
    fail('consumers', sources, 'declare at least one consumer')
  consumers.forEach((consumer, index) => {
    const path = `consumers.${index}`
    if (typeof consumer.groupId !== 'string' || consumer.groupId.length === 0)
      fail(`${path}.groupId`, sources, 'is required')
    if (!Array.isArray(consumer.topics) || consumer.topics.length === 0)
      fail(`${path}.topics`, sources, 'must list at least one topic')
    if (consumer.routes === undefined && consumer.handlers === undefined) {
      fail(
        `${path}.handlers`,
        sources,
        'give routes (in a TypeScript config) or a handlers module exporting `routes`'
      )
    }
    if (
      consumer.codec !== undefined &&
      typeof consumer.codec !== 'object' &&
      !['json', 'avro'].includes(consumer.codec)
    )
      fail(`${path}.codec`, sources, 'must be json or avro')
    if (consumer.codec === 'avro' && config.registry === undefined)
      fail(`${path}.codec`, sources, 'avro needs a registry.url')
  })
}
