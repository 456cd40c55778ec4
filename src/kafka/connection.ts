import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConnectionOptions as TlsOptions } from 'node:tls'
import { Admin, type BaseOptions } from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'

/** SASL mechanism of `KafkaConnection.sasl`. */
export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'

/** How Conveyor reaches a Kafka cluster; shared by consumers, producers and admin work. */
export interface KafkaConnection {
  /** Bootstrap addresses, `host:port`. */
  brokers: string[]
  /** Client id the brokers see (in their logs and quotas). Default `conveyor`. */
  clientId?: string
  /** SASL credentials; without them the client does not authenticate. */
  sasl?: { mechanism: SaslMechanism; username: string; password: string }
  /** `true` for TLS with the system's CAs, or the files of a private CA and a client certificate. */
  tls?: boolean | { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean }
  /** Milliseconds to establish a connection (TCP, TLS and SASL). */
  connectTimeout?: number
  /** Milliseconds to wait for a broker's answer to one request. */
  requestTimeout?: number
}

/**
 * The `@platformatic/kafka` options for a connection. Certificate files are read here,
 * once, so a missing file fails at start-up rather than at the first reconnect.
 */
export function clientOptions(connection: KafkaConnection): BaseOptions {
  if (connection.brokers.length === 0) {
    throw new ConveyorError(ErrorCodes.INVALID_OPTION, 'at least one broker address is needed', {
      path: 'brokers'
    })
  }
  const options: BaseOptions = {
    clientId: connection.clientId ?? 'conveyor',
    bootstrapBrokers: connection.brokers,
    connectTimeout: connection.connectTimeout ?? 10_000,
    requestTimeout: connection.requestTimeout ?? 30_000
  }
  const tls = tlsOptions(connection.tls)
  if (tls) options.tls = tls
  if (connection.sasl) options.sasl = { ...connection.sasl }
  return options
}

function tlsOptions(tls: KafkaConnection['tls']): TlsOptions | undefined {
  if (!tls) return undefined
  if (tls === true) return {}
  const read = (file: string, field: string) => {
    try {
      return readFileSync(file)
    } catch (error) {
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `cannot read ${field} "${file}"`, {
        cause: error,
        path: `tls.${field}`
      })
    }
  }
  const options: TlsOptions = {}
  if (tls.caFile) options.ca = read(tls.caFile, 'caFile')
  if (tls.certFile) options.cert = read(tls.certFile, 'certFile')
  if (tls.keyFile) options.key = read(tls.keyFile, 'keyFile')
  if (tls.rejectUnauthorized !== undefined) options.rejectUnauthorized = tls.rejectUnauthorized
  return options
}

/**
 * Turns a client error into a Conveyor error when the cause is one a caller must act
 * on: rejected credentials become `CONVEYOR_KAFKA_AUTHENTICATION` (not retryable: the
 * same credentials will be rejected again). Anything else is returned unchanged.
 */
export function translateKafkaError(error: unknown, connection: KafkaConnection): unknown {
  const authentication = findNested(error, (candidate) => candidate.code === 'PLT_KFK_AUTHENTICATION')
  if (authentication) {
    const who = connection.sasl
      ? `as "${connection.sasl.username}" with ${connection.sasl.mechanism}`
      : 'without SASL credentials'
    return new ConveyorError(
      ErrorCodes.KAFKA_AUTHENTICATION,
      `Kafka rejected the connection to ${connection.brokers.join(',')} ${who}: authentication failed, check the username and password`,
      { cause: error, retryable: false }
    )
  }
  return error
}

/** How long and how {@link verifyConnection} tries the brokers. */
export interface VerifyOptions {
  /** Keep trying unreachable brokers for this many milliseconds. Default 30 000. */
  timeout?: number
  /** First pause between attempts; doubles up to 2 s. */
  retryDelay?: number
  /** Stops the attempts (the promise rejects with the signal's reason). */
  signal?: AbortSignal
}

