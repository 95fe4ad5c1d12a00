// The handbook's case clocks run from stored due times on real SQLite: time moved across a weekend,
// a holiday and two time zones; follow-ups exactly once across a collector restart and with two
// collectors on one store; escalation, reopening within 30 days and the attachment purge.
import { afterAll, describe, expect, it } from 'vitest';
import {
  type CaseCtx,
  call,
  cutoverChecklist,
  openCaseApp,
  postReport,
  removeDir,
  siteReport,
  TOKENS,
  VOICE_CASE,
} from '../helpers/cases.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const dirs: string[] = [];
const open: CaseCtx[] = [];
afterAll(async () => {
  for (const c of open) await c.close().catch(() => undefined);
  for (const d of dirs) removeDir(d);
});

function start(dir?: string, now?: number): CaseCtx {
  const ctx = openCaseApp({ ...(dir ? { dir } : {}), ...(now !== undefined ? { now } : {}) });
  if (!dir) dirs.push(ctx.dir);
  open.push(ctx);
  return ctx;
}

async function notices(ctx: CaseCtx, caseId: string, type: string) {
  const shown = await call(ctx.app, 'GET', `/api/v1/cases/${caseId}`, TOKENS.support);
  return (
    shown.json.notifications as {
      type: string;
      at: string;
      payload: { followUp?: number; mail?: { subject: string; text: string } };
    }[]
  ).filter((n) => n.type === type);
}

/** Moves the clock to `iso` and runs one scheduler step. */
async function at(ctx: CaseCtx, iso: string) {
  ctx.clock.now = Date.parse(iso);
  return ctx.app.collector.cases!.tick();
}

