/**
 * What a chaos run did, from the workers' logs (chaos/worker.ts), the dead-letter topic and
 * the group's final commits. Pure: the run collects, this judges.
 *
 * The timeline is the workers' lines merged by time (one clock: one machine). An
 * *ownership* of a partition starts when a worker's assignment gains it and ends when the
 * assignment loses it, the worker's membership is lost (an `x` of context `subscription`:
 * the runtime closes it and joins again) or the worker ends. When an ownership starts, the new owner reads the
 * group's commit for the partition; every message of it handled before then and not covered
 * by that commit (below its offset, or among the finished offsets in its metadata) is at
 * risk of being handled again: together they are the *uncommitted window* of that handover.
 * A message handled again although the commit covered it is a defect of the runtime.
 */
import { decodeFinished, inRuns } from '../src/offsets/finished-metadata.ts'
import { type PlanOptions, plannedMessage } from './plan.ts'

export type WorkerEvent =
  | { e: 'h'; i: number; p: number; o: string; t: number }
  | { e: 'd'; i: number; p: number; o: string; t: number }
  | { e: 'c'; cs: Array<{ p: number; o: string; m: string }>; t: number }
  | { e: 'a'; ps: number[]; t: number }
  | { e: 's'; b: number; t: number }
  | { e: 'x'; context: string; fatal: boolean; error: string; t: number }

export interface WorkerLog {
  name: string
  events: WorkerEvent[]
  /** How the process ended: SIGKILLed by the run, or stopped (SIGTERM or the run's end). */
  ended: 'killed' | 'stopped'
}

/** A record of the dead-letter topic, as the analysis needs it. */
export interface DeadLetterCopy {
  id: string
  /** The planted message (`i` of its value), or undefined when the value is not one. */
  i: number | undefined
}

export interface FinalCommit {
  partition: number
  committed: bigint | null
  end: bigint
}

export interface PartitionWindow {
  partition: number
  /** The most messages of this partition handled again after one handover. */
  largest: number
  /** The offsets those messages spanned (last − first + 1). */
  span: number
}

export interface CauseFigures {
  handovers: number
  /** Uncommitted windows of those handovers, summed. */
  window: number
  /** Handler calls in the new ownerships for messages handled before. */
  rehandled: number
}

export interface ChaosReport {
  messages: number
  /** Messages neither handled nor in the dead-letter topic. */
  lost: number[]
  /** Messages handled, for the first time, after a later message of their key. */
  reorders: number
  reorderExamples: string[]
  /** Messages handled more than once, and the handler calls beyond the first. */
  rehandled: number
  extraCalls: number
  /** Handovers (ownership starts after the first) and their uncommitted windows, summed. */
  handovers: number
  uncommittedWindow: number
  /** The same, by how the previous ownership ended. */
  byCause: Record<HandoverCause, CauseFigures>
  /** Messages queued or running in a worker when it was killed or lost partitions, summed. */
  bufferedAtHandovers: number
  /** Handled again although the commit the new owner read covered them. */
  rehandledDespiteCommit: number
  /** Handled twice within one ownership. */
  rehandledWithinOwnership: number
  /** Handler calls in a worker that did not own the partition then: a zombie member. */
  handledUnowned: number
  windows: PartitionWindow[]
  dlq: {
    planted: number
    records: number
    distinct: number
    missing: number[]
    unexpected: number[]
    /** Copies beyond the first of one failure (same `dlq_id`): `dlq list` and `replay` show each once. */
    duplicateCopies: number
    /** Failures of one message under two ids: never expected. */
    splitIdentities: number
  }
  /** A partition's committed offset moving backwards between two commits. */
  commitRegressions: number
  /** Partitions whose final commit is the log end, of all. */
  committedAtEnd: number
  partitions: number
  killed: number
}

interface Commit {
  t: number
  offset: bigint
  metadata: string
}

