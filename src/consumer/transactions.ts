/**
 * Exactly-once processing with Kafka transactions (`transactional: true`): each handler
 * call runs in a transaction of its partition, with what it sends (`context.send`) and the
 * partition's next offset, so both become visible together (to `read_committed` readers)
 * or not at all. A dead letter is written the same way.
 *
 * Each input partition has a transactional id of its own, `<idPrefix>.<topic>.<partition>`.
 * When a partition is assigned, its new owner begins under that id before anything else:
 * the broker fences every earlier producer of the id (a member that lost the partition
 * without noticing) and aborts the transaction it left open. Only then is the group's
 * committed offset read, and the partition starts there. A crash before a commit leaves a
 * transaction that the next owner aborts; after a commit, the offset has moved with it.
 * Either way each input's outputs are seen once.
 *
 * A fenced member (its send or commit refused) does no more work on the partition: the
 * attempt waits until the partition is revoked and is then abandoned, neither committed
 * nor retried under an id it no longer holds.
 */
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { errorChannel } from '../instrumentation/channels.ts'
import { backoff, forever } from '../retry/policy.ts'
import {
  partitionKey,
  type Subscription,
  type TopicPartition,
  type Transaction,
  type TransactionalPublisher,
  type Transport
} from '../transport/types.ts'
import { wait } from '../util/wait.ts'
import type { AssignmentListener, PartitionStart } from './membership.ts'
import type { PartitionState } from './partition.ts'

/** The `transactional` option of a consumer. */
export interface TransactionalOptions {
  /** Transactional ids are `<idPrefix>.<topic>.<partition>`. Default: the group id. */
  idPrefix?: string
  /** How long the broker lets a transaction stay open before it aborts it, ms. Default 60 000. */
  timeout?: number
}

/**
 * A transaction as the handler sees it: its sends go one at a time and are followed, so that
 * none is still on its way when the transaction commits or aborts (it would join the next
 * one), and a send that failed is known. Once settled, it refuses new sends.
 */
class Sends {
  readonly transaction: Transaction
  readonly #pending = new Set<Promise<unknown>>()
  #last: Promise<unknown> = Promise.resolve()
  #closed = false
  failed = false
  error: unknown

  constructor(transaction: Transaction) {
    this.transaction = {
      ...transaction,
      send: (records) => {
        if (this.#closed)
          return Promise.reject(
            new ConveyorError(
              ErrorCodes.STATE,
              'the transaction has ended: send inside the handler, and await it'
            )
          )
        // One at a time: the client fails sends made at once in a transaction (to several
        // partitions: "Producing messages failed"), so they queue behind each other.
        const sending = this.#last.then(() => transaction.send(records))
        this.#last = sending.catch(() => {})
        this.#pending.add(sending)
        sending.then(
          () => this.#pending.delete(sending),
          (error: unknown) => {
            this.#pending.delete(sending)
            this.failed = true
            this.error = error
          }
        )
        return sending
      },
      commitOffsets: (subscription, offsets) => transaction.commitOffsets(subscription, offsets),
      commit: () => transaction.commit(),
      abort: () => transaction.abort()
    }
  }

  /** Resolves once no send is on its way; later sends are refused. */
  async settled(): Promise<void> {
    this.#closed = true
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending])
  }
}

/** A transaction that could not commit (not for its message's sake) is tried again so. */
const commitRetry = forever({ initialDelay: 200, maxDelay: 5_000 })

interface Owned {
  publisher: TransactionalPublisher
  /** Begun at assignment (which took the id); used by the first transaction. */
  ready: Transaction | undefined
  fenced: boolean
}

export class Transactions {
  readonly #transport: Transport
  readonly #groupId: string
  readonly #prefix: string
  readonly #timeout: number
  readonly #subscription: () => Promise<Subscription | undefined>
  readonly #owned = new Map<string, Owned>()
  readonly #reacquire: (partition: TopicPartition, options?: { now?: boolean }) => void

