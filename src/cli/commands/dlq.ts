import { parseArgs } from 'node:util'
import {
  type DeadLetter,
  type DeadLetterFilter,
  distinctDeadLetters,
  matches,
  readDeadLetters,
  replayDeadLetters
} from '../../dead-letter/replay.ts'
import type { Command, CommandIO } from '../command.ts'
import {
  connect,
  connectionHelp,
  connectionOptions,
  environmentHelp,
  exitCodesHelp,
  requireTopics
} from '../options.ts'

const usage = `Usage: conveyor dlq list|show|replay <dlq-topic> [filters] [options]

  list     one line per failure: position, source, reason, error (copies of one source
           record, dead-lettered again after a crash or rebalance, show once, ×N)
  show     every matching record in full (headers and value); narrow with --at P/O
  replay   writes the matching records back to their source topic (or --to), once

Filters:
  --reason R              the dlq_reason header (retries_exhausted, invalid_json, …)
  --error-class C         the dlq_error_class header
  --source-partition N    the partition the record came from
  --from-offset N         source offsets from N …
  --to-offset N           … to N (inclusive)
  --since ISO, --until ISO  last failure time
  --include-replayed      also records that came from an earlier replay (default: skipped)

Options:
  --at P/O                (show) one DLQ record by partition/offset
  --copies                (list, show) every copy, not one line per failure
  --to TOPIC              (replay) target topic instead of each record's source topic
  --dry-run               (replay) say what would be replayed, write nothing
${connectionHelp}
  --json                  output as JSON

Reading uses a throwaway consumer group and commits nothing: no live group's offsets move.
Replay writes each failure once (its last copy), with the header conveyor_replayed_from,
and records it in <dlq-topic>.replayed, so a second run replays nothing twice. A <dlq-topic> (or --to topic)
that does not exist is an error before anything is read or written.

${environmentHelp}

${exitCodesHelp}`

export const dlqCommand: Command = {
  name: 'dlq',
  summary: 'list, show and replay dead-lettered records',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        reason: { type: 'string' },
        'error-class': { type: 'string' },
        'source-partition': { type: 'string' },
        'from-offset': { type: 'string' },
        'to-offset': { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        'include-replayed': { type: 'boolean' },
        at: { type: 'string' },
        to: { type: 'string' },
        'dry-run': { type: 'boolean' },
        copies: { type: 'boolean' },
        ...connectionOptions,
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const [action, topic] = positionals
    if (values.help || !topic || !['list', 'show', 'replay'].includes(action ?? '')) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const filter: DeadLetterFilter = {
      reason: values.reason,
      errorClass: values['error-class'],
      sourcePartition:
        values['source-partition'] === undefined ? undefined : Number(values['source-partition']),
      fromOffset: values['from-offset'] === undefined ? undefined : BigInt(values['from-offset']),
      toOffset: values['to-offset'] === undefined ? undefined : BigInt(values['to-offset']),
      since: values.since,
      until: values.until,
      includeReplayed: values['include-replayed']
    }
    const connection = await connect(values, 'dlq')
    await requireTopics(connection, action === 'replay' && values.to ? [topic, values.to] : [topic])
    if (action === 'replay') {
      const progress = progressPrinter(io)
      const result = await replayDeadLetters({
        connection,
        dlqTopic: topic,
        filter,
        to: values.to,
        dryRun: values['dry-run'],
        onProgress: progress
      })
      if (values.json) io.out(JSON.stringify(result))
      else {
        const counts = `${result.matched} match, ${result.alreadyReplayed} already replayed${result.duplicates ? `, ${result.duplicates} duplicate copies left out` : ''}`
        io.out(
          values['dry-run']
            ? `dry run: ${result.matched - result.alreadyReplayed} record(s) would be replayed (${counts})`
            : `replayed ${result.replayed} record(s) (${counts})`
        )
      }
      return 0
    }
    const copies = (await readDeadLetters(connection, topic)).filter((r) => matches(r, filter))
    let records: Array<DeadLetter & { copies?: number }> = values.copies
      ? copies
      : distinctDeadLetters(copies)
    if (values.at) records = copies.filter((r) => `${r.partition}/${r.offset}` === values.at)
    if (action === 'list') {
      if (values.json) io.out(JSON.stringify(records.map(summary), null, 2))
      else for (const r of records) io.out(line(r))
      if (!values.json)
        io.err(
          `${records.length} record(s)${copies.length > records.length ? ` (${copies.length - records.length} duplicate copies not shown; --copies lists them)` : ''}`
        )
      return 0
    }
    io.out(JSON.stringify(records.map(full), null, 2))
    return 0
  }
}

function summary(r: DeadLetter & { copies?: number }) {
  return {
    id: r.id,
    at: `${r.partition}/${r.offset}`,
    copies: r.copies ?? 1,
    source: `${r.sourceTopic}/${r.sourcePartition}/${r.sourceOffset}`,
    reason: r.reason,
    errorClass: r.errorClass,
    error: r.errorMessage,
    lastFailure: r.lastFailure,
    replayedFrom: r.replayedFrom
  }
}

function line(r: DeadLetter): string {
  const s = summary(r)
  return `${s.at}  ${s.source}${s.copies > 1 ? ` (×${s.copies})` : ''}  ${s.reason ?? '-'}  ${s.errorClass ?? '-'}: ${s.error ?? ''}  ${s.lastFailure ?? ''}`
}

function full(r: DeadLetter) {
  return {
    ...summary(r),
    key: r.key?.toString('utf8') ?? null,
    value: r.value?.toString('utf8') ?? null,
    headers: Object.fromEntries([...r.headers].map(([k, v]) => [k, v.toString('utf8')]))
  }
}

/** A progress bar on a terminal; elsewhere a line at each tenth of the work. */
function progressPrinter(io: CommandIO): (done: number, total: number) => void {
  let lastTenth = -1
  return (done, total) => {
    const share = total === 0 ? 1 : done / total
    if (process.stderr.isTTY) {
      const width = 30
      const filled = Math.round(share * width)
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${done === total ? '\n' : ''}`
      )
      return
    }
    const tenth = Math.floor(share * 10)
    if (tenth !== lastTenth) {
      lastTenth = tenth
      io.err(`replayed ${done}/${total} (${Math.round(share * 100)}%)`)
    }
  }
}
