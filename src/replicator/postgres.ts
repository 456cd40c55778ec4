/**
 * A {@link FencedSink} on PostgreSQL: the events' changes and the partition's position are
 * written in one transaction, and the position's row carries the fence.
 *
 * The positions table (`conveyor_offsets` by default; `migrate()` creates it):
 *
 *   group_id text, topic text, partition int   the key
 *   next_offset bigint                          the offset after the last event applied (null: none yet)
 *   epoch bigint                                bumped by every `acquire`: the fence token
 *
 * `acquire` bumps the epoch and reads the position in one statement. `write` locks the row
 * (`SELECT … FOR UPDATE`), checks the epoch, applies the events the row does not already
 * cover, moves `next_offset` and commits. A zombie's transaction either committed before the
 * new owner's `acquire` (which waits for the row lock, then reads the position past it), or
 * finds a newer epoch and rolls back: never both, never neither. A member frozen inside its
 * transaction has it ended by PostgreSQL (`idleInTransactionTimeout`), so it cannot hold
 * the partition's row, and with it the next owner, for ever.
 *
 * Conveyor does not depend on `pg`: pass any pool with `connect()` (node-postgres' `Pool`).
 */
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { TopicPartition } from '../transport/types.ts'
import { type Acquired, FencedError, type FencedSink, type ReplicaEvent, type SkipRequests } from './sink.ts'

/** The part of a node-postgres client the sink uses. */
export interface SqlClient {
  /** Runs one statement with `$1`-style parameters. */
  query(
    text: string,
    values?: unknown[]
  ): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>
}

/** A client checked out of the pool. */
export interface PooledClient extends SqlClient {
  /** Gives the client back to the pool; with an error, the pool discards it. */
  release(error?: Error | boolean): void
  /** node-postgres clients report a connection lost while checked out as an 'error' event. */
  on?(event: 'error', listener: (error: Error) => void): unknown
}

/** The part of a node-postgres `Pool` the sink uses. */
export interface SqlPool {
  /** Checks a client out. */
  connect(): Promise<PooledClient>
}

/** Options of {@link postgresSink}. */
export interface PostgresSinkOptions<T> {
  /** Where the sink's sessions come from (node-postgres' `Pool`). */
  pool: SqlPool
  /** The consumer group: positions are kept per group. */
  groupId: string
  /**
   * Applies the events inside the sink's transaction (`client` is in it): their changes
   * commit with the position or not at all. Must not commit or roll back itself.
   */
  apply(events: readonly ReplicaEvent<T>[], client: SqlClient): Promise<void>
  /** The positions table, optionally schema-qualified. Default `conveyor_offsets`. */
  table?: string
  /**
   * A member frozen inside a write (paused past its session timeout, say) holds the
   * partition's row lock, and the next owner's `acquire` waits for it. PostgreSQL ends a
   * session idle in a write's transaction for this long (`idle_in_transaction_session_timeout`),
   * which releases the lock; the frozen member's write then fails and, retried, meets the
   * fence. ms, default 10 000.
   */
  idleInTransactionTimeout?: number
  /** The table of operators' skip requests (`onInvalid: 'block'`). Default `conveyor_skips`. */
  skipsTable?: string
}

/** The PostgreSQL sink, with `migrate` to create its positions table. */
export interface PostgresSink<T> extends FencedSink<T, bigint> {
  /** Creates the positions table if it does not exist. */
  migrate(): Promise<void>
  /** Operators' requests to skip a blocked invalid event, kept in the skips table. */
  readonly skips: SkipRequests
  /** The recorded positions of the group, per `topic:partition` (for operators and tests). */
  positions(): Promise<Map<string, { next: bigint | undefined; epoch: bigint }>>
}

/** A quoted SQL identifier, `schema.table` kept as two parts (the relations store uses it too). */
export function identifier(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replaceAll('"', '""')}"`)
    .join('.')
}

/** A bigint column as PostgreSQL's driver returns it (a string), or `undefined` for null. */
function offsetOrNone(value: unknown): bigint | undefined {
  return value === null || value === undefined ? undefined : BigInt(value as string)
}

/** Clients that already have the sink's 'error' listener (a pool hands the same ones out again). */
const listening = new WeakSet<PooledClient>()

/**
 * A client of the pool. A connection that breaks while the client is checked out (the
 * server ended the session, the network went) is an 'error' event on it, which would end the
 * process without a listener; the query in flight fails with the same error, and that
 * failure is what the sink acts on.
 */
async function checkOut(pool: SqlPool): Promise<PooledClient> {
  const client = await pool.connect()
  if (!listening.has(client)) {
    listening.add(client)
    client.on?.('error', () => {})
  }
  return client
}

