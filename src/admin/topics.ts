import { readFileSync } from 'node:fs'
import { type Admin, ConfigResourceTypes, IncrementalAlterConfigOperationTypes } from '@platformatic/kafka'
import { parse as parseYaml } from 'yaml'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { check } from '../routing/routes.ts'

/** One topic as declared in a topics file. */
export interface TopicSpec {
  partitions: number
  /** Default: the cluster's default replication factor. */
  replicationFactor?: number
  /** How long records are kept: milliseconds, or a duration such as `7d`, `12h`, `30m`. `-1`: for ever. */
  retention?: number | string
  cleanupPolicy?: 'delete' | 'compact' | 'compact,delete'
  /** Any other topic configuration, by Kafka name (`min.insync.replicas`, `segment.ms`, …). */
  config?: Record<string, string | number | boolean>
}

export type TopicChange =
  | {
      action: 'create'
      topic: string
      partitions: number
      replicationFactor: number | undefined
      config: Record<string, string>
    }
  | { action: 'add-partitions'; topic: string; from: number; to: number }
  | { action: 'set-config'; topic: string; name: string; from: string | undefined; to: string }
  | { action: 'impossible'; topic: string; reason: string }

const durations: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000
}

function retentionMs(value: number | string, path: string): string {
  if (typeof value === 'number' && Number.isInteger(value) && value >= -1) return String(value)
  const match = typeof value === 'string' ? /^(\d+)\s*(ms|s|m|h|d|w)$/.exec(value.trim()) : null
  check(match !== null, path, 'must be milliseconds, -1, or a duration such as 7d, 12h, 30m')
  return String(Number(match![1]) * durations[match![2]!]!)
}

/** Reads and validates a topics file (YAML or JSON): `topics: { <name>: TopicSpec }`. */
export function loadTopicsFile(
  file: string
): Map<string, { spec: TopicSpec; config: Record<string, string> }> {
  let document: unknown
  try {
    document = parseYaml(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      `${file}: cannot read it as YAML or JSON: ${(error as Error).message}`,
      { path: file, cause: error }
    )
  }
  const topics = (document as { topics?: unknown } | null)?.topics
  check(
    typeof topics === 'object' && topics !== null && !Array.isArray(topics),
    `${file} > topics`,
    'must map topic names to their settings'
  )
  const result = new Map<string, { spec: TopicSpec; config: Record<string, string> }>()
  for (const [name, raw] of Object.entries(topics as Record<string, unknown>)) {
    const path = `${file} > topics > ${name}`
    check(/^[a-zA-Z0-9._-]{1,249}$/.test(name), path, 'is not a valid topic name')
    check(typeof raw === 'object' && raw !== null, path, 'must be an object with at least "partitions"')
    const spec = raw as TopicSpec
    check(
      Number.isInteger(spec.partitions) && spec.partitions > 0,
      `${path} > partitions`,
      'must be an integer > 0'
    )
    if (spec.replicationFactor !== undefined) {
      check(
        Number.isInteger(spec.replicationFactor) && spec.replicationFactor > 0,
        `${path} > replicationFactor`,
        'must be an integer > 0'
      )
    }
    const config: Record<string, string> = {}
    for (const [key, value] of Object.entries(spec.config ?? {})) config[key] = String(value)
    if (spec.retention !== undefined)
      config['retention.ms'] = retentionMs(spec.retention, `${path} > retention`)
    if (spec.cleanupPolicy !== undefined) {
      check(
        ['delete', 'compact', 'compact,delete'].includes(spec.cleanupPolicy),
        `${path} > cleanupPolicy`,
        'must be delete, compact or "compact,delete"'
      )
      config['cleanup.policy'] = spec.cleanupPolicy
    }
    result.set(name, { spec, config })
  }
  return result
}

/**
 * What it takes to bring the cluster to the declared topics: topics to create, partitions
 * to add, configuration to set. Changes Kafka cannot make in place (fewer partitions, another
 * replication factor) are listed as impossible. Topics not in the file are left alone.
 */
