import { Admin } from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import {
  clientOptions,
  type KafkaConnection,
  rootCauses,
  type SaslMechanism,
  verifyConnection
} from '../kafka/connection.ts'
import { RegistryError, SchemaRegistryClient } from '../schema/registry-client.ts'
import { splitList } from '../util/list.ts'

/** The `--brokers` option every broker-facing command takes: `$KAFKA_BROKERS` or the local broker by default. */
export const brokersOption = {
  type: 'string',
  default: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092'
} as const

/** How long a command waits for a broker before it gives up, unless `--connect-timeout` says otherwise. */
export const defaultConnectTimeout = 10_000

/** The options of every broker-facing command, for `parseArgs`: `--brokers` and `--connect-timeout`. */
export const connectionOptions = {
  brokers: brokersOption,
  'connect-timeout': { type: 'string', default: String(defaultConnectTimeout) }
} as const

/** The `--help` lines of {@link connectionOptions}. */
export const connectionHelp = `  --brokers HOST:PORT,…   default $KAFKA_BROKERS or 127.0.0.1:9092
  --connect-timeout MS    give up when no broker answers within MS (default ${defaultConnectTimeout})`

/** The `--help` paragraph on the environment variables {@link connectionFor} reads. */
export const environmentHelp = `Environment, named as for \`conveyor run\`: CONVEYOR_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256
or SCRAM-SHA-512), CONVEYOR_KAFKA_SASL_USERNAME and CONVEYOR_KAFKA_SASL_PASSWORD for SASL;
CONVEYOR_KAFKA_TLS=true for TLS, CONVEYOR_KAFKA_TLS_CA_FILE for TLS with a private CA.`

/** The `--help` paragraph on exit codes, the same for every command. */
export const exitCodesHelp = `Exit codes: 0 done; 1 failed, with one line on stderr saying why (no broker answered,
credentials refused, no such topic, registry unreachable, invalid value, …); 2 usage error
(unknown option, missing argument).`

const mechanisms: readonly string[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']

/**
 * The connection a command opens, from its `--brokers` value and the environment: SASL
 * credentials from `CONVEYOR_KAFKA_SASL_MECHANISM`, `_USERNAME` and `_PASSWORD` (the
 * variables `conveyor run` reads), TLS from `CONVEYOR_KAFKA_TLS` and `CONVEYOR_KAFKA_TLS_CA_FILE`.
 */
export function connectionFor(
  brokers: string,
  command: string,
  { connectTimeout, env = process.env }: { connectTimeout?: number; env?: NodeJS.ProcessEnv } = {}
): KafkaConnection {
  const connection: KafkaConnection = {
    brokers: splitList(brokers),
    clientId: `conveyor-${command}`
  }
  if (connectTimeout !== undefined) connection.connectTimeout = connectTimeout
  const mechanism = env.CONVEYOR_KAFKA_SASL_MECHANISM
  const username = env.CONVEYOR_KAFKA_SASL_USERNAME
  const password = env.CONVEYOR_KAFKA_SASL_PASSWORD
  if (mechanism !== undefined || username !== undefined || password !== undefined) {
    const invalid = (variable: string, message: string): never => {
      throw new ConveyorError(ErrorCodes.INVALID_OPTION, `${variable} ${message}`, { path: variable })
    }
    if (mechanism === undefined || !mechanisms.includes(mechanism))
      invalid(
        'CONVEYOR_KAFKA_SASL_MECHANISM',
        mechanism === undefined
          ? 'is required with SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)'
          : `must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "${mechanism}"`
      )
    if (!username) invalid('CONVEYOR_KAFKA_SASL_USERNAME', 'is required with SASL')
    if (password === undefined) invalid('CONVEYOR_KAFKA_SASL_PASSWORD', 'is required with SASL')
    connection.sasl = { mechanism: mechanism as SaslMechanism, username: username!, password: password! }
  }
  const caFile = env.CONVEYOR_KAFKA_TLS_CA_FILE
  const tls = env.CONVEYOR_KAFKA_TLS ?? ''
  if (!['', 'true', 'false', '1', '0'].includes(tls)) {
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      `CONVEYOR_KAFKA_TLS must be true or false, got "${tls}"`,
      {
        path: 'CONVEYOR_KAFKA_TLS'
      }
    )
  }
  if (caFile) connection.tls = { caFile }
  else if (tls === 'true' || tls === '1') connection.tls = true
  return connection
}

/**
 * Opens the way to the cluster for a command: builds its connection from `--brokers`,
 * `--connect-timeout` and the environment, and checks that a broker answers before the
 * command starts its work. No answer within the timeout is `CONVEYOR_KAFKA_UNAVAILABLE`,
 * naming the brokers and the cause; refused credentials are `CONVEYOR_KAFKA_AUTHENTICATION`, at once.
 */
export async function connect(
  values: { brokers: string; 'connect-timeout': string },
  command: string
): Promise<KafkaConnection> {
  const timeout = integerOption(values['connect-timeout'], '--connect-timeout', { min: 1 })
  const connection = connectionFor(values.brokers, command, { connectTimeout: timeout })
  try {
    await verifyConnection(connection, { timeout })
  } catch (error) {
    if (error instanceof ConveyorError && error.code === ErrorCodes.KAFKA_UNAVAILABLE) {
      const causes = rootCauses(error.cause)
      throw new ConveyorError(
        error.code,
        causes.length > 0 ? `${error.message} (${causes.join('; ')})` : error.message,
        { cause: error, retryable: true }
      )
    }
    throw error
  }
  return connection
}

/** Fails with `topic <name> does not exist` unless the cluster has every one of `topics`. */
export async function requireTopics(connection: KafkaConnection, topics: string[]): Promise<void> {
  const admin = new Admin(clientOptions(connection))
  try {
    const existing = new Set(await admin.listTopics({ includeInternals: true }))
    const missing = topics.filter((topic) => !existing.has(topic))
    if (missing.length > 0) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        missing.length === 1
          ? `topic ${missing[0]} does not exist`
          : `topics ${missing.join(', ')} do not exist`,
        { path: 'topic' }
      )
    }
  } finally {
    await admin.close()
  }
}

/**
 * A client of the schema registry at `url`, once it has answered: a registry that cannot be
 * reached (or fails, 5xx) is an error naming it now, rather than values left undecoded later.
 */
export async function reachRegistry(url: string): Promise<SchemaRegistryClient> {
  const client = new SchemaRegistryClient({ url })
  try {
    await client.listSubjects()
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error
    // Any other answer (a 401 or 403 for the listing, say) shows a registry is there.
    if (!error.retryable) return client
    if (error.status !== undefined) throw error
    throw new ConveyorError(
      ErrorCodes.REGISTRY,
      `no schema registry answered at ${url} (${rootCauses(error.cause ?? error).join('; ')})`,
      { cause: error, retryable: true }
    )
  }
  return client
}

/** An integer flag value; anything else (or one below `min`) is an error naming the flag. */
export function integerOption(value: string, flag: string, { min }: { min?: number } = {}): number {
  const number = Number(value)
  if (!Number.isInteger(number) || (min !== undefined && number < min)) {
    const what = min === undefined ? 'an integer' : `an integer ≥ ${min}`
    throw new ConveyorError(ErrorCodes.INVALID_OPTION, `${flag} must be ${what}, got "${value}"`, {
      path: flag
    })
  }
  return number
}
