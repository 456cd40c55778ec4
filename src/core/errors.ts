/**
 * Conveyor's errors. Every error a caller may branch on is a `ConveyorError` with a
 * stable `code` from the closed set below; branch on the code, never on the message.
 */

export const ErrorCodes = {
  /** A configuration or option value is invalid; `path` names the field. */
  INVALID_OPTION: 'CONVEYOR_INVALID_OPTION',
  /** The broker rejected the client's credentials (SASL). Not retryable. */
  KAFKA_AUTHENTICATION: 'CONVEYOR_KAFKA_AUTHENTICATION',
  /** No broker answered in time. Retryable. */
  KAFKA_UNAVAILABLE: 'CONVEYOR_KAFKA_UNAVAILABLE',
  /** The local Kafka tooling (jars, Java, Maven, broker processes) failed. */
  LOCAL_KAFKA: 'CONVEYOR_LOCAL_KAFKA',
  /** A wait for a condition ran out of time. */
  TIMEOUT: 'CONVEYOR_TIMEOUT'
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export interface ConveyorErrorOptions {
  cause?: unknown
  /** Whether repeating the operation may succeed. */
  retryable?: boolean
  /** Where the problem is, e.g. `routes > observation > dlq.topic`. */
  path?: string
}

export class ConveyorError extends Error {
  readonly code: ErrorCode
  readonly retryable: boolean
  readonly path: string | undefined

  constructor(code: ErrorCode, message: string, options: ConveyorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ConveyorError'
    this.code = code
    this.retryable = options.retryable ?? false
    this.path = options.path
  }
}