/** A fenced sink writing through `apply` in the transaction that moves the partition's position (see the module's description). */
export function postgresSink<T>(options: PostgresSinkOptions<T>): PostgresSink<T> {
  const { pool, groupId, apply } = options
  const table = identifier(options.table ?? 'conveyor_offsets')
  const idleTimeout = Math.round(options.idleInTransactionTimeout ?? 10_000)
  if (!Number.isInteger(idleTimeout) || idleTimeout < 100 || idleTimeout > 2 ** 31 - 1)
    throw new ConveyorError(
      ErrorCodes.INVALID_OPTION,
      `idleInTransactionTimeout must be between 100 and ${2 ** 31 - 1} ms, got ${options.idleInTransactionTimeout}`,
      { path: 'idleInTransactionTimeout' }
    )
  const skipsTable = identifier(options.skipsTable ?? 'conveyor_skips')
  /** One statement on a client of its own; with `signal`, not sent if it aborted while a session was awaited. */
  const run = async (text: string, values: unknown[] = [], signal?: AbortSignal) => {
    const client = await checkOut(pool)
    if (signal?.aborted) {
      client.release()
      throw signal.reason ?? new Error('aborted')
    }
    try {
      const result = await client.query(text, values)
      client.release()
      return result
    } catch (error) {
      client.release(error as Error)
      throw error
    }
  }

  return {
    async migrate() {
      await run(
        `CREATE TABLE IF NOT EXISTS ${table} (
           group_id text NOT NULL,
           topic text NOT NULL,
           partition integer NOT NULL,
           next_offset bigint,
           epoch bigint NOT NULL,
           PRIMARY KEY (group_id, topic, partition)
         )`
      )
      await run(
        `CREATE TABLE IF NOT EXISTS ${skipsTable} (
           group_id text NOT NULL,
           topic text NOT NULL,
           partition integer NOT NULL,
           "offset" bigint NOT NULL,
           requested_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (group_id, topic, partition, "offset")
         )`
      )
    },

    async acquire({ topic, partition }: TopicPartition, signal: AbortSignal): Promise<Acquired<bigint>> {
      // Taken away again while this waited for a session: bumping the epoch then would fence
      // out the member that owns the partition by then.
      const { rows } = await run(
        `INSERT INTO ${table} AS t (group_id, topic, partition, next_offset, epoch)
           VALUES ($1, $2, $3, NULL, 1)
         ON CONFLICT (group_id, topic, partition) DO UPDATE SET epoch = t.epoch + 1
         RETURNING epoch, next_offset`,
        [groupId, topic, partition],
        signal
      )
      const row = rows[0]!
      return { token: BigInt(row.epoch as string), next: offsetOrNone(row.next_offset) }
    },

    async write(tp, events, next, token) {
      const client = await checkOut(pool)
      let open = false
      let released = false
      const release = (error?: Error) => {
        if (released) return
        released = true
        client.release(error)
      }
      try {
        await client.query('BEGIN')
        open = true
        await client.query(`SET LOCAL idle_in_transaction_session_timeout = ${idleTimeout}`)
        const { rows } = await client.query(
          `SELECT epoch, next_offset FROM ${table} WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
          [groupId, tp.topic, tp.partition]
        )
        const row = rows[0]
        const epoch = row === undefined ? undefined : BigInt(row.epoch as string)
        if (epoch !== token) {
          await client.query('ROLLBACK')
          open = false
          release()
          throw new FencedError(tp, `its epoch is ${epoch ?? 'gone'}, this member holds ${token}`)
        }
        const done = offsetOrNone(row!.next_offset) ?? -1n
        const fresh = events.filter((event) => event.offset >= done)
        if (fresh.length > 0) await apply(fresh, client)
        if (next > done)
          await client.query(
            `UPDATE ${table} SET next_offset = $4 WHERE group_id = $1 AND topic = $2 AND partition = $3`,
            [groupId, tp.topic, tp.partition, next.toString()]
          )
        await client.query('COMMIT')
        open = false
        release()
      } catch (error) {
        if (open) await client.query('ROLLBACK').catch(() => {})
        release(error as Error)
        throw error
      }
    },

    skips: {
      async request({ topic, partition }, offset) {
        await run(
          `INSERT INTO ${skipsTable} (group_id, topic, partition, "offset") VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
          [groupId, topic, partition, offset.toString()]
        )
      },
      async requested({ topic, partition }, offset) {
        const { rows } = await run(
          `SELECT 1 FROM ${skipsTable} WHERE group_id = $1 AND topic = $2 AND partition = $3 AND "offset" = $4`,
          [groupId, topic, partition, offset.toString()]
        )
        return rows.length > 0
      }
    },

    async positions() {
      const { rows } = await run(
        `SELECT topic, partition, next_offset, epoch FROM ${table} WHERE group_id = $1`,
        [groupId]
      )
      const found = new Map<string, { next: bigint | undefined; epoch: bigint }>()
      for (const row of rows)
        found.set(`${row.topic}:${row.partition}`, {
          next: offsetOrNone(row.next_offset),
          epoch: BigInt(row.epoch as string)
        })
      return found
    }
  }
}
