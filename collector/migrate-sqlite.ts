// `voipready collector migrate --from-sqlite FILE`: copies an embedded store (reports, assessments,
// each site's and host's latest, the InfluxDB outbox and the points set aside, cases with their
// updates, attachments, notifications, clocks and webhook outbox, cutovers) into the PostgreSQL
// store the configuration names. Running it again copies nothing twice: rows with a key of their
// own are inserted unless present (a report id already stored with other content is counted as a
// conflict and PostgreSQL's row kept); rows without one (outbox rows, refused points, case updates)
// are recorded in a ledger table, voipready_sqlite_import, in the same transaction as the copy.
// The SQLite file is opened read-only and never changed.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type pg from 'pg';
import type { PostgresConfig } from '../src/config/collector.js';
import { UserError } from '../src/errors.js';
import { PostgresCaseStore } from './cases/postgres.js';
import { CASES_SCHEMA_VERSION } from './cases/sqlite.js';
import { PostgresStore } from './store/postgres.js';
import { inTransaction, openPool } from './store/postgres-db.js';
import { SCHEMA_VERSION } from './store/sqlite.js';

/** Per table: rows copied now, rows PostgreSQL held already (from an earlier run, or its own). */
export interface TableCount {
  table: string;
  copied: number;
  present: number;
}

export interface MigrationResult {
  counts: TableCount[];
  /** Report ids PostgreSQL holds with other content than the SQLite file (PostgreSQL's kept). */
  conflicts: { site: string; reportId: string }[];
}

type Row = Record<string, unknown>;

/** Rows read from SQLite per PostgreSQL transaction. */
const BATCH = 500;

/** Opens the file read-only and checks it is a voipready store this version can read. */
export function openSqliteSource(file: string): Database.Database {
  if (!existsSync(file)) throw new UserError(`${file}: no such file`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new UserError(`${file}: cannot open as SQLite (${(err as Error).message})`);
  }
  try {
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok')
      throw new UserError(`${file}: the SQLite file is damaged (quick_check: ${String(check)})`);
    const hasMeta = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get();
    const version = (key: string) =>
      hasMeta
        ? (db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key) as string | undefined)
        : undefined;
    const reports = version('schema');
    if (reports === undefined) throw new UserError(`${file}: not a voipready store (no schema version)`);
    if (Number(reports) > SCHEMA_VERSION)
      throw new UserError(
        `${file}: store schema ${reports} is newer than this voipready reads (${SCHEMA_VERSION}); migrate with the version that wrote it`,
      );
    // Schema 1 keyed reports by id alone; its rows carry the site too and copy the same way.
    if (!/^[12]$/.test(reports)) throw new UserError(`${file}: unknown store schema ${reports}`);
    const cases = version('cases_schema');
    if (cases !== undefined && Number(cases) > CASES_SCHEMA_VERSION)
      throw new UserError(
        `${file}: case schema ${cases} is newer than this voipready reads (${CASES_SCHEMA_VERSION}); migrate with the version that wrote it`,
      );
    return db;
  } catch (err) {
    db.close();
    if (err instanceof UserError) throw err;
    // SQLITE_NOTADB, SQLITE_CORRUPT, ...
    const e = err as { code?: string; message?: string };
    throw new UserError(`${file}: not a readable SQLite store (${e.code ?? 'error'}: ${e.message})`);
  }
}

/** The source's rows of `table` in stored order, BATCH at a time. */
function* batches(db: Database.Database, table: string): Generator<Row[]> {
  const stmt = db.prepare(`SELECT rowid AS _rowid, * FROM ${table} WHERE rowid > ? ORDER BY rowid LIMIT ?`);
  let after = 0;
  for (;;) {
    const rows = stmt.all(after, BATCH) as Row[];
    if (rows.length === 0) return;
    yield rows;
    after = rows[rows.length - 1]!._rowid as number;
  }
}

/** INSERT of many rows with $n placeholders, then `tail` (ON CONFLICT …); rows changed. */
async function insertMany(
  client: pg.PoolClient,
  table: string,
  columns: readonly string[],
  rows: readonly Row[],
  tail: string,
): Promise<number> {
  if (rows.length === 0) return 0;
  const values: unknown[] = [];
  const tuples = rows.map((row) => {
    const at = columns.map((c) => {
      values.push(row[c]);
      return `$${values.length}`;
    });
    return `(${at.join(', ')})`;
  });
  const res = await client.query(
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')} ${tail}`,
    values,
  );
  return res.rowCount ?? 0;
}

interface TableSpec {
  table: string;
  columns: readonly string[];
  /** ON CONFLICT clause: rows with a key of their own. */
  onConflict?: string;
  /** Rows without one: the ledger key's parts besides the table name. */
  ledger?: (row: Row) => string;
  /** SQLite → PostgreSQL value changes (INTEGER 0/1 → BOOLEAN). */
  convert?: (row: Row) => Row;
}