describe('case clocks on a business-day calendar', () => {
  it('a withheld case opened Friday 17:00 in New York: follow-ups at 2 and 5 business days, closed at 10, exactly once across a restart', async () => {
    const friday17NewYork = Date.parse('2026-11-27T22:00:00Z');
    let ctx = start(undefined, friday17NewYork);
    const dir = ctx.dir;
    await postReport(ctx, siteReport('rep-hq-ef-cs0', ctx.clock.now, 'hq', true));
    const opened = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
    expect(opened.json.withheld).toBe(true);
    const id = opened.json.caseId as string;

    // The weekend and Monday pass: nothing is due before Tuesday 17:00.
    expect((await at(ctx, '2026-12-01T21:59:59Z')).fired).toBe(0);
    expect(await notices(ctx, id, 'follow-up')).toEqual([]);
    expect((await at(ctx, '2026-12-01T22:00:00Z')).fired).toBe(1);
    await at(ctx, '2026-12-01T23:00:00Z');
    const first = await notices(ctx, id, 'follow-up');
    expect(first.map((n) => n.payload.followUp)).toEqual([1]);
    expect(first[0]!.payload.mail!.text).toMatch(/passing readiness assessment/);
    expect(first[0]!.payload.mail!.text).toMatch(/dscp-rtp \(fail\)/);

    // Restart the collector (stores closed and opened again) with #2 already due.
    await ctx.close();
    ctx = start(dir, Date.parse('2026-12-04T22:30:00Z'));
    await ctx.app.collector.cases!.tick();
    await ctx.app.collector.cases!.tick();
    expect((await notices(ctx, id, 'follow-up')).map((n) => n.payload.followUp)).toEqual([1, 2]);

    // Two collectors on one store both tick when closure is due: it happens once.
    const other = start(dir, Date.parse('2026-12-11T22:00:00Z'));
    ctx.clock.now = other.clock.now;
    const fired = await Promise.all([ctx.app.collector.cases!.tick(), other.app.collector.cases!.tick()]);
    expect(fired[0].fired + fired[1].fired).toBe(1);
    const closedNotices = await notices(ctx, id, 'follow-up');
    expect(closedNotices.map((n) => n.payload.followUp)).toEqual([1, 2, 3]);
    expect(closedNotices[2]!.payload.mail!.text).toMatch(/only by a telephone call/);
    const shown = await call(ctx.app, 'GET', `/api/v1/cases/${id}`, TOKENS.acme);
    expect(shown.json).toMatchObject({
      status: 'Closed',
      subStatus: 'Resolved',
      autoClosed: true,
      closedAt: '2026-12-11T22:00:00.000Z',
    });

    // Closed by the follow-ups: the customer cannot reopen on the web, Customer Care can within 30 days.
    const ask = await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.acme, {
      status: 'Closed',
      subStatus: 'Customer requested to re-open',
    });
    expect(ask.status).toBe(409);
    expect(ask.json.message).toMatch(/telephone call/);

    // One month after closure the attachments are purged (kept as records, bodies gone: 410).
    await at(ctx, '2027-01-10T22:00:00Z');
    const purged = await call(ctx.app, 'GET', `/api/v1/cases/${id}`, TOKENS.support);
    const attachments = purged.json.attachments as { attachmentId: number; purgedAt: string | null }[];
    expect(attachments.length).toBe(2);
    expect(attachments.every((a) => a.purgedAt === '2027-01-10T22:00:00.000Z')).toBe(true);
    const gone = await call(
      ctx.app,
      'GET',
      `/api/v1/cases/${id}/attachments/${attachments[0]!.attachmentId}`,
      TOKENS.support,
    );
    expect(gone.status).toBe(410);
    expect(gone.json.message).toMatch(/purged/);
    const late = await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.support, {
      status: 'Open',
    });
    expect(late.status).toBe(409);
    expect(late.json.message).toMatch(/within 30 days of closure.*open a new case/);
    await other.close();
  });

  it('a collector down for three weeks catches up in one step: #1, #2 and the closure, each once, in order', async () => {
    const ctx = start(undefined, Date.parse('2026-11-27T15:00:00Z'));
    await postReport(ctx, siteReport('rep-hq-ok-down', ctx.clock.now, 'hq'));
    const c = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
    const id = c.json.caseId as string;
    await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.support, {
      status: 'Awaiting Info',
      text: 'send logs',
    });
    const { fired } = await at(ctx, '2026-12-18T15:00:00Z');
    expect(fired).toBe(3);
    expect((await notices(ctx, id, 'follow-up')).map((n) => n.payload.followUp)).toEqual([1, 2, 3]);
    expect((await at(ctx, '2026-12-19T15:00:00Z')).fired).toBe(0);
    const shown = await call(ctx.app, 'GET', `/api/v1/cases/${id}`, TOKENS.support);
    // Closed at the step's time; the purge counts from then.
    expect(shown.json).toMatchObject({ status: 'Closed', subStatus: 'Resolved', autoClosed: true });
  });

  it('a case of the Berlin site skips its Monday holiday; 1-Prod Down gets no follow-ups', async () => {
    const ctx = start(undefined, Date.parse('2026-11-27T22:00:00Z')); // Friday 23:00 in Berlin
    await postReport(ctx, siteReport('rep-branch-ef-cs0', ctx.clock.now, 'branch', true));
    const c = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.globex, { ...VOICE_CASE, site: 'branch' });
    const down = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.globex, {
      ...VOICE_CASE,
      site: 'branch',
      priority: '1-Prod Down',
    });
    await call(ctx.app, 'POST', `/api/v1/cases/${down.json.caseId}/updates`, TOKENS.support, {
      status: 'Awaiting Info',
      text: 'send logs',
    });
    // Monday 30 November is a holiday in Berlin: Tuesday is business day 1, Wednesday 23:00 day 2.
    expect((await at(ctx, '2026-12-02T21:59:00Z')).fired).toBe(0);
    expect((await at(ctx, '2026-12-02T22:00:00Z')).fired).toBe(1);
    expect((await notices(ctx, c.json.caseId as string, 'follow-up')).length).toBe(1);
    await at(ctx, '2027-02-01T00:00:00Z');
    expect(await notices(ctx, down.json.caseId as string, 'follow-up')).toEqual([]);
  });

  it('escalation eligibility: the notice after 3 business days without update (Medium), the mail the handbook prescribes', async () => {
    const ctx = start(undefined, Date.parse('2026-11-27T22:00:00Z'));
    const medium = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, {
      ...VOICE_CASE,
      voice: false,
      product: 'Interaction Dialer',
    });
    const id = medium.json.caseId as string;
    const early = await call(ctx.app, 'POST', `/api/v1/cases/${id}/escalations`, TOKENS.acme, {
      reason: 'impact',
    });
    expect(early.status).toBe(409);
    expect(early.json.message).toMatch(/3 business days; eligible from 2026-12-02T22:00:00.000Z/);
    await at(ctx, '2026-12-02T22:00:00Z');
    const eligible = await notices(ctx, id, 'escalation-eligible');
    expect(eligible.length).toBe(1);
    await at(ctx, '2026-12-03T22:00:00Z');
    expect((await notices(ctx, id, 'escalation-eligible')).length).toBe(1);
    const res = await call(ctx.app, 'POST', `/api/v1/cases/${id}/escalations`, TOKENS.acme, {
      reason: 'impact',
      detail: 'campaign go-live on Monday',
    });
    expect(res.status).toBe(201);
    const mail = res.json.mail as { to: string; subject: string; text: string };
    expect(mail.to).toBe('PureConnectCCManagementAttention@genesys.com');
    expect(mail.subject).toBe(`Acme - ${id} - ${VOICE_CASE.subject}`);
    for (const line of [
      'Case No.: ',
      'Escalation Reason (Impact/Urgency): 3-Medium',
      'Product: Interaction Dialer',
      'Version Major/Patch: 2025 R4 Patch 2',
      'Summary: ',
      'Critical dates/times',
    ]) {
      expect(mail.text).toContain(line);
    }
    // An update restarts the escalation clock: a new notice only 3 business days after it.
    await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.support, { text: 'looking at traces' });
    await at(ctx, '2026-12-08T21:00:00Z');
    expect((await notices(ctx, id, 'escalation-eligible')).length).toBe(1);
    await at(ctx, '2026-12-08T22:00:00Z');
    expect((await notices(ctx, id, 'escalation-eligible')).length).toBe(2);
    const low = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, {
      ...VOICE_CASE,
      voice: false,
      product: 'Interaction Dialer',
      priority: '4-Low',
    });
    const lowEsc = await call(ctx.app, 'POST', `/api/v1/cases/${low.json.caseId}/escalations`, TOKENS.acme, {
      reason: 'impact',
    });
    expect(lowEsc.status).toBe(409);
    expect(lowEsc.json.message).toMatch(/Low priority cases are not eligible/);
  });

  it("the escalation mail of a High case quiet for 24 h names the site's upcoming cutover as a critical date", async () => {
    const ctx = start(undefined, Date.parse('2026-11-27T15:00:00Z'));
    await postReport(ctx, siteReport('rep-hq-ok-cutover', ctx.clock.now, 'hq'));
    const cutoverAt = Date.parse('2026-12-14T23:00:00Z');
    const notice = await call(ctx.app, 'POST', '/api/v1/cutovers', TOKENS.acme, cutoverChecklist(cutoverAt));
    expect(notice.status).toBe(201);
    const c = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, {
      ...VOICE_CASE,
      priority: '2-High',
    });
    const id = c.json.caseId as string;
    await at(ctx, '2026-11-28T14:59:00Z');
    expect(
      (await call(ctx.app, 'POST', `/api/v1/cases/${id}/escalations`, TOKENS.acme, { reason: 'impact' }))
        .status,
    ).toBe(409);
    await at(ctx, '2026-11-28T15:00:00Z'); // a Saturday: 24 hours are hours, not business days
    expect((await notices(ctx, id, 'escalation-eligible')).length).toBe(1);
    const res = await call(ctx.app, 'POST', `/api/v1/cases/${id}/escalations`, TOKENS.acme, {
      reason: 'impact',
    });
    expect(res.status).toBe(201);
    expect((res.json.mail as { text: string }).text).toContain(
      'Critical dates/times such as go lives, follow up internal meetings: cut over 2026-12-14T23:00:00.000Z',
    );
  });

  it('reopening within 30 days: the customer asks, Customer Care reopens; the purge timer is cancelled', async () => {
    const ctx = start(undefined, Date.parse('2026-11-27T15:00:00Z'));
    await postReport(ctx, siteReport('rep-hq-ok', ctx.clock.now, 'hq'));
    const c = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
    const id = c.json.caseId as string;
    expect(c.json.withheld).toBe(false);
    await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.support, {
      status: 'Solution Proposed',
      subStatus: 'Fixed-Software Provided',
    });
    ctx.clock.now += HOUR;
    const accept = await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.acme, {
      status: 'Closed',
      subStatus: 'Resolved',
    });
    expect(accept.json).toMatchObject({ status: 'Closed', subStatus: 'Resolved' });
    ctx.clock.now += 20 * DAY;
    const ask = await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.acme, {
      status: 'Closed',
      subStatus: 'Customer requested to re-open',
      text: 'same problem again',
    });
    expect(ask.json).toMatchObject({ status: 'Closed', subStatus: 'Customer requested to re-open' });
    const reopen = await call(ctx.app, 'POST', `/api/v1/cases/${id}/updates`, TOKENS.support, {
      status: 'Open',
    });
    expect(reopen.json).toMatchObject({ status: 'Open', subStatus: 'Investigation', closedAt: null });
    ctx.clock.now += 40 * DAY;
    await ctx.app.collector.cases!.tick();
    const shown = await call(ctx.app, 'GET', `/api/v1/cases/${id}`, TOKENS.support);
    expect((shown.json.attachments as { purgedAt: string | null }[]).every((a) => a.purgedAt === null)).toBe(
      true,
    );
  });
});
