/**
 * Finished work above the commit point, written in a commit's metadata so that a member
 * that takes the partition over (after a crash or a rebalance) can skip what was already
 * processed instead of handling it again.
 *
 * A commit says "every record below offset C has finished". Records above C may have
 * finished too (other keys, while one waits in a retry); this encodes which, as runs:
 *
 *   conveyor:f1:<base64url of varints>
 *   varints: C, then alternating run lengths from C on: not finished, finished, not finished, …
 *
 * Offsets are unsigned LEB128 varints (C as a 64-bit value, runs as lengths), so a
 * contiguous block of finished offsets costs a few bytes whatever its size. The broker
 * limits metadata (`offset.metadata.max.bytes`, 4 096 by default): when the runs do not
 * fit, the encoding keeps the runs from C on that fit and leaves out the rest — those
 * offsets are simply handled again, as they would be without metadata.
 *
 * Reading is safe across versions and tools: metadata without the `conveyor:f1:` prefix,
 * that does not decode, or whose C differs from the committed offset it came with (the
 * offset was reset or committed by something else) yields nothing to skip.
 */

/** The prefix of this encoding; a later version would use another one. */
export const finishedMetadataPrefix = 'conveyor:f1:'

/** Kafka's default `offset.metadata.max.bytes`. */
export const defaultMetadataLimit = 4_096

/** A run of finished offsets: `from` (inclusive) to `to` (exclusive). */
export interface FinishedRun {
  from: bigint
  to: bigint
}

/**
 * Encodes the finished offsets above `committed` (ascending, each > `committed`; others are
 * ignored) in at most `limit` bytes. Returns `''` when there is nothing to record.
 */
export function encodeFinished(
  committed: bigint,
  finished: Iterable<bigint>,
  limit = defaultMetadataLimit
): string {
  const bytes: number[] = []
  writeVarint(bytes, committed)
  let cursor = committed
  let kept = 0
  /** Appends a run; false when it does not fit (it and the ones after it are handled again). */
  const append = (run: FinishedRun): boolean => {
    const mark = bytes.length
    writeVarint(bytes, run.from - cursor)
    writeVarint(bytes, run.to - run.from)
    if (finishedMetadataPrefix.length + base64urlLength(bytes.length) > limit) {
      bytes.length = mark
      return false
    }
    cursor = run.to
    kept++
    return true
  }
  // Runs are built as the offsets come, and reading stops once the budget is used.
  let run: FinishedRun | undefined
  let full = false
  for (const offset of finished) {
    if (offset <= committed) continue
    if (run !== undefined && offset < run.to) continue // repeated or out of order: not recorded
    if (run !== undefined && offset === run.to) {
      run.to = offset + 1n
      continue
    }
    if (run !== undefined && !append(run)) {
      full = true
      break
    }
    run = { from: offset, to: offset + 1n }
  }
  if (run !== undefined && !full) append(run)
  if (kept === 0) return ''
  return finishedMetadataPrefix + Buffer.from(bytes).toString('base64url')
}

/**
 * The finished runs recorded with a commit of `committed`; empty when the metadata is not
 * this encoding, is damaged, or was written for another offset.
 */
export function decodeFinished(committed: bigint, metadata: string | null | undefined): FinishedRun[] {
  if (!metadata?.startsWith(finishedMetadataPrefix)) return []
  const bytes = Buffer.from(metadata.slice(finishedMetadataPrefix.length), 'base64url')
  const reader = { bytes, at: 0 }
  const base = readVarint(reader)
  if (base !== committed) return []
  const runs: FinishedRun[] = []
  let cursor = base
  while (reader.at < bytes.length) {
    const gap = readVarint(reader)
    const length = readVarint(reader)
    if (gap === undefined || length === undefined || length === 0n) return []
    const from = cursor + gap
    runs.push({ from, to: from + length })
    cursor = from + length
  }
  return runs
}

/** Whether `offset` lies in one of the (ascending, disjoint) runs. */
export function inRuns(runs: readonly FinishedRun[], offset: bigint): boolean {
  let low = 0
  let high = runs.length
  while (low < high) {
    const middle = (low + high) >>> 1
    const run = runs[middle]!
    if (offset < run.from) high = middle
    else if (offset >= run.to) low = middle + 1
    else return true
  }
  return false
}

function base64urlLength(bytes: number): number {
  return Math.ceil((bytes * 4) / 3)
}

function writeVarint(bytes: number[], value: bigint): void {
  let rest = value
  do {
    const low = Number(rest & 0x7fn)
    rest >>= 7n
    bytes.push(rest > 0n ? low | 0x80 : low)
  } while (rest > 0n)
}

/** Reads one varint; `undefined` when the bytes end inside it or it is longer than 64 bits. */
function readVarint(reader: { bytes: Buffer; at: number }): bigint | undefined {
  let value = 0n
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (reader.at >= reader.bytes.length) return undefined
    const byte = reader.bytes[reader.at++]!
    value |= BigInt(byte & 0x7f) << shift
    if ((byte & 0x80) === 0) return value
  }
  return undefined
}