const TABLES: readonly TableSpec[] = [
  {
    table: 'reports',
    columns: ['site', 'report_id', 'agent', 'created_at', 'received_at_ms', 'body_sha256', 'body'],
    onConflict: 'ON CONFLICT (site, report_id) DO NOTHING',
  },
  {
    table: 'assessments',
    columns: ['assessment_id', 'report_id', 'site', 'measured_at_ms', 'doc'],
    onConflict: 'ON CONFLICT DO NOTHING',
  },
  // The newest evidence wins, as when a collector stores a report.
  {
    table: 'sites',
    columns: ['site', 'assessment_id', 'measured_at_ms'],
    onConflict: `ON CONFLICT (site) DO UPDATE SET assessment_id = excluded.assessment_id,
      measured_at_ms = excluded.measured_at_ms WHERE excluded.measured_at_ms > sites.measured_at_ms`,
  },
  {
    table: 'site_hosts',
    columns: ['site', 'host', 'assessment_id', 'measured_at_ms'],
    onConflict: `ON CONFLICT (site, host) DO UPDATE SET assessment_id = excluded.assessment_id,
      measured_at_ms = excluded.measured_at_ms WHERE excluded.measured_at_ms > site_hosts.measured_at_ms`,
  },
  {
    table: 'influx_outbox',
    columns: ['n_points', 'points'],
    ledger: (r) => `${r.seq}\0${r.points}`,
  },
  {
    table: 'influx_rejected',
    columns: ['rejected_at_ms', 'error', 'point'],
    ledger: (r) => `${r.id}\0${r.rejected_at_ms}\0${r.error}\0${r.point}`,
  },
  {
    table: 'cases',
    columns: [
      'case_id',
      'site',
      'status',
      'priority',
      'withheld',
      'revision',
      'created_at_ms',
      'doc',
      'clocks',
    ],
    onConflict: 'ON CONFLICT (case_id) DO NOTHING',
    convert: (r) => ({ ...r, withheld: r.withheld === 1 }),
  },
  {
    table: 'case_updates',
    columns: ['case_id', 'doc'],
    ledger: (r) => `${r.seq}\0${r.case_id}\0${r.doc}`,
  },
  // Attachment ids are in URLs (/api/v1/cases/ID/attachments/N): kept as they are.
  {
    table: 'case_attachments',
    columns: [
      'attachment_id',
      'case_id',
      'kind',
      'assessment_id',
      'content_type',
      'created_at_ms',
      'purged_at_ms',
      'body',
    ],
    onConflict: 'ON CONFLICT (attachment_id) DO NOTHING',
  },
  {
    table: 'case_timers',
    columns: ['case_id', 'kind', 'due_at_ms'],
    onConflict: 'ON CONFLICT (case_id, kind) DO NOTHING',
  },
  {
    table: 'notifications',
    columns: ['event_id', 'case_id', 'type', 'at_ms', 'doc'],
    onConflict: 'ON CONFLICT (event_id) DO NOTHING',
  },
  {
    table: 'webhook_outbox',
    columns: ['target', 'event_id', 'body', 'attempts', 'next_attempt_ms', 'delivered_at_ms', 'last_error'],
    onConflict: 'ON CONFLICT (target, event_id) DO NOTHING',
  },
  {
    table: 'cutovers',
    columns: ['cutover_id', 'site', 'cutover_at_ms', 'submitted_at_ms', 'doc'],
    onConflict: 'ON CONFLICT (cutover_id) DO NOTHING',
  },
];

const CASE_TABLES = new Set([
  'cases',
  'case_updates',
  'case_attachments',
  'case_timers',
  'notifications',
  'webhook_outbox',
  'cutovers',
]);

const LEDGER = `CREATE TABLE IF NOT EXISTS voipready_sqlite_import (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  PRIMARY KEY (kind, key)
)`;

const ledgerKey = (table: string, parts: string) =>
  createHash('sha256').update(`${table}\0${parts}`).digest('hex');

/** Copies one batch in one transaction; how many rows were new. */
async function copyBatch(pool: pg.Pool, spec: TableSpec, source: Row[]): Promise<number> {
  const rows = spec.convert ? source.map(spec.convert) : source;
  return inTransaction(pool, async (client) => {
    if (!spec.ledger) return insertMany(client, spec.table, spec.columns, rows, spec.onConflict!);
    const keys = source.map((r) => ledgerKey(spec.table, spec.ledger!(r)));
    const res = await client.query<{ key: string }>(
      `INSERT INTO voipready_sqlite_import (kind, key) SELECT $1, unnest($2::text[])
       ON CONFLICT DO NOTHING RETURNING key`,
      [spec.table, keys],
    );
    const fresh = new Set(res.rows.map((r) => r.key));
    return insertMany(
      client,
      spec.table,
      spec.columns,
      rows.filter((_, i) => fresh.has(keys[i]!)),
      '',
    );
  });
}