interface Handling {
  i: number
  p: number
  offset: bigint
  t: number
  /** The ownership it happened in (index into `ownerships`). */
  ownership: number
}

/** How an ownership ended: the assignment lost the partition, the membership was lost, or the worker ended. */
export type HandoverCause = 'rebalance' | 'lost' | 'kill' | 'shutdown'

interface Ownership {
  worker: string
  partition: number
  start: number
  end?: HandoverCause
}

function covers(commit: Commit | undefined, offset: bigint): boolean {
  if (commit === undefined) return false
  return offset < commit.offset || inRuns(decodeFinished(commit.offset, commit.metadata), offset)
}

/** The latest commit of a partition strictly before `t` (commits sorted by time). */
function commitBefore(commits: readonly Commit[], t: number): Commit | undefined {
  let low = 0
  let high = commits.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (commits[middle]!.t < t) low = middle + 1
    else high = middle
  }
  return low === 0 ? undefined : commits[low - 1]
}

export function analyse(input: {
  plan: PlanOptions
  partitions: number
  workers: readonly WorkerLog[]
  deadLetters: readonly DeadLetterCopy[]
  finalCommits: readonly FinalCommit[]
  planted: ReadonlySet<number>
}): ChaosReport {
  const { plan, workers } = input
  const ownerships: Ownership[] = []
  const handlings: Handling[] = []
  const commits = new Map<number, Commit[]>()
  let bufferedAtHandovers = 0

  for (const worker of workers) {
    const current = new Map<number, number>() // partition → ownership index
    let buffered = 0
    for (const event of worker.events) {
      switch (event.e) {
        case 's':
          buffered = event.b
          break
        case 'a': {
          const now = new Set(event.ps)
          let lost = false
          for (const [p, index] of [...current])
            if (!now.has(p)) {
              current.delete(p)
              ownerships[index]!.end = 'rebalance'
              lost = true
            }
          if (lost) bufferedAtHandovers += buffered
          for (const p of event.ps)
            if (!current.has(p)) {
              current.set(p, ownerships.length)
              ownerships.push({ worker: worker.name, partition: p, start: event.t })
            }
          break
        }
        case 'x': {
          if (event.context !== 'subscription') break
          for (const index of current.values()) ownerships[index]!.end = 'lost'
          if (current.size > 0) bufferedAtHandovers += buffered
          current.clear()
          break
        }
        case 'h': {
          const ownership = current.get(event.p) ?? -1
          handlings.push({ i: event.i, p: event.p, offset: BigInt(event.o), t: event.t, ownership })
          break
        }
        case 'c':
          for (const c of event.cs) {
            const list = commits.get(c.p) ?? []
            list.push({ t: event.t, offset: BigInt(c.o), metadata: c.m })
            commits.set(c.p, list)
          }
          break
        case 'd':
          break
      }
    }
    if (worker.ended === 'killed' && current.size > 0) bufferedAtHandovers += buffered
    for (const index of current.values())
      ownerships[index]!.end = worker.ended === 'killed' ? 'kill' : 'shutdown'
  }
  for (const list of commits.values()) list.sort((a, b) => a.t - b.t)
  handlings.sort((a, b) => a.t - b.t)

  // Lost, re-handled and order, in time order.
  const calls = new Map<number, Handling[]>()
  for (const h of handlings) {
    const list = calls.get(h.i)
    if (list) list.push(h)
    else calls.set(h.i, [h])
  }
  const deadLettered = new Set<number>()
  for (const copy of input.deadLetters) if (copy.i !== undefined) deadLettered.add(copy.i)
  const lost: number[] = []
  for (let i = 0; i < plan.messages; i++) if (!calls.has(i) && !deadLettered.has(i)) lost.push(i)

  let reorders = 0
  const reorderExamples: string[] = []
  const highest = new Map<string, number>()
  const seen = new Set<number>()
  for (const h of handlings) {
    if (seen.has(h.i)) continue
    seen.add(h.i)
    const { key, seq } = plannedMessage(h.i, plan)
    const top = highest.get(key) ?? -1
    if (seq < top) {
      reorders++
      if (reorderExamples.length < 5) reorderExamples.push(`${key}: ${seq} after ${top}`)
    } else highest.set(key, seq)
  }

  // Handovers: what each new owner could have been spared, and what it handled again.
  const byPartition = new Map<number, Handling[]>()
  for (const h of handlings) {
    const list = byPartition.get(h.p) ?? []
    list.push(h)
    byPartition.set(h.p, list)
  }
  let handovers = 0
  let uncommittedWindow = 0
  const byCause: Record<HandoverCause, CauseFigures> = {
    kill: { handovers: 0, window: 0, rehandled: 0 },
    rebalance: { handovers: 0, window: 0, rehandled: 0 },
    lost: { handovers: 0, window: 0, rehandled: 0 },
    shutdown: { handovers: 0, window: 0, rehandled: 0 }
  }
  /** Per ownership, how the one before it (of the same partition) ended. */
  const causes = ownerships.map((ownership) => {
    let previous: Ownership | undefined
    for (const o of ownerships)
      if (
        o.partition === ownership.partition &&
        o.start < ownership.start &&
        (!previous || o.start > previous.start)
      )
        previous = o
    return previous?.end
  })
  for (const [index, ownership] of ownerships.entries()) {
    const cause = causes[index]
    if (cause === undefined) continue // the partition's first owner
    const before = (byPartition.get(ownership.partition) ?? []).filter((h) => h.t < ownership.start)
    const commit = commitBefore(commits.get(ownership.partition) ?? [], ownership.start)
    const atRisk = new Set<bigint>()
    for (const h of before) if (!covers(commit, h.offset)) atRisk.add(h.offset)
    handovers++
    uncommittedWindow += atRisk.size
    byCause[cause].handovers++
    byCause[cause].window += atRisk.size
  }

  let rehandled = 0
  let extraCalls = 0
  let rehandledDespiteCommit = 0
  let rehandledWithinOwnership = 0
  const handledUnowned = handlings.filter((h) => h.ownership < 0).length
  const perOwnership = new Map<number, bigint[]>()
  for (const list of calls.values()) {
    if (list.length < 2) continue
    rehandled++
    extraCalls += list.length - 1
    for (const again of list.slice(1)) {
      const ownership = ownerships[again.ownership]
      if (ownership === undefined) continue // counted in handledUnowned
      const first = list[0]!
      if (first.ownership === again.ownership || first.t >= ownership.start) {
        rehandledWithinOwnership++
        continue
      }
      const commit = commitBefore(commits.get(again.p) ?? [], ownership.start)
      if (covers(commit, again.offset)) rehandledDespiteCommit++
      const cause = causes[again.ownership]
      if (cause !== undefined) byCause[cause].rehandled++
      const offsets = perOwnership.get(again.ownership) ?? []
      offsets.push(again.offset)
      perOwnership.set(again.ownership, offsets)
    }
  }
  const windows = new Map<number, PartitionWindow>()
  for (const [index, offsets] of perOwnership) {
    const partition = ownerships[index]!.partition
    let low = offsets[0]!
    let high = offsets[0]!
    for (const o of offsets) {
      if (o < low) low = o
      if (o > high) high = o
    }
    const window = windows.get(partition)
    if (window === undefined || offsets.length > window.largest)
      windows.set(partition, { partition, largest: offsets.length, span: Number(high - low) + 1 })
  }

  // The dead-letter topic against the planted failures.
  const copiesById = new Map<string, number>()
  const idsByMessage = new Map<number, Set<string>>()
  const unexpected = new Set<number>()
  for (const copy of input.deadLetters) {
    copiesById.set(copy.id, (copiesById.get(copy.id) ?? 0) + 1)
    if (copy.i === undefined || !input.planted.has(copy.i)) {
      unexpected.add(copy.i ?? -1)
      continue
    }
    const ids = idsByMessage.get(copy.i) ?? new Set<string>()
    ids.add(copy.id)
    idsByMessage.set(copy.i, ids)
  }
  const missing = [...input.planted].filter((i) => !idsByMessage.has(i))

  let commitRegressions = 0
  for (const list of commits.values())
    for (let j = 1; j < list.length; j++) if (list[j]!.offset < list[j - 1]!.offset) commitRegressions++

  return {
    messages: plan.messages,
    lost,
    reorders,
    reorderExamples,
    rehandled,
    extraCalls,
    handovers,
    uncommittedWindow,
    byCause,
    bufferedAtHandovers,
    rehandledDespiteCommit,
    rehandledWithinOwnership,
    handledUnowned,
    windows: [...windows.values()].sort((a, b) => a.partition - b.partition),
    dlq: {
      planted: input.planted.size,
      records: input.deadLetters.length,
      distinct: copiesById.size,
      missing,
      unexpected: [...unexpected],
      duplicateCopies: input.deadLetters.length - copiesById.size,
      splitIdentities: [...idsByMessage.values()].filter((ids) => ids.size > 1).length
    },
    commitRegressions,
    committedAtEnd: input.finalCommits.filter((c) => c.committed === c.end).length,
    partitions: input.partitions,
    killed: workers.filter((w) => w.ended === 'killed').length
  }
}

