import type { Envelope } from './envelope.ts'

/**
 * A delivered message as a handler sees it: where it came from, its raw bytes and
 * headers, the decoded value, its type and version, its envelope, and which attempt
 * this is (1 for the first).
 */
export interface Message<T = unknown> {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: Buffer | null
  /** The key as UTF-8 text, or `null`. */
  readonly keyString: string | null
  readonly headers: ReadonlyMap<string, Buffer>
  /** Broker timestamp, ms since the epoch. */
  readonly timestamp: number
  readonly rawValue: Buffer | null
  readonly type: string
  readonly version: number | undefined
  readonly value: T
  readonly envelope: Envelope
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

export type Handler<T = unknown> = (message: Message<T>, context: HandlerContext) => Promise<void> | void

/** Wraps a handler: retry, validation, tracing and timeouts are all middleware. */
export type Middleware = <T>(next: Handler<T>) => Handler<T>

/** Applies middleware so that the first in the list runs outermost. */
export function compose<T>(handler: Handler<T>, middleware: readonly Middleware[]): Handler<T> {
  return middleware.reduceRight<Handler<T>>((next, wrap) => wrap(next), handler)
}
