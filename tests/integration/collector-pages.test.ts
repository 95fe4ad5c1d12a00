// The collector's HTML pages with inject() on a real SQLite store: the same access as the API's
// reads (bearer viewer token, or the cookie the login form sets; agents and strangers get none),
// the overview sorts on the server, a site page carries its history and past assessments, and
// stale evidence is not ready on the page either.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { cookieToken, hashToken } from '../../collector/auth.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const BRANCH_AGENT = 'agent-token-branch-0123456789ab';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const T0 = Date.parse('2026-11-29T01:00:00Z');
const MIN = 60_000;

const dir = mkdtempSync(join(tmpdir(), 'voipready-pages-'));
const clock = { now: T0 };
let app: FastifyInstance;

beforeAll(async () => {
  const config = CollectorConfig.parse({
    collector: {
      readinessValidFor: '1h',
      agents: [
        { name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) },
        { name: 'branch-agent', site: 'branch', tokenHash: hashToken(BRANCH_AGENT) },
      ],
      viewers: [{ name: 'noc', tokenHash: hashToken(VIEWER) }],
      sites: { quiet: {} },
    },
  }).collector;
  const store = new SqliteStore(dir);
  app = buildApp({ config, store, now: () => clock.now });
  app.addHook('onClose', () => store.close());
  const post = (token: string, body: unknown) =>
    app.inject({
      method: 'POST',
      url: '/api/v1/reports',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  // hq: three passing assessments a few minutes apart; branch: EF rewritten on the forward path
  for (const i of [0, 1, 2]) {
    const res = await post(
      AGENT,
      sampleReport({
        reportId: `rep-pages-hq-${i}`,
        createdAt: new Date(T0 - (30 - 10 * i) * MIN).toISOString(),
        forward: { jitterMs: 1 + i },
      }),
    );
    expect(res.statusCode).toBe(202);
  }
  const res = await post(
    BRANCH_AGENT,
    sampleReport({
      reportId: 'rep-pages-branch-0',
      site: 'branch',
      agent: 'branch-agent',
      createdAt: new Date(T0 - 5 * MIN).toISOString(),
      forward: { dscpReceived: { '0': 500 } },
    }),
  );
  expect(res.statusCode).toBe(202);
});

afterAll(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const page = (url: string, headers: Record<string, string> = { authorization: `Bearer ${VIEWER}` }) =>
  app.inject({ method: 'GET', url, headers });

describe('collector pages: access', () => {
  it('without a token a browser is sent to the login page, keeping where it wanted to go', async () => {
    const res = await page('/sites/hq', {});
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/login?next=%2Fsites%2Fhq');
    const login = await page('/login?next=%2Fsites%2Fhq', {});
    expect(login.statusCode).toBe(200);
    expect(login.body).toContain('name="next" value="/sites/hq"');
  });

  it('an agent token is refused (403) as on the API', async () => {
    expect((await page('/sites', { authorization: `Bearer ${AGENT}` })).statusCode).toBe(403);
  });

  it('login with a viewer token sets an HttpOnly SameSite=Strict cookie that opens the pages', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ token: VIEWER, next: '/sites/hq' }).toString(),
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/sites/hq');
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^voipready_token=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    const name = cookie.split(';')[0]!;
    expect(cookieToken(`other=1; ${name}`)).toBe(VIEWER);
    const site = await page('/sites/hq', { cookie: name });
    expect(site.statusCode).toBe(200);
    // the cookie is for pages only: the API still wants the bearer header
    expect((await page('/api/v1/sites', { cookie: name })).statusCode).toBe(401);
    const out = await app.inject({ method: 'POST', url: '/logout' });
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
  });

  it('a wrong or agent token at login is a 401 page saying so; next cannot leave the collector', async () => {
    const login = (token: string, next: string) =>
      app.inject({
        method: 'POST',
        url: '/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ token, next }).toString(),
      });
    const wrong = await login('not-a-token', '/sites');
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain('Unknown token.');
    expect(wrong.headers['set-cookie']).toBeUndefined();
    const agent = await login(AGENT, '/sites');
    expect(agent.statusCode).toBe(401);
    expect(agent.body).toContain('That is an agent token');
    for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example']) {
      const res = await login(VIEWER, next);
      expect(res.headers.location, next).toBe('/sites');
    }
    // other bodies than the form are refused, never parsed into a 500
    const json = await app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'text/plain' },
      payload: 'token=x',
    });
    expect(json.statusCode).toBe(415);
  });
});

describe('collector pages: content', () => {
  it('the overview lists every site with readiness, age and failing checks, sorted on the server', async () => {
    const res = await page('/sites');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const order = (body: string) =>
      [...body.matchAll(/<th scope="row"><a href="\/sites\/([^"]+)">/g)].map((m) => m[1]);
    // default: least ready first (no evidence, then not ready, then ready)
    expect(order(res.body)).toEqual(['quiet', 'branch', 'hq']);
    expect(res.body).toContain('1 of 3 sites VoIP-ready');
    expect(res.body).toMatch(
      /branch<\/a><\/th><td><span class="status status-fail">not ready<\/span><\/td><td class="num"><time datetime="[^"]+">5 min<\/time>/,
    );
    expect(res.body).toContain('DSCP of RTP (media) <span class="muted">(fail)</span>');
    const bySite = await page('/sites?sort=site&dir=desc');
    expect(order(bySite.body)).toEqual(['quiet', 'hq', 'branch']);
    expect(bySite.body).toContain('aria-sort="descending"');
    const byAge = await page('/sites?sort=age&dir=asc');
    expect(order(byAge.body)).toEqual(['branch', 'hq', 'quiet']);
    // an unknown sort key falls back to the default rather than failing
    expect((await page('/sites?sort=%3Cscript%3E')).statusCode).toBe(200);
  });

  it("a site page is the latest assessment's report with the site's history and links to each past one", async () => {
    const res = await page('/sites/hq');
    expect(res.body).toContain('<span class="verdict-word">VoIP-ready</span>');
    expect(res.body).toContain('Assessments, newest first (3)');
    for (const id of ['history-latency', 'history-jitter', 'history-loss'])
      expect(res.body).toContain(`id="${id}"`);
    const links = [...res.body.matchAll(/href="(\/sites\/hq\/assessments\/[^"]+)"/g)].map((m) => m[1]!);
    expect(links).toHaveLength(3);
    const past = await page(links[2]!);
    expect(past.statusCode).toBe(200);
    expect(past.body).toContain('This is a past assessment');
    const branch = await page('/sites/branch');
    expect(branch.body).toContain('Not VoIP-ready');
    expect(branch.body).toMatch(/<tr id="check-dscp-rtp" class="row-fail">/);
    // another site's assessment id under this site is not found
    expect((await page(`/sites/branch/assessments/${links[0]!.split('/').pop()}`)).statusCode).toBe(404);
    expect((await page('/sites/nowhere')).statusCode).toBe(404);
    expect((await page('/sites/%3Cscript%3E')).body).toContain('No site &quot;&lt;script&gt;&quot;');
    const quiet = await page('/sites/quiet');
    expect(quiet.statusCode).toBe(200);
    expect(quiet.body).toContain('no report received from this site yet');
  });

  it('once the evidence is stale the page says not ready, and why', async () => {
    clock.now = T0 + 2 * 60 * MIN;
    try {
      const res = await page('/sites/hq');
      expect(res.body).toContain('Not VoIP-ready');
      expect(res.body).toContain('The evidence is stale');
      const overview = await page('/sites');
      expect(overview.body).toContain('0 of 3 sites VoIP-ready');
    } finally {
      clock.now = T0;
    }
  });
});
