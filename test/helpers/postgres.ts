/** The machine's PostgreSQL (127.0.0.1:5432, trust auth, database `test`) for tests; `CONVEYOR_TEST_PG_URL` overrides it. */
import type { TestContext } from 'node:test'
import pg from 'pg'
import { cleanup, uniqueName } from './kafka.ts'

export function pgConfig(): pg.PoolConfig {
  const url = process.env.CONVEYOR_TEST_PG_URL
  return url
    ? { connectionString: url }
    : { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' }
}

/** A pool closed when the test ends. */
export function usePool(t: TestContext, options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ ...pgConfig(), max: 20, ...options })
  // A connection terminated under the pool is an 'error' event; tests that cause one read it from the query.
  pool.on('error', () => {})
  cleanup(t, () => pool.end())
  return pool
}

/** A table name of its own, dropped when the test ends. */
export function useTable(t: TestContext, pool: pg.Pool, prefix: string): string {
  const name = uniqueName(prefix).replaceAll('-', '_')
  cleanup(t, () => pool.query(`DROP TABLE IF EXISTS ${name}`).catch(() => {}))
  return name
}
