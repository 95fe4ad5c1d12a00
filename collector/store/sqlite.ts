// The embedded store: SQLite (better-sqlite3) in WAL mode; with synchronous=FULL (the default) a
// commit is on disk before the agent hears 202. Writes run on a worker thread with its own connection
// (group commit): while one transaction commits and fsyncs there, the main thread keeps parsing and
// judging the next reports, which go into the next transaction together; every caller still waits
// for its own commit. Reads use the main thread's connection (WAL readers see committed data).
import { mkdirSync, statfsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Assessment } from '../assessment.js';
import { decode, decodeAssessment, encodeAssessment } from './encoding.js';
import type {
  NewReport,
  OutboxBatch,
  RejectedPoint,
  ReportStore,
  ReportSummary,
  SaveResult,
  SeriesPoint,
  SiteLatest,
} from './store.js';
import { StoreUnavailableError } from './store.js';

export const SCHEMA_VERSION = 2;

/** Each site's latest assessment with its report. */
const LATEST = `SELECT a.doc AS doc, r.body AS body FROM sites s
  JOIN assessments a ON a.assessment_id = s.assessment_id
  JOIN reports r ON r.site = a.site AND r.report_id = a.report_id`;

// Report ids are the agents' choice, so they are unique per site only: one site's ids neither
// collide with nor reveal another's (schema 2; schema 1 keyed reports by report_id alone).
const reportsTable = (name: string) => `CREATE TABLE IF NOT EXISTS ${name} (
  site TEXT NOT NULL,
  report_id TEXT NOT NULL,
  agent TEXT NOT NULL,
  created_at TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  body_sha256 TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (site, report_id)
)`;
const assessmentsTable = (name: string) => `CREATE TABLE IF NOT EXISTS ${name} (
  assessment_id TEXT PRIMARY KEY,
  report_id TEXT NOT NULL,
  site TEXT NOT NULL,
  measured_at_ms INTEGER NOT NULL,
  doc TEXT NOT NULL,
  UNIQUE (site, report_id),
  FOREIGN KEY (site, report_id) REFERENCES reports(site, report_id)
)`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
${reportsTable('reports')};
${assessmentsTable('assessments')};
CREATE INDEX IF NOT EXISTS assessments_site_time ON assessments(site, measured_at_ms);
CREATE TABLE IF NOT EXISTS sites (
  site TEXT PRIMARY KEY,
  assessment_id TEXT NOT NULL REFERENCES assessments(assessment_id),
  measured_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS site_hosts (
  site TEXT NOT NULL,
  host TEXT NOT NULL,
  assessment_id TEXT NOT NULL REFERENCES assessments(assessment_id),
  measured_at_ms INTEGER NOT NULL,
  PRIMARY KEY (site, host)
);
CREATE TABLE IF NOT EXISTS influx_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  n_points INTEGER NOT NULL,
  points TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS influx_rejected (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rejected_at_ms INTEGER NOT NULL,
  error TEXT NOT NULL,
  point TEXT NOT NULL
);
`;

/** What the writer thread stores for one report (plain data: it crosses the thread boundary). */
interface WriteRow {
  reportId: string;
  site: string;
  agent: string;
  createdAt: string;
  receivedAtMs: number;
  body: string;
  assessmentId: string;
  measuredAtMs: number;
  assessmentDoc: string;
  outboxPoints: number;
  outboxDoc: string;
  /** The host a host result came from: it may become that host's latest maintenance assessment. */
  host: string | null;
}

type WriterReply = { results: SaveResult[] } | { error: string };
type OutboxAck = { ackThrough: number; rejected: { atMs: number; error: string; point: string }[] };
type WriterCommand = 'close' | OutboxAck | { pruneBefore: number };
interface WriterData {
  driver: string;
  file: string;
  synchronous: 'FULL' | 'NORMAL';
}

/**
 * The writer thread's program. It runs as an eval'd worker (so the same code serves the compiled
 * collector and the TypeScript sources under test): self-contained, modules come from require().
 */
function writerThread(): void {
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const data = workerData as WriterData;
  const Sqlite = require(data.driver) as typeof import('better-sqlite3');
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  const db = new Sqlite(data.file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${data.synchronous}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const insertReport = db.prepare(
    `INSERT OR IGNORE INTO reports (report_id, site, agent, created_at, received_at_ms, body_sha256, body)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const reportSha = db.prepare('SELECT body_sha256 FROM reports WHERE site = ? AND report_id = ?').pluck();
  const insertAssessment = db.prepare(
    'INSERT INTO assessments (assessment_id, report_id, site, measured_at_ms, doc) VALUES (?, ?, ?, ?, ?)',
  );
  // The site's latest assessment is the newest by measurement time, whatever the arrival order
  // (an agent's queue may deliver old reports after a collector outage).
  const upsertSite = db.prepare(
    `INSERT INTO sites (site, assessment_id, measured_at_ms) VALUES (?, ?, ?)
     ON CONFLICT(site) DO UPDATE SET assessment_id = excluded.assessment_id, measured_at_ms = excluded.measured_at_ms
     WHERE excluded.measured_at_ms >= sites.measured_at_ms`,
  );
  const upsertHost = db.prepare(
    `INSERT INTO site_hosts (site, host, assessment_id, measured_at_ms) VALUES (?, ?, ?, ?)
     ON CONFLICT(site, host) DO UPDATE SET assessment_id = excluded.assessment_id, measured_at_ms = excluded.measured_at_ms
     WHERE excluded.measured_at_ms >= site_hosts.measured_at_ms`,
  );
  const insertOutbox = db.prepare('INSERT INTO influx_outbox (n_points, points) VALUES (?, ?)');
  const saveOne = (r: WriteRow): SaveResult => {
    // Hashed here rather than on the main thread, which parses, validates and judges the next reports.
    const bodySha256 = createHash('sha256').update(r.body).digest('hex');
    const inserted = insertReport.run(
      r.reportId,
      r.site,
      r.agent,
      r.createdAt,
      r.receivedAtMs,
      bodySha256,
      r.body,
    );
    if (inserted.changes === 0) {
      return reportSha.get(r.site, r.reportId) === bodySha256 ? 'duplicate' : 'conflict';
    }
    insertAssessment.run(r.assessmentId, r.reportId, r.site, r.measuredAtMs, r.assessmentDoc);
    upsertSite.run(r.site, r.assessmentId, r.measuredAtMs);
    if (r.host !== null) upsertHost.run(r.site, r.host, r.assessmentId, r.measuredAtMs);
    if (r.outboxPoints > 0) insertOutbox.run(r.outboxPoints, r.outboxDoc);
    return 'stored';
  };
  const saveBatch = db.transaction((rows: WriteRow[]) => rows.map(saveOne));
  const outboxDelete = db.prepare('DELETE FROM influx_outbox WHERE seq <= ?');
  const insertRejected = db.prepare(
    'INSERT INTO influx_rejected (rejected_at_ms, error, point) VALUES (?, ?, ?)',
  );
  const outboxAck = db.transaction((c: OutboxAck) => {
    for (const r of c.rejected) insertRejected.run(r.atMs, r.error, r.point);
    outboxDelete.run(c.ackThrough);
  });
  // Retention: a few thousand rows per transaction, so report commits wait little between them.
  const PRUNE_BATCH = 2000;
  const pruneAssessments = db.prepare(
    `DELETE FROM assessments WHERE assessment_id IN (
       SELECT a.assessment_id FROM assessments a JOIN reports r ON r.site = a.site AND r.report_id = a.report_id
       WHERE r.received_at_ms < ? AND a.assessment_id NOT IN (SELECT assessment_id FROM sites)
       AND a.assessment_id NOT IN (SELECT assessment_id FROM site_hosts) LIMIT ${PRUNE_BATCH})`,
  );
  const pruneReports = db.prepare(
    `DELETE FROM reports WHERE rowid IN (
       SELECT r.rowid FROM reports r WHERE r.received_at_ms < ? AND NOT EXISTS (
         SELECT 1 FROM assessments a WHERE a.site = r.site AND a.report_id = r.report_id) LIMIT ${PRUNE_BATCH})`,
  );
  const pruneRejected = db.prepare(
    `DELETE FROM influx_rejected WHERE id IN (SELECT id FROM influx_rejected WHERE rejected_at_ms < ? LIMIT ${PRUNE_BATCH})`,
  );
  const prune = (beforeMs: number) => {
    try {
      for (const stmt of [pruneAssessments, pruneReports, pruneRejected]) {
        while (stmt.run(beforeMs).changes === PRUNE_BATCH) {}
      }
    } catch {
      // best effort: the next run tries again
    }
  };
  parentPort!.on('message', (rows: WriteRow[] | WriterCommand) => {
    if (rows === 'close') {
      db.close();
      parentPort!.close();
      return;
    }
    if (typeof rows === 'object' && 'pruneBefore' in rows) {
      prune(rows.pruneBefore);
      return;
    }
    if (!Array.isArray(rows)) {
      // Points InfluxDB holds or refused: best effort (the main thread skips them already; a delete
      // lost to a crash only means they are written again, and InfluxDB keeps one point per series
      // and time; refused ones are refused and set aside again).
      try {
        outboxAck(rows);
      } catch {}
      return;
    }
    try {
      parentPort!.postMessage({ results: saveBatch(rows) } satisfies WriterReply);
    } catch (err) {
      // SQLITE_FULL, SQLITE_IOERR, ...: nothing of the batch was committed.
      const e = err as { code?: string; message?: string };
      parentPort!.postMessage({ error: `${e.code ?? 'error'}: ${e.message}` } satisfies WriterReply);
    }
  });
}

