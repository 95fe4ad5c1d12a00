// Cases in the collector's SQLite file, beside the reports, on a connection of their own (WAL lets
// it write between the report writer's transactions; busy_timeout waits for them). The tables are
// added by a migration keyed `cases_schema` in the meta table, run in one transaction on start: a
// database of today's schema keeps every report and gains the case tables.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ClockState, UpdateRecord } from '../../src/cases/machine.js';
import type { SupportCase } from '../../src/cases/model.js';
import { SQLITE_FILE } from '../store/sqlite.js';
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

/** Each entry migrates from the version before it to its index + 1. */
const MIGRATIONS = [
  `
CREATE TABLE cases (
  case_id TEXT PRIMARY KEY,
  site TEXT NOT NULL,
  status TEXT NOT NULL,
  priority TEXT NOT NULL,
  withheld INTEGER NOT NULL,
  revision INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  doc TEXT NOT NULL,
  clocks TEXT NOT NULL
);
CREATE INDEX cases_site ON cases(site, status);
CREATE TABLE case_counter (id INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE case_updates (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id TEXT NOT NULL REFERENCES cases(case_id),
  doc TEXT NOT NULL
);
CREATE INDEX case_updates_case ON case_updates(case_id, seq);
CREATE TABLE case_attachments (
  attachment_id INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id TEXT NOT NULL REFERENCES cases(case_id),
  kind TEXT NOT NULL,
  assessment_id TEXT NOT NULL,
  content_type TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  purged_at_ms INTEGER,
  body TEXT
);
CREATE INDEX case_attachments_case ON case_attachments(case_id);
CREATE TABLE case_timers (
  case_id TEXT NOT NULL REFERENCES cases(case_id),
  kind TEXT NOT NULL,
  due_at_ms INTEGER NOT NULL,
  PRIMARY KEY (case_id, kind)
);
CREATE INDEX case_timers_due ON case_timers(due_at_ms);
CREATE TABLE notifications (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  case_id TEXT,
  type TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX notifications_case ON notifications(case_id, seq);
CREATE TABLE webhook_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  target TEXT NOT NULL,
  event_id TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  delivered_at_ms INTEGER,
  last_error TEXT,
  UNIQUE (target, event_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(delivered_at_ms, next_attempt_ms);
CREATE TABLE cutovers (
  cutover_id TEXT PRIMARY KEY,
  site TEXT NOT NULL,
  cutover_at_ms INTEGER NOT NULL,
  submitted_at_ms INTEGER NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX cutovers_time ON cutovers(cutover_at_ms);
`,
];

export const CASES_SCHEMA_VERSION = MIGRATIONS.length;

