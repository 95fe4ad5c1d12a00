// The collector's HTTP API driven with inject(), on a real SQLite store in a temp directory, with a
// clock the test moves.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samplePriority, sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';
import type { AgentReport } from '../../src/schemas.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const BRANCH_AGENT = 'agent-token-branch-0123456789ab';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const T0 = Date.parse('2026-11-26T01:00:00Z');
const HOUR = 3_600_000;

function config(over: Record<string, unknown> = {}) {
  return CollectorConfig.parse({
    collector: {
      readinessValidFor: '1h',
      bodyLimitBytes: 64 * 1024,
      rateLimit: { perSecond: 5, burst: 1000 },
      agents: [
        { name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) },
        { name: 'branch-agent', site: 'branch', tokenHash: hashToken(BRANCH_AGENT) },
      ],
      viewers: [{ name: 'noc', tokenHash: hashToken(VIEWER) }],
      ...over,
    },
  }).collector;
}

const dirs: string[] = [];
const apps: FastifyInstance[] = [];
afterAll(async () => {
  for (const app of apps) await app.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function open(over: Record<string, unknown> = {}, dir = mkdtempSync(join(tmpdir(), 'voipready-collector-'))) {
  dirs.push(dir);
  const clock = { now: T0 };
  const store = new SqliteStore(dir);
  const app = buildApp({ config: config(over), store, now: () => clock.now, monotonicNow: () => clock.now });
  app.addHook('onClose', () => store.close());
  apps.push(app);
  return { app, store, clock, dir };
}

const post = (
  app: FastifyInstance,
  body: unknown,
  token: string | null = AGENT,
  contentType = 'application/json',
) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/reports',
    headers: { ...(token !== null ? { authorization: `Bearer ${token}` } : {}), 'content-type': contentType },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });

const get = (app: FastifyInstance, url: string, token: string | null = VIEWER) =>
  app.inject({ method: 'GET', url, headers: token !== null ? { authorization: `Bearer ${token}` } : {} });

const report = (id: string, over: Parameters<typeof sampleReport>[0] | object = {}): AgentReport =>
  sampleReport({ reportId: id, createdAt: new Date(T0 - 60_000).toISOString(), ...over });

describe('collector API: ingest', () => {
  let ctx: ReturnType<typeof open>;
  beforeAll(() => {
    ctx = open();
  });

  it('stores a report (202), judges it, and serves readiness and the assessment', async () => {
    const res = await post(ctx.app, report('rep-api-0001'));
    expect(res.statusCode).toBe(202);
    const ack = res.json() as { reportId: string; assessmentId: string; ready: boolean };
    expect(ack).toMatchObject({ reportId: 'rep-api-0001', ready: true });
    expect(await ctx.store.countReports()).toBe(1);

    const readiness = await get(ctx.app, '/api/v1/sites/hq/readiness');
    expect(readiness.statusCode).toBe(200);
    expect(readiness.json()).toMatchObject({
      site: 'hq',
      ready: true,
      assessmentId: ack.assessmentId,
      assessedAt: new Date(T0).toISOString(),
      validUntil: new Date(T0 - 60_000 + HOUR).toISOString(),
    });
    expect(readiness.json().checks).toHaveLength(6);

    const assessment = await get(ctx.app, `/api/v1/assessments/${ack.assessmentId}`);
    expect(assessment.statusCode).toBe(200);
    expect(assessment.json()).toMatchObject({ reportId: 'rep-api-0001', site: 'hq', agent: 'hq-agent-1' });
    expect(assessment.json().measurements[0].forward.sent).toBe(500);

    const sites = await get(ctx.app, '/api/v1/sites');
    expect(sites.json().sites).toEqual([
      expect.objectContaining({ site: 'branch', ready: false, assessmentId: null }),
      expect.objectContaining({ site: 'hq', ready: true, assessmentId: ack.assessmentId }),
    ]);
  });

  it('acknowledges a repeated report id without storing it again; other content under it is 409', async () => {
    const r = report('rep-api-0002');
    expect((await post(ctx.app, r)).statusCode).toBe(202);
    const before = await ctx.store.countReports();
    const again = await post(ctx.app, r);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ reportId: 'rep-api-0002', duplicate: true });
    const changed = await post(ctx.app, { ...r, createdAt: new Date(T0 - 30_000).toISOString() });
    expect(changed.statusCode).toBe(409);
    expect(await ctx.store.countReports()).toBe(before);
  });

  it('commits concurrent posts in groups, each acknowledged once stored', async () => {
    const before = await ctx.store.countReports();
    const ids = Array.from({ length: 200 }, (_, i) => `rep-burst-${String(i).padStart(4, '0')}`);
    // every id twice, concurrently: exactly one of each pair is stored
    const results = await Promise.all([...ids, ...ids].map((id) => post(ctx.app, report(id))));
    const codes = results.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 202)).toHaveLength(200);
    expect(codes.filter((c) => c === 200)).toHaveLength(200);
    expect(await ctx.store.countReports()).toBe(before + 200);
    const listed = await get(ctx.app, '/api/v1/reports?site=hq&limit=10000');
    const listedIds = (listed.json().reports as { reportId: string }[]).map((r) => r.reportId);
    expect(new Set(listedIds).size).toBe(listedIds.length);
    for (const id of ids) expect(listedIds).toContain(id);
  });

  it('keeps the newest evidence as the site latest when an old report arrives late', async () => {
    const newest = await get(ctx.app, '/api/v1/sites/hq/readiness');
    const late = report('rep-api-late', { createdAt: new Date(T0 - 10 * 60_000).toISOString() });
    expect((await post(ctx.app, late)).statusCode).toBe(202);
    const after = await get(ctx.app, '/api/v1/sites/hq/readiness');
    expect(after.json().assessmentId).toBe(newest.json().assessmentId);
  });

  it('expires readiness: stale evidence is not ready', async () => {
    ctx.clock.now = T0 + 2 * HOUR;
    const res = await get(ctx.app, '/api/v1/sites/hq/readiness');
    expect(res.json()).toMatchObject({ ready: false, stale: true });
    expect(res.json().checks[0].evidence).toMatch(/^evidence stale/);
    const metrics = await get(ctx.app, '/metrics');
    expect(metrics.body).toMatch(/^voipready_site_ready\{site="hq"\} 0$/m);
    ctx.clock.now = T0;
  });
});

