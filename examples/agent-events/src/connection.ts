/**
 * How the compliance system reaches its cluster: SASL/SCRAM over TLS, from the environment
 * (KAFKA_SASL_BROKERS, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, and
 * KAFKA_CA_FILE for a private CA). Producers are idempotent (Conveyor's transport always is:
 * `acks=all`, retries without duplicates) and compress with snappy.
 */
import { type KafkaConnection, KafkaTransport, type SaslMechanism } from '@conveyorjs/conveyor'

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

export function connectionFromEnv(
  clientId: string,
  overrides: Partial<KafkaConnection> = {}
): KafkaConnection {
  return {
    brokers: required('KAFKA_SASL_BROKERS').split(','),
    clientId,
    sasl: {
      mechanism: (process.env.KAFKA_SASL_MECHANISM ?? 'SCRAM-SHA-512') as SaslMechanism,
      username: required('KAFKA_SASL_USERNAME'),
      password: required('KAFKA_SASL_PASSWORD')
    },
    tls: process.env.KAFKA_CA_FILE ? { caFile: process.env.KAFKA_CA_FILE } : true,
    ...overrides
  }
}

export function transportFromEnv(clientId: string, overrides: Partial<KafkaConnection> = {}): KafkaTransport {
  return new KafkaTransport({ connection: connectionFromEnv(clientId, overrides), compression: 'snappy' })
}