interface Pending {
  row: WriteRow;
  resolve: (r: SaveResult) => void;
  reject: (err: Error) => void;
}

export const SQLITE_FILE = 'voipready.sqlite';

/**
 * Schema 1 → 2: reports keyed by (site, report_id). New tables are filled and renamed into place
 * (SQLite's way to change a key); rows keep their order (rowid) and content.
 */
function migrateToPerSiteIds(db: Database.Database): void {
  db.pragma('foreign_keys = OFF');
  db.transaction(() => {
    db.exec(`${reportsTable('reports_v2')}; ${assessmentsTable('assessments_v2')};
      INSERT INTO reports_v2 (site, report_id, agent, created_at, received_at_ms, body_sha256, body)
        SELECT site, report_id, agent, created_at, received_at_ms, body_sha256, body FROM reports ORDER BY rowid;
      INSERT INTO assessments_v2 (assessment_id, report_id, site, measured_at_ms, doc)
        SELECT assessment_id, report_id, site, measured_at_ms, doc FROM assessments ORDER BY rowid;
      DROP TABLE assessments;
      DROP TABLE reports;
      ALTER TABLE reports_v2 RENAME TO reports;
      ALTER TABLE assessments_v2 RENAME TO assessments;
      CREATE INDEX IF NOT EXISTS assessments_site_time ON assessments(site, measured_at_ms);
      UPDATE meta SET value = '2' WHERE key = 'schema';`);
  })();
}

