// What the PostgreSQL stores share: a connection pool that answers "unavailable" rather than hanging
// or crashing while the database is away (and reconnects by itself when it is back), and versioned
// migrations applied under an advisory lock, so collectors starting together do not race.
import pg from 'pg';
import type { PostgresConfig } from '../../src/config/collector.js';
import { StoreUnavailableError } from './store.js';

// BIGINT columns hold milliseconds since the epoch: read them as numbers (exact up to 2^53).
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** SQLSTATE classes that are the database's condition, not this query's fault: connection
 * exceptions (08), insufficient resources such as a full disk (53), operator intervention such as a
 * shutdown or restart (57), system errors (58), and serialization failures or deadlocks (40). */
const UNAVAILABLE_CLASSES = new Set(['08', '40', '53', '57', '58']);

/** pg's own words for a connection lost, refused in time or closed (they carry no code). */
const CONNECTION_LOST =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|Cannot use a pool after calling end/;

/** An error of the database being down, full or restarting becomes StoreUnavailableError (503 +
 * Retry-After); anything else (a bug of ours, a constraint) is returned as it is. */
export function asStoreError(err: unknown): Error {
  if (err instanceof StoreUnavailableError) return err;
  const e = err as Error & { code?: unknown };
  let unavailable: boolean;
  if (err instanceof pg.DatabaseError) unavailable = UNAVAILABLE_CLASSES.has(String(e.code).slice(0, 2));
  else if (typeof e.code === 'string')
    unavailable = /^E[A-Z]+$/.test(e.code); // ECONNREFUSED, EPIPE, ...
  else unavailable = CONNECTION_LOST.test(e.message ?? '');
  if (!unavailable) return e;
  return new StoreUnavailableError(`PostgreSQL unavailable (${String(e.code ?? 'error')}: ${e.message})`);
}

/** A pool of `size` connections with bounded waits; idle connections lost in a restart are dropped
 * (the pool's error event) and replaced on the next query. */
export function openPool(config: PostgresConfig, size: number, name: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: size,
    connectionTimeoutMillis: config.timeout,
    query_timeout: config.timeout,
    idleTimeoutMillis: 30_000,
    application_name: `voipready-collector ${name}`,
  });
  pool.on('error', () => {
    // An idle client's connection broke (database restarted): the pool discards it.
  });
  // A client checked out between two queries (a transaction, a claim) hears the server's
  // "terminating connection" (57P01, a restart) as an 'error' event with no pool listener: without
  // one of its own that event ends the process. Its next query fails (not queryable), which is
  // StoreUnavailableError, and releasing it with that error discards it.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

/** Runs fn on one connection inside a transaction; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw asStoreError(err);
  }
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => {
      broken = e;
    });
    throw asStoreError(err);
  } finally {
    // A connection that failed its rollback is not given back for reuse.
    client.release(broken);
  }
}

/** One query on any pooled connection. */
export async function query<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  try {
    return (await pool.query<R>(text, values)).rows;
  } catch (err) {
    throw asStoreError(err);
  }
}

/** One statement on any pooled connection; how many rows it changed. */
export async function execute(pool: pg.Pool, text: string, values: unknown[] = []): Promise<number> {
  try {
    return (await pool.query(text, values)).rowCount ?? 0;
  } catch (err) {
    throw asStoreError(err);
  }
}

// One lock for every collector's migrations (an arbitrary constant: "voipre" in ASCII).
const MIGRATION_LOCK = 0x766f69707265;

/**
 * Brings `component`'s tables to the newest schema: MIGRATIONS[i] migrates version i to i + 1, each
 * in its own transaction with the version bump. Every collector starting takes the same advisory
 * lock first, so one migrates and the others then find the work done.
 */
export async function migrate(
  pool: pg.Pool,
  component: string,
  migrations: readonly string[],
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        'CREATE TABLE IF NOT EXISTS voipready_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)',
      );
      const { rows } = await client.query<{ version: number }>(
        'SELECT version FROM voipready_schema WHERE component = $1',
        [component],
      );
      const from = rows[0]?.version ?? 0;
      if (from > migrations.length) {
        throw new Error(
          `the ${component} tables are at schema ${from}, this collector reads ${migrations.length} (a newer collector migrated them)`,
        );
      }
      for (let v = from; v < migrations.length; v++) {
        await client.query('BEGIN');
        try {
          await client.query(migrations[v]!);
          await client.query(
            `INSERT INTO voipready_schema (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = excluded.version`,
            [component, v + 1],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}