const causeLine = (c: CauseFigures) =>
  `${c.handovers} handovers, ${c.rehandled} re-handled of an uncommitted window of ${c.window}`

const percent = (part: number, whole: number) => `${((100 * part) / Math.max(1, whole)).toFixed(2)}%`

/** The report as the chaos command prints it. */
export function formatReport(report: ChaosReport): string {
  const { dlq } = report
  const largest = report.windows.reduce<PartitionWindow | undefined>(
    (max, w) => (max === undefined || w.largest > max.largest ? w : max),
    undefined
  )
  const lines = [
    `lost                       ${report.lost.length}${report.lost.length > 0 ? ` (e.g. ${report.lost.slice(0, 5).join(', ')})` : ''}`,
    `per-key reorderings        ${report.reorders}${report.reorderExamples.length > 0 ? ` (${report.reorderExamples.join('; ')})` : ''}`,
    `re-handled messages        ${report.rehandled} of ${report.messages} (${percent(report.rehandled, report.messages)}), ${report.extraCalls} extra handler calls`,
    `handovers                  ${report.handovers} (${report.killed} by SIGKILL); uncommitted window ${report.uncommittedWindow}, buffered or running ${report.bufferedAtHandovers}`,
    `  after SIGKILLs           ${causeLine(report.byCause.kill)}`,
    `  after rebalances         ${causeLine(report.byCause.rebalance)}`,
    `  after lost memberships   ${causeLine(report.byCause.lost)}`,
    `  after shutdowns          ${causeLine(report.byCause.shutdown)}`,
    `re-handled though committed ${report.rehandledDespiteCommit}; twice in one ownership ${report.rehandledWithinOwnership}; by a worker not owning the partition ${report.handledUnowned}`,
    `largest re-handled window  ${largest === undefined ? 'none' : `${largest.largest} messages on partition ${largest.partition} (span ${largest.span} offsets)`}`,
    `  per partition            ${report.windows.length === 0 ? 'none' : report.windows.map((w) => `p${w.partition} ${w.largest}/${w.span}`).join(', ')}`,
    `DLQ                        ${dlq.distinct} failures in ${dlq.records} records, ${dlq.planted} planted: missing ${dlq.missing.length}, unexpected ${dlq.unexpected.length}, duplicate copies ${dlq.duplicateCopies}, split identities ${dlq.splitIdentities}`,
    `commits                    ${report.committedAtEnd} of ${report.partitions} partitions committed at the log end; ${report.commitRegressions} regressions`
  ]
  return `${lines.join('\n')}\n`
}