export async function planTopics(
  admin: Admin,
  declared: Map<string, { spec: TopicSpec; config: Record<string, string> }>
): Promise<TopicChange[]> {
  const existing = new Set(await admin.listTopics({ includeInternals: false }))
  const changes: TopicChange[] = []
  const present = [...declared.keys()].filter((t) => existing.has(t))
  const metadata =
    present.length > 0 ? await admin.metadata({ topics: present, forceUpdate: true }) : undefined
  const configs =
    present.length > 0
      ? await admin.describeConfigs({
          resources: present.map((topic) => ({
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: topic,
            configurationKeys: Object.keys(declared.get(topic)!.config)
          }))
        })
      : []
  for (const [topic, { spec, config }] of declared) {
    if (!existing.has(topic)) {
      changes.push({
        action: 'create',
        topic,
        partitions: spec.partitions,
        replicationFactor: spec.replicationFactor,
        config
      })
      continue
    }
    const current = metadata!.topics.get(topic)!
    if (spec.partitions > current.partitionsCount) {
      changes.push({ action: 'add-partitions', topic, from: current.partitionsCount, to: spec.partitions })
    } else if (spec.partitions < current.partitionsCount) {
      changes.push({
        action: 'impossible',
        topic,
        reason: `partitions ${current.partitionsCount} → ${spec.partitions}: Kafka cannot remove partitions`
      })
    }
    const replicas = current.partitions[0]?.replicas.length
    if (
      spec.replicationFactor !== undefined &&
      replicas !== undefined &&
      replicas !== spec.replicationFactor
    ) {
      changes.push({
        action: 'impossible',
        topic,
        reason: `replication factor ${replicas} → ${spec.replicationFactor}: needs a partition reassignment, not done by apply`
      })
    }
    const described = configs.find((c) => c.resourceName === topic)?.configs ?? []
    for (const [name, value] of Object.entries(config)) {
      const now = described.find((c) => c.name === name)?.value ?? undefined
      if (now !== value)
        changes.push({ action: 'set-config', topic, name, from: now ?? undefined, to: value })
    }
  }
  return changes
}

/** Makes the planned changes (not the impossible ones); rejects when any change is impossible. */
export async function applyTopics(admin: Admin, changes: TopicChange[]): Promise<void> {
  for (const change of changes) {
    if (change.action === 'create') {
      await admin.createTopics({
        topics: [change.topic],
        partitions: change.partitions,
        replicas: change.replicationFactor ?? -1,
        configs: Object.entries(change.config).map(([name, value]) => ({ name, value }))
      })
    } else if (change.action === 'add-partitions') {
      await admin.createPartitions({ topics: [{ name: change.topic, count: change.to }] })
    }
  }
  const settings = changes.filter((c) => c.action === 'set-config')
  const byTopic = new Map<string, typeof settings>()
  for (const s of settings) byTopic.set(s.topic, [...(byTopic.get(s.topic) ?? []), s])
  if (byTopic.size > 0) {
    await admin.incrementalAlterConfigs({
      resources: [...byTopic].map(([topic, list]) => ({
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: topic,
        configs: list.map((s) => ({
          name: s.name,
          configOperation: IncrementalAlterConfigOperationTypes.SET,
          value: s.to
        }))
      }))
    })
  }
  const impossible = changes.filter((c) => c.action === 'impossible')
  if (impossible.length > 0) {
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      `some declared changes cannot be made:\n${impossible.map((c) => `${c.topic}: ${c.reason}`).join('\n')}`
    )
  }
}

/** One line per change, as `topics plan` prints them. */
export function describeChange(change: TopicChange): string {
  switch (change.action) {
    case 'create': {
      const settings = Object.entries(change.config).map(([k, v]) => `${k}=${v}`)
      return `+ create ${change.topic}: ${change.partitions} partitions, replication ${change.replicationFactor ?? 'default'}${settings.length > 0 ? `, ${settings.join(', ')}` : ''}`
    }
    case 'add-partitions':
      return `~ ${change.topic}: partitions ${change.from} → ${change.to}`
    case 'set-config':
      return `~ ${change.topic}: ${change.name} ${change.from ?? '(unset)'} → ${change.to}`
    default:
      return `! ${change.topic}: ${change.reason}`
  }
}