/** Report ids of the batch that PostgreSQL holds with another body. */
async function reportConflicts(pool: pg.Pool, rows: Row[]): Promise<{ site: string; reportId: string }[]> {
  const res = await pool.query<{ site: string; report_id: string; body_sha256: string }>(
    `SELECT site, report_id, body_sha256 FROM reports
     WHERE (site, report_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [rows.map((r) => r.site), rows.map((r) => r.report_id)],
  );
  const held = new Map(res.rows.map((r) => [`${r.site}\0${r.report_id}`, r.body_sha256]));
  return rows
    .filter((r) => {
      const sha = held.get(`${r.site}\0${r.report_id}`);
      return sha !== undefined && sha !== r.body_sha256;
    })
    .map((r) => ({ site: String(r.site), reportId: String(r.report_id) }));
}

/** Attachment ids PostgreSQL already uses for another attachment: refused before anything is copied. */
async function attachmentClashes(pool: pg.Pool, db: Database.Database): Promise<string[]> {
  const clashes: string[] = [];
  for (const rows of batches(db, 'case_attachments')) {
    const res = await pool.query<{ attachment_id: number; case_id: string; created_at_ms: number }>(
      'SELECT attachment_id, case_id, created_at_ms FROM case_attachments WHERE attachment_id = ANY($1::bigint[])',
      [rows.map((r) => r.attachment_id)],
    );
    const mine = new Map(rows.map((r) => [Number(r.attachment_id), r]));
    for (const r of res.rows) {
      const m = mine.get(r.attachment_id)!;
      if (m.case_id !== r.case_id || Number(m.created_at_ms) !== r.created_at_ms)
        clashes.push(`${r.attachment_id} (case ${r.case_id} in PostgreSQL, ${m.case_id} here)`);
    }
  }
  return clashes;
}

/** Moves the serial counters past what was copied, so new rows get new ids. */
async function advanceSequences(pool: pg.Pool, db: Database.Database, hasCases: boolean): Promise<void> {
  if (!hasCases) return;
  const counter = db.prepare('SELECT MAX(id) FROM case_counter').pluck().get() as number | null;
  const attachment = db.prepare('SELECT MAX(attachment_id) FROM case_attachments').pluck().get() as
    | number
    | null;
  const advance = async (sequence: string, atLeast: number | null) => {
    if (atLeast === null) return;
    await pool.query(
      `SELECT setval($1::regclass, GREATEST($2::bigint, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ${sequence})))`,
      [sequence, atLeast],
    );
  };
  await advance('case_counter', counter);
  const seq = await pool.query<{ name: string }>(
    `SELECT pg_get_serial_sequence('case_attachments', 'attachment_id') AS name`,
  );
  await advance(seq.rows[0]!.name, attachment);
}

export async function migrateSqliteToPostgres(
  file: string,
  config: PostgresConfig,
  webhooks: readonly string[],
  onTable: (count: TableCount) => void = () => {},
): Promise<MigrationResult> {
  const db = openSqliteSource(file);
  try {
    // The collectors' own migrations bring the tables to this version's schema (under their lock).
    const reportStore = await PostgresStore.open(config);
    await reportStore.close();
    const caseStore = await PostgresCaseStore.open(config, [...webhooks]);
    await caseStore.close();
    const pool = openPool(config, 2, 'migrate');
    try {
      await pool.query(LEDGER);
      const hasCases =
        db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cases'`).get() !== undefined;
      const clashes = hasCases ? await attachmentClashes(pool, db) : [];
      if (clashes.length > 0)
        throw new UserError(
          `PostgreSQL already uses attachment id ${clashes.slice(0, 3).join(', ')}${clashes.length > 3 ? ` and ${clashes.length - 3} more` : ''}: migrate into a database no collector has written cases to`,
        );
      const result: MigrationResult = { counts: [], conflicts: [] };
      for (const spec of TABLES) {
        // a store from before the cases issue has no case tables
        if (!hasCases && CASE_TABLES.has(spec.table)) continue;
        const count: TableCount = { table: spec.table, copied: 0, present: 0 };
        for (const rows of batches(db, spec.table)) {
          const copied = await copyBatch(pool, spec, rows);
          count.copied += copied;
          count.present += rows.length - copied;
          if (spec.table === 'reports' && copied < rows.length)
            result.conflicts.push(...(await reportConflicts(pool, rows)));
        }
        result.counts.push(count);
        onTable(count);
      }
      await advanceSequences(pool, db, hasCases);
      return result;
    } finally {
      await pool.end();
    }
  } finally {
    db.close();
  }
}
