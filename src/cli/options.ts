import type { KafkaConnection } from '../kafka/connection.ts'
import { splitList } from '../util/list.ts'

/** The `--brokers` option every broker-facing command takes: `$KAFKA_BROKERS` or the local broker by default. */
export const brokersOption = {
  type: 'string',
  default: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092'
} as const

/** The connection a command opens, from its `--brokers` value. */
export function connectionFor(brokers: string, command: string): KafkaConnection {
  return {
    brokers: splitList(brokers),
    clientId: `conveyor-${command}`
  }
}
