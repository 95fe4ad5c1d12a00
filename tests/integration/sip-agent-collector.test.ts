// A SIP OPTIONS schedule entry end to end: the agent (same loop, same report contract) asks a real
// sipp UAS, the reports go to a real collector (Fastify app on a real SQLite store, driven with
// inject) which judges them with the site's policy, carries the RTP evidence across the SIP-only
// report, and exports /metrics and time-series points.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../agent/service/agent.js';
import { systemClock } from '../../agent/service/clock.js';
import { runSipPing } from '../../agent/sip/ping.js';
import { sampleProbe } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { pointsFromReport, SIP_MEASUREMENT } from '../../collector/store/influx.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { AgentConfig } from '../../src/config/agent.js';
import { CollectorConfig } from '../../src/config/collector.js';
import { AgentReport } from '../../src/schemas.js';
import { killAllSipp, type SippServer, sippUnavailableReason, startSipp } from '../helpers/sipp.js';

const reason = sippUnavailableReason();
const TOKEN = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const privileged = process.getuid?.() === 0;

describe.skipIf(reason !== undefined)(`SIP OPTIONS from the agent to the collector ${reason ?? ''}`, () => {
  let dir: string;
  let sipp: SippServer;
  let sipp503: SippServer;
  let app: FastifyInstance;
  const bodies: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'voipready-sip-agent-'));
    sipp = await startSipp({ scenario: 'options-200.xml', pauseMs: 20 });
    sipp503 = await startSipp({ scenario: 'options-503.xml' });
    const config = AgentConfig.parse({
      agent: {
        name: 'hq-agent-1',
        site: 'hq',
        collector: { url: 'http://127.0.0.1:9', token: TOKEN },
        queue: { dir: join(dir, 'queue') },
        probes: [{ peer: 'dc.example.net:4000', duration: '1s', interval: '1h' }],
        sip: [{ target: `sip:127.0.0.1:${sipp.port}`, count: 3, requestInterval: '50ms', interval: '1h' }],
      },
    }).agent;
    // The RTP probe is not under test here: a recorded result stands in for it.
    const agent = await startAgent(config, {
      probe: async () => sampleProbe({ createdAt: new Date().toISOString() }),
      sipPing: (c) => runSipPing(c),
      send: async (body) => {
        bodies.push(body);
        return { kind: 'acked', status: 202 };
      },
      clock: systemClock,
      log: () => {},
    });
    const deadline = Date.now() + 30_000;
    while (bodies.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await agent.stop();

    const collector = CollectorConfig.parse({
      collector: {
        readinessValidFor: '1h',
        agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(TOKEN) }],
        viewers: [{ name: 'noc', tokenHash: hashToken(VIEWER) }],
      },
    }).collector;
    const store = new SqliteStore(join(dir, 'collector'));
    app = buildApp({ config: collector, store, now: () => Date.now() });
    app.addHook('onClose', () => store.close());
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await sipp?.stop();
    await sipp503?.stop();
    killAllSipp();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (body: string) =>
    app.inject({
      method: 'POST',
      url: '/api/v1/reports',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      payload: body,
    });
  const get = (url: string) =>
    app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${VIEWER}` } });

  it('the schedule entry sends its own voipready.report/1 carrying one voipready.sip/1 result', () => {
    expect(bodies).toHaveLength(2);
    const reports = bodies.map((b) => AgentReport.parse(JSON.parse(b)));
    const sipReport = reports.find((r) => r.sip !== undefined)!;
    expect(sipReport.probes).toEqual([]);
    expect(sipReport.sip).toHaveLength(1);
    expect(sipReport.sip![0]).toMatchObject({
      schema: 'voipready.sip/1',
      target: `sip:127.0.0.1:${sipp.port}`,
      sent: 3,
      answered: 3,
      codes: { '200': 3 },
    });
  });

  it('the collector stores both, and the site keeps its RTP checks beside the sip check', async () => {
    const [rtp, sip] = [...bodies].sort((a) => (JSON.parse(a).sip ? 1 : -1));
    expect((await post(rtp!)).statusCode).toBe(202);
    expect((await post(sip!)).statusCode).toBe(202);
    const readiness = (await get('/api/v1/sites/hq/readiness')).json();
    const status = Object.fromEntries(
      (readiness.checks as { id: string; status: string }[]).map((c) => [c.id, c.status]),
    );
    expect(status).toMatchObject({
      latency: 'pass',
      jitter: 'pass',
      loss: 'pass',
      bandwidth: 'pass',
      sip: 'pass',
    });
    const sipCheck = readiness.checks.find((c: { id: string }) => c.id === 'sip');
    expect(sipCheck.evidence).toMatch(/3 of 3 OPTIONS answered \(codes 200 ×3/);
    if (privileged) {
      // sipp does not mark its responses: seen on arrival as CS0, which the site's dscp-sip names.
      expect(status['dscp-sip']).toBe('fail');
      expect(readiness.checks.find((c: { id: string }) => c.id === 'dscp-sip').evidence).toMatch(
        /reverse path \(responses from sip:127\.0\.0\.1:\d+\)/,
      );
    }
  });

  it('/metrics exports the SIP response time and answered ratio, and keeps the path gauges', async () => {
    const text = (await get('/metrics')).body;
    const labels = `site="hq",target="sip:127.0.0.1:${sipp.port}",transport="udp"`;
    expect(text).toMatch(new RegExp(`voipready_sip_answered_ratio\\{${labels}\\} 1\\n`));
    for (const q of ['0', '0.5', '0.95', '1']) {
      const m = new RegExp(`voipready_sip_response_seconds\\{${labels},quantile="${q}"\\} ([0-9.e-]+)`).exec(
        text,
      );
      expect(m, q).not.toBeNull();
      // sipp pauses 20 ms before answering
      expect(Number(m![1])).toBeGreaterThanOrEqual(0.02);
    }
    // The SIP-only report did not hide the site's latest RTP measurements.
    expect(text).toMatch(
      /voipready_path_latency_seconds\{site="hq",peer="dc1\.example\.net:4000",direction="forward"\}/,
    );
  });

  it('InfluxDB gets one voipready_sip point per run', () => {
    const report = AgentReport.parse(JSON.parse(bodies.find((b) => JSON.parse(b).sip)!));
    const assessment = { assessedAt: new Date().toISOString(), measuredAt: report.createdAt, peers: [] };
    const points = pointsFromReport(report, assessment as never);
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({
      measurement: SIP_MEASUREMENT,
      tags: { site: 'hq', agent: 'hq-agent-1', target: `sip:127.0.0.1:${sipp.port}`, transport: 'udp' },
      fields: { sent: 3, answered: 3, answeredRatio: 1, code_200: 3 },
    });
  });

  it('a 503 from the SIP server makes the site not ready, naming the code', async () => {
    const result = await runSipPing({ target: `sip:127.0.0.1:${sipp503.port}`, count: 2, intervalMs: 50 });
    const body = JSON.stringify({
      schema: 'voipready.report/1',
      reportId: 'hq-agent-1-sip503-0001',
      site: 'hq',
      agent: 'hq-agent-1',
      createdAt: new Date().toISOString(),
      probes: [],
      sip: [result],
    });
    expect((await post(body)).statusCode).toBe(202);
    const readiness = (await get('/api/v1/sites/hq/readiness')).json();
    expect(readiness.ready).toBe(false);
    expect(readiness.checks.find((c: { id: string }) => c.id === 'sip')).toMatchObject({
      status: 'fail',
      value: '503',
    });
    // the RTP checks are still the carried ones
    expect(readiness.checks.find((c: { id: string }) => c.id === 'latency').status).toBe('pass');
  });

  it('refuses a SIP result that contradicts itself, and a report with no result, naming the fields', async () => {
    const good = JSON.parse(bodies.find((b) => JSON.parse(b).sip)!);
    const bad = { ...good, reportId: 'hq-agent-1-bad-0001', sip: [{ ...good.sip[0], answered: 7 }] };
    const r1 = await post(JSON.stringify(bad));
    expect(r1.statusCode).toBe(400);
    expect(r1.json().message).toMatch(/sip\.0\.answered/);
    const empty = { ...good, reportId: 'hq-agent-1-empty-0001', sip: [] };
    const r2 = await post(JSON.stringify(empty));
    expect(r2.statusCode).toBe(400);
    expect(r2.json().message).toMatch(/no result/);
    const huge = { ...good, reportId: 'hq-agent-1-huge-0001', sip: Array(17).fill(good.sip[0]) };
    expect((await post(JSON.stringify(huge))).statusCode).toBe(400);
  });
});