describe('collector API: bad input never gets a 5xx', () => {
  let ctx: ReturnType<typeof open>;
  beforeAll(() => {
    ctx = open();
  });

  it('401 without a token or with a wrong one, naming the problem', async () => {
    const none = await post(ctx.app, report('rep-bad-0001'), null);
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.json().message).toMatch(/missing/);
    const wrong = await post(ctx.app, report('rep-bad-0002'), 'not-a-configured-token-000000');
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().message).toBe('unknown token');
  });

  it('403 for a report of another site, and for a viewer token posting', async () => {
    const other = await post(ctx.app, report('rep-bad-0003', { site: 'hq' }), BRANCH_AGENT);
    expect(other.statusCode).toBe(403);
    expect(other.json().message).toMatch(/"branch", not "hq"/);
    expect((await post(ctx.app, report('rep-bad-0004'), VIEWER)).statusCode).toBe(403);
    expect(await ctx.store.countReports()).toBe(0);
  });

  it('400 for malformed JSON', async () => {
    const res = await post(ctx.app, '{"schema": "voipready.report/1", ');
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/JSON/i);
  });

  it('400 listing the zod path of each problem', async () => {
    const r = report('rep-bad-0005') as unknown as {
      probes: { forward: Record<string, unknown> }[];
      site: string;
    };
    r.probes[0]!.forward.jitterMs = -1;
    r.site = 'no spaces allowed';
    const res = await post(ctx.app, r);
    expect(res.statusCode).toBe(400);
    const paths = (res.json().issues as { path: string }[]).map((i) => i.path).sort();
    expect(paths).toEqual(['probes.0.forward.jitterMs', 'site']);
  });

  it('400 for prototype poisoning, unknown top-level keys and empty bodies', async () => {
    expect((await post(ctx.app, '{"__proto__": {"x": 1}}')).statusCode).toBe(400);
    expect((await post(ctx.app, { ...report('rep-bad-0006'), extra: 1 })).statusCode).toBe(400);
    expect((await post(ctx.app, '')).statusCode).toBe(400);
    expect((await post(ctx.app, 'null')).statusCode).toBe(400);
  });

  it('413 for an oversized body, 415 for another content type', async () => {
    const big = report('rep-bad-0007') as unknown as { probes: { forward: Record<string, unknown> }[] };
    big.probes[0]!.forward.padding = 'x'.repeat(70 * 1024);
    const res = await post(ctx.app, big);
    expect(res.statusCode).toBe(413);
    const text = await post(ctx.app, JSON.stringify(report('rep-bad-0008')), AGENT, 'text/plain');
    expect(text.statusCode).toBe(415);
  });

  it('404 and 400 for unknown or malformed names in read paths', async () => {
    expect((await get(ctx.app, '/api/v1/sites/nowhere/readiness')).statusCode).toBe(404);
    expect((await get(ctx.app, '/api/v1/sites/%2E%2E%2Fx/readiness')).statusCode).toBe(400);
    expect((await get(ctx.app, '/api/v1/assessments/no-such-id')).statusCode).toBe(404);
    expect((await get(ctx.app, '/api/v1/assessments/%00')).statusCode).toBe(404);
    expect((await get(ctx.app, '/api/v1/reports?limit=0')).statusCode).toBe(400);
    expect((await get(ctx.app, '/nope')).statusCode).toBe(404);
  });

  it('counts every rejected post by result', async () => {
    const body = (await get(ctx.app, '/metrics')).body;
    expect(body).toMatch(/^voipready_reports_ingested_total\{result="unauthorized"\} 2$/m);
    expect(body).toMatch(/^voipready_reports_ingested_total\{result="forbidden"\} 2$/m);
    expect(body).toMatch(/^voipready_reports_ingested_total\{result="too_large"\} 1$/m);
    expect(body).toMatch(/^voipready_reports_ingested_total\{result="unsupported_media_type"\} 1$/m);
    expect(body).not.toMatch(/result="error"/);
  });
});

