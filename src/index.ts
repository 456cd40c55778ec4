export { ConveyorError, type ConveyorErrorOptions, type ErrorCode, ErrorCodes } from './core/errors.ts'
export {
  clientOptions,
  type KafkaConnection,
  type SaslMechanism,
  translateKafkaError,
  verifyConnection
} from './kafka/connection.ts'
export { type WaitForOptions, waitFor } from './util/wait.ts'
