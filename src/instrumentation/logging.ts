/**
 * Structured logs for the runtime, from its diagnostics channels: one INFO line per handled
 * message (sampled if asked), WARN per retry and dead letter, ERROR for what the runtime
 * contained, INFO for lifecycle and partition changes. JSON lines for machines; readable
 * lines in a terminal (`pretty`). Credentials and configured secret fields are redacted.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { type Logger, pino } from 'pino'
import {
  Channels,
  type CommitEvent,
  type DeadLetteredEvent,
  type DeadLetterFailedEvent,
  type ErrorEvent,
  type LifecycleEvent,
  type MessageHandledEvent,
  type MessageRetryEvent,
  type PartitionsEvent
} from './channels.ts'

/** Paths pino always censors: credentials wherever they appear in a logged object. */
export const defaultRedactPaths = [
  'password',
  '*.password',
  '*.*.password',
  'token',
  '*.token',
  '*.*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.sasl.password',
  '*.auth.password',
  '*.auth.token'
]

export interface LoggerOptions {
  level?: string
  /** Human-readable lines (default: when stdout is a terminal). */
  pretty?: boolean
  /** More paths to censor (configured secret fields), pino syntax: `api.token`, `*.apiKey`. */
  redact?: string[]
  /** Where JSON lines go (default stdout); for tests. */
  destination?: NodeJS.WritableStream
}

export function createLogger({
  level = 'info',
  pretty = process.stdout.isTTY === true,
  redact = [],
  destination
}: LoggerOptions = {}): Logger {
  const options = { level, redact: { paths: [...defaultRedactPaths, ...redact], censor: '[redacted]' } }
  if (destination) return pino(options, destination as never)
  if (pretty)
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } }
    })
  return pino(options)
}

export interface LoggingOptions {
  logger: Logger
  /** Log one processed message in this many (1: every one). Failures and dead letters are always logged. */
  sampleEvery?: number
}

function coordinates(record: { topic: string; partition: number; offset: bigint; key: Buffer | null }) {
  return {
    topic: record.topic,
    partition: record.partition,
    offset: String(record.offset),
    key: record.key?.toString('utf8') ?? null
  }
}

/** Subscribes the logger to the runtime's channels; returns a function that unsubscribes. */
export function enableLogging({ logger, sampleEvery = 1 }: LoggingOptions): () => void {
  let processed = 0
  // A dead-lettered message is one line: what the DLQ write said (reason, error, topic)
  // is kept until the message's outcome, and logged with it.
  const deadLetters = new Map<string, DeadLetteredEvent>()
  const recordKey = (group: string, record: { topic: string; partition: number; offset: bigint }) =>
    `${group}\u0000${record.topic}\u0000${record.partition}\u0000${record.offset}`
  const logPartitions = (message: unknown, text: string) => {
    const event = message as PartitionsEvent
    logger.info(
      { group: event.groupId, partitions: event.partitions.map((p) => `${p.topic}:${p.partition}`) },
      text
    )
  }
  const handlers: Record<string, (message: unknown) => void> = {
    [Channels.messageHandled]: (message) => {
      const event = message as MessageHandledEvent
      if (event.outcome === 'processed' && processed++ % sampleEvery !== 0) return
      let dead: DeadLetteredEvent | undefined
      if (event.outcome === 'dead-lettered') {
        const key = recordKey(event.groupId, event.record)
        dead = deadLetters.get(key)
        deadLetters.delete(key)
      }
      logger[event.outcome === 'dead-lettered' ? 'warn' : 'info'](
        {
          group: event.groupId,
          type: event.message?.type,
          ...coordinates(event.record),
          attempt: event.attempts,
          durationMs: Math.round(event.duration * 100) / 100,
          outcome: event.outcome,
          ...(dead ? { dlqTopic: dead.topic, reason: dead.reason, err: dead.error } : {})
        },
        `message ${event.outcome}`
      )
    },
    [Channels.messageRetry]: (message) => {
      const event = message as MessageRetryEvent
      logger.warn(
        {
          group: event.groupId,
          type: event.message.type,
          ...coordinates(event.message),
          attempt: event.attempt,
          retryInMs: event.delay,
          err: event.error
        },
        'handler failed, will retry'
      )
    },
    [Channels.deadLettered]: (message) => {
      const event = message as DeadLetteredEvent
      // Logged with the message's outcome, which follows at once (see messageHandled).
      if (deadLetters.size >= 10_000) deadLetters.clear() // outcomes that never came: forget them
      deadLetters.set(recordKey(event.groupId, event.record), event)
    },
    [Channels.deadLetterFailed]: (message) => {
      const event = message as DeadLetterFailedEvent
      logger.error(
        { group: event.groupId, ...coordinates(event.record), dlqTopic: event.topic, err: event.error },
        'dead-letter write failed, will retry'
      )
    },
    [Channels.commit]: (message) => {
      const event = message as CommitEvent
      if (event.error)
        logger.error(
          { group: event.groupId, err: event.error, offsets: event.offsets.length },
          'commit failed'
        )
    },
    [Channels.assigned]: (message) => logPartitions(message, 'partitions assigned'),
    [Channels.revoked]: (message) => logPartitions(message, 'partitions revoked'),
    [Channels.lifecycle]: (message) => {
      const event = message as LifecycleEvent
      logger.info({ group: event.groupId, state: event.state }, `consumer ${event.state}`)
    },
    [Channels.error]: (message) => {
      const event = message as ErrorEvent
      logger[event.fatal ? 'fatal' : 'error'](
        { group: event.groupId, context: event.context, err: event.error },
        `consumer error (${event.context})`
      )
    }
  }
  for (const [name, handler] of Object.entries(handlers)) subscribe(name, handler)
  return () => {
    for (const [name, handler] of Object.entries(handlers)) unsubscribe(name, handler)
  }
}
