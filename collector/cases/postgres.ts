// Cases in PostgreSQL, beside the reports (collector/store/postgres.ts), for several collectors on one
// database. A change is one transaction guarded by the case's revision (a concurrent change of the
// same case waits for the row lock, then finds the revision moved: CaseConflictError), and a timer
// it fires must still be stored, so each clock fires once. Collectors claim due timers and webhook
// targets for a while (FOR UPDATE SKIP LOCKED, then a lease) so they do not compute the same firing
// twice or deliver one target's events side by side out of order; a dead collector's claims run out.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { ClockState, UpdateRecord } from '../../src/cases/machine.js';
import type { SupportCase } from '../../src/cases/model.js';
import type { PostgresConfig } from '../../src/config/collector.js';
import { inTransaction, migrate, openPool, query } from '../store/postgres-db.js';
import {
  type AttachmentRow,
  type CaseAttachment,
  type CaseChange,
  CaseConflictError,
  type CaseQuery,
  type CaseStore,
  type CutoverRecord,
  type DueTimer,
  type Notification,
  type OutboxItem,
  type StoredCase,
  toAttachment,
} from './store.js';

/** Each entry migrates from the version before it to its index + 1 (component `cases`). */
const MIGRATIONS = [
  `
CREATE TABLE cases (
  case_id TEXT PRIMARY KEY,
  site TEXT NOT NULL,
  status TEXT NOT NULL,
  priority TEXT NOT NULL,
  withheld BOOLEAN NOT NULL,
  revision INTEGER NOT NULL,
  created_at_ms BIGINT NOT NULL,
  doc TEXT NOT NULL,
  clocks TEXT NOT NULL
);
CREATE INDEX cases_site ON cases (site, status);
CREATE SEQUENCE case_counter;
CREATE TABLE case_updates (
  seq BIGSERIAL PRIMARY KEY,
  case_id TEXT NOT NULL REFERENCES cases (case_id),
  doc TEXT NOT NULL
);
CREATE INDEX case_updates_case ON case_updates (case_id, seq);
CREATE TABLE case_attachments (
  attachment_id BIGSERIAL PRIMARY KEY,
  case_id TEXT NOT NULL REFERENCES cases (case_id),
  kind TEXT NOT NULL,
  assessment_id TEXT NOT NULL,
  content_type TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  purged_at_ms BIGINT,
  body TEXT
);
CREATE INDEX case_attachments_case ON case_attachments (case_id);
CREATE TABLE case_timers (
  case_id TEXT NOT NULL REFERENCES cases (case_id),
  kind TEXT NOT NULL,
  due_at_ms BIGINT NOT NULL,
  claimed_until_ms BIGINT,
  PRIMARY KEY (case_id, kind)
);
CREATE INDEX case_timers_due ON case_timers (due_at_ms);
CREATE TABLE notifications (
  seq BIGSERIAL PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  case_id TEXT,
  type TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX notifications_case ON notifications (case_id, seq);
CREATE TABLE webhook_outbox (
  seq BIGSERIAL PRIMARY KEY,
  target TEXT NOT NULL,
  event_id TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms BIGINT NOT NULL,
  delivered_at_ms BIGINT,
  last_error TEXT,
  UNIQUE (target, event_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (target, seq) WHERE delivered_at_ms IS NULL;
CREATE TABLE webhook_claims (
  target TEXT PRIMARY KEY,
  claimed_by TEXT NOT NULL,
  claimed_until_ms BIGINT NOT NULL
);
CREATE TABLE cutovers (
  cutover_id TEXT PRIMARY KEY,
  site TEXT NOT NULL,
  cutover_at_ms BIGINT NOT NULL,
  submitted_at_ms BIGINT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX cutovers_time ON cutovers (cutover_at_ms);
`,
];

const parseAll = <T>(rows: { doc: string }[]) => rows.map((r) => JSON.parse(r.doc) as T);

export class PostgresCaseStore implements CaseStore {
  private readonly pool: pg.Pool;
  private readonly instance = randomUUID();
  private readonly claimForMs: number;

