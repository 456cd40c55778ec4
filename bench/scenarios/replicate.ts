/**
 * Replication into PostgreSQL: a backlog of change events over 12 partitions and 2,000 keys,
 * each applied as an upsert of its key's latest seq into a state table, in order per
 * partition. `exactly-once` is the replicator (`createReplicator` + `postgresSink`) as it
 * comes: consecutive events of a partition (up to 100) and its position in one transaction.
 * `exactly-once-single` is the same with `batch: { maxSize: 1 }`, one transaction per event.
 * `at-least-once` is the baseline a team writes first: a Conveyor consumer in partition
 * order running the same upsert on its own (autocommit), the position only in Kafka's
 * commits. Each run verifies every event applied (the upserts counted in the database)
 * and, for `exactly-once`, every partition's recorded position at its end.
 *
 * Needs the machine's PostgreSQL (127.0.0.1:5432, user postgres, database test, or
 * CONVEYOR_TEST_PG_URL).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { KafkaConnection } from '../../src/kafka/connection.ts'
import type { Measurement, Scenario } from '../harness.ts'
import { createTopic, deleteTopic, produceBacklog } from '../lib.ts'
import { runtime } from '../runtime.ts'

interface Prepared {
  topic: string
  count: number
}

const partitions = 12
const keys = 2_000

function pool(): pg.Pool {
  const url = process.env.CONVEYOR_TEST_PG_URL
  const config = url
    ? { connectionString: url }
    : { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' }
  const made = new pg.Pool({ ...config, max: 16 })
  made.on('error', () => {})
  return made
}

/** A state table of its own (key → seq, and how many upserts it took), dropped afterwards. */
async function stateTable(db: pg.Pool): Promise<string> {
  const name = `bench_state_${randomBytes(4).toString('hex')}`
  await db.query(`CREATE TABLE ${name} (key text PRIMARY KEY, seq int NOT NULL, writes int NOT NULL)`)
  return name
}

const upsert = (table: string) =>
  `INSERT INTO ${table} (key, seq, writes) VALUES ($1, $2, 1)
   ON CONFLICT (key) DO UPDATE SET seq = EXCLUDED.seq, writes = ${table}.writes + 1`

async function applied(db: pg.Pool, table: string): Promise<number> {
  const { rows } = await db.query(`SELECT coalesce(sum(writes), 0)::int AS n FROM ${table}`)
  return rows[0].n as number
}

/** Waits until the table counts `count` upserts; the time from the first to then. */
async function timed(db: pg.Pool, table: string, count: number, started: () => number): Promise<number> {
  const deadline = Date.now() + 900_000
  for (;;) {
    if ((await applied(db, table)) >= count) return (performance.now() - started()) / 1_000
    if (Date.now() > deadline) throw new Error(`only ${await applied(db, table)} of ${count} applied`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function exactlyOnce(
  { topic, count }: Prepared,
  connection: KafkaConnection,
  maxSize: number
): Promise<Measurement> {
  const { createReplicator } = await runtime('replicator/replicator.ts')
  const { postgresSink } = await runtime('replicator/postgres.ts')
  const { KafkaTransport } = await runtime('kafka/transport.ts')
  const db = pool()
  const table = await stateTable(db)
  const positions = `bench_positions_${randomBytes(4).toString('hex')}`
  const groupId = `bench-replicate-${randomBytes(4).toString('hex')}`
  let first = 0
  const sink = postgresSink<{ key: string; seq: number }>({
    pool: db,
    groupId,
    table: positions,
    skipsTable: `${positions}_skips`,
    apply: async (events, client) => {
      if (first === 0) first = performance.now()
      for (const { value } of events) await client.query(upsert(table), [value.key, value.seq])
    }
  })
  await sink.migrate()
  const transport = new KafkaTransport({ connection })
  const replicator = createReplicator({
    transport,
    groupId,
    topics: [topic],
    sink,
    batch: { maxSize },
    decode: ({ value }) => JSON.parse(value.toString()) as { key: string; seq: number }
  })
  try {
    await replicator.start()
    const seconds = await timed(db, table, count, () => first)
    await replicator.stop()
    const recorded = [...(await sink.positions()).values()].reduce((sum, p) => sum + Number(p.next ?? 0n), 0)
    const upserts = await applied(db, table)
    return {
      value: count / seconds,
      verified: upserts === count && recorded === count,
      checks: { upserts, expected: count, positionsRecorded: recorded }
    }
  } finally {
    await transport.close()
    await db.query(`DROP TABLE IF EXISTS ${table}, ${positions}, ${positions}_skips`).catch(() => {})
    await db.end()
  }
}

async function atLeastOnce({ topic, count }: Prepared, connection: KafkaConnection): Promise<Measurement> {
  const { createConsumer } = await runtime('consumer/consumer.ts')
  const { KafkaTransport } = await runtime('kafka/transport.ts')
  const db = pool()
  const table = await stateTable(db)
  let first = 0
  const transport = new KafkaTransport({ connection })
  const consumer = createConsumer({
    transport,
    groupId: `bench-replicate-alo-${randomBytes(4).toString('hex')}`,
    topics: [topic],
    ordering: 'partition',
    fromBeginning: true,
    routes: {
      work: {
        handler: async (message) => {
          if (first === 0) first = performance.now()
          const { key, seq } = message.value as { key: string; seq: number }
          await db.query(upsert(table), [key, seq])
        }
      }
    }
  })
  try {
    await consumer.start()
    const seconds = await timed(db, table, count, () => first)
    await consumer.stop()
    const upserts = await applied(db, table)
    return { value: count / seconds, verified: upserts === count, checks: { upserts, expected: count } }
  } finally {
    await transport.close()
    await db.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {})
    await db.end()
  }
}

export const scenario: Scenario<Prepared> = {
  name: 'replicate',
  title: 'Replication into PostgreSQL (12 partitions, an upsert per event)',
  metric: { name: 'throughput', unit: 'events/s', higherIsBetter: true },
  contenders: [
    {
      name: 'exactly-once',
      label: 'Conveyor replicator: events and position in one transaction, up to 100 per transaction'
    },
    {
      name: 'exactly-once-single',
      label: 'Conveyor replicator with batch.maxSize 1: one transaction per event'
    },
    { name: 'at-least-once', label: 'Conveyor consumer, the same upsert on its own, position only in Kafka' }
  ],
  repeats: (quick) => (quick ? 1 : 2),
  parameters: (quick) => ({ events: quick ? 20_000 : 200_000, keys, partitions }),
  async prepare({ connection, quick, log }) {
    const count = quick ? 20_000 : 200_000
    const topic = await createTopic(connection, partitions)
    log(`  producing ${count} events over ${keys} keys to ${topic}`)
    await produceBacklog(connection, topic, { count, keys, size: 120 })
    return { topic, count }
  },
  async measure(contender, prepared, { connection }) {
    if (contender === 'exactly-once') return exactlyOnce(prepared, connection, 100)
    if (contender === 'exactly-once-single') return exactlyOnce(prepared, connection, 1)
    return atLeastOnce(prepared, connection)
  },
  async cleanup({ topic }, { connection }) {
    await deleteTopic(connection, topic)
  },
  ratios: [
    { numerator: 'exactly-once', denominator: 'at-least-once' },
    { numerator: 'exactly-once', denominator: 'exactly-once-single' },
    { numerator: 'exactly-once-single', denominator: 'at-least-once' }
  ],
  runtimeContenders: ['exactly-once', 'exactly-once-single']
}
