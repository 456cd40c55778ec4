/**
 * The progress of one partition: which offsets were accepted for processing, which
 * finished, which were set aside to be read again, and so what may be committed.
 *
 * The guarantee: `committable()` never passes an offset that was delivered and has not
 * finished (processed or dead-lettered). Offsets are not assumed contiguous (compaction
 * and transaction markers leave gaps), so the commit point is derived from what was seen.
 *
 * Records may be *dropped* to bound memory (a blocked key or partition); the runtime then
 * rewinds the partition to `rewindPoint()` and the records come again. `admit()` tells a
 * record seen for the first time (or dropped before) from a re-read of one already taken.
 * Memory: the pending set is bounded by the runtime's buffer limits; the dropped set by
 * `maxDropped` (past it the runtime drops the whole partition tail with `dropFrom`).
 */
export class PartitionProgress {
  readonly topic: string
  readonly partition: number
  /**
   * Offsets being processed, ascending, as a queue: `#pending[i]` is done when
   * `#settled[i]` is true, and settled entries leave from the front. Records arrive in
   * offset order (a rewind's re-reads are inserted in place), and in partition order they
   * also finish in order, so the common case costs no search and no hashing.
   */
  #pending: bigint[] = []
  #settled: boolean[] = []
  #head = 0
  #pendingCount = 0
  #dropped = new Set<bigint>()
  #droppedFrom: bigint | undefined
  #highestSeen = -1n
  #highestFinished = -1n
  #committed: bigint | undefined

  constructor(topic: string, partition: number, committed?: bigint) {
    this.topic = topic
    this.partition = partition
    this.#committed = committed
  }

  /**
   * A progress for a partition read from `offset` on: the records below it count as
   * finished (they are never handled), so the first commit is `offset` itself.
   */
  static startingAt(topic: string, partition: number, offset: bigint): PartitionProgress {
    const progress = new PartitionProgress(topic, partition)
    progress.#highestSeen = offset - 1n
    progress.#highestFinished = offset - 1n
    return progress
  }

