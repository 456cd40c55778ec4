/**
 * A replicator sink for tests: each event applied is a ledger row (partition, offset, key,
 * seq), written in the sink's transaction, so the ledger shows what was applied, how often
 * and in which order.
 */
import type { TestContext } from 'node:test'
import type pg from 'pg'
import { DecodeError } from '../../src/codec/json.ts'
import { postgresSink, type SqlClient } from '../../src/replicator/postgres.ts'
import type { ReplicaEvent } from '../../src/replicator/sink.ts'
import { usePool, useTable } from './postgres.ts'

export interface Change {
  key: string
  seq: number
}

/** JSON changes; anything else is a `DecodeError` with reason `invalid_json`. */
export const decodeChange = ({ value }: { value: Buffer }): Change => {
  try {
    return JSON.parse(value.toString()) as Change
  } catch (error) {
    throw new DecodeError('invalid_json', 'not JSON', error)
  }
}

export interface LedgerOptions {
  /** An event for which this answers true fails its transaction (before anything is written). */
  fail?: (event: ReplicaEvent<Change>) => boolean
  /** Also runs in each event's transaction (to keep transactions open a while, say). */
  extra?: string
  /** The pool the sink writes through (default: one of the test's). */
  pool?: pg.Pool
  idleInTransactionTimeout?: number
}

export async function ledgerSink(t: TestContext, groupId: string, options: LedgerOptions = {}) {
  const admin = usePool(t)
  const pool = options.pool ?? admin
  const ledger = useTable(t, admin, 'ledger')
  const positions = useTable(t, admin, 'positions')
  /** The number of events of each transaction the sink began, in order (failed ones too). */
  const transactions: number[] = []
  await admin.query(
    `CREATE TABLE ${ledger} (id bigserial PRIMARY KEY, partition int, kafka_offset bigint, key text, seq int)`
  )
  const sink = postgresSink<Change>({
    pool,
    groupId,
    table: positions,
    ...(options.idleInTransactionTimeout === undefined
      ? {}
      : { idleInTransactionTimeout: options.idleInTransactionTimeout }),
    apply: async (events: readonly ReplicaEvent<Change>[], client: SqlClient) => {
      transactions.push(events.length)
      for (const event of events) {
        if (options.fail?.(event)) throw new Error(`the sink refused offset ${event.offset}`)
        if (options.extra) await client.query(options.extra)
        await client.query(
          `INSERT INTO ${ledger} (partition, kafka_offset, key, seq) VALUES ($1, $2, $3, $4)`,
          [event.partition, event.offset.toString(), event.value.key, event.value.seq]
        )
      }
    }
  })
  await postgresSink({ pool: admin, groupId, table: positions, apply: async () => {} }).migrate()
  const applied = async () =>
    (
      await admin.query<{ partition: number; kafka_offset: string }>(
        `SELECT partition, kafka_offset FROM ${ledger} ORDER BY id`
      )
    ).rows.map((r) => ({ partition: r.partition, offset: BigInt(r.kafka_offset) }))
  return { pool: admin, sink, applied, ledger, transactions }
}

/** Each partition's offsets, in the order applied. */
export function byPartition(rows: Array<{ partition: number; offset: bigint }>): Map<number, bigint[]> {
  const found = new Map<number, bigint[]>()
  for (const { partition, offset } of rows) found.set(partition, [...(found.get(partition) ?? []), offset])
  return found
}