/** Runs the case migrations the database lacks, all in one transaction. */
export function migrateCases(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  db.transaction(() => {
    const row = db.prepare(`SELECT value FROM meta WHERE key = 'cases_schema'`).pluck().get() as
      | string
      | undefined;
    const from = row === undefined ? 0 : Number(row);
    if (from > MIGRATIONS.length) {
      throw new Error(`the case tables are at schema ${from}, this collector reads ${MIGRATIONS.length}`);
    }
    for (let v = from; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('cases_schema', ?)`).run(
      String(MIGRATIONS.length),
    );
  }).immediate();
}

export class SqliteCaseStore implements CaseStore {
  private readonly db: Database.Database;
  private readonly q;
  private readonly applyTx: Database.Transaction<(change: CaseChange) => void>;
  private readonly cutoverTx: Database.Transaction<(c: CutoverRecord, n: Notification) => void>;

  /** `webhookTargets`: names of the configured webhooks; each notification gets an outbox row per target. */
  constructor(
    dataDir: string,
    private readonly webhookTargets: readonly string[] = [],
  ) {
    mkdirSync(dataDir, { recursive: true, mode: 0o750 });
    this.db = new Database(join(dataDir, SQLITE_FILE));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    migrateCases(this.db);
    const db = this.db;
    this.q = {
      counter: db.prepare('INSERT INTO case_counter DEFAULT VALUES'),
      insertCase: db.prepare(
        `INSERT INTO cases (case_id, site, status, priority, withheld, revision, created_at_ms, doc, clocks)
         VALUES (@caseId, @site, @status, @priority, @withheld, @revision, @createdAtMs, @doc, @clocks)`,
      ),
      updateCase: db.prepare(
        `UPDATE cases SET status = @status, priority = @priority, withheld = @withheld, revision = @revision,
         doc = @doc, clocks = @clocks WHERE case_id = @caseId AND revision = @baseRevision`,
      ),
      getCase: db.prepare('SELECT doc, clocks FROM cases WHERE case_id = ?'),
      list: db.prepare(
        `SELECT doc FROM cases WHERE (@sites IS NULL OR site IN (SELECT value FROM json_each(@sites)))
         AND (@status IS NULL OR status = @status) AND (@priority IS NULL OR priority = @priority)
         ORDER BY created_at_ms DESC, case_id DESC LIMIT @limit OFFSET @offset`,
      ),
      withheld: db
        .prepare(
          `SELECT doc FROM cases WHERE withheld = 1 AND (@site IS NULL OR site = @site) ORDER BY case_id`,
        )
        .pluck(),
      insertUpdate: db.prepare('INSERT INTO case_updates (case_id, doc) VALUES (?, ?)'),
      updates: db.prepare('SELECT doc FROM case_updates WHERE case_id = ? ORDER BY seq').pluck(),
      insertAttachment: db.prepare(
        `INSERT INTO case_attachments (case_id, kind, assessment_id, content_type, created_at_ms, body)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      attachments: db.prepare(
        `SELECT attachment_id, case_id, kind, assessment_id, content_type, created_at_ms, purged_at_ms
         FROM case_attachments WHERE case_id = ? ORDER BY attachment_id`,
      ),
      attachmentsWithBody: db.prepare(
        'SELECT * FROM case_attachments WHERE case_id = ? ORDER BY attachment_id',
      ),
      attachment: db.prepare('SELECT * FROM case_attachments WHERE case_id = ? AND attachment_id = ?'),
      purge: db.prepare(
        'UPDATE case_attachments SET body = NULL, purged_at_ms = ? WHERE case_id = ? AND purged_at_ms IS NULL',
      ),
      deleteTimers: db.prepare('DELETE FROM case_timers WHERE case_id = ?'),
      deleteFired: db.prepare('DELETE FROM case_timers WHERE case_id = ? AND kind = ? AND due_at_ms = ?'),
      insertTimer: db.prepare('INSERT INTO case_timers (case_id, kind, due_at_ms) VALUES (?, ?, ?)'),
      dueTimers: db.prepare(
        `SELECT case_id AS caseId, kind, due_at_ms AS dueAtMs FROM case_timers WHERE due_at_ms <= ?
         ORDER BY due_at_ms, case_id LIMIT ?`,
      ),
      nextDue: db.prepare('SELECT MIN(due_at_ms) FROM case_timers').pluck(),
      insertNotification: db.prepare(
        'INSERT INTO notifications (event_id, case_id, type, at_ms, doc) VALUES (?, ?, ?, ?, ?)',
      ),
      notifications: db.prepare('SELECT doc FROM notifications WHERE case_id = ? ORDER BY seq').pluck(),
      insertOutbox: db.prepare(
        'INSERT INTO webhook_outbox (target, event_id, body, next_attempt_ms) VALUES (?, ?, ?, ?)',
      ),
      outboxDue: db.prepare(
        `SELECT seq, target, event_id AS eventId, body, attempts FROM webhook_outbox
         WHERE delivered_at_ms IS NULL AND next_attempt_ms <= ? ORDER BY seq LIMIT ?`,
      ),
      outboxDelivered: db.prepare('UPDATE webhook_outbox SET delivered_at_ms = ? WHERE seq = ?'),
      outboxRetry: db.prepare(
        'UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? WHERE seq = ?',
      ),
      outboxPending: db.prepare('SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at_ms IS NULL').pluck(),
      insertCutover: db.prepare(
        `INSERT INTO cutovers (cutover_id, site, cutover_at_ms, submitted_at_ms, doc) VALUES (?, ?, ?, ?, ?)`,
      ),
      cutover: db.prepare('SELECT doc FROM cutovers WHERE cutover_id = ?').pluck(),
      cutovers: db
        .prepare(
          `SELECT doc FROM cutovers WHERE cutover_at_ms >= @fromMs
           AND (@sites IS NULL OR site IN (SELECT value FROM json_each(@sites))) ORDER BY cutover_at_ms`,
        )
        .pluck(),
    };
    this.cutoverTx = db.transaction((c: CutoverRecord, n: Notification) => {
      const { cutoverId, site, cutoverAt, submittedAt } = c;
      this.q.insertCutover.run(
        cutoverId,
        site,
        Date.parse(cutoverAt),
        Date.parse(submittedAt),
        JSON.stringify(c),
      );
      this.writeNotification(n);
    });
    this.applyTx = db.transaction((change: CaseChange) => this.write(change));
  }

  private writeNotification(n: Notification): void {
    const atMs = Date.parse(n.at);
    const doc = JSON.stringify(n);
    this.q.insertNotification.run(n.eventId, n.caseId, n.type, atMs, doc);
    for (const target of this.webhookTargets) this.q.insertOutbox.run(target, n.eventId, doc, atMs);
  }

  private write(change: CaseChange): void {
    const c = change.case;
    const row = {
      caseId: c.caseId,
      site: c.site,
      status: c.status,
      priority: c.priority,
      withheld: c.withheld ? 1 : 0,
      revision: (change.baseRevision ?? 0) + 1,
      createdAtMs: Date.parse(c.createdAt),
      doc: JSON.stringify({ ...c, revision: (change.baseRevision ?? 0) + 1 }),
      clocks: JSON.stringify(change.clocks),
      baseRevision: change.baseRevision,
    };
    if (change.baseRevision === null) {
      const { baseRevision: _b, ...insert } = row;
      this.q.insertCase.run(insert);
    } else {
      const { site: _s, createdAtMs: _c, ...update } = row;
      if (this.q.updateCase.run(update).changes === 0) {
        throw new CaseConflictError(`case ${c.caseId} changed meanwhile`);
      }
    }
    if (change.fired) {
      const { kind, dueAtMs } = change.fired;
      if (this.q.deleteFired.run(c.caseId, kind, dueAtMs).changes === 0) {
        throw new CaseConflictError(`timer ${kind} of case ${c.caseId} already fired`);
      }
    }
    this.q.deleteTimers.run(c.caseId);
    for (const t of change.timers) this.q.insertTimer.run(c.caseId, t.kind, t.dueAtMs);
    for (const u of change.updates) this.q.insertUpdate.run(c.caseId, JSON.stringify(u));
    const nowMs = change.atMs;
    if (change.purgeAttachments) this.q.purge.run(nowMs, c.caseId);
    for (const a of change.attachments) {
      this.q.insertAttachment.run(c.caseId, a.kind, a.assessmentId, a.contentType, nowMs, a.body);
    }
    for (const n of change.notifications) this.writeNotification(n);
  }

  async allocateCaseId(): Promise<string> {
    const id = Number(this.q.counter.run().lastInsertRowid);
    return String(id).padStart(10, '0');
  }

  async apply(change: CaseChange): Promise<void> {
    this.applyTx.immediate(change);
  }

  async get(caseId: string): Promise<StoredCase | undefined> {
    const row = this.q.getCase.get(caseId) as { doc: string; clocks: string } | undefined;
    if (!row) return undefined;
    return { case: JSON.parse(row.doc) as SupportCase, clocks: JSON.parse(row.clocks) as ClockState };
  }

  async list(query: CaseQuery): Promise<SupportCase[]> {
    const rows = this.q.list.all({
      sites: query.sites ? JSON.stringify(query.sites) : null,
      status: query.status ?? null,
      priority: query.priority ?? null,
      limit: query.limit,
      offset: query.offset,
    }) as { doc: string }[];
    return rows.map((r) => JSON.parse(r.doc) as SupportCase);
  }

  async withheld(site?: string): Promise<SupportCase[]> {
    return (this.q.withheld.all({ site: site ?? null }) as string[]).map((d) => JSON.parse(d) as SupportCase);
  }

  async updates(caseId: string): Promise<UpdateRecord[]> {
    return (this.q.updates.all(caseId) as string[]).map((d) => JSON.parse(d) as UpdateRecord);
  }

  async attachments(caseId: string, withBody: boolean): Promise<CaseAttachment[]> {
    const stmt = withBody ? this.q.attachmentsWithBody : this.q.attachments;
    return (stmt.all(caseId) as AttachmentRow[]).map(toAttachment);
  }

  async attachment(caseId: string, attachmentId: number): Promise<CaseAttachment | undefined> {
    const row = this.q.attachment.get(caseId, attachmentId) as AttachmentRow | undefined;
    return row ? toAttachment(row) : undefined;
  }

  async notifications(caseId: string): Promise<Notification[]> {
    return (this.q.notifications.all(caseId) as string[]).map((d) => JSON.parse(d) as Notification);
  }

  async dueTimers(nowMs: number, limit: number): Promise<DueTimer[]> {
    return this.q.dueTimers.all(nowMs, limit) as DueTimer[];
  }

  async nextDueAtMs(): Promise<number | undefined> {
    return (this.q.nextDue.get() as number | null) ?? undefined;
  }

  async outboxDue(nowMs: number, limit: number): Promise<OutboxItem[]> {
    return this.q.outboxDue.all(nowMs, limit) as OutboxItem[];
  }

  async outboxDelivered(seq: number, nowMs: number): Promise<void> {
    this.q.outboxDelivered.run(nowMs, seq);
  }

  async outboxRetry(seq: number, nextAttemptMs: number, error: string): Promise<void> {
    this.q.outboxRetry.run(nextAttemptMs, error.slice(0, 500), seq);
  }

  async outboxPending(): Promise<number> {
    return this.q.outboxPending.get() as number;
  }

  async saveCutover(c: CutoverRecord, n: Notification): Promise<void> {
    this.cutoverTx.immediate(c, n);
  }

  async cutover(id: string): Promise<CutoverRecord | undefined> {
    const doc = this.q.cutover.get(id) as string | undefined;
    return doc ? (JSON.parse(doc) as CutoverRecord) : undefined;
  }

  async cutovers(query: { fromMs: number; sites?: string[] }): Promise<CutoverRecord[]> {
    return (
      this.q.cutovers.all({
        fromMs: query.fromMs,
        sites: query.sites ? JSON.stringify(query.sites) : null,
      }) as string[]
    ).map((d) => JSON.parse(d) as CutoverRecord);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
