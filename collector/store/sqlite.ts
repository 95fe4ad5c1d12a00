// The embedded store: SQLite (better-sqlite3) in WAL mode; with synchronous=FULL (the default) a
// commit is on disk before the agent hears 202. Concurrent saves are grouped into one transaction per event-loop
// turn (group commit): one fsync for many reports, and every caller still waits for its commit.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { AgentReport } from '../../src/schemas.js';
import type { Assessment } from '../assessment.js';
import type {
  NewReport,
  OutboxBatch,
  ReportStore,
  ReportSummary,
  SaveResult,
  SeriesPoint,
  SiteLatest,
} from './store.js';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
  report_id TEXT PRIMARY KEY,
  site TEXT NOT NULL,
  agent TEXT NOT NULL,
  created_at TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  body_sha256 TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assessments (
  assessment_id TEXT PRIMARY KEY,
  report_id TEXT NOT NULL UNIQUE REFERENCES reports(report_id),
  site TEXT NOT NULL,
  measured_at_ms INTEGER NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assessments_site_time ON assessments(site, measured_at_ms);
CREATE TABLE IF NOT EXISTS sites (
  site TEXT PRIMARY KEY,
  assessment_id TEXT NOT NULL REFERENCES assessments(assessment_id),
  measured_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS influx_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  n_points INTEGER NOT NULL,
  points TEXT NOT NULL
);
`;

/** A store that cannot take writes right now (disk full, closed): the client should retry (503). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

interface Pending {
  entry: NewReport;
  resolve: (r: SaveResult) => void;
  reject: (err: Error) => void;
}

export const SQLITE_FILE = 'voipready.sqlite';

export class SqliteStore implements ReportStore {
  private readonly db: Database.Database;
  private pending: Pending[] = [];
  private scheduled = false;
  private closed = false;
  private readonly stmt;
  private readonly saveBatch: (entries: NewReport[]) => SaveResult[];

  constructor(dataDir: string, opts: { synchronous?: 'full' | 'normal' } = {}) {
    mkdirSync(dataDir, { recursive: true, mode: 0o750 });
    this.db = new Database(join(dataDir, SQLITE_FILE));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const version = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema'`).pluck().get() as
      | string
      | undefined;
    if (version === undefined) {
      this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema', ?)`).run(String(SCHEMA_VERSION));
    } else if (Number(version) !== SCHEMA_VERSION) {
      throw new Error(
        `data directory ${dataDir} holds schema version ${version}, this collector reads ${SCHEMA_VERSION}`,
      );
    }
    this.stmt = {
      insertReport: this.db.prepare(
        `INSERT OR IGNORE INTO reports (report_id, site, agent, created_at, received_at_ms, body_sha256, body)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      reportSha: this.db.prepare(`SELECT body_sha256 FROM reports WHERE report_id = ?`).pluck(),
      insertAssessment: this.db.prepare(
        `INSERT INTO assessments (assessment_id, report_id, site, measured_at_ms, doc) VALUES (?, ?, ?, ?, ?)`,
      ),
      // The site's latest assessment is the newest by measurement time, whatever the arrival order
      // (an agent's queue may deliver old reports after a collector outage).
      upsertSite: this.db.prepare(
        `INSERT INTO sites (site, assessment_id, measured_at_ms) VALUES (?, ?, ?)
         ON CONFLICT(site) DO UPDATE SET assessment_id = excluded.assessment_id, measured_at_ms = excluded.measured_at_ms
         WHERE excluded.measured_at_ms >= sites.measured_at_ms`,
      ),
      insertOutbox: this.db.prepare(`INSERT INTO influx_outbox (n_points, points) VALUES (?, ?)`),
      latest: this.db.prepare(
        `SELECT a.doc AS doc, r.body AS body FROM sites s
         JOIN assessments a ON a.assessment_id = s.assessment_id
         JOIN reports r ON r.report_id = a.report_id ORDER BY s.site`,
      ),
      assessment: this.db.prepare(
        `SELECT a.doc AS doc, r.body AS body FROM assessments a JOIN reports r ON r.report_id = a.report_id
         WHERE a.assessment_id = ?`,
      ),
      listReports: this.db.prepare(
        `SELECT report_id AS reportId, site, agent, created_at AS createdAt, received_at_ms AS receivedAtMs
         FROM reports WHERE (@site IS NULL OR site = @site) ORDER BY rowid LIMIT @limit OFFSET @offset`,
      ),
      countReports: this.db.prepare(`SELECT COUNT(*) FROM reports`).pluck(),
      outboxPeek: this.db.prepare(`SELECT seq, n_points, points FROM influx_outbox ORDER BY seq LIMIT ?`),
      outboxAck: this.db.prepare(`DELETE FROM influx_outbox WHERE seq <= ?`),
      outboxSize: this.db.prepare(`SELECT COALESCE(SUM(n_points), 0) FROM influx_outbox`).pluck(),
    };
    this.saveBatch = this.db.transaction((entries: NewReport[]) => entries.map((e) => this.saveOne(e)));
  }

  private saveOne(e: NewReport): SaveResult {
    const r = e.report;
    const inserted = this.stmt.insertReport.run(
      r.reportId,
      r.site,
      r.agent,
      r.createdAt,
      e.receivedAtMs,
      e.bodySha256,
      e.body,
    );
    if (inserted.changes === 0) {
      return this.stmt.reportSha.get(r.reportId) === e.bodySha256 ? 'duplicate' : 'conflict';
    }
    const a = e.assessment;
    const measuredAtMs = Date.parse(a.measuredAt);
    this.stmt.insertAssessment.run(a.assessmentId, r.reportId, r.site, measuredAtMs, JSON.stringify(a));
    this.stmt.upsertSite.run(r.site, a.assessmentId, measuredAtMs);
    if (e.points.length > 0) this.stmt.insertOutbox.run(e.points.length, JSON.stringify(e.points));
    return 'stored';
  }

  save(entry: NewReport): Promise<SaveResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the store is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let results: SaveResult[];
    try {
      results = this.saveBatch(batch.map((p) => p.entry));
    } catch (err) {
      // SQLITE_FULL, SQLITE_IOERR, ...: nothing of the batch was committed; the agents retry.
      const code = (err as { code?: string }).code ?? 'error';
      const failure = new StoreUnavailableError(`storage failed (${code}): ${(err as Error).message}`);
      for (const p of batch) p.reject(failure);
      return;
    }
    batch.forEach((p, i) => {
      p.resolve(results[i]!);
    });
  }

  latestPerSite(): SiteLatest[] {
    return (this.stmt.latest.all() as { doc: string; body: string }[]).map(decode);
  }

  assessment(id: string): SiteLatest | undefined {
    const row = this.stmt.assessment.get(id) as { doc: string; body: string } | undefined;
    return row ? decode(row) : undefined;
  }

  countReports(): number {
    return this.stmt.countReports.get() as number;
  }

  listReports(query: { site?: string; offset: number; limit: number }): ReportSummary[] {
    const rows = this.stmt.listReports.all({
      site: query.site ?? null,
      limit: query.limit,
      offset: query.offset,
    }) as (Omit<ReportSummary, 'receivedAt'> & { receivedAtMs: number })[];
    return rows.map(({ receivedAtMs, ...r }) => ({ ...r, receivedAt: new Date(receivedAtMs).toISOString() }));
  }

  outboxPeek(maxPoints: number): OutboxBatch | undefined {
    const rows = this.stmt.outboxPeek.all(Math.max(1, maxPoints)) as {
      seq: number;
      n_points: number;
      points: string;
    }[];
    if (rows.length === 0) return undefined;
    const points: SeriesPoint[] = [];
    let lastSeq = 0;
    for (const row of rows) {
      if (points.length > 0 && points.length + row.n_points > maxPoints) break;
      points.push(...(JSON.parse(row.points) as SeriesPoint[]));
      lastSeq = row.seq;
    }
    return { lastSeq, points };
  }

  outboxAck(lastSeq: number): void {
    this.stmt.outboxAck.run(lastSeq);
  }

  outboxSize(): number {
    return this.stmt.outboxSize.get() as number;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}

function decode(row: { doc: string; body: string }): SiteLatest {
  return { assessment: JSON.parse(row.doc) as Assessment, report: JSON.parse(row.body) as AgentReport };
}
