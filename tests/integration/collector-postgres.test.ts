// Two real listening collectors on one PostgreSQL database (a cluster this file starts) behave as
// one: a report posted to both is stored once (one 202, one 200 duplicate), a report posted to one
// shows in the other's readiness and /metrics, a case opened on one is seen by the other; with the
// database stopped both answer 503 + Retry-After (never 500) and /readyz says why, and they take
// reports again once it is back, without a restart. Both collectors running their case clocks and
// webhook senders on one clock: a follow-up fires once and a real receiver gets every notice once.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { caseConfig, fetchApi, siteReport, TOKENS, VOICE_CASE } from '../helpers/cases.js';
import { type PgCluster, postgresMissing, startPgCluster } from '../helpers/postgres.js';
import { freeLoopbackPort, waitUntil } from '../helpers/service.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const unavailable = postgresMissing();
let cluster: PgCluster;
let dir: string;

beforeAll(async () => {
  if (unavailable) return;
  cluster = await startPgCluster();
  dir = mkdtempSync(join(tmpdir(), 'voipready-collector-pg-'));
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(unavailable)('two collectors on one PostgreSQL database', () => {
  let a: RunningCollector;
  let b: RunningCollector;

  beforeAll(async () => {
    const url = await cluster.createDatabase('collectors');
    const config = caseConfig({ store: { kind: 'postgres', url, poolSize: 4, timeout: '3s' } });
    // Started together: the migrations run once, under the advisory lock.
    const started = await Promise.all(
      ['a', 'b'].map((name) =>
        startCollector({ config, dataDir: join(dir, name), host: '127.0.0.1', port: 0, casePollMs: 500 }),
      ),
    );
    a = started[0]!;
    b = started[1]!;
  }, 90_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  const post = (c: RunningCollector, body: unknown) =>
    fetchApi(c.url, 'POST', '/api/v1/reports', TOKENS.hqAgent, body);
  const readiness = async (c: RunningCollector) =>
    (await fetchApi(c.url, 'GET', '/api/v1/sites/hq/readiness', TOKENS.viewer)).json;

  it('stores a report posted to both once: one 202, one 200 duplicate; a changed repeat is 409', async () => {
    // A minute old: the next test's failing report must be the newer evidence however long this takes.
    const report = siteReport('rep-both', Date.now() - 60_000, 'hq');
    const answers = await Promise.all([post(a, report), post(b, report)]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 202]);
    expect(answers.find((r) => r.status === 200)?.json).toEqual({ reportId: 'rep-both', duplicate: true });
    const changed = siteReport('rep-both', Date.now() - 65_000, 'hq');
    expect((await post(b, changed)).status).toBe(409);
    const listed = await fetchApi(a.url, 'GET', '/api/v1/reports?site=hq', TOKENS.viewer);
    expect((listed.json.reports as { reportId: string }[]).map((r) => r.reportId)).toEqual(['rep-both']);
    const stored = answers.find((r) => r.status === 202)!.json.assessmentId;
    for (const c of [a, b]) await expect.poll(async () => (await readiness(c)).assessmentId).toBe(stored);
  });

  it("a report stored by one is the other's readiness and /metrics, newest evidence first", async () => {
    const failing = siteReport('rep-failing', Date.now() - 1000, 'hq', true);
    const res = await post(a, failing);
    expect(res.status).toBe(202);
    expect(res.json.ready).toBe(false);
    await expect.poll(async () => (await readiness(b)).ready, { timeout: 5000 }).toBe(false);
    // An older passing report arriving late (to b) does not replace the newer failing evidence.
    const late = siteReport('rep-late-old', Date.now() - 3_600_000, 'hq');
    expect((await post(b, late)).status).toBe(202);
    await new Promise((r) => setTimeout(r, 1100));
    for (const c of [a, b])
      expect(await readiness(c)).toMatchObject({ ready: false, reportId: 'rep-failing' });
    const metrics = await Promise.all(
      [a, b].map(async (c) => {
        const text = await (
          await fetch(`${c.url}/metrics`, { headers: { authorization: `Bearer ${TOKENS.viewer}` } })
        ).text();
        return text.split('\n').find((l) => l.startsWith('voipready_site_ready{site="hq"}'));
      }),
    );
    expect(metrics).toEqual(['voipready_site_ready{site="hq"} 0', 'voipready_site_ready{site="hq"} 0']);
  });

  it('a case opened on one collector is read and updated on the other', async () => {
    const opened = await fetchApi(a.url, 'POST', '/api/v1/cases', TOKENS.support, {
      ...VOICE_CASE,
      site: 'hq',
    });
    expect(opened.status).toBe(201);
    const caseId = opened.json.caseId as string;
    const seen = await fetchApi(b.url, 'GET', `/api/v1/cases/${caseId}`, TOKENS.support);
    expect(seen.status).toBe(200);
    expect(seen.json).toMatchObject({ caseId, site: 'hq', withheld: true });
  });

  it('database stopped: 503 + Retry-After on both, /readyz not ready; back: reports stored again', async () => {
    await cluster.stop();
    try {
      for (const c of [a, b]) {
        const res = await fetch(`${c.url}/api/v1/reports`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKENS.hqAgent}`, 'content-type': 'application/json' },
          body: JSON.stringify(siteReport(`rep-down-${c.port}`, Date.now(), 'hq')),
        });
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('5');
        const ready = await fetch(`${c.url}/readyz`);
        expect(ready.status).toBe(503);
        expect(((await ready.json()) as { store: string }).store).toMatch(/PostgreSQL unavailable/);
        // Reads answer from evidence re-read at most a second ago, then 503 once that is older.
        await expect
          .poll(async () => (await fetchApi(c.url, 'GET', '/api/v1/sites', TOKENS.viewer)).status, {
            timeout: 5000,
          })
          .toBe(503);
      }
    } finally {
      await cluster.start();
    }
    for (const c of [a, b]) {
      await expect
        .poll(async () => (await post(c, siteReport(`rep-back-${c.port}`, Date.now(), 'hq'))).status, {
          timeout: 20_000,
          interval: 500,
        })
        .toBe(202);
      await expect.poll(async () => (await fetch(`${c.url}/readyz`)).status, { timeout: 10_000 }).toBe(200);
    }
    const listed = await fetchApi(b.url, 'GET', '/api/v1/reports?site=hq', TOKENS.viewer);
    const ids = (listed.json.reports as { reportId: string }[]).map((r) => r.reportId);
    expect(ids.filter((id) => id.startsWith('rep-down'))).toEqual([]);
    expect(ids.filter((id) => id.startsWith('rep-back'))).toHaveLength(2);
  }, 60_000);
});

describe.skipIf(unavailable)('case clocks and webhooks of two collectors on one database', () => {
  const SECRET = 'tracker-shared-secret-0123456789';
  const collectors: RunningCollector[] = [];
  let receiver: WebhookReceiver;

  afterAll(async () => {
    for (const c of collectors) await c.close();
    await receiver?.stop();
  });

  it('a follow-up fires once and the receiver gets every notice once, whichever collector sends', async () => {
    receiver = new WebhookReceiver(await freeLoopbackPort(), SECRET);
    await receiver.start();
    const secretFile = join(dir, 'tracker.secret');
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const url = await cluster.createDatabase('clocks');
    const config = caseConfig({
      store: { kind: 'postgres', url, poolSize: 4 },
      cases: {
        timeZone: 'America/New_York',
        webhooks: [{ name: 'tracker', url: receiver.url, secretFile, retryMax: '2s' }],
      },
    });
    // Friday 17:00 in New York; one clock for both collectors.
    const clock = { now: Date.parse('2026-11-27T22:00:00Z') };
    for (const name of ['clock-a', 'clock-b']) {
      collectors.push(
        await startCollector({
          config,
          dataDir: join(dir, name),
          host: '127.0.0.1',
          port: 0,
          casePollMs: 200,
          now: () => clock.now,
        }),
      );
    }
    const [a, b] = collectors as [RunningCollector, RunningCollector];
    const failing = siteReport('rep-ef-cs0', clock.now, 'hq', true);
    expect((await fetchApi(a.url, 'POST', '/api/v1/reports', TOKENS.hqAgent, failing)).status).toBe(202);
    await new Promise((r) => setTimeout(r, 1100)); // b re-reads the shared evidence at most every second
    const opened = await fetchApi(b.url, 'POST', '/api/v1/cases', TOKENS.acme, VOICE_CASE);
    expect(opened.json.withheld).toBe(true);
    const id = opened.json.caseId as string;
    await waitUntil('the case-opened notice', async () => receiver.types(id).includes('case-opened'), 15_000);
    // Tuesday 17:00 New York: the first follow-up is due on both collectors' clocks at once.
    clock.now = Date.parse('2026-12-01T22:00:30Z');
    await waitUntil('the follow-up notice', async () => receiver.types(id).includes('follow-up'), 15_000);
    await new Promise((r) => setTimeout(r, 1500)); // both schedulers and senders go round again
    expect(receiver.types(id).filter((t) => t === 'follow-up')).toHaveLength(1);
    expect(receiver.duplicates).toBe(0);
    expect(receiver.badSignatures).toBe(0);
    const stored = await fetchApi(a.url, 'GET', `/api/v1/cases/${id}`, TOKENS.support);
    expect(stored.json.followUpsSent).toBe(1);
    const notices = receiver.events.filter((e) => e.caseId === id).map((e) => e.eventId);
    expect(new Set(notices).size).toBe(notices.length);
  }, 60_000);
});