  constructor(options: {
    transport: Transport
    groupId: string
    transactional: TransactionalOptions
    subscription: () => Promise<Subscription | undefined>
    reacquire: (partition: TopicPartition, options?: { now?: boolean }) => void
  }) {
    this.#transport = options.transport
    this.#groupId = options.groupId
    this.#prefix = options.transactional.idPrefix ?? options.groupId
    this.#timeout = options.transactional.timeout ?? 60_000
    this.#subscription = options.subscription
    this.#reacquire = options.reacquire
  }

  /** The assignment listener that takes each partition's transactional id and reads where it starts. */
  get listener(): AssignmentListener {
    return {
      assigned: (tp, start) => this.#assigned(tp, start),
      revoked: (tp) => this.#revoked(tp)
    }
  }

  async #assigned(tp: TopicPartition, start: PartitionStart): Promise<void> {
    const key = partitionKey(tp.topic, tp.partition)
    await this.#close(key)
    const publisher = this.#transport.transactional!(`${this.#prefix}.${tp.topic}.${tp.partition}`, {
      timeout: this.#timeout
    })
    const owned: Owned = { publisher, ready: undefined, fenced: false }
    this.#owned.set(key, owned)
    // Fences the earlier owners and aborts what they left open: the offset read next is final.
    owned.ready = await publisher.begin()
    if (start.signal.aborted) return
    // The subscription that announced the partition may still be on its way (the first join).
    const subscription = await this.#subscription()
    if (!subscription?.committed)
      throw new ConveyorError(ErrorCodes.STATE, 'no subscription to read the committed offset from', {
        retryable: true
      })
    // Stable: while a transaction's offsets are pending the read fails, and the hook is tried again.
    const [committed] = await subscription.committed([tp], { stable: true })
    if (committed?.offset !== undefined) start.seek(committed.offset)
  }

  async #revoked(tp: TopicPartition): Promise<void> {
    await this.#close(partitionKey(tp.topic, tp.partition))
  }

  async #close(key: string): Promise<void> {
    const owned = this.#owned.get(key)
    if (!owned) return
    this.#owned.delete(key)
    await owned.ready?.abort().catch(() => {})
    await owned.publisher.close().catch(() => {})
  }

  /**
   * Runs `work` in a transaction of the partition that commits `next` as its offset. A
   * failure of `work` aborts the transaction and is the attempt's. A failure to add the
   * offsets (the group rebalancing, a coordinator moving) is not the message's: the
   * transaction is aborted and `work` runs again in a new one, after a wait. A commit that
   * fails may have happened: the partition is taken again (see `#reacquire`). Fenced:
   * waits until the partition is revoked or taken again, then fails the attempt, which is
   * then abandoned.
   */
  async run(
    state: PartitionState,
    next: bigint,
    work: (transaction: Transaction) => Promise<void>
  ): Promise<void> {
    for (let failures = 0; ; failures++) {
      const owned = this.#owned.get(state.key)
      if (!owned || owned.fenced || state.waits.aborted) return this.#idle(state)
      let transaction: Transaction
      try {
        transaction = owned.ready ?? (await owned.publisher.begin())
        owned.ready = undefined
      } catch (error) {
        if (this.#fenced(owned, state, error)) return this.#idle(state)
        // The publisher may be left unusable: a new one (a new producer) takes the id.
        return this.#uncertain(owned, state, error)
      }
      const sends = new Sends(transaction)
      let failure: { error: unknown } | undefined
      try {
        await work(sends.transaction)
      } catch (error) {
        failure = { error }
      }
      await sends.settled()
      const cause = sends.failed ? sends.error : failure?.error
      if (failure || sends.failed) {
        if (this.#fenced(owned, state, cause)) {
          await transaction.abort().catch(() => {})
          return this.#idle(state)
        }
        // A send that failed may have reached the broker, or left its sequence numbers behind.
        if (sends.failed) return this.#uncertain(owned, state, cause, transaction)
        if (!(await this.#abort(owned, state, transaction))) return this.#idle(state)
        throw failure!.error
      }
      try {
        const subscription = await this.#subscription()
        if (!subscription)
          throw new ConveyorError(ErrorCodes.STATE, 'the consumer has no subscription', { retryable: true })
        await transaction.commitOffsets(subscription, [{ ...state.tp, offset: next }])
      } catch (error) {
        // Not committed: aborted, and tried again in a new transaction after a wait; or, when
        // the partition is no longer this member's, left until the rebalance takes it.
        if (!(await this.#abort(owned, state, transaction))) return this.#idle(state)
        if (this.#fenced(owned, state, error)) return this.#idle(state)
        this.#report(state, error)
        if (error instanceof ConveyorError && error.code === ErrorCodes.FENCED) return this.#idle(state)
        if (!(await wait(backoff(commitRetry, failures + 1), state.waits))) return this.#idle(state)
        continue
      }
      try {
        await transaction.commit()
        state.progress.committed(next)
        return
      } catch (error) {
        if (this.#fenced(owned, state, error)) return this.#idle(state)
        // The commit may have happened or not: only the broker knows. The partition is taken
        // again at once (a new producer completes the transaction either way), and reads on
        // from the offset the group then has, so the work is neither lost nor done twice.
        return this.#uncertain(owned, state, error)
      }
    }
  }

  /** Aborts; false when the abort failed (then the partition is taken again, see `#uncertain`). */
  async #abort(owned: Owned, state: PartitionState, transaction: Transaction): Promise<boolean> {
    try {
      await transaction.abort()
      return true
    } catch (error) {
      if (!this.#fenced(owned, state, error)) await this.#uncertain(owned, state, error).catch(() => {})
      return false
    }
  }

  /**
   * What the broker has of this transaction is unknown (a commit without an answer, a send
   * that failed, an abort that failed): the partition's work here ends, and the partition is
   * taken again at once — a new producer's fence finishes the transaction either way, and
   * the group's committed offset, read after it, says where to go on. Fails the attempt
   * (abandoned) once the partition is let go.
   */
  async #uncertain(
    owned: Owned,
    state: PartitionState,
    error: unknown,
    transaction?: Transaction
  ): Promise<never> {
    this.#report(state, error)
    if (!owned.fenced) {
      owned.fenced = true
      await transaction?.abort().catch(() => {})
      this.#reacquire(state.tp, { now: true })
    }
    return this.#idle(state)
  }

  #report(state: PartitionState, error: unknown): void {
    errorChannel.publish({
      groupId: this.#groupId,
      error,
      fatal: false,
      context: 'transaction',
      partition: state.tp
    })
  }

  /**
   * Whether `error` says another producer has the partition's transactional id. Then the
   * partition's work here is over: a rebalance takes it away, or — when the group gives it
   * to this member again — it is taken again (a new producer, the committed offset read
   * again; see `Membership.reacquire`).
   */
  #fenced(owned: Owned, state: PartitionState, error: unknown): boolean {
    if (!(error instanceof ConveyorError && error.code === ErrorCodes.FENCED && !error.retryable))
      return false
    if (!owned.fenced) {
      owned.fenced = true
      errorChannel.publish({
        groupId: this.#groupId,
        error,
        fatal: false,
        context: 'fenced',
        partition: state.tp
      })
      this.#reacquire(state.tp)
    }
    return true
  }

  async #idle(state: PartitionState): Promise<never> {
    if (!state.waits.aborted)
      await new Promise((resolve) => state.waits.addEventListener('abort', resolve, { once: true }))
    throw new ConveyorError(ErrorCodes.FENCED, `${state.key} is no longer this member’s to write`, {
      retryable: true
    })
  }

  /** Closes every partition's publisher (the consumer stopped). */
  async close(): Promise<void> {
    await Promise.all([...this.#owned.keys()].map((key) => this.#close(key)))
  }
}
