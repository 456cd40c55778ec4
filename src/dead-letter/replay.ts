import { randomUUID } from 'node:crypto'
import { Admin, Consumer, ProduceAcks, Producer, stringDeserializer } from '@platformatic/kafka'
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import { clientOptions, hasApiId, type KafkaConnection } from '../kafka/connection.ts'
import { DeadLetterHeaders, deadLetterId } from './record.ts'

/** Header on a replayed record naming the DLQ record it came from (`<dlq-topic>/<partition>/<offset>`). */
export const ReplayedFromHeader = 'conveyor_replayed_from'

export interface DeadLetter {
  /**
   * The failure's identity (the `dlq_id` header; for records written before it, made the
   * same way from the source headers, else the record's own position): copies share it.
   */
  id: string
  partition: number
  offset: bigint
  key: Buffer | null
  value: Buffer | null
  headers: Map<string, Buffer>
  timestamp: number
  sourceTopic: string | undefined
  sourcePartition: number | undefined
  sourceOffset: bigint | undefined
  reason: string | undefined
  errorClass: string | undefined
  errorMessage: string | undefined
  lastFailure: string | undefined
  /** Set when this record was itself produced by a replay. */
  replayedFrom: string | undefined
}

export interface DeadLetterFilter {
  reason?: string
  errorClass?: string
  sourcePartition?: number
  /** Source offsets from … to (inclusive). */
  fromOffset?: bigint
  toOffset?: bigint
  /** Last failure at or after / before (ISO 8601). */
  since?: string
  until?: string
  /** Also records that came from an earlier replay (off by default: a replay cannot loop). */
  includeReplayed?: boolean
}

const text = (headers: Map<string, Buffer>, name: string) => headers.get(name)?.toString('utf8')

export function matches(record: DeadLetter, filter: DeadLetterFilter): boolean {
  if (!filter.includeReplayed && record.replayedFrom !== undefined) return false
  if (filter.reason !== undefined && record.reason !== filter.reason) return false
  if (filter.errorClass !== undefined && record.errorClass !== filter.errorClass) return false
  if (filter.sourcePartition !== undefined && record.sourcePartition !== filter.sourcePartition) return false
  if (filter.fromOffset !== undefined && (record.sourceOffset ?? -1n) < filter.fromOffset) return false
  if (filter.toOffset !== undefined && (record.sourceOffset ?? -1n) > filter.toOffset) return false
  const time = record.lastFailure ?? new Date(record.timestamp).toISOString()
  if (filter.since !== undefined && Date.parse(time) < Date.parse(filter.since)) return false
  if (filter.until !== undefined && Date.parse(time) > Date.parse(filter.until)) return false
  return true
}

/**
 * Reads a dead-letter topic from its beginning to the end it had when the read began. The
 * reader belongs to a throwaway group and never commits: no live group's offsets move.
 */
export async function readDeadLetters(connection: KafkaConnection, topic: string): Promise<DeadLetter[]> {
  const consumer = new Consumer({
    ...clientOptions(connection),
    groupId: `conveyor-dlq-reader-${randomUUID()}`,
    deserializers: { headerKey: stringDeserializer },
    autocommit: false,
    maxWaitTime: 200
  })
  try {
    const ends = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? []
    const remaining = new Map<number, bigint>()
    ends.forEach((end, partition) => {
      if (end > 0n) remaining.set(partition, end)
    })
    const records: DeadLetter[] = []
    if (remaining.size === 0) return records
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest' })
    await new Promise<void>((resolve, reject) => {
      stream.on('error', reject)
      stream.on('data', (message) => {
        const end = remaining.get(message.partition)
        if (end === undefined || message.offset >= end) return
        const headers = message.headers as unknown as Map<string, Buffer>
        const sourcePartition = text(headers, DeadLetterHeaders.sourcePartition)
        const sourceOffset = text(headers, DeadLetterHeaders.sourceOffset)
        const sourceTopic = text(headers, DeadLetterHeaders.sourceTopic)
        records.push({
          id:
            text(headers, DeadLetterHeaders.id) ??
            (sourceTopic !== undefined && sourcePartition !== undefined && sourceOffset !== undefined
              ? deadLetterId(
                  text(headers, DeadLetterHeaders.consumerGroup) ?? '',
                  sourceTopic,
                  Number(sourcePartition),
                  BigInt(sourceOffset)
                )
              : `${topic}/${message.partition}/${message.offset}`),
          partition: message.partition,
          offset: message.offset,
          key: (message.key as Buffer | undefined) ?? null,
          value: (message.value as Buffer | undefined) ?? null,
          headers,
          timestamp: Number(message.timestamp),
          sourceTopic,
          sourcePartition: sourcePartition === undefined ? undefined : Number(sourcePartition),
          sourceOffset: sourceOffset === undefined ? undefined : BigInt(sourceOffset),
          reason: text(headers, DeadLetterHeaders.reason),
          errorClass: text(headers, DeadLetterHeaders.errorClass),
          errorMessage: text(headers, DeadLetterHeaders.errorMessage),
          lastFailure: text(headers, DeadLetterHeaders.lastFailureTime),
          replayedFrom: text(headers, ReplayedFromHeader)
        })
        if (message.offset + 1n >= end) remaining.delete(message.partition)
        if (remaining.size === 0) resolve()
      })
    })
    await stream.close()
    return records.sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : 1))
  } finally {
    await consumer.close(true)
  }
}

/**
 * One record per failure: of the copies sharing an id (a record dead-lettered again after
 * a crash or rebalance), the last one written, with how many copies there are.
 */
