import { ConveyorError, ErrorCodes } from '../core/errors.ts'
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
