// Issue 7, collector: giant pass-through arrays, deep nesting, huge issue lists, inconsistent and
// insufficient evidence, evidence time, control characters. The app driven with inject() on a real
// SQLite store, with a clock the test sets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { MAX_ISSUES_SHOWN } from '../../collector/report-input.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';
import { type AgentReport, CHECK_IDS, type ProbeResult, type ProbeStream } from '../../src/schemas.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const T0 = Date.parse('2026-11-26T01:00:00Z');
const DAY = 86_400_000;

const dir = mkdtempSync(join(tmpdir(), 'voipready-hostile-'));
const store = new SqliteStore(dir);
const clock = { now: T0 };
const app: FastifyInstance = buildApp({
  config: CollectorConfig.parse({
    collector: {
      readinessValidFor: '24h',
      bodyLimitBytes: 2 * 1024 * 1024,
      rateLimit: { perSecond: 1e6, burst: 1e6 },
      agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) }],
      viewers: [{ name: 'noc', tokenHash: hashToken(VIEWER) }],
    },
  }).collector,
  store,
  now: () => clock.now,
});
beforeAll(() => app.ready());
afterAll(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (body: unknown) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/reports',
    headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
const readiness = async () =>
  (
    await app.inject({
      method: 'GET',
      url: '/api/v1/sites/hq/readiness',
      headers: { authorization: `Bearer ${VIEWER}` },
    })
  ).json() as {
    ready: boolean;
    reportId: string;
    stale: boolean;
    checks: { id: string; status: string; evidence: string }[];
  };

let seq = 0;
const nextId = () => `rep-hostile-${String(++seq).padStart(4, '0')}`;
/** A clean one-call report made a minute before T0. */
const report = (over: Parameters<typeof sampleReport>[0] | object = {}): AgentReport =>
  sampleReport({ reportId: nextId(), createdAt: new Date(clock.now - 60_000).toISOString(), ...over });
const probeOf = (r: AgentReport) => r.probes[0] as ProbeResult;
/** A run of `seconds` that ended when its report was made. */
function runFor(r: AgentReport, seconds: number): ProbeResult {
  const p = probeOf(r);
  p.durationS = seconds;
  p.startedAt = new Date(Date.parse(r.createdAt) - seconds * 1000).toISOString();
  return p;
}

function stream(over: Partial<ProbeStream> = {}): ProbeStream {
  return {
    ssrc: '0x0000abcd',
    srcPort: 40000,
    dstPort: 5004,
    sent: 500,
    received: 500,
    lost: 0,
    duplicates: 0,
    reordered: 0,
    jitterMs: 0.8,
    jitterMaxMs: 2.1,
    ...over,
  };
}

interface Answer {
  error: string;
  message: string;
  issues: { path: string; message: string; fields?: string[] }[];
  issueCount: number;
}

describe('giant, deep and noisy bodies: 4xx, small answers, quickly', () => {
  it('refuses 340,000 empty objects in forward.streams (1 MB) with a short answer', async () => {
    const r = report();
    const body = JSON.stringify(r).replace(
      '"forward":{',
      `"forward":{"streams":[${'{},'.repeat(340_000)}{}],`,
    );
    expect(body.length).toBeGreaterThan(1_000_000);
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(res.body.length).toBeLessThan(2000);
    expect(res.json<Answer>().issues[0]).toMatchObject({ path: 'probes.0.forward.streams' });
  });

  it('refuses a giant array in a pass-through key too', async () => {
    const body = JSON.stringify(report()).replace(
      '"forward":{',
      `"forward":{"extra":[${'0,'.repeat(300_000)}0],`,
    );
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(res.json<Answer>().issues[0]?.message).toMatch(/array of 300001 items/);
  });

  it('refuses JSON nested 4,100 levels inside a pass-through key with 400, not 500', async () => {
    const deep = `${'{"a":'.repeat(4100)}1${'}'.repeat(4100)}`;
    const body = JSON.stringify(report()).replace('"forward":{', `"forward":{"extra":${deep},`);
    expect(body.length).toBeLessThan(30_000);
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(res.json<Answer>().issues[0]?.message).toMatch(/nested deeper than 32 levels/);
  });

  it('answers ~100,000 schema problems with the first few and their count, never 5xx', async () => {
    // 64 probe results whose streams are 500 empty objects each: every field of every stream missing
    const r = report() as unknown as { probes: unknown[] };
    const bad = structuredClone(r.probes[0]) as Record<string, Record<string, unknown>>;
    bad.forward!.streams = Array.from({ length: 500 }, () => ({}));
    bad.reverse!.streams = Array.from({ length: 500 }, () => ({}));
    r.probes = Array.from({ length: 64 }, () => bad);
    const res = await post(r);
    expect(res.statusCode).toBe(400);
    const answer = res.json<Answer>();
    expect(answer.issues).toHaveLength(MAX_ISSUES_SHOWN);
    // the first probe alone has 1,000 streams × 10 missing fields; the rest were not looked into
    expect(answer.issueCount).toBe(10_000);
    expect(answer.message).toMatch(/63 probe results after probes\.0 were not checked/);
    expect(res.body.length).toBeLessThan(5000);
  });

  it('answers a list of 200,000 non-probes with a short 400', async () => {
    const r = report() as unknown as { probes: unknown[] };
    r.probes = Array.from({ length: 200_000 }, () => 1);
    const res = await post(r);
    expect(res.statusCode).toBe(400);
    expect(res.body.length).toBeLessThan(2000);
  });

  it('bounds DSCP keys to 0-63, checks to the known ids, streams to the calls', async () => {
    const dscp = report();
    probeOf(dscp).forward.dscpReceived = { '46': 490, '64': 10 };
    expect((await post(dscp)).statusCode).toBe(400);
    const padded = report();
    probeOf(padded).forward.dscpReceived = { '046': 500 };
    expect((await post(padded)).statusCode).toBe(400);

    const checks = report();
    const c = { id: 'latency', status: 'pass', value: 1, limit: 150, unit: 'ms', evidence: 'x' } as const;
    probeOf(checks).checks = Array.from({ length: CHECK_IDS.length + 1 }, () => ({ ...c }));
    const res = await post(checks);
    expect(res.statusCode).toBe(400);
    expect(res.json<Answer>().issues[0]?.path).toBe('probes.0.checks');

    const streams = report();
    probeOf(streams).forward.streams = Array.from({ length: 501 }, () => stream());
    expect((await post(streams)).statusCode).toBe(400);
  });

  it('refuses control characters in peer and codec (a newline splits an InfluxDB point)', async () => {
    const peer = report();
    probeOf(peer).peer = 'dc1.example.net:4000\nvoipready_rtp,site=other x=1';
    const res = await post(peer);
    expect(res.statusCode).toBe(400);
    expect(res.json<Answer>().issues[0]).toMatchObject({
      path: 'probes.0.peer',
      message: /control characters/,
    });
    const codec = report();
    probeOf(codec).codec = 'g711u\t';
    expect((await post(codec)).statusCode).toBe(400);
  });
});

describe('inconsistent evidence: 400 naming the fields', () => {
  /** Posts a report changed by `edit`; expects 400 whose issues name every field in `fields`. */
  async function refused(edit: (p: ProbeResult) => void, fields: string[]) {
    const r = report();
    edit(probeOf(r));
    const res = await post(r);
    expect(res.statusCode, res.body).toBe(400);
    const answer = res.json<Answer>();
    expect(answer.error).toBe('inconsistent report');
    const named = answer.issues.flatMap((i) => i.fields ?? []);
    for (const f of fields) expect(named, res.body).toContain(f);
    return answer;
  }

  it('250 sent and 0 received, with a listed stream claiming 0 sent', async () => {
    await refused(
      (p) => {
        Object.assign(p.forward, { sent: 250, received: 0, lost: 250, lossPct: 100, dscpReceived: {} });
        p.forward.streams = [stream({ sent: 0, received: 0 })];
      },
      ['probes.0.forward.sent', 'probes.0.forward.streams'],
    );
  });

  it('negative lost', async () => {
    await refused((p) => Object.assign(p.forward, { lost: -5 }), ['probes.0.forward.lost']);
  });

  it('received far above sent', async () => {
    await refused(
      (p) => Object.assign(p.forward, { received: 50_000, dscpReceived: { '46': 50_000 } }),
      ['probes.0.forward.received', 'probes.0.forward.sent'],
    );
  });

  it('lossPct 80 with lost 0', async () => {
    await refused((p) => Object.assign(p.forward, { lossPct: 80 }), ['probes.0.forward.lossPct']);
  });

  it('DSCP counts that do not sum to the packets received', async () => {
    await refused(
      (p) => Object.assign(p.reverse, { dscpReceived: { '46': 3 } }),
      ['probes.0.reverse.dscpReceived', 'probes.0.reverse.received'],
    );
    await refused(
      (p) => Object.assign(p.signalling.forward, { dscpReceived: { '24': 900 } }),
      ['probes.0.signalling.forward.dscpReceived'],
    );
  });

  it('500 calls backed by one stream', async () => {
    await refused(
      (p) => {
        p.calls = 500;
        p.forward.streams = [stream()];
      },
      ['probes.0.forward.streams', 'probes.0.calls'],
    );
  });

  it('more packets sent than the calls can send', async () => {
    await refused(
      (p) => Object.assign(p.forward, { sent: 5000, received: 5000, dscpReceived: { '46': 5000 } }),
      ['probes.0.forward.sent', 'probes.0.calls', 'probes.0.durationS'],
    );
  });

  it('a one-way delay of 1 ms "estimated as RTT/2" beside an RTT of 1,000 ms', async () => {
    await refused(
      (p) => {
        p.rttMs = { min: 1000, mean: 1000, p50: 1000, p95: 1000, p99: 1000, max: 1000 };
        p.oneWayMs = { forward: 1, reverse: 1, estimated: true };
      },
      ['probes.0.oneWayMs.forward', 'probes.0.rttMs.mean'],
    );
  });

  it('stream jitter 999 ms under a direction jitter of 0', async () => {
    await refused(
      (p) => {
        Object.assign(p.forward, { jitterMs: 0, jitterMaxMs: 0 });
        p.forward.streams = [stream({ jitterMs: 999, jitterMaxMs: 999 })];
      },
      ['probes.0.forward.streams.0.jitterMs', 'probes.0.forward.jitterMs'],
    );
  });

  it('a clock before 1970 (InfluxDB cannot store it either)', async () => {
    await refused(
      (p) => {
        p.startedAt = '1601-01-01T00:00:00Z';
      },
      ['probes.0.startedAt'],
    );
  });

  it('a consistent report with listed streams is stored', async () => {
    const r = report();
    probeOf(r).forward.streams = [stream()];
    probeOf(r).reverse.streams = [stream()];
    expect((await post(r)).statusCode).toBe(202);
  });
});

describe('sufficiency: too little evidence is unknown, not pass', () => {
  it('2 packets in 20 ms: every check unknown with the reason, not ready', async () => {
    const r = report({
      forward: { sent: 2, received: 2, dscpReceived: { '46': 2 } },
      reverse: { sent: 2, received: 2, dscpReceived: { '46': 2 } },
    });
    const p = runFor(r, 0.02);
    p.signalling.forward = { ...p.signalling.forward, sent: 1, received: 1, dscpReceived: { '24': 1 } };
    p.signalling.reverse = { ...p.signalling.reverse, sent: 1, received: 1, dscpReceived: { '24': 1 } };
    const res = await post(r);
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json().ready).toBe(false);
    const now = await readiness();
    expect(now.ready).toBe(false);
    for (const c of now.checks) {
      expect(c.status).toBe('unknown');
      expect(c.evidence).toMatch(/too little evidence: a 0\.02 s run/);
    }
  });

  it('per check: few round trips, few packets per stream, a load far below the calls', async () => {
    // 3 s run, 1 call: 150 packets sent each way, but only 8 came back
    const r = report({
      forward: { sent: 150, received: 150, dscpReceived: { '46': 150 } },
      reverse: { sent: 150, received: 8, lost: 142, lossPct: 94.6667, dscpReceived: { '46': 8 } },
    });
    runFor(r, 3);
    const res = await post(r);
    expect(res.statusCode, res.body).toBe(202);
    const now = await readiness();
    const byId = Object.fromEntries(now.checks.map((c) => [c.id, c]));
    expect(byId.latency).toMatchObject({ status: 'unknown', evidence: /8 round trips \(at least 10/ });
    // the forward direction alone carries enough packets for jitter
    expect(byId.jitter?.status).toBe('pass');
    expect(byId.loss?.status).toBe('fail');
    expect(byId['dscp-rtp']).toMatchObject({ status: 'unknown', evidence: /8 marks read on arrival/ });

    const thin = report({ forward: { sent: 30, received: 30, dscpReceived: { '46': 30 } } });
    runFor(thin, 3);
    await post(thin);
    expect((await readiness()).checks.find((c) => c.id === 'loss')).toMatchObject({
      status: 'unknown',
      evidence: /30 packets sent on forward path \(at least 50 per stream/,
    });

    // 500 calls claimed, one call's packets sent
    const load = report();
    probeOf(load).calls = 500;
    await post(load);
    expect((await readiness()).checks.find((c) => c.id === 'bandwidth')).toMatchObject({
      status: 'unknown',
      evidence: /500 packets sent, 0 % of what 500 g711u calls send/,
    });
  });
});

describe('evidence time: when the probe ran, never later than arrival', () => {
  it('a probe startedAt two months old inside a fresh report is stale at once', async () => {
    clock.now = T0 + 10 * DAY;
    const r = report();
    probeOf(r).startedAt = new Date(clock.now - 60 * DAY).toISOString();
    const res = await post(r);
    expect(res.statusCode).toBe(202);
    const assessment = await app.inject({
      method: 'GET',
      url: `/api/v1/assessments/${res.json().assessmentId}`,
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    const { measuredAt, validUntil } = assessment.json() as { measuredAt: string; validUntil: string };
    expect(measuredAt).toBe(new Date(clock.now - 60 * DAY + 10_000).toISOString());
    expect(Date.parse(validUntil)).toBeLessThan(clock.now);
    expect((await readiness()).reportId).not.toBe(r.reportId);
  });

  it('an old passing probe under a createdAt a year ahead does not replace fresh failing evidence', async () => {
    clock.now = T0 + 20 * DAY;
    const failing = report({ forward: { jitterMs: 80, jitterMaxMs: 120 } });
    expect((await post(failing)).json().ready).toBe(false);
    expect(await readiness()).toMatchObject({ reportId: failing.reportId, ready: false, stale: false });

    const passing = report({ createdAt: new Date(clock.now + 365 * DAY).toISOString() });
    probeOf(passing).startedAt = new Date(clock.now - 2 * DAY).toISOString();
    const res = await post(passing);
    expect(res.statusCode).toBe(202);
    const assessment = await app.inject({
      method: 'GET',
      url: `/api/v1/assessments/${res.json().assessmentId}`,
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(assessment.json().measuredAt).toBe(new Date(clock.now - 2 * DAY + 10_000).toISOString());
    expect(await readiness()).toMatchObject({ reportId: failing.reportId, ready: false });
  });
});

describe("the report's newer keys (traces, priority): the same bounds", () => {
  const hop = (ttl: number, address: string, dscpSeen: number) => ({
    ttl,
    address,
    rttMs: 0.4,
    dscpSeen,
    changed: dscpSeen !== 46,
    reply: 'time-exceeded',
    attempts: 1,
  });
  const traced = (address: string): AgentReport => {
    const r = report({ forward: { dscpReceived: { '0': 500 } } });
    const trace = {
      schema: 'voipready.trace/1',
      peer: probeOf(r).peer,
      address: '198.18.23.2',
      dscpSent: 46,
      hops: [hop(1, '198.18.20.2', 46), hop(2, address, 0)],
      firstChangeAtTtl: 2,
      reached: false,
      outcome: 'changed',
      unknownReason: null,
    };
    return {
      ...r,
      traces: [{ peer: probeOf(r).peer, check: 'dscp-rtp', direction: 'forward', trace }],
    } as AgentReport;
  };

  it('refuses 300,000 empty objects in traces with a short 400', async () => {
    const body = JSON.stringify(report()).replace(/}$/, `,"traces":[${'{},'.repeat(300_000)}{}]}`);
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    expect(res.body.length).toBeLessThan(2000);
    expect(res.json<Answer>().issues[0]?.message).toMatch(/array of 300001 items/);
  });

  it('refuses 5,000-deep nesting inside a trace and inside priority with 400, not 500', async () => {
    const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    for (const key of ['traces', 'priority']) {
      const body = JSON.stringify(report()).replace(
        /}$/,
        `,"${key}":${key === 'traces' ? `[${deep}]` : deep}}`,
      );
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect(res.json<Answer>().issues[0]?.message).toMatch(/nested deeper than 32 levels/);
    }
  });

  it('a trace naming its hop is stored and named; control characters in a hop address are refused', async () => {
    const ok = await post(traced('198.18.21.2'));
    expect(ok.statusCode).toBe(202);
    expect((await readiness()).checks.find((c) => c.id === 'dscp-rtp')?.evidence).toMatch(
      /mark first changed at hop 2 \(198\.18\.21\.2\)/,
    );
    const res = await post(traced('198.18.21.2\nvoipready_rtp,site=other x=1'));
    expect(res.statusCode).toBe(400);
  });
});

describe('the probe’s send times (issue 14) in a report', () => {
  const withSends = (sends: object): AgentReport => {
    const r = report();
    Object.assign(probeOf(r), sends);
    return r;
  };
  const firstIssue = async (body: unknown) => {
    const res = await post(body);
    expect(res.statusCode).toBe(400);
    return res.json<Answer>().issues[0]!;
  };

  it('stores good ones and a document without them', async () => {
    const good = {
      sendTiming: { p50Ms: 0.09, p99Ms: 0.44, maxMs: 3.6, samples: 25_000 },
      sendPacing: { by: 'native-thread', realtime: false, shortSlice: true },
    };
    expect((await post(withSends(good))).statusCode).toBe(202);
    expect((await post(report())).statusCode).toBe(202);
  });

  it('refuses a pacing that is not one of its kinds (a newline smuggled into a label), naming the field', async () => {
    const issue = await firstIssue(withSends({ sendPacing: { by: 'native-thread\nx', realtime: true } }));
    expect(issue.path).toBe('probes.0.sendPacing.by');
  });

  it('refuses a negative lateness, a string count and 5,000-deep nesting with 400, not 500', async () => {
    const negative = await firstIssue(
      withSends({ sendTiming: { p50Ms: -1, p99Ms: 1, maxMs: 1, samples: 3 } }),
    );
    expect(negative.path).toBe('probes.0.sendTiming.p50Ms');
    const text = await firstIssue(withSends({ sendTiming: { p50Ms: 1, p99Ms: 1, maxMs: 1, samples: '3' } }));
    expect(text.path).toBe('probes.0.sendTiming.samples');
    const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    const body = JSON.stringify(report()).replace('"ready":true', `"ready":true,"sendTiming":${deep}`);
    expect(body).toContain('"sendTiming":{"a":');
    expect((await firstIssue(body)).message).toMatch(/nested deeper than 32 levels/);
  });
});
