// SIP OPTIONS results with the collector's real neighbours: a run against a real sipp UAS is posted
// (after an RTP report) to a real collector process listening on loopback; a real influxd must hold
// the voipready_sip point (queried back with InfluxQL) and a real prometheus, scraping /metrics,
// the SIP response time and answered ratio — beside the path gauges the SIP-only report kept.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSipPing } from '../../agent/sip/ping.js';
import { sampleReport } from '../../bench/collector-report.js';
import { hashToken } from '../../collector/auth.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { CollectorConfig } from '../../src/config/collector.js';
import type { SipResult } from '../../src/sip/schema.js';
import { influxQuery, startInfluxd } from '../helpers/influxd.js';
import { type PromSample, promQuery, startPrometheus } from '../helpers/prometheus.js';
import { binaryMissing, type Service, waitUntil } from '../helpers/service.js';
import { killAllSipp, type SippServer, sippUnavailableReason, startSipp } from '../helpers/sipp.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-prometheus-01234567';
const missing = binaryMissing('influxd') ?? binaryMissing('prometheus') ?? sippUnavailableReason();

describe.skipIf(missing !== undefined)(`SIP results in InfluxDB and Prometheus ${missing ?? ''}`, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  let influx: Service;
  let prometheus: Service;
  let running: RunningCollector;
  let sipp: SippServer;
  let result: SipResult;

  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'voipready-sip-collector-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    influx = await startInfluxd();
    cleanups.push(() => influx.stop());
    running = await startCollector({
      config: CollectorConfig.parse({
        collector: {
          agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) }],
          viewers: [{ name: 'prometheus', tokenHash: hashToken(VIEWER) }],
          influxdb: { url: influx.url, database: 'voipready_test', retryMax: '1s' },
        },
      }).collector,
      dataDir,
      host: '127.0.0.1',
      port: 0,
    });
    cleanups.push(() => running.close());
    prometheus = await startPrometheus([
      { job: 'voipready', target: `127.0.0.1:${running.port}`, bearerToken: VIEWER },
    ]);
    cleanups.push(() => prometheus.stop());
    sipp = await startSipp({ scenario: 'options-200.xml', pauseMs: 30 });
    cleanups.push(() => sipp.stop());
    result = await runSipPing({ target: `sip:127.0.0.1:${sipp.port}`, count: 4, intervalMs: 50 });
  }, 90_000);

  afterAll(async () => {
    killAllSipp();
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep cleaning up the rest
      }
    }
  });

  const post = async (body: unknown) => {
    const res = await fetch(`${running.url}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    return res.status;
  };

  it('stores the run as one voipready_sip point with its counts and response times', async () => {
    const now = Date.now();
    const rtp = sampleReport({
      reportId: 'rep-rtp-sip-0001',
      createdAt: new Date(now - 60_000).toISOString(),
    });
    expect(await post(rtp)).toBe(202);
    const sip = {
      ...rtp,
      reportId: 'rep-sip-0001',
      createdAt: new Date(now).toISOString(),
      probes: [],
      sip: [result],
    };
    expect(await post(sip)).toBe(202);
    const q =
      'SELECT "sent", "answered", "answeredRatio", "lossPct", "responseP50Ms", "responseMaxMs", "code_200", "ready", "reportId", "target", "transport" FROM "voipready_sip"';
    let rows: unknown[][] = [];
    let columns: string[] = [];
    await waitUntil(
      'the voipready_sip point in InfluxDB',
      async () => {
        const series = (await influxQuery(influx.url, 'voipready_test', q))[0];
        rows = series?.values ?? [];
        columns = series?.columns ?? [];
        return rows.length >= 1;
      },
      20_000,
    );
    expect(rows).toHaveLength(1);
    const row = Object.fromEntries(columns.map((c, i) => [c, rows[0]![i]]));
    expect(row).toMatchObject({
      sent: 4,
      answered: 4,
      answeredRatio: 1,
      lossPct: 0,
      code_200: 4,
      reportId: 'rep-sip-0001',
      target: `sip:127.0.0.1:${sipp.port}`,
      transport: 'udp',
    });
    expect(row.responseP50Ms).toBe(result.responseMs.p50);
    expect(row.responseMaxMs).toBe(result.responseMs.max);
  });

  it('prometheus scrapes the SIP response time and answered ratio, and the path gauges stay', async () => {
    let ratio: PromSample[] = [];
    await waitUntil(
      'voipready_sip_answered_ratio in prometheus',
      async () => {
        ratio = await promQuery(prometheus.url, 'voipready_sip_answered_ratio{site="hq"}');
        return ratio.length === 1;
      },
      30_000,
    );
    expect(ratio[0]!.metric).toMatchObject({ target: `sip:127.0.0.1:${sipp.port}`, transport: 'udp' });
    expect(ratio[0]!.value[1]).toBe('1');
    const median = await promQuery(
      prometheus.url,
      'voipready_sip_response_seconds{site="hq",quantile="0.5"}',
    );
    expect(Number(median[0]!.value[1])).toBeCloseTo(result.responseMs.p50! / 1000, 6);
    const latency = await promQuery(prometheus.url, 'voipready_path_latency_seconds{site="hq"}');
    expect(latency.length).toBeGreaterThan(0);
  });
});