  private constructor(
    config: PostgresConfig,
    private readonly webhookTargets: readonly string[],
  ) {
    // Case work is light beside report ingest: a quarter of the pool, at least two connections.
    this.pool = openPool(config, Math.max(2, Math.ceil(config.poolSize / 4)), 'cases');
    this.claimForMs = config.claimFor;
  }

  /** `webhookTargets`: names of the configured webhooks; each notification gets an outbox row per target. */
  static async open(
    config: PostgresConfig,
    webhookTargets: readonly string[] = [],
  ): Promise<PostgresCaseStore> {
    const store = new PostgresCaseStore(config, webhookTargets);
    try {
      await migrate(store.pool, 'cases', MIGRATIONS);
    } catch (err) {
      await store.pool.end();
      throw err;
    }
    return store;
  }

  private q<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    return query<R>(this.pool, text, values);
  }

  private async writeNotification(db: pg.PoolClient, n: Notification): Promise<void> {
    const atMs = Date.parse(n.at);
    const doc = JSON.stringify(n);
    await db.query(
      'INSERT INTO notifications (event_id, case_id, type, at_ms, doc) VALUES ($1, $2, $3, $4, $5)',
      [n.eventId, n.caseId, n.type, atMs, doc],
    );
    for (const target of this.webhookTargets) {
      await db.query(
        'INSERT INTO webhook_outbox (target, event_id, body, next_attempt_ms) VALUES ($1, $2, $3, $4)',
        [target, n.eventId, doc, atMs],
      );
    }
  }

  private async write(db: pg.PoolClient, change: CaseChange): Promise<void> {
    const c = change.case;
    const revision = (change.baseRevision ?? 0) + 1;
    const doc = JSON.stringify({ ...c, revision });
    const clocks = JSON.stringify(change.clocks);
    if (change.baseRevision === null) {
      await db.query(
        `INSERT INTO cases (case_id, site, status, priority, withheld, revision, created_at_ms, doc, clocks)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [c.caseId, c.site, c.status, c.priority, c.withheld, revision, Date.parse(c.createdAt), doc, clocks],
      );
    } else {
      const updated = await db.query(
        `UPDATE cases SET status = $2, priority = $3, withheld = $4, revision = $5, doc = $6, clocks = $7
         WHERE case_id = $1 AND revision = $8`,
        [c.caseId, c.status, c.priority, c.withheld, revision, doc, clocks, change.baseRevision],
      );
      if (updated.rowCount === 0) throw new CaseConflictError(`case ${c.caseId} changed meanwhile`);
    }
    if (change.fired) {
      const { kind, dueAtMs } = change.fired;
      const fired = await db.query(
        'DELETE FROM case_timers WHERE case_id = $1 AND kind = $2 AND due_at_ms = $3',
        [c.caseId, kind, dueAtMs],
      );
      if (fired.rowCount === 0)
        throw new CaseConflictError(`timer ${kind} of case ${c.caseId} already fired`);
    }
    await db.query('DELETE FROM case_timers WHERE case_id = $1', [c.caseId]);
    for (const t of change.timers) {
      await db.query('INSERT INTO case_timers (case_id, kind, due_at_ms) VALUES ($1, $2, $3)', [
        c.caseId,
        t.kind,
        t.dueAtMs,
      ]);
    }
    for (const u of change.updates) {
      await db.query('INSERT INTO case_updates (case_id, doc) VALUES ($1, $2)', [
        c.caseId,
        JSON.stringify(u),
      ]);
    }
    const nowMs = change.atMs;
    if (change.purgeAttachments) {
      await db.query(
        'UPDATE case_attachments SET body = NULL, purged_at_ms = $1 WHERE case_id = $2 AND purged_at_ms IS NULL',
        [nowMs, c.caseId],
      );
    }
    for (const a of change.attachments) {
      await db.query(
        `INSERT INTO case_attachments (case_id, kind, assessment_id, content_type, created_at_ms, body)
         VALUES ($1, $2, $3, $4, $5, $6)`,
        [c.caseId, a.kind, a.assessmentId, a.contentType, nowMs, a.body],
      );
    }
    for (const n of change.notifications) await this.writeNotification(db, n);
  }

  async allocateCaseId(): Promise<string> {
    const rows = await this.q<{ id: number }>(`SELECT nextval('case_counter') AS id`);
    return String(rows[0]!.id).padStart(10, '0');
  }

  async apply(change: CaseChange): Promise<void> {
    try {
      await inTransaction(this.pool, (db) => this.write(db, change));
    } catch (err) {
      // Two new cases cannot share an id (the counter is a sequence); a primary-key clash is a
      // conflict all the same.
      if ((err as { code?: string }).code === '23505') throw new CaseConflictError((err as Error).message);
      throw err;
    }
  }

  async get(caseId: string): Promise<StoredCase | undefined> {
    const rows = await this.q<{ doc: string; clocks: string }>(
      'SELECT doc, clocks FROM cases WHERE case_id = $1',
      [caseId],
    );
    const row = rows[0];
    if (!row) return undefined;
    return { case: JSON.parse(row.doc) as SupportCase, clocks: JSON.parse(row.clocks) as ClockState };
  }

  async list(query: CaseQuery): Promise<SupportCase[]> {
    const rows = await this.q<{ doc: string }>(
      `SELECT doc FROM cases WHERE ($1::text[] IS NULL OR site = ANY($1::text[]))
       AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR priority = $3)
       ORDER BY created_at_ms DESC, case_id DESC LIMIT $4 OFFSET $5`,
      [query.sites ?? null, query.status ?? null, query.priority ?? null, query.limit, query.offset],
    );
    return parseAll<SupportCase>(rows);
  }

  async withheld(site?: string): Promise<SupportCase[]> {
    const rows = await this.q<{ doc: string }>(
      'SELECT doc FROM cases WHERE withheld AND ($1::text IS NULL OR site = $1) ORDER BY case_id',
      [site ?? null],
    );
    return parseAll<SupportCase>(rows);
  }

  async updates(caseId: string): Promise<UpdateRecord[]> {
    const rows = await this.q<{ doc: string }>(
      'SELECT doc FROM case_updates WHERE case_id = $1 ORDER BY seq',
      [caseId],
    );
    return parseAll<UpdateRecord>(rows);
  }

  async attachments(caseId: string, withBody: boolean): Promise<CaseAttachment[]> {
    const rows = await this.q<AttachmentRow>(
      `SELECT attachment_id, case_id, kind, assessment_id, content_type, created_at_ms, purged_at_ms
       ${withBody ? ', body' : ''} FROM case_attachments WHERE case_id = $1 ORDER BY attachment_id`,
      [caseId],
    );
    return rows.map(toAttachment);
  }

  async attachment(caseId: string, attachmentId: number): Promise<CaseAttachment | undefined> {
    const rows = await this.q<AttachmentRow>(
      'SELECT * FROM case_attachments WHERE case_id = $1 AND attachment_id = $2',
      [caseId, attachmentId],
    );
    return rows[0] ? toAttachment(rows[0]) : undefined;
  }

  async notifications(caseId: string): Promise<Notification[]> {
    const rows = await this.q<{ doc: string }>(
      'SELECT doc FROM notifications WHERE case_id = $1 ORDER BY seq',
      [caseId],
    );
    return parseAll<Notification>(rows);
  }

  /** Due timers no other collector is working on, claimed for this one for a while. Firing stays
   * exactly once without the claim (apply consumes the timer); the claim saves the others the work. */
  async dueTimers(nowMs: number, limit: number): Promise<DueTimer[]> {
    return this.q<DueTimer>(
      `UPDATE case_timers t SET claimed_until_ms = $2 FROM (
         SELECT case_id, kind FROM case_timers
         WHERE due_at_ms <= $1 AND (claimed_until_ms IS NULL OR claimed_until_ms < $1)
         ORDER BY due_at_ms, case_id LIMIT $3 FOR UPDATE SKIP LOCKED) due
       WHERE t.case_id = due.case_id AND t.kind = due.kind
       RETURNING t.case_id AS "caseId", t.kind, t.due_at_ms AS "dueAtMs"`,
      [nowMs, nowMs + this.claimForMs, limit],
    ).then((rows) => rows.sort((a, b) => a.dueAtMs - b.dueAtMs || a.caseId.localeCompare(b.caseId)));
  }

  async nextDueAtMs(): Promise<number | undefined> {
    const rows = await this.q<{ due: number | null }>('SELECT MIN(due_at_ms) AS due FROM case_timers');
    return rows[0]?.due ?? undefined;
  }

  /**
   * Due deliveries of the webhook targets this collector holds: it claims (or renews) every target
   * no other collector holds, so one target's events go out from one collector, in order.
   */
  async outboxDue(nowMs: number, limit: number): Promise<OutboxItem[]> {
    if (this.webhookTargets.length === 0) return [];
    return inTransaction(this.pool, async (db) => {
      await db.query(
        `INSERT INTO webhook_claims (target, claimed_by, claimed_until_ms)
         SELECT unnest($1::text[]), $2, $3
         ON CONFLICT (target) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_until_ms = excluded.claimed_until_ms
         WHERE webhook_claims.claimed_by = excluded.claimed_by OR webhook_claims.claimed_until_ms < $4`,
        [this.webhookTargets, this.instance, nowMs + this.claimForMs, nowMs],
      );
      const { rows } = await db.query<OutboxItem>(
        `SELECT o.seq, o.target, o.event_id AS "eventId", o.body, o.attempts FROM webhook_outbox o
         JOIN webhook_claims c ON c.target = o.target AND c.claimed_by = $1
         WHERE o.delivered_at_ms IS NULL AND o.next_attempt_ms <= $2 ORDER BY o.seq LIMIT $3`,
        [this.instance, nowMs, limit],
      );
      return rows;
    });
  }

  async outboxDelivered(seq: number, nowMs: number): Promise<void> {
    await this.q('UPDATE webhook_outbox SET delivered_at_ms = $1 WHERE seq = $2', [nowMs, seq]);
  }

  async outboxRetry(seq: number, nextAttemptMs: number, error: string): Promise<void> {
    await this.q(
      'UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2 WHERE seq = $3',
      [nextAttemptMs, error.slice(0, 500), seq],
    );
  }

  async outboxPending(): Promise<number> {
    const rows = await this.q<{ n: number }>(
      'SELECT COUNT(*)::int AS n FROM webhook_outbox WHERE delivered_at_ms IS NULL',
    );
    return rows[0]!.n;
  }

  async saveCutover(c: CutoverRecord, n: Notification): Promise<void> {
    await inTransaction(this.pool, async (db) => {
      await db.query(
        'INSERT INTO cutovers (cutover_id, site, cutover_at_ms, submitted_at_ms, doc) VALUES ($1, $2, $3, $4, $5)',
        [c.cutoverId, c.site, Date.parse(c.cutoverAt), Date.parse(c.submittedAt), JSON.stringify(c)],
      );
      await this.writeNotification(db, n);
    });
  }

  async cutover(id: string): Promise<CutoverRecord | undefined> {
    const rows = await this.q<{ doc: string }>('SELECT doc FROM cutovers WHERE cutover_id = $1', [id]);
    return rows[0] ? (JSON.parse(rows[0].doc) as CutoverRecord) : undefined;
  }

  async cutovers(query: { fromMs: number; sites?: string[] }): Promise<CutoverRecord[]> {
    const rows = await this.q<{ doc: string }>(
      `SELECT doc FROM cutovers WHERE cutover_at_ms >= $1 AND ($2::text[] IS NULL OR site = ANY($2::text[]))
       ORDER BY cutover_at_ms`,
      [query.fromMs, query.sites ?? null],
    );
    return parseAll<CutoverRecord>(rows);
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
