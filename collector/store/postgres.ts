// The shared store: reports, assessments and the InfluxDB outbox in PostgreSQL, for several
// collectors behind a load balancer. Each report is one transaction; the unique key (site,
// report_id) makes a report id stored once whichever collector receives it, and the site's latest
// assessment is an upsert guarded by measurement time, so the newest evidence wins whatever the
// arrival order. Outbox rows are claimed for a while (FOR UPDATE SKIP LOCKED, then a lease), so each
// is written to InfluxDB by one collector, and by another if that one dies holding them.
import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { PostgresConfig } from '../../src/config/collector.js';
import type { Assessment } from '../assessment.js';
import { decode, decodeAssessment, encodeAssessment } from './encoding.js';
import { execute, inTransaction, migrate, openPool, query } from './postgres-db.js';
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

/** Each entry migrates from the version before it to its index + 1 (component `reports`). */
const MIGRATIONS = [
  `
CREATE TABLE reports (
  site TEXT NOT NULL,
  report_id TEXT NOT NULL,
  arrival BIGSERIAL NOT NULL UNIQUE,
  agent TEXT NOT NULL,
  created_at TEXT NOT NULL,
  received_at_ms BIGINT NOT NULL,
  body_sha256 TEXT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (site, report_id)
);
CREATE INDEX reports_site_arrival ON reports (site, arrival);
CREATE INDEX reports_received ON reports (received_at_ms);
CREATE TABLE assessments (
  assessment_id TEXT PRIMARY KEY,
  report_id TEXT NOT NULL,
  site TEXT NOT NULL,
  measured_at_ms BIGINT NOT NULL,
  doc TEXT NOT NULL,
  UNIQUE (site, report_id),
  FOREIGN KEY (site, report_id) REFERENCES reports (site, report_id)
);
CREATE INDEX assessments_site_time ON assessments (site, measured_at_ms);
CREATE TABLE sites (
  site TEXT PRIMARY KEY,
  assessment_id TEXT NOT NULL REFERENCES assessments (assessment_id),
  measured_at_ms BIGINT NOT NULL
);
CREATE TABLE site_hosts (
  site TEXT NOT NULL,
  host TEXT NOT NULL,
  assessment_id TEXT NOT NULL REFERENCES assessments (assessment_id),
  measured_at_ms BIGINT NOT NULL,
  PRIMARY KEY (site, host)
);
CREATE TABLE influx_outbox (
  seq BIGSERIAL PRIMARY KEY,
  n_points INTEGER NOT NULL,
  points TEXT NOT NULL,
  claimed_by TEXT,
  claimed_until_ms BIGINT
);
CREATE TABLE influx_rejected (
  id BIGSERIAL PRIMARY KEY,
  rejected_at_ms BIGINT NOT NULL,
  error TEXT NOT NULL,
  point TEXT NOT NULL
);
`,
];

const PRUNE_BATCH = 2000;

/** Each site's latest assessment with its report. */
const LATEST = `SELECT a.doc, r.body FROM sites s
  JOIN assessments a ON a.assessment_id = s.assessment_id
  JOIN reports r ON r.site = a.site AND r.report_id = a.report_id`;

export class PostgresStore implements ReportStore {
  readonly shared = true;
  private readonly pool: pg.Pool;
  /** Names this collector's outbox claims. */
  private readonly instance = randomUUID();
  private readonly claimForMs: number;
  private closed = false;
  private inFlight = 0;
  private drained: (() => void) | undefined;
  /** Why the last operation failed for want of the database; cleared by a success or a probe. */
  private lastTrouble: string | undefined;
  private lastProbeMs = Number.NEGATIVE_INFINITY;

  private constructor(config: PostgresConfig) {
    this.pool = openPool(config, config.poolSize, 'reports');
    this.claimForMs = config.claimFor;
  }

  /** Connects and migrates; throws (with the reason) when the database cannot be reached. */
  static async open(config: PostgresConfig): Promise<PostgresStore> {
    const store = new PostgresStore(config);
    try {
      await migrate(store.pool, 'reports', MIGRATIONS);
    } catch (err) {
      await store.pool.end();
      throw err;
    }
    return store;
  }

