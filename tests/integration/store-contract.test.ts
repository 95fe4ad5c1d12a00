// One contract for the collector's stores, run against the embedded SQLite store and the PostgreSQL
// store (a real cluster this file starts): reports, duplicates, conflicts, per-site ids, late old
// reports, readiness, history, the InfluxDB outbox, refused points, retention and cases. What only a
// store shared by several collectors promises (two instances draining one outbox, claiming one set
// of timers and webhook targets, the database going away and coming back) runs on PostgreSQL.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { assessReport } from '../../collector/assessment.js';
import { PostgresCaseStore } from '../../collector/cases/postgres.js';
import { SqliteCaseStore } from '../../collector/cases/sqlite.js';
import { type CaseChange, CaseConflictError, type CaseStore } from '../../collector/cases/store.js';
import { pointsFromReport } from '../../collector/store/influx.js';
import { PostgresStore } from '../../collector/store/postgres.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { type NewReport, type ReportStore, StoreUnavailableError } from '../../collector/store/store.js';
import type { SupportCase } from '../../src/cases/model.js';
import type { PostgresConfig } from '../../src/config/collector.js';
import { DEFAULT_POLICY } from '../../src/policy.js';
import type { AgentReport } from '../../src/schemas.js';
import { type PgCluster, postgresMissing, startPgCluster } from '../helpers/postgres.js';

const T0 = Date.parse('2026-11-02T10:00:00Z');
const MINUTE = 60_000;

interface Stores {
  reports: ReportStore;
  cases: CaseStore;
}

interface Backend {
  name: 'sqlite' | 'postgres';
  /** A fresh empty database; `open` opens another store instance (a collector) on it. */
  fresh(opts?: { claimForMs?: number; webhooks?: string[] }): Promise<{ open: () => Promise<Stores> }>;
}

const opened: Stores[] = [];
const dirs: string[] = [];
let cluster: PgCluster | undefined;
let databases = 0;

async function track(s: Stores): Promise<Stores> {
  opened.push(s);
  return s;
}

const sqlite: Backend = {
  name: 'sqlite',
  async fresh(opts = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'voipready-contract-'));
    dirs.push(dir);
    return {
      open: () =>
        track({ reports: new SqliteStore(dir), cases: new SqliteCaseStore(dir, opts.webhooks ?? []) }),
    };
  },
};

function pgConfig(url: string, claimForMs = 60_000): PostgresConfig {
  return { kind: 'postgres', url, poolSize: 4, timeout: 5000, claimFor: claimForMs };
}

const postgres: Backend = {
  name: 'postgres',
  async fresh(opts = {}) {
    const url = await cluster!.createDatabase(`contract_${++databases}`);
    const config = pgConfig(url, opts.claimForMs);
    return {
      open: async () =>
        track({
          reports: await PostgresStore.open(config),
          cases: await PostgresCaseStore.open(config, opts.webhooks ?? []),
        }),
    };
  },
};

const pgUnavailable = postgresMissing();

beforeAll(async () => {
  if (!pgUnavailable) cluster = await startPgCluster();
}, 60_000);

// Each test's store instances are closed after it: the cluster's connections stay few.
afterEach(async () => {
  for (const s of opened.splice(0)) {
    await s.reports.close().catch(() => {});
    await s.cases.close().catch(() => {});
  }
});