/**
 * Asks the cluster for its metadata and resolves with the brokers it advertises. Run at
 * start-up, before the long-lived clients: unreachable brokers are retried with backoff
 * until `timeout` (then `CONVEYOR_KAFKA_UNAVAILABLE`, retryable), but rejected
 * credentials fail at once with `CONVEYOR_KAFKA_AUTHENTICATION`. Conveyor classifies
 * the errors itself because `@platformatic/kafka` (2.12) reports an authentication
 * failure wrapped in a retryable network error and so retries it like an outage.
 */
export async function verifyConnection(
  connection: KafkaConnection,
  { timeout = 30_000, retryDelay = 250, signal }: VerifyOptions = {}
): Promise<string[]> {
  const deadline = Date.now() + timeout
  for (let attempt = 0; ; attempt++) {
    const admin = new Admin({ ...clientOptions(connection), retries: 0 })
    try {
      const metadata = await admin.metadata({ topics: [] })
      return [...metadata.brokers.values()].map((broker) => `${broker.host}:${broker.port}`)
    } catch (error) {
      const translated = translateKafkaError(error, connection)
      if (translated !== error) throw translated
      if (Date.now() >= deadline) {
        throw new ConveyorError(
          ErrorCodes.KAFKA_UNAVAILABLE,
          `no Kafka broker answered at ${connection.brokers.join(',')} within ${timeout} ms`,
          { cause: error, retryable: true }
        )
      }
    } finally {
      await admin.close().catch(() => {})
    }
    const pause = Math.min(retryDelay * 2 ** attempt, 2_000, Math.max(0, deadline - Date.now()))
    await sleep(pause, undefined, signal ? { signal } : undefined)
  }
}

/** Depth-first search through `errors` (AggregateError) and `cause` chains for an error matching `test`. */
function findNested(
  error: unknown,
  test: (candidate: Record<string, unknown>) => boolean,
  depth = 0
): unknown {
  if (typeof error !== 'object' || error === null || depth > 10) return undefined
  const candidate = error as Record<string, unknown>
  if (test(candidate)) return error
  if (Array.isArray(candidate.errors)) {
    for (const inner of candidate.errors) {
      const found = findNested(inner, test, depth + 1)
      if (found) return found
    }
  }
  return findNested(candidate.cause, test, depth + 1)
}

/** True when a client error, or one nested in it, carries the broker error `apiId` (e.g. TOPIC_ALREADY_EXISTS). */
export function hasApiId(error: unknown, apiId: string): boolean {
  return findNested(error, (candidate) => candidate.apiId === apiId) !== undefined
}

/**
 * The messages of the errors at the bottom of a client error's `errors` and `cause` tree
 * (what actually went wrong, e.g. `connect ECONNREFUSED 127.0.0.1:1` under `Listing topics
 * failed.`), distinct and in order; the error's own message when it wraps nothing.
 */
export function rootCauses(error: unknown): string[] {
  const found = new Set<string>()
  const visit = (candidate: unknown, depth: number) => {
    if (typeof candidate !== 'object' || candidate === null) {
      if (candidate !== undefined && candidate !== null) found.add(String(candidate))
      return
    }
    const record = candidate as { errors?: unknown; cause?: unknown; message?: unknown }
    const inner = [...(Array.isArray(record.errors) ? record.errors : []), record.cause].filter(
      (e) => e !== undefined && e !== null
    )
    if (inner.length === 0 || depth >= 10) {
      if (typeof record.message === 'string' && record.message.length > 0) found.add(record.message)
      return
    }
    for (const e of inner) visit(e, depth + 1)
  }
  visit(error, 0)
  return [...found]
}

/** True when a client error, or one nested in it, has the client error code `code` (e.g. PLT_KFK_AUTHENTICATION). */
export function hasErrorCode(error: unknown, code: string): boolean {
  return findNested(error, (candidate) => candidate.code === code) !== undefined
}
