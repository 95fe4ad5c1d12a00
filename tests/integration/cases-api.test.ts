// Support cases through the collector's HTTP API (inject), on real SQLite files: eligibility from
// the stored evidence, release by a later passing assessment, roles, bad input, the migration.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteCaseStore } from '../../collector/cases/sqlite.js';
import { SQLITE_FILE, SqliteStore } from '../../collector/store/sqlite.js';
import {
  type CaseCtx,
  call,
  copiesOf,
  openCaseApp,
  postReport,
  removeDir,
  siteReport,
  TOKENS,
  VOICE_CASE,
} from '../helpers/cases.js';

const HOUR = 3_600_000;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

/** Waits for the release the ingest hook starts after a passing report (it runs after the 202). */
async function settle(ctx: CaseCtx): Promise<void> {
  await ctx.app.collector.cases!.release();
}

describe('cases: eligibility gated on the site evidence', () => {
  let ctx: CaseCtx;
  beforeAll(() => {
    ctx = openCaseApp();
    dirs.push(ctx.dir);
  });
  afterAll(() => ctx.close());

  let withheldId = '';
  let firstAssessment = '';

  it('a voice case on a site whose reverse path rewrites EF opens withheld, with the DSCP evidence attached', async () => {
    firstAssessment = (await postReport(ctx, siteReport('rep-ef-rewritten', ctx.clock.now, 'hq', true)))
      .assessmentId;
    const res = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
    expect(res.status).toBe(201);
    const body = res.json as Record<string, unknown> & {
      missingChecks: { id: string; status: string; evidence: string }[];
    };
    expect(body).toMatchObject({
      status: 'Awaiting Info',
      subStatus: 'Info required from the customer',
      withheld: true,
      attachments: copiesOf(firstAssessment),
    });
    expect(body.caseId).toMatch(/^\d{10}$/);
    const dscp = body.missingChecks.find((m) => m.id === 'dscp-rtp');
    expect(dscp?.status).toBe('fail');
    expect(dscp?.evidence).toMatch(/reverse/i);
    expect(body.missingChecks.map((m) => m.id)).toEqual(['dscp-rtp']);
    withheldId = body.caseId as string;

    const shown = await call(ctx.app, 'GET', `/api/v1/cases/${withheldId}`, TOKENS.support);
    expect(shown.status).toBe(200);
    const attachments = shown.json.attachments as { attachmentId: number }[];
    const copy = await call(
      ctx.app,
      'GET',
      `/api/v1/cases/${withheldId}/attachments/${attachments[0]!.attachmentId}`,
      TOKENS.acme,
    );
    expect(copy.status).toBe(200);
    const doc = copy.json as {
      assessmentId: string;
      ready: boolean;
      measurements: { reverse: { dscpReceived: object } }[];
    };
    expect(doc.assessmentId).toBe(firstAssessment);
    expect(doc.ready).toBe(false);
    expect(doc.measurements[0]!.reverse.dscpReceived).toEqual({ '0': 500 });
    // Its report page, frozen beside it: the verdict links the failing DSCP check.
    const page = await call(
      ctx.app,
      'GET',
      `/api/v1/cases/${withheldId}/attachments/${attachments[1]!.attachmentId}`,
      TOKENS.acme,
    );
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/^<!doctype html>/i);
    expect(page.body).toContain('#check-dscp-rtp');
  });

  it('a customer update keeps a withheld case waiting; the customer cannot force it open (409 naming the rule)', async () => {
    const note = await call(ctx.app, 'POST', `/api/v1/cases/${withheldId}/updates`, TOKENS.acme, {
      text: 'We checked the firewall.',
    });
    expect(note.status).toBe(200);
    expect(note.json).toMatchObject({ status: 'Awaiting Info', withheld: true });
    const force = await call(ctx.app, 'POST', `/api/v1/cases/${withheldId}/updates`, TOKENS.acme, {
      status: 'Open',
      subStatus: 'Customer Responded',
    });
    expect(force.status).toBe(409);
    expect(force.json.message).toMatch(/withhold support for VoIP implementations/);
  });

  it('1-Prod Down is never blocked but carries the flag; a non-voice case gets no evidence', async () => {
    const down = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.support, {
      ...VOICE_CASE,
      priority: '1-Prod Down',
    });
    expect(down.status).toBe(201);
    expect(down.json).toMatchObject({ status: 'Open', subStatus: 'New', withheld: false });
    expect((down.json.missingChecks as { id: string }[]).map((m) => m.id)).toEqual(['dscp-rtp']);
    const admin = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, {
      ...VOICE_CASE,
      type: 'Admin',
      subType: 'Inquiry',
      product: 'My Support Portal',
      voice: undefined,
    });
    expect(admin.json).toMatchObject({
      status: 'Open',
      subStatus: 'New',
      withheld: false,
      missingChecks: [],
      attachments: [],
    });
  });

  it('a later passing assessment releases the case: Open / Customer Responded, new report attached, old copy frozen', async () => {
    ctx.clock.now += HOUR;
    const passing = (await postReport(ctx, siteReport('rep-ef-fixed', ctx.clock.now, 'hq'))).assessmentId;
    await settle(ctx);
    const shown = await call(ctx.app, 'GET', `/api/v1/cases/${withheldId}`, TOKENS.acme);
    expect(shown.json).toMatchObject({
      status: 'Open',
      subStatus: 'Customer Responded',
      withheld: false,
      missingChecks: [],
    });
    const attachments = shown.json.attachments as {
      attachmentId: number;
      kind: string;
      assessmentId: string;
    }[];
    expect(attachments.map(({ kind, assessmentId }) => ({ kind, assessmentId }))).toEqual([
      ...copiesOf(firstAssessment),
      ...copiesOf(passing),
    ]);
    const old = await call(
      ctx.app,
      'GET',
      `/api/v1/cases/${withheldId}/attachments/${attachments[0]!.attachmentId}`,
      TOKENS.support,
    );
    expect((old.json as { ready: boolean }).ready).toBe(false);
    const types = (shown.json.notifications as { type: string }[]).map((n) => n.type);
    expect(types).toContain('support-released');
    expect(types).toContain('report-attached');
  });

  it('a site that only turns stale reopens nothing, while a new voice case then waits for fresh evidence', async () => {
    ctx.clock.now += 30 * HOUR;
    await ctx.app.collector.cases!.tick();
    const released = await call(ctx.app, 'GET', `/api/v1/cases/${withheldId}`, TOKENS.support);
    expect(released.json).toMatchObject({ status: 'Open', withheld: false });
    const fresh = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
    expect(fresh.json).toMatchObject({ status: 'Awaiting Info', withheld: true });
    const missing = fresh.json.missingChecks as { status: string; whatToDo: string }[];
    expect(missing.length).toBeGreaterThan(0);
    expect(missing.every((m) => m.status === 'unknown' && /run the agent again/.test(m.whatToDo))).toBe(true);
  });

  it('a site with no evidence at all lists every network check as missing', async () => {
    const res = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.globex, {
      ...VOICE_CASE,
      site: 'branch',
    });
    expect(res.json).toMatchObject({ withheld: true, attachments: [] });
    expect(
      (res.json.missingChecks as { id: string; status: string }[]).map((m) => `${m.id}:${m.status}`),
    ).toEqual([
      'latency:missing',
      'jitter:missing',
      'loss:missing',
      'dscp-rtp:missing',
      'dscp-sip:missing',
      'bandwidth:missing',
    ]);
  });

  it('who may do what: customers see only their sites (404), open only for them (403); viewers and agents get 403', async () => {
    expect((await call(ctx.app, 'GET', `/api/v1/cases/${withheldId}`, TOKENS.globex)).status).toBe(404);
    expect(
      (await call(ctx.app, 'POST', `/api/v1/cases/${withheldId}/updates`, TOKENS.globex, { text: 'x' }))
        .status,
    ).toBe(404);
    const other = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.globex, VOICE_CASE);
    expect(other.status).toBe(403);
    expect(other.json.message).toMatch(/is not a contact of site "hq"/);
    expect((await call(ctx.app, 'GET', '/api/v1/cases', TOKENS.viewer)).status).toBe(403);
    expect((await call(ctx.app, 'GET', '/api/v1/cases', TOKENS.hqAgent)).status).toBe(403);
    expect((await call(ctx.app, 'GET', '/api/v1/cases', null)).status).toBe(401);
    const globexList = (await call(ctx.app, 'GET', '/api/v1/cases', TOKENS.globex)).json.cases as {
      site: string;
    }[];
    expect(globexList.length).toBe(1);
    expect(globexList.every((c) => c.site === 'branch')).toBe(true);
    const all = (await call(ctx.app, 'GET', '/api/v1/cases', TOKENS.support)).json.cases as unknown[];
    expect(all.length).toBe(5);
    const hqOnly = (await call(ctx.app, 'GET', '/api/v1/cases?site=branch', TOKENS.acme)).json
      .cases as unknown[];
    expect(hqOnly).toEqual([]);
    const filtered = await call(
      ctx.app,
      'GET',
      `/api/v1/cases?status=Open&priority=${encodeURIComponent('1-Prod Down')}`,
      TOKENS.support,
    );
    expect((filtered.json.cases as { priority: string }[]).map((c) => c.priority)).toEqual(['1-Prod Down']);
  });

  it('bad input is 400 with the reason, and nothing is half-written', async () => {
    const before = ((await call(ctx.app, 'GET', '/api/v1/cases', TOKENS.support)).json.cases as unknown[])
      .length;
    const cases: [unknown, RegExp][] = [
      [{ ...VOICE_CASE, site: 'nowhere' }, /unknown site "nowhere"/],
      [{ ...VOICE_CASE, priority: '5-Whenever' }, /priority/],
      [{ ...VOICE_CASE, subject: undefined, product: undefined }, /subject.*product|product.*subject/],
      [{ ...VOICE_CASE, description: 'x'.repeat(40_000) }, /description: longer than/],
      [{ ...VOICE_CASE, extra: 1 }, /extra/],
      ['{"site":', /JSON/i],
      [[VOICE_CASE], /expected object/],
    ];
    for (const [body, reason] of cases) {
      const res = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.support, body);
      expect(res.status, JSON.stringify(res.json)).toBe(400);
      expect(String(res.json.message)).toMatch(reason);
    }
    const badUpdate = await call(ctx.app, 'POST', `/api/v1/cases/${withheldId}/updates`, TOKENS.support, {
      status: 'Open',
      subStatus: 'Replied',
    });
    expect(badUpdate.status).toBe(400);
    expect(badUpdate.json.message).toMatch(/"Replied" is not a sub-status of Open/);
    expect((await call(ctx.app, 'GET', '/api/v1/cases?status=Pending', TOKENS.support)).status).toBe(400);
    expect((await call(ctx.app, 'GET', '/api/v1/cases/../../etc', TOKENS.support)).status).toBe(404);
    const after = ((await call(ctx.app, 'GET', '/api/v1/cases', TOKENS.support)).json.cases as unknown[])
      .length;
    expect(after).toBe(before);
    const updates = (await call(ctx.app, 'GET', `/api/v1/cases/${withheldId}`, TOKENS.support)).json
      .updates as unknown[];
    expect(updates.length).toBe(3);
  });

  it('a forbidden transition is 409 naming the rule; a customer cannot change priority (403)', async () => {
    const res = await call(ctx.app, 'POST', `/api/v1/cases/${withheldId}/updates`, TOKENS.support, {
      status: 'Open',
      subStatus: 'New',
    });
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ error: 'conflict' });
    expect(res.json.message).toMatch(/New is the sub-status of a case just opened/);
    const prio = await call(ctx.app, 'POST', `/api/v1/cases/${withheldId}/updates`, TOKENS.acme, {
      priority: '2-High',
    });
    expect(prio.status).toBe(403);
    expect(prio.json.message).toMatch(/care team/);
  });
});