describe('collector API: rate limit and read access', () => {
  it('429 with Retry-After once a token exhausts its bucket', async () => {
    const { app, clock } = open({ rateLimit: { perSecond: 1, burst: 3 } });
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await post(app, report(`rep-rate-000${i}`))).statusCode);
    expect(codes).toEqual([202, 202, 202, 429]);
    const limited = await post(app, report('rep-rate-0009'));
    expect(limited.headers['retry-after']).toBe('1');
    // another agent's token has its own bucket
    expect(
      (await post(app, report('rep-rate-0010', { site: 'branch', agent: 'branch-agent' }), BRANCH_AGENT))
        .statusCode,
    ).toBe(202);
    clock.now += 1000;
    expect((await post(app, report('rep-rate-0011'))).statusCode).toBe(202);
  });

  it('needs a viewer token to read unless reads are open', async () => {
    const closed = open();
    for (const url of ['/api/v1/sites', '/api/v1/sites/hq/readiness', '/metrics', '/api/v1/reports']) {
      expect((await get(closed.app, url, null)).statusCode).toBe(401);
      expect((await get(closed.app, url, AGENT)).statusCode).toBe(403);
      expect((await get(closed.app, url, VIEWER)).statusCode).toBe(200);
    }
    expect((await get(closed.app, '/healthz', null)).statusCode).toBe(200);
    expect((await get(closed.app, '/readyz', null)).json()).toMatchObject({ ready: true });
    const opened = open({ reads: 'open' });
    expect((await get(opened.app, '/api/v1/sites/hq/readiness', null)).statusCode).toBe(200);
    // opening reads opens nothing else
    expect((await post(opened.app, report('rep-open-0001'), null)).statusCode).toBe(401);
  });
});

