// The collector's storage, behind one interface. The embedded default is SQLite (./sqlite.ts): it
// holds reports and assessments, and an outbox of time-series points that ./influx.ts drains into
// InfluxDB when one is configured.
import type { AgentReport } from '../../src/schemas.js';
import type { Assessment } from '../assessment.js';

/** A store that cannot take writes right now (disk full, database down, closed): the client should
 * retry (503 + Retry-After). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** One InfluxDB point, as queued in the outbox (time in ms since the epoch). */
export interface SeriesPoint {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | boolean | string>;
  timeMs: number;
}

export interface NewReport {
  report: AgentReport;
  /** The report as stored; the store keeps its SHA-256, so a repeat of the id with other content is
   * a conflict. */
  body: string;
  receivedAtMs: number;
  assessment: Assessment;
  /** Points for the time-series sink; empty when none is configured. */
  points: SeriesPoint[];
}

/** stored: newly and durably stored; duplicate: this id was stored before with the same content;
 * conflict: this id was stored before with other content (nothing stored). */
export type SaveResult = 'stored' | 'duplicate' | 'conflict';

export interface SiteLatest {
  assessment: Assessment;
  report: AgentReport;
}

export interface ReportSummary {
  reportId: string;
  site: string;
  agent: string;
  createdAt: string;
  receivedAt: string;
}

/** A point InfluxDB refused (a 4xx: its verdict on that point), kept for inspection. */
export interface RejectedPoint {
  point: SeriesPoint;
  /** InfluxDB's answer. */
  error: string;
}

export interface OutboxBatch {
  /** The outbox rows in the batch (sequence numbers, ascending): hand the batch back to outboxAck. */
  seqs: number[];
  points: SeriesPoint[];
}

export interface ReportStore {
  /** Resolves only once the report is durably committed (or known as a duplicate). */
  save(entry: NewReport): Promise<SaveResult>;
  /** The latest assessment of every site, by measurement time, with its report. */
  latestPerSite(): Promise<SiteLatest[]>;
  /** One site's latest assessment with its report (latestPerSite's row of that site). */
  latestOf(site: string): Promise<SiteLatest | undefined>;
  /** The latest assessment carrying a host result, per site and host, by measurement time. */
  latestHostsPerSite(): Promise<SiteLatest[]>;
  assessment(id: string): Promise<SiteLatest | undefined>;
  /** A site's assessments, newest measurement first, at most `limit`. */
  siteHistory(site: string, limit: number): Promise<Assessment[]>;
  countReports(): Promise<number>;
  /** Stored reports in arrival order, optionally of one site. */
  listReports(query: { site?: string; offset: number; limit: number }): Promise<ReportSummary[]>;
  /**
   * Oldest queued time-series points, up to about maxPoints (whole reports), taken by this store
   * instance until acknowledged (a store shared by several collectors hands each row to one of them).
   */
  outboxPeek(maxPoints: number): Promise<OutboxBatch | undefined>;
  /** The batch is done: written, or refused and kept aside in `rejected`. */
  outboxAck(batch: OutboxBatch, rejected?: RejectedPoint[]): Promise<void>;
  /** Points InfluxDB refused, newest first. */
  rejectedPoints(limit: number): Promise<(RejectedPoint & { rejectedAt: string })[]>;
  outboxSize(): Promise<number>;
  /**
   * Deletes reports (and their assessments) that arrived before `beforeMs`, except each site's
   * latest assessment and each host's latest host result with their reports, and refused InfluxDB
   * points set aside before then. Runs in small transactions (in the background on SQLite).
   */
  prune(beforeMs: number): Promise<void>;
  /** Other collectors write to this store too: what a collector holds in memory must be re-read. */
  readonly shared: boolean;
  /** Why the store cannot take a report now (disk full, closed), or undefined when it can. */
  writeTrouble(): Promise<string | undefined>;
  /** Commits what is pending and closes. */
  close(): Promise<void>;
}