export function distinctDeadLetters(records: readonly DeadLetter[]): Array<DeadLetter & { copies: number }> {
  const byId = new Map<string, DeadLetter & { copies: number }>()
  for (const record of records) {
    const copies = (byId.get(record.id)?.copies ?? 0) + 1
    byId.delete(record.id) // re-inserted: the order is that of each failure's last copy
    byId.set(record.id, { ...record, copies })
  }
  return [...byId.values()]
}

export interface ReplayOptions {
  connection: KafkaConnection
  dlqTopic: string
  filter: DeadLetterFilter
  /** Target topic; default: each record's source topic. */
  to?: string
  dryRun?: boolean
  onProgress?: (done: number, total: number) => void
}

export interface ReplayResult {
  /** Distinct failures matching the filter (copies of one count once). */
  matched: number
  /** Copies left out because another copy of the same failure is replayed (or was); absent when none. */
  duplicates?: number
  alreadyReplayed: number
  replayed: number
}

/**
 * Replays the matching records of a DLQ topic to their source topic (or `to`): original key,
 * value and headers, without the `dlq_*` headers, with `conveyor_replayed_from`. Copies of
 * one failure (the same `id`) are replayed once, the last copy. Each replay is recorded in
 * the compacted topic `<dlq-topic>.replayed` by the failure's id, so a second run replays
 * nothing again; records produced by a replay are skipped unless asked for, so a replay
 * cannot loop.
 */
export async function replayDeadLetters(options: ReplayOptions): Promise<ReplayResult> {
  const ledger = `${options.dlqTopic}.replayed`
  await ensureLedger(options.connection, ledger)
  const done = await readLedger(options.connection, ledger)
  const copies = (await readDeadLetters(options.connection, options.dlqTopic)).filter((r) =>
    matches(r, options.filter)
  )
  // Earlier versions recorded a replay by the DLQ record's position: any copy replayed counts.
  const replayedIds = new Set(copies.filter((r) => done.has(`${r.partition}/${r.offset}`)).map((r) => r.id))
  const matching = distinctDeadLetters(copies)
  // A failure counts as replayed unless its last copy was written after the replay: then the
  // record failed again (it was read again on purpose, or the topic was made anew).
  const todo = matching.filter((r) => {
    if (replayedIds.has(r.id)) return false
    const replayed = done.get(r.id)
    if (replayed === undefined) return true
    const at = replayedAt(replayed)
    return at !== undefined && r.timestamp > at
  })
  const duplicates = copies.length - matching.length
  const result: ReplayResult = {
    matched: matching.length,
    ...(duplicates > 0 ? { duplicates } : {}),
    alreadyReplayed: matching.length - todo.length,
    replayed: 0
  }
  if (options.dryRun || todo.length === 0) return result
  for (const record of todo) {
    if (!options.to && !record.sourceTopic) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `DLQ record ${record.partition}/${record.offset} names no source topic: pass a target topic`,
        { path: '--to' }
      )
    }
  }
  const producer = new Producer({
    ...clientOptions(options.connection),
    acks: ProduceAcks.ALL,
    idempotent: true
  })
  try {
    const batch = 500
    for (let start = 0; start < todo.length; start += batch) {
      const slice = todo.slice(start, start + batch)
      await producer.send({
        messages: slice.map((record) => {
          const headers = new Map<Buffer, Buffer>()
          for (const [name, value] of record.headers)
            if (!name.startsWith('dlq_')) headers.set(Buffer.from(name), value)
          headers.set(
            Buffer.from(ReplayedFromHeader),
            Buffer.from(`${options.dlqTopic}/${record.partition}/${record.offset}`)
          )
          return {
            topic: options.to ?? record.sourceTopic!,
            key: record.key ?? undefined,
            value: record.value ?? undefined,
            headers,
            ...(options.to === undefined && record.sourcePartition !== undefined
              ? { partition: record.sourcePartition }
              : {})
          }
        })
      })
      // Recorded after the write is acknowledged: a crash in between replays a batch twice at worst, never loses it.
      await producer.send({
        messages: slice.map((record) => ({
          topic: ledger,
          key: Buffer.from(record.id),
          value: Buffer.from(
            JSON.stringify({ to: options.to ?? record.sourceTopic, at: new Date().toISOString() })
          )
        }))
      })
      result.replayed += slice.length
      options.onProgress?.(result.replayed, todo.length)
    }
  } finally {
    await producer.close()
  }
  return result
}

/** When a ledger entry says its failure was replayed (ms since the epoch), if it says. */
function replayedAt(entry: string): number | undefined {
  try {
    const at = Date.parse((JSON.parse(entry) as { at?: string }).at ?? '')
    return Number.isFinite(at) ? at : undefined
  } catch {
    return undefined
  }
}

async function ensureLedger(connection: KafkaConnection, topic: string): Promise<void> {
  const admin = new Admin(clientOptions(connection))
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: 1,
      replicas: -1,
      configs: [{ name: 'cleanup.policy', value: 'compact' }]
    })
  } catch (error) {
    if (!hasApiId(error, 'TOPIC_ALREADY_EXISTS')) throw error
  } finally {
    await admin.close()
  }
}

async function readLedger(connection: KafkaConnection, topic: string): Promise<Map<string, string>> {
  const entries = new Map<string, string>()
  for (const record of await readDeadLetters(connection, topic)) {
    if (record.key) entries.set(record.key.toString('utf8'), record.value?.toString('utf8') ?? '')
  }
  return entries
}
