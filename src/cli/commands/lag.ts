import { parseArgs } from 'node:util'
import { groupKnown, groupLag, type LagRow } from '../../admin/lag.ts'
import type { ConsumerStatus } from '../../consumer/consumer.ts'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'
import { rootCauses } from '../../kafka/connection.ts'
import type { Command } from '../command.ts'
import { connect, connectionHelp, connectionOptions, environmentHelp, exitCodesHelp } from '../options.ts'

const usage = `Usage: conveyor lag <group> [--service URL] [options]

Per partition of the group's topics: the committed offset, the end of the log, the lag in
offsets, and the lag in time (how old the oldest unconsumed message is). With --service (the
base URL of a running \`conveyor run\`), a partition that is stuck also shows the blocking
offset, its key, the attempt and the time of the next retry. Commits nothing.

Options:
  --service URL           base URL of the running service, for what blocks a stuck partition
${connectionHelp}
  --json                  output as JSON

${environmentHelp}

${exitCodesHelp}`

/** An invalid event a replicator's partition stopped at (`onInvalid: block`), from its `/status`. */
interface BlockedAt {
  offset: string
  reason: string
  error: string
}

type Row = LagRow & {
  paused?: boolean
  blocking?: ConsumerStatus['partitions'][number]['retrying']
  blocked?: BlockedAt
}

export const lagCommand: Command = {
  name: 'lag',
  summary: 'consumer group lag per partition, in offsets and time, and what blocks a stuck partition',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        service: { type: 'string' },
        ...connectionOptions,
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    const [group] = positionals
    if (values.help || !group) {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const connection = await connect(values, 'lag')
    const rows: Row[] = await groupLag(connection, group)
    if (rows.length === 0 && !(await groupKnown(connection, group))) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `group ${group} does not exist (no members, no committed offsets)`,
        { path: '<group>' }
      )
    }
    if (values.service) {
      const status = await serviceStatus(values.service)
      const mine = status.consumers.find((c) => c.groupId === group)
      for (const row of rows) {
        const partition = mine?.partitions.find((p) => p.topic === row.topic && p.partition === row.partition)
        if (partition) {
          row.paused = partition.paused
          row.blocking = partition.retrying
          const blocked = (partition as { blocked?: BlockedAt }).blocked
          if (blocked) row.blocked = blocked
        }
      }
    }
    if (values.json) {
      io.out(JSON.stringify({ group, partitions: rows }, null, 2))
      return 0
    }
    if (rows.length === 0) io.out(`group ${group} has committed no offsets yet`)
    for (const r of rows) {
      const stuck = r.blocking?.[0]
      io.out(
        `${r.topic}/${r.partition}  committed ${r.committed ?? '-'}  end ${r.end}  lag ${r.lag}` +
          `${r.lagSeconds === null ? '' : ` (${r.lagSeconds} s)`}` +
          `${stuck ? `  blocked at offset ${stuck.offset} key ${stuck.key ?? '-'} attempt ${stuck.attempt}, next retry ${stuck.nextRetryAt}: ${stuck.error}` : ''}` +
          `${r.blocked ? `  stopped at invalid offset ${r.blocked.offset} (${r.blocked.reason}): ${r.blocked.error}; \`conveyor replicator skip --partition ${r.partition} --offset ${r.blocked.offset}\` releases it` : ''}`
      )
    }
    return 0
  }
}

/** The `/status` of a running service; one that does not answer, or not with a status, is an error naming it. */
async function serviceStatus(service: string): Promise<{ consumers: ConsumerStatus[] }> {
  let url: URL
  try {
    url = new URL('/status', service)
  } catch (error) {
    throw new ConveyorError(ErrorCodes.INVALID_OPTION, `--service must be a URL, got "${service}"`, {
      cause: error,
      path: '--service'
    })
  }
  let response: Response
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  } catch (error) {
    throw new ConveyorError(
      ErrorCodes.API,
      `the service at ${service} did not answer (${rootCauses(error).join('; ')})`,
      { cause: error, retryable: true }
    )
  }
  const body = (await response.json().catch(() => undefined)) as { consumers?: ConsumerStatus[] } | undefined
  if (!response.ok || !Array.isArray(body?.consumers)) {
    throw new ConveyorError(
      ErrorCodes.API,
      `the service at ${service} answered ${response.status} to GET /status, not a Conveyor status`,
      { retryable: response.status >= 500 }
    )
  }
  return { consumers: body.consumers }
}
