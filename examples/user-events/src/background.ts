/**
 * Publishing in the background: `enqueue` returns at once and the event is sent shortly
 * after. The queue is bounded (a full queue refuses the event, so the caller can answer 503
 * instead of growing memory without limit), sends are retried a few times, a failure that
 * remains is reported to `onFailure` with the event (never dropped silently), and `close()`
 * flushes what is queued before it resolves — call it at shutdown.
 */
import type { ConveyorProducer } from '@conveyorjs/conveyor'
import type { UserEvents, UserEventType } from './events.ts'

export interface QueuedEvent<K extends UserEventType = UserEventType> {
  type: K
  payload: UserEvents[K]
  key: string
}

export interface BackgroundPublisherOptions {
  producer: ConveyorProducer<UserEvents>
  /** Most events waiting to be sent. Default 10 000. */
  capacity?: number
  /** Attempts per event before it is reported as failed. Default 3. */
  attempts?: number
  /** Told of every event that could not be sent, with the last error. */
  onFailure: (event: QueuedEvent, error: unknown) => void
}

export class BackgroundPublisher {
  readonly #options: Required<BackgroundPublisherOptions>
  readonly #queue: QueuedEvent[] = []
  /** Events taken from the queue and being sent: they count against the capacity too. */
  #inFlight = 0
  #draining: Promise<void> | undefined
  #closed = false
  /** Events sent, and events reported as failed. */
  readonly counts = { sent: 0, failed: 0 }

  constructor(options: BackgroundPublisherOptions) {
    this.#options = { capacity: 10_000, attempts: 3, ...options }
  }

  /** Events waiting to be sent, or being sent. */
  get pending(): number {
    return this.#queue.length + this.#inFlight
  }

  /** Queues an event; false when the queue is full or closed (nothing was queued). */
  enqueue<K extends UserEventType>(type: K, payload: UserEvents[K], key: string): boolean {
    if (this.#closed || this.pending >= this.#options.capacity) return false
    this.#queue.push({ type, payload, key } as QueuedEvent)
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined
    })
    return true
  }

  /** Refuses new events and resolves once every queued one was sent or reported. */
  async close(): Promise<void> {
    this.#closed = true
    while (this.#draining) await this.#draining
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      // Up to 500 at a time, in queue order: one request for the batch.
      const batch = this.#queue.splice(0, 500)
      this.#inFlight = batch.length
      try {
        await this.#send(batch)
      } catch {
        // One bad event must not fail the others: send one by one, report each failure.
        for (const event of batch) await this.#send([event]).catch((error) => this.#fail(event, error))
      } finally {
        this.#inFlight = 0
      }
    }
  }

  async #send(batch: QueuedEvent[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#options.producer.sendMany(
          batch.map((e) => ({ type: e.type, payload: e.payload, key: e.key }))
        )
        this.counts.sent += batch.length
        return
      } catch (error) {
        if (attempt >= this.#options.attempts || (error as { retryable?: boolean }).retryable === false)
          throw error
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt))
      }
    }
  }

  #fail(event: QueuedEvent, error: unknown): void {
    this.counts.failed += 1
    this.#options.onFailure(event, error)
  }
}