  /** Runs a store operation, remembering whether the database was there for it. */
  private async track<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    try {
      const result = await op();
      this.lastTrouble = undefined;
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailableError) this.lastTrouble = err.message;
      throw err;
    }
  }

  async save(e: NewReport): Promise<SaveResult> {
    const r = e.report;
    const a = e.assessment;
    const sha = createHash('sha256').update(e.body).digest('hex');
    const measuredAtMs = Date.parse(a.measuredAt);
    this.inFlight++;
    try {
      return await this.track(async () => {
        // One statement, so one round trip and atomic without BEGIN/COMMIT: the rows after the
        // report are inserted only when the report is (data-modifying CTEs; the foreign keys are
        // checked at the end of the statement). The site's latest moves only to a newer measurement;
        // a concurrent upsert of the same site waits for the row lock and compares with the winner.
        const stored = await query<{ n: number }>(
          this.pool,
          `WITH report AS (
             INSERT INTO reports (site, report_id, agent, created_at, received_at_ms, body_sha256, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site, report_id) DO NOTHING
             RETURNING site, report_id),
           assessment AS (
             INSERT INTO assessments (assessment_id, report_id, site, measured_at_ms, doc)
             SELECT $8, report_id, site, $9, $10 FROM report RETURNING assessment_id, site),
           site AS (
             INSERT INTO sites (site, assessment_id, measured_at_ms) SELECT site, assessment_id, $9 FROM assessment
             ON CONFLICT (site) DO UPDATE SET assessment_id = excluded.assessment_id, measured_at_ms = excluded.measured_at_ms
             WHERE excluded.measured_at_ms >= sites.measured_at_ms),
           host AS (
             INSERT INTO site_hosts (site, host, assessment_id, measured_at_ms)
             SELECT site, $11, assessment_id, $9 FROM assessment WHERE $11::text IS NOT NULL
             ON CONFLICT (site, host) DO UPDATE SET assessment_id = excluded.assessment_id, measured_at_ms = excluded.measured_at_ms
             WHERE excluded.measured_at_ms >= site_hosts.measured_at_ms),
           outbox AS (
             INSERT INTO influx_outbox (n_points, points) SELECT $12, $13 FROM report WHERE $12::int > 0)
           SELECT COUNT(*)::int AS n FROM report`,
          [
            r.site,
            r.reportId,
            r.agent,
            r.createdAt,
            e.receivedAtMs,
            sha,
            e.body,
            a.assessmentId,
            measuredAtMs,
            encodeAssessment(a),
            r.host?.host ?? null,
            e.points.length,
            e.points.length > 0 ? JSON.stringify(e.points) : '',
          ],
        );
        if (stored[0]!.n === 1) return 'stored';
        // Stored before, by this collector or another (ON CONFLICT waited for its commit).
        const before = await query<{ body_sha256: string }>(
          this.pool,
          'SELECT body_sha256 FROM reports WHERE site = $1 AND report_id = $2',
          [r.site, r.reportId],
        );
        return before[0]?.body_sha256 === sha ? 'duplicate' : 'conflict';
      });
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.drained?.();
    }
  }

  private read<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    return this.track(() => query<R>(this.pool, text, values));
  }

  async latestPerSite(): Promise<SiteLatest[]> {
    const rows = await this.read<{ doc: string; body: string }>(`${LATEST} ORDER BY s.site`);
    return rows.map(decode);
  }

  async latestOf(site: string): Promise<SiteLatest | undefined> {
    const rows = await this.read<{ doc: string; body: string }>(`${LATEST} WHERE s.site = $1`, [site]);
    return rows[0] ? decode(rows[0]) : undefined;
  }

  async latestHostsPerSite(): Promise<SiteLatest[]> {
    const rows = await this.read<{ doc: string; body: string }>(
      `SELECT a.doc, r.body FROM site_hosts h
       JOIN assessments a ON a.assessment_id = h.assessment_id
       JOIN reports r ON r.site = a.site AND r.report_id = a.report_id ORDER BY h.site, h.host`,
    );
    return rows.map(decode);
  }

  async assessment(id: string): Promise<SiteLatest | undefined> {
    const rows = await this.read<{ doc: string; body: string }>(
      `SELECT a.doc, r.body FROM assessments a JOIN reports r ON r.site = a.site AND r.report_id = a.report_id
       WHERE a.assessment_id = $1`,
      [id],
    );
    return rows[0] ? decode(rows[0]) : undefined;
  }

  async siteHistory(site: string, limit: number): Promise<Assessment[]> {
    const rows = await this.read<{ doc: string }>(
      'SELECT doc FROM assessments WHERE site = $1 ORDER BY measured_at_ms DESC LIMIT $2',
      [site, limit],
    );
    return rows.map((r) => decodeAssessment(r.doc));
  }

  async countReports(): Promise<number> {
    const rows = await this.read<{ n: number }>('SELECT COUNT(*)::int AS n FROM reports');
    return rows[0]!.n;
  }

  async listReports(q: { site?: string; offset: number; limit: number }): Promise<ReportSummary[]> {
    const rows = await this.read<Omit<ReportSummary, 'receivedAt'> & { receivedAtMs: number }>(
      `SELECT report_id AS "reportId", site, agent, created_at AS "createdAt", received_at_ms AS "receivedAtMs"
       FROM reports WHERE ($1::text IS NULL OR site = $1) ORDER BY arrival LIMIT $2 OFFSET $3`,
      [q.site ?? null, q.limit, q.offset],
    );
    return rows.map(({ receivedAtMs, ...r }) => ({ ...r, receivedAt: new Date(receivedAtMs).toISOString() }));
  }

  /**
   * Claims the oldest rows no collector holds (or whose holder's claim ran out), up to about
   * maxPoints (whole reports); SKIP LOCKED lets collectors claim side by side without waiting.
   */
  async outboxPeek(maxPoints: number): Promise<OutboxBatch | undefined> {
    const nowMs = Date.now();
    const rows = await this.track(() =>
      inTransaction(this.pool, async (db) => {
        const free = await db.query<{ seq: number; n_points: number }>(
          `SELECT seq, n_points FROM influx_outbox
           WHERE claimed_until_ms IS NULL OR claimed_until_ms < $1
           ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [nowMs, Math.max(1, maxPoints)],
        );
        const seqs: number[] = [];
        let n = 0;
        for (const row of free.rows) {
          if (seqs.length > 0 && n + row.n_points > maxPoints) break;
          seqs.push(row.seq);
          n += row.n_points;
        }
        if (seqs.length === 0) return [];
        const claimed = await db.query<{ seq: number; points: string }>(
          `UPDATE influx_outbox SET claimed_by = $1, claimed_until_ms = $2 WHERE seq = ANY($3::bigint[])
           RETURNING seq, points`,
          [this.instance, nowMs + this.claimForMs, seqs],
        );
        return claimed.rows.sort((x, y) => x.seq - y.seq);
      }),
    );
    if (rows.length === 0) return undefined;
    return {
      seqs: rows.map((r) => r.seq),
      points: rows.flatMap((r) => JSON.parse(r.points) as SeriesPoint[]),
    };
  }

  /** Deletes the batch's rows if this collector still holds them (else another took them over and
   * writes them again: InfluxDB keeps one point per series and time). */
  async outboxAck(batch: OutboxBatch, rejected: RejectedPoint[] = []): Promise<void> {
    const atMs = Date.now();
    await this.track(() =>
      inTransaction(this.pool, async (db) => {
        const held = await db.query(
          'DELETE FROM influx_outbox WHERE seq = ANY($1::bigint[]) AND claimed_by = $2',
          [batch.seqs, this.instance],
        );
        if (held.rowCount === 0 || rejected.length === 0) return;
        await db.query(
          `INSERT INTO influx_rejected (rejected_at_ms, error, point)
           SELECT $1, e, p FROM unnest($2::text[], $3::text[]) AS t(e, p)`,
          [atMs, rejected.map((r) => r.error), rejected.map((r) => JSON.stringify(r.point))],
        );
      }),
    );
  }

  async rejectedPoints(limit: number): Promise<(RejectedPoint & { rejectedAt: string })[]> {
    const rows = await this.read<{ at_ms: number; error: string; point: string }>(
      'SELECT rejected_at_ms AS at_ms, error, point FROM influx_rejected ORDER BY id DESC LIMIT $1',
      [limit],
    );
    return rows.map((r) => ({
      point: JSON.parse(r.point) as SeriesPoint,
      error: r.error,
      rejectedAt: new Date(r.at_ms).toISOString(),
    }));
  }

  /** Points not yet in InfluxDB, whichever collector holds them. */
  async outboxSize(): Promise<number> {
    const rows = await this.read<{ n: number }>(
      'SELECT COALESCE(SUM(n_points), 0)::bigint AS n FROM influx_outbox',
    );
    return rows[0]!.n;
  }

  async prune(beforeMs: number): Promise<void> {
    const steps = [
      `DELETE FROM assessments WHERE assessment_id IN (
         SELECT a.assessment_id FROM assessments a JOIN reports r ON r.site = a.site AND r.report_id = a.report_id
         WHERE r.received_at_ms < $1
         AND NOT EXISTS (SELECT 1 FROM sites s WHERE s.assessment_id = a.assessment_id)
         AND NOT EXISTS (SELECT 1 FROM site_hosts h WHERE h.assessment_id = a.assessment_id)
         LIMIT ${PRUNE_BATCH})`,
      `DELETE FROM reports WHERE (site, report_id) IN (
         SELECT r.site, r.report_id FROM reports r WHERE r.received_at_ms < $1 AND NOT EXISTS (
           SELECT 1 FROM assessments a WHERE a.site = r.site AND a.report_id = r.report_id) LIMIT ${PRUNE_BATCH})`,
      `DELETE FROM influx_rejected WHERE id IN (
         SELECT id FROM influx_rejected WHERE rejected_at_ms < $1 LIMIT ${PRUNE_BATCH})`,
    ];
    for (const text of steps) {
      // Small autocommit statements: saves wait little between them.
      while ((await this.track(() => execute(this.pool, text, [beforeMs]))) === PRUNE_BATCH) {}
    }
  }

  async writeTrouble(): Promise<string | undefined> {
    if (this.closed) return 'the store is closed';
    if (this.lastTrouble === undefined) return undefined;
    // After a failure: look again (at most every 2 s, as /readyz may be polled often).
    const now = Date.now();
    if (now - this.lastProbeMs < 2000) return this.lastTrouble;
    this.lastProbeMs = now;
    await this.read('SELECT 1').catch(() => undefined);
    return this.lastTrouble;
  }

  /** Waits for saves in progress, then closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
    }
    await this.pool.end();
  }
}