export class SqliteStore implements ReportStore {
  readonly shared = false;
  private readonly db: Database.Database;
  private readonly writer: Worker;
  private readonly writerExited: Promise<void>;
  /** Reports waiting for the next transaction. */
  private pending: Pending[] = [];
  /** Reports in the transaction the writer is committing now. */
  private inFlight: Pending[] | undefined;
  private writerFailure: Error | undefined;
  private closed = false;
  private drained: (() => void) | undefined;
  /** Outbox rows up to here are in InfluxDB; their delete is queued on the writer thread. */
  private ackedThrough = 0;
  private dispatchScheduled = false;
  private readonly stmt;
  /** Why the last commit failed (disk full, I/O error); cleared by a commit or a write probe. */
  private lastWriteError: string | undefined;
  private lastProbeMs = Number.NEGATIVE_INFINITY;
  private readonly dataDir: string;
  private readonly headroomBytes: number;

  /** headroomBytes: free space a write needs before the store calls itself writable again (the
   * largest request body). */
  constructor(dataDir: string, opts: { synchronous?: 'full' | 'normal'; headroomBytes?: number } = {}) {
    this.dataDir = dataDir;
    this.headroomBytes = opts.headroomBytes ?? 1024 * 1024;
    mkdirSync(dataDir, { recursive: true, mode: 0o750 });
    const file = join(dataDir, SQLITE_FILE);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const version = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema'`).pluck().get() as
      | string
      | undefined;
    if (version === undefined) {
      this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema', ?)`).run(String(SCHEMA_VERSION));
    } else if (Number(version) === 1) {
      migrateToPerSiteIds(this.db);
    } else if (Number(version) !== SCHEMA_VERSION) {
      throw new Error(
        `data directory ${dataDir} holds schema version ${version}, this collector reads ${SCHEMA_VERSION}`,
      );
    }
    this.stmt = {
      latest: this.db.prepare(`${LATEST} ORDER BY s.site`),
      latestOf: this.db.prepare(`${LATEST} WHERE s.site = ?`),
      latestHosts: this.db.prepare(
        `SELECT a.doc AS doc, r.body AS body FROM site_hosts h
         JOIN assessments a ON a.assessment_id = h.assessment_id
         JOIN reports r ON r.site = a.site AND r.report_id = a.report_id ORDER BY h.site, h.host`,
      ),
      assessment: this.db.prepare(
        `SELECT a.doc AS doc, r.body AS body FROM assessments a JOIN reports r ON r.site = a.site AND r.report_id = a.report_id
         WHERE a.assessment_id = ?`,
      ),
      siteHistory: this.db
        .prepare(`SELECT doc FROM assessments WHERE site = ? ORDER BY measured_at_ms DESC LIMIT ?`)
        .pluck(),
      listReports: this.db.prepare(
        `SELECT report_id AS reportId, site, agent, created_at AS createdAt, received_at_ms AS receivedAtMs
         FROM reports WHERE (@site IS NULL OR site = @site) ORDER BY rowid LIMIT @limit OFFSET @offset`,
      ),
      countReports: this.db.prepare(`SELECT COUNT(*) FROM reports`).pluck(),
      outboxPeek: this.db.prepare(
        `SELECT seq, n_points, points FROM influx_outbox WHERE seq > ? ORDER BY seq LIMIT ?`,
      ),
      outboxSize: this.db
        .prepare(`SELECT COALESCE(SUM(n_points), 0) FROM influx_outbox WHERE seq > ?`)
        .pluck(),
      probeWrite: this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('write-probe', ?)`),
      rejected: this.db.prepare(
        `SELECT rejected_at_ms AS atMs, error, point FROM influx_rejected ORDER BY id DESC LIMIT ?`,
      ),
    };
    const workerData: WriterData = {
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      file,
      synchronous: opts.synchronous === 'normal' ? 'NORMAL' : 'FULL',
    };
    this.writer = new Worker(`(${writerThread.toString()})()`, { eval: true, workerData });
    this.writer.on('message', (reply: WriterReply) => this.settle(reply));
    this.writer.on('error', (err) => {
      this.writerFailure = new StoreUnavailableError(`the SQLite writer failed: ${err.message}`);
    });
    this.writerExited = new Promise((resolve) =>
      this.writer.once('exit', () => {
        this.writerFailure ??= new StoreUnavailableError('the SQLite writer stopped');
        this.failAll(this.writerFailure);
        resolve();
      }),
    );
  }

  save(e: NewReport): Promise<SaveResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the store is closed'));
    if (this.writerFailure) return Promise.reject(this.writerFailure);
    const a = e.assessment;
    const row: WriteRow = {
      reportId: e.report.reportId,
      site: e.report.site,
      agent: e.report.agent,
      createdAt: e.report.createdAt,
      receivedAtMs: e.receivedAtMs,
      body: e.body,
      assessmentId: a.assessmentId,
      measuredAtMs: Date.parse(a.measuredAt),
      assessmentDoc: encodeAssessment(a),
      outboxPoints: e.points.length,
      outboxDoc: e.points.length > 0 ? JSON.stringify(e.points) : '',
      host: e.report.host?.host ?? null,
    };
    return new Promise((resolve, reject) => {
      this.pending.push({ row, resolve, reject });
      // Wait for the end of this event-loop turn: every report parsed in it goes in one message.
      if (!this.inFlight && !this.dispatchScheduled) {
        this.dispatchScheduled = true;
        setImmediate(() => {
          this.dispatchScheduled = false;
          if (!this.inFlight) this.dispatch();
        });
      }
    });
  }

  /** Sends everything pending as one transaction. */
  private dispatch(): void {
    if (this.pending.length === 0) {
      this.drained?.();
      return;
    }
    this.inFlight = this.pending;
    this.pending = [];
    this.writer.postMessage(this.inFlight.map((p) => p.row));
  }

  private settle(reply: WriterReply): void {
    const batch = this.inFlight ?? [];
    this.inFlight = undefined;
    this.lastWriteError = 'error' in reply ? reply.error : undefined;
    if ('error' in reply) {
      const failure = new StoreUnavailableError(`storage failed (${reply.error})`);
      for (const p of batch) p.reject(failure);
    } else {
      batch.forEach((p, i) => {
        p.resolve(reply.results[i]!);
      });
    }
    this.dispatch();
  }

  private failAll(err: Error): void {
    for (const p of [...(this.inFlight ?? []), ...this.pending]) p.reject(err);
    this.inFlight = undefined;
    this.pending = [];
    this.drained?.();
  }

  async prune(beforeMs: number): Promise<void> {
    if (!this.closed) this.writer.postMessage({ pruneBefore: beforeMs } satisfies WriterCommand);
  }

  async writeTrouble(): Promise<string | undefined> {
    if (this.closed) return 'the store is closed';
    if (this.writerFailure) return this.writerFailure.message;
    if (this.lastWriteError === undefined) return undefined;
    // After a failed commit: look again (at most every 2 s, as /readyz may be polled often).
    const now = Date.now();
    if (now - this.lastProbeMs < 2000) return this.lastWriteError;
    this.lastProbeMs = now;
    try {
      const fs = statfsSync(this.dataDir);
      const free = fs.bavail * fs.bsize;
      if (free < this.headroomBytes) return `${this.lastWriteError} (${free} bytes free in ${this.dataDir})`;
      this.stmt.probeWrite.run(String(now));
      this.lastWriteError = undefined;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      this.lastWriteError = `${e.code ?? 'error'}: ${e.message}`;
    }
    return this.lastWriteError;
  }

  async latestPerSite(): Promise<SiteLatest[]> {
    return (this.stmt.latest.all() as { doc: string; body: string }[]).map(decode);
  }

  async latestOf(site: string): Promise<SiteLatest | undefined> {
    const row = this.stmt.latestOf.get(site) as { doc: string; body: string } | undefined;
    return row ? decode(row) : undefined;
  }

  async latestHostsPerSite(): Promise<SiteLatest[]> {
    return (this.stmt.latestHosts.all() as { doc: string; body: string }[]).map(decode);
  }

  async assessment(id: string): Promise<SiteLatest | undefined> {
    const row = this.stmt.assessment.get(id) as { doc: string; body: string } | undefined;
    return row ? decode(row) : undefined;
  }

  async siteHistory(site: string, limit: number): Promise<Assessment[]> {
    return (this.stmt.siteHistory.all(site, limit) as string[]).map(decodeAssessment);
  }

  async countReports(): Promise<number> {
    return this.stmt.countReports.get() as number;
  }

  async listReports(query: { site?: string; offset: number; limit: number }): Promise<ReportSummary[]> {
    const rows = this.stmt.listReports.all({
      site: query.site ?? null,
      limit: query.limit,
      offset: query.offset,
    }) as (Omit<ReportSummary, 'receivedAt'> & { receivedAtMs: number })[];
    return rows.map(({ receivedAtMs, ...r }) => ({ ...r, receivedAt: new Date(receivedAtMs).toISOString() }));
  }

  async outboxPeek(maxPoints: number): Promise<OutboxBatch | undefined> {
    const rows = this.stmt.outboxPeek.all(this.ackedThrough, Math.max(1, maxPoints)) as {
      seq: number;
      n_points: number;
      points: string;
    }[];
    if (rows.length === 0) return undefined;
    const points: SeriesPoint[] = [];
    const seqs: number[] = [];
    for (const row of rows) {
      if (points.length > 0 && points.length + row.n_points > maxPoints) break;
      points.push(...(JSON.parse(row.points) as SeriesPoint[]));
      seqs.push(row.seq);
    }
    return { seqs, points };
  }

  /**
   * One process drains this file's outbox in order, so a batch acknowledges everything through its
   * last row. The delete runs on the writer thread: a write here would wait for the writer's commit
   * and fsync.
   */
  async outboxAck(batch: OutboxBatch, rejected: RejectedPoint[] = []): Promise<void> {
    const lastSeq = batch.seqs.at(-1) ?? 0;
    this.ackedThrough = Math.max(this.ackedThrough, lastSeq);
    const atMs = Date.now();
    const command: WriterCommand = {
      ackThrough: lastSeq,
      rejected: rejected.map((r) => ({ atMs, error: r.error, point: JSON.stringify(r.point) })),
    };
    if (!this.closed) this.writer.postMessage(command);
  }

  async rejectedPoints(limit: number): Promise<(RejectedPoint & { rejectedAt: string })[]> {
    const rows = this.stmt.rejected.all(limit) as { atMs: number; error: string; point: string }[];
    return rows.map((r) => ({
      point: JSON.parse(r.point) as SeriesPoint,
      error: r.error,
      rejectedAt: new Date(r.atMs).toISOString(),
    }));
  }

  async outboxSize(): Promise<number> {
    return this.stmt.outboxSize.get(this.ackedThrough) as number;
  }

  /** Commits what is pending, stops the writer and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inFlight || this.pending.length > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
    }
    this.writer.postMessage('close' satisfies WriterCommand);
    await this.writerExited;
    this.db.close();
  }
}
