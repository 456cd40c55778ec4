/** `conveyor replicator`: the relations replicator as a service. */
import type { Command } from '../../src/cli/command.ts'
import { serviceCommand } from '../../src/cli/commands/run.ts'
import { loadReplicatorConfig } from './config.ts'
import { runRelationsReplicator } from './service.ts'

const usage = `Usage: conveyor replicator [-c <config>] [--topic T] [--brokers HOST:PORT,…] [--port N] [--log-level LEVEL]

Applies Debezium change events (relations_to_add / relations_to_remove) in order, each
partition one event at a time, exactly once, to a PostgreSQL relations table: each event
and its partition's position are written in one transaction, and a member that lost its
partition is fenced out. Failed writes are retried for ever (1 s doubling to 5 min); bad
input goes to the dead-letter topic with its reason. Probe files /tmp/kubernetes-liveness
and /tmp/kubernetes-readiness, /health/*, /metrics, /status.
Configuration: the file (YAML, JSON, TS), then environment variables (KAFKA_SERVERS,
RBAC_KAFKA_CONSUMER_TOPIC, RBAC_KAFKA_CONSUMER_GROUP_ID, KAFKA_ENABLED, DATABASE_URL and the
CONVEYOR_* ones), then flags. See docs/replicator.md.`

export const replicatorCommand: Command = serviceCommand({
  name: 'replicator',
  summary: 'apply change events in order and exactly once to PostgreSQL (relations profile)',
  usage,
  flags: ['topic'],
  load: loadReplicatorConfig,
  start: runRelationsReplicator
})
