import type { Envelope } from './envelope.ts'

/**
 * A delivered message as a handler sees it: where it came from, its raw bytes and
 * headers, the decoded value, its type and version, its envelope, and which attempt
 * this is (1 for the first).
 */
export interface Message<T = unknown> {
  /** Topic the record was read from. */
  readonly topic: string
  /** Partition the record was read from. */
  readonly partition: number
  /** Offset of the record in its partition. */
  readonly offset: bigint
  /** The record's key bytes, or `null` when it has none. */
  readonly key: Buffer | null
  /** The key as UTF-8 text, or `null`. */
  readonly keyString: string | null
  /** The record's headers (the envelope's `ce_*` ones included), values as bytes. */
  readonly headers: ReadonlyMap<string, Buffer>
  /** Broker timestamp, ms since the epoch. */
  readonly timestamp: number
  /** The record's value bytes as delivered, before decoding; `null` when it has none. */
  readonly rawValue: Buffer | null
  /** The message type, read where the consumer's `typeFrom` says; it chose the route. */
  readonly type: string
  /** Schema version: the payload's integer `version` field, else `undefined`. */
  readonly version: number | undefined
  /** The payload as the consumer's codec decoded it. */
  readonly value: T
  /** The envelope from the `ce_*` headers; without `ce_id`, the id is `<topic>-<partition>-<offset>`. */
  readonly envelope: Envelope
  /** Which attempt this is: 1 for the first, 2 for the first retry. */
  readonly attempt: number
}

/** What a handler gets besides the message. */
export interface HandlerContext {
  /** Aborted when the consumer stops or the handler's timeout passes: stop work and throw. */
  readonly signal: AbortSignal
  /** The consumer group handling the message. */
  readonly groupId: string
  /**
   * Produces a message caused by this one (it inherits the correlation id and names this
   * message as its cause); present when the consumer was given a `producer`.
   */
  readonly send?: (
    type: string,
    payload: object,
    options?: { key?: string | Buffer | null; topic?: string; headers?: Record<string, string | Buffer> }
  ) => Promise<{ topic: string; partition: number; offset: bigint }>
}

/** Handles one message; a throw or rejection fails the attempt (the route's `retry` decides what next). */
export type Handler<T = unknown> = (message: Message<T>, context: HandlerContext) => Promise<void> | void

/**
 * Handles a batch: consecutive messages of one partition (or one key, in key mode), in
 * offset order. Returning means all are processed; a throw fails the attempt of all of
 * them, unless it is a `BatchError` naming the one that failed.
 */
export type BatchHandler<T = unknown> = (
  messages: readonly Message<T>[],
  context: HandlerContext
) => Promise<void> | void

/** Wraps a handler: retry, validation, tracing and timeouts are all middleware. */
export type Middleware = <T>(next: Handler<T>) => Handler<T>

/** Applies middleware so that the first in the list runs outermost. */
export function compose<T>(handler: Handler<T>, middleware: readonly Middleware[]): Handler<T> {
  return middleware.reduceRight<Handler<T>>((next, wrap) => wrap(next), handler)
}
