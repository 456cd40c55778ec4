/**
 * Conveyor's errors. Every error a caller may branch on is a `ConveyorError` with a
 * stable `code` from the closed set below; branch on the code, never on the message.
 * docs/errors.md describes each code (a test keeps the two in step).
 */

export const ErrorCodes = {
  /** A configuration or option value is invalid; `path` names the field. */
  INVALID_OPTION: 'CONVEYOR_INVALID_OPTION',
  /** A handler declared that repeating the work cannot help: the message goes to the DLQ at once. */
  NON_RETRYABLE: 'CONVEYOR_NON_RETRYABLE',
  /** A message's bytes could not be decoded (bad JSON, not an object, unknown schema). */
  DECODE: 'CONVEYOR_DECODE',
  /** No route handles the message's type. */
  UNKNOWN_MESSAGE_TYPE: 'CONVEYOR_UNKNOWN_MESSAGE_TYPE',
  /** A handler ran longer than its route's timeout. Retryable. */
  HANDLER_TIMEOUT: 'CONVEYOR_HANDLER_TIMEOUT',
  /** Writing a record (to a topic or a DLQ) was not acknowledged. Retryable. */
  PUBLISH: 'CONVEYOR_PUBLISH',
  /** A schema registry request failed: `status` and `errorCode` say how; retryable when the registry is unreachable or failing (5xx). */
  REGISTRY: 'CONVEYOR_REGISTRY',
  /** The registry refused a schema as incompatible with the subject's earlier versions. */
  INCOMPATIBLE_SCHEMA: 'CONVEYOR_INCOMPATIBLE_SCHEMA',
  /** The broker rejected the client's credentials (SASL). Not retryable. */
  KAFKA_AUTHENTICATION: 'CONVEYOR_KAFKA_AUTHENTICATION',
  /** No Kafka broker answered in time. Retryable. */
  KAFKA_UNAVAILABLE: 'CONVEYOR_KAFKA_UNAVAILABLE',
  /** The consumer is not in a state that allows the call (e.g. started twice). */
  STATE: 'CONVEYOR_STATE',
  /** A call to a REST API failed: `status` and `body` say how; retryable when transient (unreachable, timeout, 429, 5xx). */
  API: 'CONVEYOR_API',
  /** The local Kafka tooling (jars, Java, Maven, broker processes) failed. */
  LOCAL_KAFKA: 'CONVEYOR_LOCAL_KAFKA',
  /** A wait for a condition ran out of time. */
  TIMEOUT: 'CONVEYOR_TIMEOUT',
  /** A write to a sink was refused: another member took the partition since this one did. */
  FENCED: 'CONVEYOR_FENCED'
} as const

/** One of the `ErrorCodes` values, e.g. `CONVEYOR_DECODE`. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

/** Options of a `ConveyorError`. */
export interface ConveyorErrorOptions {
  /** The error that caused this one, kept as its `cause`. */
  cause?: unknown
  /** Whether repeating the operation may succeed. */
  retryable?: boolean
  /** Where the problem is, e.g. `routes > observation > dlq.topic`. */
  path?: string
}

/** An error of Conveyor's: a stable `code` to branch on, and whether repeating may succeed. */
export class ConveyorError extends Error {
  /** Stable code from `ErrorCodes`; branch on it, never on the message. */
  readonly code: ErrorCode
  /** Whether repeating the operation may succeed. Default false. */
  readonly retryable: boolean
  /** Where the problem is, e.g. `routes > observation > dlq.topic`; `undefined` when no field is to blame. */
  readonly path: string | undefined

  constructor(code: ErrorCode, message: string, options: ConveyorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ConveyorError'
    this.code = code
    this.retryable = options.retryable ?? false
    this.path = options.path
  }
}

/**
 * Thrown by a handler when repeating the work cannot succeed (invalid content, a
 * business rule that will not change). The message goes to the dead-letter queue at
 * once, with `reason` (default `non_retryable`) in its headers.
 */
export class NonRetryableError extends ConveyorError {
  /** The DLQ reason (`dlq_reason` header). Default `non_retryable`. */
  readonly reason: string

  constructor(message: string, options: { cause?: unknown; reason?: string } = {}) {
    super(ErrorCodes.NON_RETRYABLE, message, { cause: options.cause, retryable: false })
    this.name = 'NonRetryableError'
    this.reason = options.reason ?? 'non_retryable'
  }
}

/**
 * Thrown by a batch handler (`handleBatch`) to say which message of the batch failed: the
 * messages before `index` are done (and committed), the failing one follows its route's
 * retry policy with `cause` as its error (retried alone, then the DLQ), and the messages
 * after it are delivered again.
 */
export class BatchError extends Error {
  /** The position in the batch of the message that failed. */
  readonly index: number

  constructor(index: number, cause: unknown) {
    super(`message ${index} of the batch failed: ${(cause as Error)?.message ?? String(cause)}`, { cause })
    this.name = 'BatchError'
    this.index = index
  }
}

/** True when an error says that repeating the work cannot help. */
export function isNonRetryable(error: unknown): boolean {
  return error instanceof ConveyorError && !error.retryable
}