describe('collector API: metrics and persistence', () => {
  it('exports the latest path figures per site, peer and direction; unknown DSCP as -1', async () => {
    const ctx = open();
    const r = report('rep-met-0001', {
      forward: { jitterMs: 4.5, lost: 5, received: 495, lossPct: 1, dscpReceived: { '46': 495 } },
      reverse: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: 'unprivileged' },
      oneWayMs: { forward: 14, reverse: 12, estimated: false },
      sendTiming: { p50Ms: 0.09, p99Ms: 0.44, maxMs: 3.6, samples: 25_000 },
      sendPacing: { by: 'native-thread', realtime: false, shortSlice: true },
    });
    expect((await post(ctx.app, r)).statusCode).toBe(202);
    const res = await get(ctx.app, '/metrics');
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const labels = (dir: string) => `site="hq",peer="dc1.example.net:4000",direction="${dir}"`;
    expect(res.body).toContain(`voipready_path_jitter_seconds{${labels('forward')}} 0.0045`);
    expect(res.body).toContain(`voipready_path_loss_ratio{${labels('forward')}} 0.01`);
    expect(res.body).toContain(`voipready_path_latency_seconds{${labels('forward')}} 0.014`);
    expect(res.body).toContain(`voipready_path_dscp_honoured{${labels('forward')},traffic="rtp"} 1`);
    expect(res.body).toContain(`voipready_path_dscp_honoured{${labels('reverse')},traffic="rtp"} -1`);
    expect(res.body).toContain('voipready_path_mos{site="hq",peer="dc1.example.net:4000"} 4.4');
    const sends = (q: string) =>
      `voipready_probe_send_lateness_seconds{site="hq",peer="dc1.example.net:4000",quantile="${q}",pacing="short-slice"}`;
    expect(res.body).toContain(`${sends('0.5')} 0.00009`);
    expect(res.body).toContain(`${sends('0.99')} 0.00044`);
    expect(res.body).toContain(`${sends('1')} 0.0036`);
    // reverse DSCP unknown: the site is not ready
    expect(res.body).toMatch(/^voipready_site_ready\{site="hq"\} 0$/m);
    expect(res.body).toMatch(/^voipready_reports_ingested_total\{result="stored"\} 1$/m);
    expect(res.body).toMatch(
      /voipready_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/reports",status_code="202"\} 1/,
    );
    expect(res.body).not.toMatch(/rep-met-0001/);
  });

  it('keeps reports, assessments and readiness across a restart of the store', async () => {
    const first = open();
    const ack = (await post(first.app, report('rep-keep-0001'))).json() as { assessmentId: string };
    const stored = (await get(first.app, `/api/v1/assessments/${ack.assessmentId}`)).json();
    // One peer: the site's checks are the peer's (stored once, given back in full).
    expect(stored.checks).toHaveLength(6);
    expect(stored.checks).toEqual(stored.peers[0].checks);
    await first.app.close();
    const second = open({}, first.dir);
    expect(await second.store.countReports()).toBe(1);
    const readiness = await get(second.app, '/api/v1/sites/hq/readiness');
    expect(readiness.json()).toMatchObject({ ready: true, assessmentId: ack.assessmentId });
    expect(readiness.json().checks).toEqual(stored.checks);
    expect((await get(second.app, `/api/v1/assessments/${ack.assessmentId}`)).json()).toEqual(stored);
    expect((await post(second.app, report('rep-keep-0001'))).statusCode).toBe(200);
  });
});

describe('collector API: the priority check (probe --priority-test)', () => {
  let ctx: ReturnType<typeof open>;
  beforeAll(() => {
    ctx = open();
  });
  const withPriority = (id: string, priority: ReturnType<typeof samplePriority>): AgentReport => {
    const r = report(id);
    return { ...r, probes: [{ ...r.probes[0]!, priority }] };
  };

  it('judges it beside the network checks, shows it in readiness, /metrics and the site page', async () => {
    const res = await post(ctx.app, withPriority('rep-prio-0001', samplePriority(1.5, 180)));
    expect(res.statusCode).toBe(202);
    const readiness = (await get(ctx.app, '/api/v1/sites/hq/readiness')).json();
    expect(readiness.ready).toBe(true);
    expect(readiness.checks).toHaveLength(7);
    expect(readiness.checks.find((c: { id: string }) => c.id === 'priority')).toMatchObject({
      status: 'pass',
      value: 1.5,
      limit: 10,
      unit: 'ms',
    });
    const metrics = (await get(ctx.app, '/metrics')).body;
    expect(metrics).toMatch(/^voipready_priority_honoured\{site="hq",peer="dc1\.example\.net:4000"\} 1$/m);
    expect(metrics).toMatch(
      /^voipready_priority_added_delay_seconds\{site="hq",peer="dc1\.example\.net:4000",class="be",quantile="0\.95"\} 0\.18$/m,
    );
    const page = (await get(ctx.app, '/sites/hq')).body;
    expect(page).toContain('EF prioritised under load');
    expect(page).toContain('Priority under load');
  });

  it('EF degrading with best effort fails it and the site is not ready', async () => {
    const res = await post(ctx.app, withPriority('rep-prio-0002', samplePriority(170, 180)));
    expect(res.json()).toMatchObject({ ready: false });
    const readiness = (await get(ctx.app, '/api/v1/sites/hq/readiness')).json();
    const c = readiness.checks.find((x: { id: string }) => x.id === 'priority');
    expect(c.status).toBe('fail');
    expect(c.evidence).toMatch(/EF degraded with best effort under load/);
    expect((await get(ctx.app, '/metrics')).body).toMatch(/^voipready_priority_honoured\{[^}]*\} 0$/m);
  });

  it('400 naming the field when the figures contradict each other', async () => {
    const bad = samplePriority(1.5, 180, 10);
    bad.be.loaded.lossPct = 0;
    const res = await post(ctx.app, withPriority('rep-prio-0003', bad));
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('probes.0.priority.be.loaded.lossPct');
    expect(res.body.split('\n')).toHaveLength(1);
  });
});