afterAll(async () => {
  await cluster?.destroy();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A report of `site` whose probe ended at `measuredAtMs`, judged as the collector would. */
function entry(
  reportId: string,
  opts: { site?: string; measuredAtMs?: number; receivedAtMs?: number; lossy?: boolean } = {},
): NewReport {
  const site = opts.site ?? 'hq';
  const measuredAtMs = opts.measuredAtMs ?? T0;
  const receivedAtMs = opts.receivedAtMs ?? Math.max(T0, measuredAtMs) + MINUTE;
  const report: AgentReport = sampleReport({
    reportId,
    site,
    agent: `${site}-agent`,
    createdAt: new Date(measuredAtMs).toISOString(),
    ...(opts.lossy ? { forward: { lost: 400 } } : {}),
  });
  const assessment = assessReport({
    report,
    policy: DEFAULT_POLICY,
    assessmentId: randomUUID(),
    receivedAtMs,
    validForMs: 86_400_000,
  });
  return {
    report,
    body: JSON.stringify(report),
    receivedAtMs,
    assessment,
    points: pointsFromReport(report, assessment),
  };
}

/** A host-health report (no probes) of `host` at `site`, collected at `collectedAtMs`. */
function hostEntry(reportId: string, site: string, host: string, collectedAtMs: number): NewReport {
  const collectedAt = new Date(collectedAtMs).toISOString();
  const report = {
    schema: 'voipready.report/1',
    reportId,
    site,
    agent: `${site}-agent`,
    createdAt: collectedAt,
    probes: [],
    host: {
      schema: 'voipready.host/1',
      host,
      collectedAt,
      disks: [],
      eventlog: { source: 'journald', since: collectedAt, critical: 0, errors: 0, top: [] },
      backups: [],
      system: { cpuPct: 5, load1: 0.1, memUsedPct: 40, swapUsedPct: 0, uptimeS: 1000 },
      checks: [],
    },
  } as unknown as AgentReport;
  const receivedAtMs = collectedAtMs + MINUTE;
  const assessment = assessReport({
    report,
    policy: DEFAULT_POLICY,
    assessmentId: randomUUID(),
    receivedAtMs,
    validForMs: 86_400_000,
  });
  return { report, body: JSON.stringify(report), receivedAtMs, assessment, points: [] };
}

/** A case as the case service would store it (the store keeps the document as it is). */
function supportCase(caseId: string, site = 'hq'): SupportCase {
  const at = new Date(T0).toISOString();
  return {
    caseId,
    site,
    status: 'Open',
    subStatus: 'New',
    priority: '3-Medium',
    withheld: false,
    createdAt: at,
    updatedAt: at,
    revision: 0,
  } as unknown as SupportCase;
}

function change(c: SupportCase, baseRevision: number | null, over: Partial<CaseChange> = {}): CaseChange {
  return {
    atMs: T0,
    case: c,
    baseRevision,
    clocks: { escalationNoticeFor: null, attachmentsPurgedAt: null },
    timers: [],
    updates: [],
    attachments: [],
    notifications: [],
    ...over,
  };
}

const notification = (caseId: string, n: number) => ({
  eventId: `evt-${caseId}-${n}`,
  type: 'case-updated' as const,
  caseId,
  at: new Date(T0 + n).toISOString(),
  payload: { n },
});

describe.each([sqlite, postgres])('store contract: $name', (backend) => {
  const skip = backend.name === 'postgres' ? pgUnavailable : undefined;
  const pgOnly = backend.name === 'postgres';

  it.skipIf(skip)(
    'stores a report once: repeat duplicate, other content conflict, ids per site',
    async () => {
      const { reports } = await (await backend.fresh()).open();
      const first = entry('rep-1');
      expect(await reports.save(first)).toBe('stored');
      expect(
        await reports.save({ ...first, assessment: { ...first.assessment, assessmentId: randomUUID() } }),
      ).toBe('duplicate');
      const other = entry('rep-1', { lossy: true });
      expect(await reports.save(other)).toBe('conflict');
      // Another site may use the same id: its own report, not a conflict.
      expect(await reports.save(entry('rep-1', { site: 'branch' }))).toBe('stored');
      expect(await reports.countReports()).toBe(2);
      const stored = await reports.assessment(first.assessment.assessmentId);
      expect(stored?.report).toEqual(first.report);
      expect(await reports.assessment(other.assessment.assessmentId)).toBeUndefined();
    },
  );

  it.skipIf(skip)('keeps the newest evidence as the site latest whatever the arrival order', async () => {
    const { reports } = await (await backend.fresh()).open();
    const newer = entry('rep-new', { measuredAtMs: T0 + 10 * MINUTE, lossy: true });
    const older = entry('rep-old', { measuredAtMs: T0, receivedAtMs: T0 + 20 * MINUTE });
    expect(await reports.save(newer)).toBe('stored');
    expect(await reports.save(older)).toBe('stored');
    const latest = await reports.latestPerSite();
    expect(latest.map((l) => l.assessment.assessmentId)).toEqual([newer.assessment.assessmentId]);
    expect(latest[0]!.assessment.ready).toBe(false);
    // History is by measurement, newest first; the list is arrival order.
    expect((await reports.siteHistory('hq', 10)).map((a) => a.reportId)).toEqual(['rep-new', 'rep-old']);
    expect((await reports.listReports({ offset: 0, limit: 10 })).map((r) => r.reportId)).toEqual([
      'rep-new',
      'rep-old',
    ]);
    const evenNewer = entry('rep-newest', { measuredAtMs: T0 + 30 * MINUTE });
    await reports.save(evenNewer);
    const now = await reports.latestPerSite();
    expect(now.map((l) => [l.assessment.reportId, l.assessment.ready])).toEqual([['rep-newest', true]]);
    expect((await reports.latestOf('hq'))?.report).toEqual(evenNewer.report);
    expect(await reports.latestOf('branch')).toBeUndefined();
  });

  it.skipIf(skip)(
    'two instances at once: a report stored once, the newest of many is the site latest',
    async () => {
      const db = await backend.fresh();
      const [a, b] = [await db.open(), await db.open()];
      const same = entry('rep-race');
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? a : b).reports.save({
            ...same,
            assessment: { ...same.assessment, assessmentId: randomUUID() },
          }),
        ),
      );
      expect(results.sort()).toEqual([
        'duplicate',
        'duplicate',
        'duplicate',
        'duplicate',
        'duplicate',
        'duplicate',
        'duplicate',
        'stored',
      ]);
      // Reports measured at shuffled times, stored by both instances side by side.
      const minutes = [7, 3, 19, 11, 2, 23, 5, 13, 17, 29, 1, 31];
      const many = minutes.map((m) => entry(`rep-m${m}`, { site: 'branch', measuredAtMs: T0 + m * MINUTE }));
      await Promise.all(many.map((e, i) => (i % 2 === 0 ? a : b).reports.save(e)));
      for (const s of [a, b]) {
        const latest = await s.reports.latestPerSite();
        expect(latest.find((l) => l.assessment.site === 'branch')?.assessment.reportId).toBe('rep-m31');
      }
      expect(await b.reports.countReports()).toBe(1 + minutes.length);
    },
  );

  it.skipIf(skip)('lists reports in arrival order, per site, with offset and limit', async () => {
    const { reports } = await (await backend.fresh()).open();
    for (let i = 0; i < 6; i++) {
      await reports.save(
        entry(`rep-${i}`, { site: i % 2 === 0 ? 'hq' : 'branch', measuredAtMs: T0 + i * MINUTE }),
      );
    }
    const hq = await reports.listReports({ site: 'hq', offset: 1, limit: 2 });
    expect(hq.map((r) => r.reportId)).toEqual(['rep-2', 'rep-4']);
    expect(hq[0]).toMatchObject({
      site: 'hq',
      agent: 'hq-agent',
      receivedAt: new Date(T0 + 3 * MINUTE).toISOString(),
    });
    expect((await reports.latestPerSite()).map((l) => l.assessment.reportId)).toEqual(['rep-5', 'rep-4']);
  });

  it.skipIf(skip)('queues points for InfluxDB, hands out batches, keeps refused points aside', async () => {
    const { reports } = await (await backend.fresh()).open();
    const entries = [entry('rep-a'), entry('rep-b', { measuredAtMs: T0 + MINUTE })];
    for (const e of entries) await reports.save(e);
    const perReport = entries[0]!.points.length;
    expect(perReport).toBeGreaterThan(1);
    expect(await reports.outboxSize()).toBe(2 * perReport);
    // Whole reports: a budget of one report's points gives one report.
    const batch = await reports.outboxPeek(perReport);
    expect(batch?.points).toEqual(entries[0]!.points);
    const refused = { point: batch!.points[0]!, error: 'partial write: field type conflict' };
    await reports.outboxAck(batch!, [refused]);
    const next = await reports.outboxPeek(10_000);
    expect(next?.points).toEqual(entries[1]!.points);
    await reports.outboxAck(next!);
    await expect.poll(() => reports.outboxSize()).toBe(0);
    expect(await reports.outboxPeek(10_000)).toBeUndefined();
    await expect
      .poll(async () => (await reports.rejectedPoints(10)).map((r) => r.error))
      .toEqual([refused.error]);
    expect((await reports.rejectedPoints(10))[0]!.point).toEqual(refused.point);
  });

  it.skipIf(skip)('prunes old reports but keeps each site latest', async () => {
    const { reports } = await (await backend.fresh()).open();
    await reports.save(entry('rep-old-1', { measuredAtMs: T0 }));
    await reports.save(entry('rep-old-2', { measuredAtMs: T0 + MINUTE }));
    await reports.save(entry('rep-branch', { site: 'branch', measuredAtMs: T0 }));
    await reports.save(entry('rep-recent', { measuredAtMs: T0 + 100 * MINUTE }));
    await reports.prune(T0 + 50 * MINUTE);
    await expect
      .poll(async () => (await reports.listReports({ offset: 0, limit: 10 })).map((r) => r.reportId))
      .toEqual(['rep-branch', 'rep-recent']);
    expect((await reports.latestPerSite()).map((l) => l.assessment.reportId)).toEqual([
      'rep-branch',
      'rep-recent',
    ]);
  });

  it.skipIf(skip)(
    "keeps each site's hosts' latest host results (ids per site) through retention",
    async () => {
      const { reports } = await (await backend.fresh()).open();
      await reports.save(hostEntry('host-1', 'hq', 'pbx-1', T0));
      await reports.save(hostEntry('host-1', 'branch', 'pbx-1', T0 + MINUTE));
      await reports.save(hostEntry('host-0', 'hq', 'pbx-1', T0 - MINUTE)); // older: not the latest
      await reports.save(entry('rep-old', { measuredAtMs: T0 + 2 * MINUTE }));
      await reports.save(entry('rep-new', { measuredAtMs: T0 + 100 * MINUTE }));
      const hosts = async () =>
        (await reports.latestHostsPerSite()).map((l) => [
          l.report.site,
          l.report.host?.host,
          l.report.reportId,
        ]);
      expect(await hosts()).toEqual([
        ['branch', 'pbx-1', 'host-1'],
        ['hq', 'pbx-1', 'host-1'],
      ]);
      await reports.prune(T0 + 50 * MINUTE);
      await expect
        .poll(async () => (await reports.listReports({ offset: 0, limit: 10 })).map((r) => r.reportId).sort())
        .toEqual(['host-1', 'host-1', 'rep-new']);
      expect(await hosts()).toEqual([
        ['branch', 'pbx-1', 'host-1'],
        ['hq', 'pbx-1', 'host-1'],
      ]);
    },
  );

  it.skipIf(skip)('cases: apply, get, list; a change from a stale revision is a conflict', async () => {
    const { cases } = await (await backend.fresh()).open();
    const id = await cases.allocateCaseId();
    expect(id).toMatch(/^\d{10}$/);
    expect(await cases.allocateCaseId()).not.toBe(id);
    const c = supportCase(id);
    await cases.apply(
      change(c, null, {
        updates: [{ kind: 'system', at: c.createdAt, text: 'opened' } as never],
        attachments: [
          { kind: 'assessment', assessmentId: 'a-1', contentType: 'application/json', body: '{}' },
        ],
        notifications: [notification(id, 1)],
      }),
    );
    const stored = await cases.get(id);
    expect(stored?.case).toMatchObject({ caseId: id, revision: 1 });
    expect((await cases.list({ offset: 0, limit: 10 })).map((x) => x.caseId)).toEqual([id]);
    expect(await cases.list({ sites: ['branch'], offset: 0, limit: 10 })).toEqual([]);
    expect((await cases.attachments(id, true))[0]).toMatchObject({ assessmentId: 'a-1', body: '{}' });
    expect((await cases.notifications(id)).map((n) => n.eventId)).toEqual([`evt-${id}-1`]);
    await cases.apply(change({ ...c, status: 'Pending' as never }, 1));
    await expect(cases.apply(change({ ...c, status: 'Closed' as never }, 1))).rejects.toBeInstanceOf(
      CaseConflictError,
    );
    expect((await cases.get(id))?.case).toMatchObject({ status: 'Pending', revision: 2 });
  });

  it.skipIf(skip)(
    'two store instances on one database: a timer fires once, concurrent changes conflict',
    async () => {
      const db = await backend.fresh();
      const [a, b] = [await db.open(), await db.open()];
      const id = await a.cases.allocateCaseId();
      const c = supportCase(id);
      await a.cases.apply(change(c, null, { timers: [{ kind: 'follow-up-1', dueAtMs: T0 + MINUTE }] }));
      expect(await b.cases.nextDueAtMs()).toBe(T0 + MINUTE);
      // Both collectors look at once; whatever each is handed, the timer fires (is applied) once.
      const nowMs = T0 + 2 * MINUTE;
      const [dueA, dueB] = await Promise.all([a.cases.dueTimers(nowMs, 10), b.cases.dueTimers(nowMs, 10)]);
      expect([...dueA, ...dueB].length).toBeGreaterThanOrEqual(1);
      if (pgOnly) expect([dueA.length, dueB.length].sort()).toEqual([0, 1]);
      const fire = (s: Stores) =>
        s.cases.apply(
          change({ ...c, followUpsSent: 1 } as SupportCase, 1, {
            fired: { kind: 'follow-up-1', dueAtMs: T0 + MINUTE },
            notifications: [notification(id, s === a ? 2 : 3)],
          }),
        );
      const outcomes = await Promise.allSettled([fire(a), fire(b)]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const failed = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      expect(failed.reason).toBeInstanceOf(CaseConflictError);
      expect(await a.cases.notifications(id)).toHaveLength(1);
      expect(await b.cases.dueTimers(nowMs + 10 * MINUTE, 10)).toEqual([]);
    },
  );

  it.skipIf(skip || !pgOnly)(
    'two instances drain one InfluxDB outbox side by side: every point exactly once',
    async () => {
      const db = await backend.fresh();
      const [a, b] = [await db.open(), await db.open()];
      const entries = Array.from({ length: 120 }, (_, i) =>
        entry(`rep-${i}`, { measuredAtMs: T0 + i * 1000 }),
      );
      await Promise.all(entries.map((e, i) => (i % 2 === 0 ? a : b).reports.save(e)));
      const written: string[][] = [[], []];
      const drain = async (s: Stores, into: string[]) => {
        for (;;) {
          const batch = await s.reports.outboxPeek(3 * entries[0]!.points.length);
          if (!batch) return;
          for (const p of batch.points) into.push(`${p.measurement}|${JSON.stringify(p.tags)}|${p.timeMs}`);
          await new Promise((r) => setTimeout(r, 2)); // the InfluxDB write
          await s.reports.outboxAck(batch);
        }
      };
      await Promise.all([drain(a, written[0]!), drain(b, written[1]!), drain(a, written[0]!)]);
      const all = [...written[0]!, ...written[1]!];
      const expected = entries.flatMap((e) =>
        e.points.map((p) => `${p.measurement}|${JSON.stringify(p.tags)}|${p.timeMs}`),
      );
      expect(all.sort()).toEqual(expected.sort());
      expect(written[0]!.length).toBeGreaterThan(0);
      expect(written[1]!.length).toBeGreaterThan(0);
      expect(await a.reports.outboxSize()).toBe(0);
    },
    60_000,
  );

  it.skipIf(skip || !pgOnly)("a dead instance's outbox claim is taken over when it runs out", async () => {
    const db = await backend.fresh({ claimForMs: 800 });
    const [a, b] = [await db.open(), await db.open()];
    const e = entry('rep-1');
    await a.reports.save(e);
    const held = await a.reports.outboxPeek(10_000);
    expect(held?.points).toHaveLength(e.points.length);
    expect(await b.reports.outboxPeek(10_000)).toBeUndefined();
    // a dies holding the rows; after the claim runs out b writes them.
    await expect.poll(() => b.reports.outboxPeek(10_000), { timeout: 10_000, interval: 200 }).toBeDefined();
    const late = await b.reports.outboxPeek(10_000);
    expect(late).toBeUndefined(); // b holds them now
  });

  it.skipIf(skip || !pgOnly)(
    'webhook outbox: each target is delivered by one instance, in order, every event once',
    async () => {
      const db = await backend.fresh({ webhooks: ['jira', 'crm'] });
      const [a, b] = [await db.open(), await db.open()];
      const id = await a.cases.allocateCaseId();
      const events = Array.from({ length: 5 }, (_, i) => notification(id, i + 1));
      await a.cases.apply(change(supportCase(id), null, { notifications: events }));
      expect(await b.cases.outboxPending()).toBe(10);
      const delivered: { by: string; target: string; eventId: string }[] = [];
      const deliver = async (s: Stores, by: string) => {
        for (const item of await s.cases.outboxDue(T0 + MINUTE, 200)) {
          delivered.push({ by, target: item.target, eventId: item.eventId });
          await s.cases.outboxDelivered(item.seq, T0 + MINUTE);
        }
      };
      await Promise.all([deliver(a, 'a'), deliver(b, 'b')]);
      await Promise.all([deliver(b, 'b'), deliver(a, 'a')]);
      for (const target of ['jira', 'crm']) {
        const mine = delivered.filter((d) => d.target === target);
        expect(mine.map((d) => d.eventId)).toEqual(events.map((e) => e.eventId));
        expect(new Set(mine.map((d) => d.by)).size).toBe(1);
      }
      expect(await a.cases.outboxPending()).toBe(0);
    },
  );

  it.skipIf(skip || !pgOnly)(
    'database down: StoreUnavailableError and writeTrouble, then recovers by itself',
    async () => {
      const { reports, cases } = await (await backend.fresh()).open();
      expect(await reports.save(entry('rep-before'))).toBe('stored');
      await cluster!.stop();
      try {
        await expect(reports.save(entry('rep-down'))).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(reports.latestPerSite()).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(cases.list({ offset: 0, limit: 1 })).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(await reports.writeTrouble()).toMatch(/PostgreSQL unavailable/);
      } finally {
        await cluster!.start();
      }
      // The pool reconnects on the next query: no restart of the store.
      await expect
        .poll(() => reports.save(entry('rep-after')).catch((e: Error) => e.name), {
          timeout: 20_000,
          interval: 500,
        })
        .toBe('stored');
      await expect.poll(() => reports.writeTrouble(), { timeout: 10_000, interval: 500 }).toBeUndefined();
      expect((await reports.listReports({ offset: 0, limit: 10 })).map((r) => r.reportId)).toEqual([
        'rep-before',
        'rep-after',
      ]);
      expect(await cases.list({ offset: 0, limit: 1 })).toEqual([]);
    },
    60_000,
  );
});
