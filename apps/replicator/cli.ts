/**
 * `conveyor replicator`: the relations replicator as a service; `conveyor replicator skip`
 * releases a partition blocked at an invalid event (`onInvalid: block`).
 */
import { parseArgs } from 'node:util'
import type { Command } from '../../src/cli/command.ts'
import { serviceCommand } from '../../src/cli/commands/run.ts'
import { integerOption } from '../../src/cli/options.ts'
import { ConveyorError, ErrorCodes } from '../../src/core/errors.ts'
import { postgresSink } from '../../src/replicator/postgres.ts'
import { loadReplicatorConfig } from './config.ts'
import { openPool, runRelationsReplicator } from './service.ts'

const usage = `Usage: conveyor replicator [-c <config>] [--topic T] [--brokers HOST:PORT,…] [--port N] [--log-level LEVEL]
       conveyor replicator skip --partition P --offset O [--topic T] [-c <config>]

Applies Debezium change events (relations_to_add / relations_to_remove) in order, each
partition one event at a time, exactly once, to a PostgreSQL relations table: each event
and its partition's position are written in one transaction, and a member that lost its
partition is fenced out. Failed writes are retried for ever (1 s doubling to 5 min); bad
input goes to the dead-letter topic with its reason, or with replicator.onInvalid: block
stops its partition until \`skip\` releases that one event (to the dead-letter topic).
Probe files /tmp/kubernetes-liveness and /tmp/kubernetes-readiness, /health/*, /metrics,
/status. Configuration: the file (YAML, JSON, TS), then environment variables
(KAFKA_SERVERS, RBAC_KAFKA_CONSUMER_TOPIC, RBAC_KAFKA_CONSUMER_GROUP_ID, KAFKA_ENABLED,
DATABASE_URL and the CONVEYOR_* ones), then flags. See docs/replicator.md.`

const service = serviceCommand({
  name: 'replicator',
  summary: 'apply change events in order and exactly once to PostgreSQL (relations profile)',
  usage,
  flags: ['topic'],
  load: loadReplicatorConfig,
  start: runRelationsReplicator
})

/** `skip`: records the operator's request; the blocked partition sees it within a second. */
async function skip(argv: string[], io: Parameters<Command['run']>[1]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      topic: { type: 'string' },
      partition: { type: 'string' },
      offset: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help) {
    io.out(usage)
    return 0
  }
  if (values.partition === undefined || values.offset === undefined)
    throw new ConveyorError(ErrorCodes.INVALID_OPTION, 'skip needs --partition and --offset', {
      path: '--offset'
    })
  const partition = integerOption(values.partition, '--partition', { min: 0 })
  if (!/^\d+$/.test(values.offset))
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      `--offset must be an offset (an integer ≥ 0), got "${values.offset}"`,
      {
        path: '--offset'
      }
    )
  const offset = BigInt(values.offset)
  const { config, sources } = await loadReplicatorConfig({
    ...(values.config ? { file: values.config } : {}),
    flags: { topic: values.topic }
  })
  const pool = await openPool({ config, sources }, 1)
  try {
    const sink = postgresSink({
      pool,
      groupId: config.replicator.groupId,
      table: config.replicator.positionsTable,
      skipsTable: config.replicator.skipsTable,
      apply: async () => {}
    })
    if (config.replicator.migrate) await sink.migrate()
    const tp = { topic: config.replicator.topic, partition }
    await sink.skips.request(tp, offset)
    io.out(
      `asked to skip ${tp.topic}[${partition}] offset ${offset} (group ${config.replicator.groupId}): the replicator dead-letters it and the partition goes on`
    )
    return 0
  } finally {
    await pool.end()
  }
}

export const replicatorCommand: Command = {
  name: service.name,
  summary: service.summary,
  run: (argv, io) => (argv[0] === 'skip' ? skip(argv.slice(1), io) : service.run(argv, io))
}
