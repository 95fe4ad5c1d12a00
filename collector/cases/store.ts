// Where cases live: cases, their updates, frozen attachments, the timers of the handbook's clocks,
// notifications and the webhook outbox, cutover notices. One interface (async, so a PostgreSQL
// implementation can follow); the SQLite one (./sqlite.ts) shares the collector's database file.
// Every change to a case is one CaseChange applied in one transaction, guarded by the case's revision.
import type { ClockState, Timer, TimerKind, UpdateRecord } from '../../src/cases/machine.js';
import type { CaseStatus, Priority, SupportCase } from '../../src/cases/model.js';

export type AttachmentKind = 'assessment' | 'report-html';

export interface NewAttachment {
  kind: AttachmentKind;
  assessmentId: string;
  contentType: string;
  /** The frozen copy itself: later changes to the site or retention of reports never alter it. */
  body: string;
}

export interface CaseAttachment extends Omit<NewAttachment, 'body'> {
  attachmentId: number;
  caseId: string;
  createdAt: string;
  /** Set once the body was purged (one month after closure); the body is then null. */
  purgedAt: string | null;
  body: string | null;
}

/** An attachment row as both stores keep it. */
export interface AttachmentRow {
  attachment_id: number;
  case_id: string;
  kind: CaseAttachment['kind'];
  assessment_id: string;
  content_type: string;
  created_at_ms: number;
  purged_at_ms: number | null;
  body?: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function toAttachment(r: AttachmentRow): CaseAttachment {
  return {
    attachmentId: r.attachment_id,
    caseId: r.case_id,
    kind: r.kind,
    assessmentId: r.assessment_id,
    contentType: r.content_type,
    createdAt: iso(r.created_at_ms),
    purgedAt: r.purged_at_ms === null ? null : iso(r.purged_at_ms),
    body: r.body ?? null,
  };
}

export type NotificationType =
  | 'case-opened'
  | 'case-updated'
  | 'follow-up'
  | 'case-closed'
  | 'escalation-eligible'
  | 'escalation-requested'
  | 'support-released'
  | 'report-attached'
  | 'attachments-purged'
  | 'cutover-notice';

/** One event for the trackers; eventId is its idempotency key on every delivery. */
export interface Notification {
  eventId: string;
  type: NotificationType;
  caseId: string | null;
  at: string;
  payload: Record<string, unknown>;
}

export interface CaseChange {
  /** When the change happens (ms since the epoch): attachment and purge times. */
  atMs: number;
  case: SupportCase;
  /** The revision the change was computed from; null for a new case. A mismatch is a conflict. */
  baseRevision: number | null;
  clocks: ClockState;
  /** The case's timers after the change (replacing those it had). */
  timers: Timer[];
  /** The timer this change fires: it must still be stored (exactly once), and is consumed. */
  fired?: { kind: TimerKind; dueAtMs: number };
  updates: UpdateRecord[];
  attachments: NewAttachment[];
  purgeAttachments?: boolean;
  notifications: Notification[];
}

/** Another writer changed the case (or fired the timer) first: recompute from the stored case. */
export class CaseConflictError extends Error {
  override name = 'CaseConflictError';
}

export interface StoredCase {
  case: SupportCase;
  clocks: ClockState;
}

export interface CaseQuery {
  sites?: string[];
  status?: CaseStatus;
  priority?: Priority;
  offset: number;
  limit: number;
}

export interface DueTimer {
  caseId: string;
  kind: TimerKind;
  dueAtMs: number;
}

export interface OutboxItem {
  seq: number;
  target: string;
  eventId: string;
  body: string;
  attempts: number;
}

export interface CutoverRecord {
  cutoverId: string;
  site: string;
  cutoverAt: string;
  submittedAt: string;
  doc: Record<string, unknown>;
}

export interface CaseStore {
  /** The next case number (10 digits, as the handbook's "Case No."). */
  allocateCaseId(): Promise<string>;
  apply(change: CaseChange): Promise<void>;
  get(caseId: string): Promise<StoredCase | undefined>;
  list(query: CaseQuery): Promise<SupportCase[]>;
  /** Cases of a site waiting for evidence (withheld), for release by a passing assessment. */
  withheld(site?: string): Promise<SupportCase[]>;
  updates(caseId: string): Promise<UpdateRecord[]>;
  attachments(caseId: string, withBody: boolean): Promise<CaseAttachment[]>;
  attachment(caseId: string, attachmentId: number): Promise<CaseAttachment | undefined>;
  notifications(caseId: string): Promise<Notification[]>;
  dueTimers(nowMs: number, limit: number): Promise<DueTimer[]>;
  /** The earliest stored due time, for sleeping until it. */
  nextDueAtMs(): Promise<number | undefined>;
  outboxDue(nowMs: number, limit: number): Promise<OutboxItem[]>;
  outboxDelivered(seq: number, nowMs: number): Promise<void>;
  outboxRetry(seq: number, nextAttemptMs: number, error: string): Promise<void>;
  outboxPending(): Promise<number>;
  /** A cutover notice and its notification (with outbox rows), in one transaction. */
  saveCutover(c: CutoverRecord, n: Notification): Promise<void>;
  cutover(id: string): Promise<CutoverRecord | undefined>;
  cutovers(query: { fromMs: number; site?: string; sites?: string[] }): Promise<CutoverRecord[]>;
  close(): Promise<void>;
}