  /**
   * Classifies a delivered record: `new` when it must be processed (first delivery, or a
   * re-delivery of a dropped record), `duplicate` when it was already taken (a re-read
   * after a rewind, or below the committed offset).
   */
  admit(offset: bigint): 'new' | 'duplicate' {
    if (this.#committed !== undefined && offset < this.#committed) return 'duplicate'
    if (offset > this.#highestSeen) {
      this.#highestSeen = offset
      return 'new'
    }
    if (this.#dropped.delete(offset)) return 'new'
    if (this.#droppedFrom !== undefined && offset >= this.#droppedFrom) return 'new'
    return 'duplicate'
  }

  /** The record is being processed. */
  accept(offset: bigint): void {
    this.#enqueue(offset)
    if (this.#droppedFrom !== undefined && offset >= this.#droppedFrom) {
      // The set-aside tail is read again in order: everything below this offset is taken care of.
      this.#droppedFrom = offset >= this.#highestSeen ? undefined : offset + 1n
    }
  }

  /** The record was set aside: it must be read again before the commit point passes it. */
  drop(offset: bigint): void {
    if (this.#droppedFrom !== undefined && offset >= this.#droppedFrom) return
    this.#dropped.add(offset)
  }

  /** Every record from `offset` on is set aside (the partition is paused). */
  dropFrom(offset: bigint): void {
    if (this.#droppedFrom === undefined || offset < this.#droppedFrom) this.#droppedFrom = offset
    for (const dropped of this.#dropped) if (dropped >= offset) this.#dropped.delete(dropped)
  }

  /** The record was processed or dead-lettered. */
  finish(offset: bigint): void {
    if (!this.#settle(offset)) return
    if (offset > this.#highestFinished) this.#highestFinished = offset
  }

  /** Forgets a record without finishing it (work abandoned at revocation or shutdown). */
  abandon(offset: bigint): void {
    this.#settle(offset)
    this.drop(offset)
  }

  get pendingCount(): number {
    return this.#pendingCount
  }

  #enqueue(offset: bigint): void {
    const pending = this.#pending
    if (pending.length === 0 || offset > pending[pending.length - 1]!) {
      pending.push(offset)
      this.#settled.push(false)
      if (this.#head === pending.length - 1 || this.#pendingCount === 0) this.#head = pending.length - 1
    } else {
      // A re-read after a rewind: the array stays sorted, an entry per offset.
      const index = this.#lowerBound(offset, 0)
      if (index < pending.length && pending[index] === offset) {
        if (!this.#settled[index]) return // already pending
        this.#settled[index] = false // abandoned before, taken again
      } else {
        pending.splice(index, 0, offset)
        this.#settled.splice(index, 0, false)
      }
      if (index < this.#head || this.#pendingCount === 0) this.#head = index
    }
    this.#pendingCount++
  }

  /** Marks a pending offset settled; false when it was not pending. */
  #settle(offset: bigint): boolean {
    const pending = this.#pending
    const index = pending[this.#head] === offset ? this.#head : this.#find(offset)
    if (index >= pending.length || pending[index] !== offset || this.#settled[index]) return false
    this.#settled[index] = true
    this.#pendingCount--
    while (this.#head < pending.length && this.#settled[this.#head]) this.#head++
    // Settled entries are cleared away only once they are many: emptying the queue after
    // every record (the usual case when handlers keep up) would free the arrays' storage and
    // allocate it again with the next record.
    if (this.#head <= 1024) return true
    // Entries above a set-aside record stay: they say what finished above the commit point.
    let cut = this.#head
    if (this.#dropped.size > 0 || this.#droppedFrom !== undefined) {
      cut = Math.min(cut, this.#lowerBound(this.rewindPoint()!, 0))
    }
    if (cut === pending.length) {
      pending.length = 0
      this.#settled.length = 0
      this.#head = 0
    } else if (cut * 2 > pending.length) {
      pending.splice(0, cut)
      this.#settled.splice(0, cut)
      this.#head -= cut
    }
    return true
  }

  /** The first index at or after the head whose offset is ≥ `offset` (binary search). */
  #find(offset: bigint): number {
    return this.#lowerBound(offset, this.#head)
  }

  /** The first index at or after `low` whose offset is ≥ `offset`. */
  #lowerBound(offset: bigint, from: number): number {
    let low = from
    let high = this.#pending.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.#pending[middle]! < offset) low = middle + 1
      else high = middle
    }
    return low
  }

  get droppedCount(): number {
    return this.#dropped.size
  }

  get isDroppingTail(): boolean {
    return this.#droppedFrom !== undefined
  }

  /** The lowest set-aside offset, where a rewind must start; `undefined` when none. */
  rewindPoint(): bigint | undefined {
    let lowest = this.#droppedFrom
    for (const offset of this.#dropped) if (lowest === undefined || offset < lowest) lowest = offset
    return lowest
  }

  /**
   * The offset to commit (the next one to read after a restart): every delivered record
   * below it has finished. `undefined` when there is nothing new to commit.
   */
  committable(): bigint | undefined {
    let limit = this.#highestFinished + 1n
    // The head is the lowest offset still pending (settled entries have left the front).
    if (this.#pendingCount > 0 && this.#pending[this.#head]! < limit) limit = this.#pending[this.#head]!
    const rewind = this.rewindPoint()
    if (rewind !== undefined && rewind < limit) limit = rewind
    if (limit <= 0n && this.#highestFinished < 0n) return undefined
    if (this.#committed !== undefined && limit <= this.#committed) return undefined
    return limit
  }

  /**
   * The finished offsets above `offset` (ascending): work done past the commit point,
   * which a commit can record so that a later owner skips it.
   */
  *finishedAbove(offset: bigint): Generator<bigint> {
    // A generator: the metadata encoder stops reading once its size budget is used.
    for (let i = this.#lowerBound(offset + 1n, 0); i < this.#pending.length; i++) {
      const candidate = this.#pending[i]!
      if (!this.#settled[i] || this.#dropped.has(candidate)) continue
      if (this.#droppedFrom !== undefined && candidate >= this.#droppedFrom) continue
      yield candidate
    }
  }

  /** Records that `offset` is committed. */
  committed(offset: bigint): void {
    if (this.#committed === undefined || offset > this.#committed) this.#committed = offset
  }

  get lastCommitted(): bigint | undefined {
    return this.#committed
  }
}