describe('cases: storage', () => {
  it('the migration adds the case tables to a database of the previous schema without losing a report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'voipready-migrate-'));
    dirs.push(dir);
    // Today's schema: the report store alone, with reports in it.
    const old = openCaseApp({ dir });
    await old.caseStore.close();
    const db = new Database(join(dir, SQLITE_FILE));
    for (const t of [
      'cases',
      'case_counter',
      'case_updates',
      'case_attachments',
      'case_timers',
      'notifications',
      'webhook_outbox',
      'cutovers',
    ]) {
      db.exec(`DROP TABLE ${t}`);
    }
    db.exec(`DELETE FROM meta WHERE key = 'cases_schema'`);
    db.close();
    for (let i = 0; i < 5; i++) await postReport(old, siteReport(`rep-migrate-${i}`, old.clock.now, 'hq'));
    await old.app.close();

    const reports = new SqliteStore(dir);
    expect(await reports.countReports()).toBe(5);
    const cases = new SqliteCaseStore(dir);
    await cases.close();
    await reports.close();
    const check = new Database(join(dir, SQLITE_FILE), { readonly: true });
    expect(check.prepare(`SELECT value FROM meta WHERE key = 'cases_schema'`).pluck().get()).toBe('1');
    expect(check.prepare('SELECT COUNT(*) FROM reports').pluck().get()).toBe(5);
    expect(check.prepare('SELECT COUNT(*) FROM cases').pluck().get()).toBe(0);
    check.close();

    // Started again on the migrated file: reports readable, cases work.
    const again = openCaseApp({ dir });
    expect(await again.store.countReports()).toBe(5);
    const res = await call(again.app, 'POST', '/api/v1/cases', TOKENS.support, VOICE_CASE);
    expect(res.status).toBe(201);
    expect(res.json.withheld).toBe(false);
    await again.app.close();
  });
});
