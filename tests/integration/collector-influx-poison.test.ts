// Poison points (issue 7): a point a real influxd refuses — older than the retention policy (an
// agent back after 90 days offline), or a field whose type the shard already holds otherwise — is
// set aside (counted, kept in the store for inspection), and every other point, before and after
// it, still reaches InfluxDB. Before the fix the refused batch was retried forever and blocked
// every later point for every site.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { hashToken } from '../../collector/auth.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { CollectorConfig } from '../../src/config/collector.js';
import type { AgentReport } from '../../src/schemas.js';
import { influxQuery, startInfluxd } from '../helpers/influxd.js';
import { binaryMissing, waitUntil } from '../helpers/service.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const DB = 'voipready_poison';
const missing = binaryMissing('influxd');

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      // keep cleaning up the rest
    }
  }
});

async function post(url: string, body: unknown): Promise<number> {
  const res = await fetch(`${url}/api/v1/reports`, {
    method: 'POST',
    headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/** A clean report whose probe started at `startedMs`, made now. */
function reportAt(id: string, startedMs: number): AgentReport {
  const r = sampleReport({ reportId: id, createdAt: new Date().toISOString() });
  r.probes[0]!.startedAt = new Date(startedMs).toISOString();
  return r;
}

describe.skipIf(missing)(
  `poison points in the InfluxDB outbox${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('sets refused points aside and delivers the rest, before and after them', async () => {
      const influx = await startInfluxd();
      cleanups.push(() => influx.stop());
      const dataDir = mkdtempSync(join(tmpdir(), 'voipready-poison-'));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const running: RunningCollector = await startCollector({
        config: CollectorConfig.parse({
          collector: {
            agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) }],
            viewers: [{ name: 'noc', tokenHash: hashToken(VIEWER) }],
            influxdb: {
              url: influx.url,
              database: DB,
              retentionPolicy: 'week',
              retentionDuration: '7d',
              retryMax: '1s',
            },
          },
        }).collector,
        dataDir,
        host: '127.0.0.1',
        port: 0,
      });
      cleanups.push(() => running.close());

      // A `sent` field InfluxDB already holds as a string in the shard (one day, for a 7-day
      // policy) of three days ago: it refuses every float `sent` of the measurement in that shard.
      const now = Date.now();
      const conflictMs = now - 3 * 86_400_000;
      await waitUntil(
        'the collector to create the database and retention policy',
        async () =>
          (await influxQuery(influx.url, DB, 'SHOW RETENTION POLICIES')).some((s) =>
            s.values.some((v) => v[0] === 'week'),
          ),
        20_000,
      );
      const line = `voipready_rtp,agent=hq-agent-1,codec=g711u,direction=forward,peer=dc1.example.net:4000,site=hq sent="many" ${conflictMs}`;
      const pre = await fetch(`${influx.url}/write?db=${DB}&rp=week&precision=ms`, {
        method: 'POST',
        body: line,
      });
      expect(pre.status).toBe(204);

      const reports = [
        reportAt('rep-poison-fresh-1', now - 60_000),
        // an agent back after 90 days offline: beyond the 7-day retention policy
        reportAt('rep-poison-old-0001', now - 90 * 86_400_000),
        reportAt('rep-poison-conflict', conflictMs),
        reportAt('rep-poison-fresh-2', now - 30_000),
      ];
      for (const r of reports) expect(await post(running.url, r)).toBe(202);

      const store = running.app.collector.store;
      await waitUntil('the outbox to drain', async () => (await store.outboxSize()) === 0, 60_000);
      const series = await influxQuery(
        influx.url,
        DB,
        `SELECT "reportId", "direction" FROM "week"."voipready_rtp" WHERE "reportId" =~ /^rep-poison/`,
      );
      const written = (series[0]?.values ?? []).map((v) => `${v[1]}/${v[2]}`).sort();
      expect(written).toEqual([
        'rep-poison-fresh-1/forward',
        'rep-poison-fresh-1/reverse',
        'rep-poison-fresh-2/forward',
        'rep-poison-fresh-2/reverse',
      ]);

      const rejected = await store.rejectedPoints(10);
      expect(rejected.map((r) => `${r.point.fields.reportId}/${r.point.tags.direction}`).sort()).toEqual([
        'rep-poison-conflict/forward',
        'rep-poison-conflict/reverse',
        'rep-poison-old-0001/forward',
        'rep-poison-old-0001/reverse',
      ]);
      expect(rejected.find((r) => r.point.fields.reportId === 'rep-poison-old-0001')?.error).toMatch(
        /400.*retention policy/,
      );
      expect(rejected.find((r) => r.point.fields.reportId === 'rep-poison-conflict')?.error).toMatch(
        /400.*field type conflict/,
      );

      const metrics = await fetch(`${running.url}/metrics`, {
        headers: { authorization: `Bearer ${VIEWER}` },
      });
      const text = await metrics.text();
      expect(text).toMatch(/^voipready_influx_points_rejected_total 4$/m);
      expect(text).toMatch(/^voipready_influx_points_written_total 4$/m);
      // every report is kept in SQLite whatever InfluxDB made of its points
      expect(await store.countReports()).toBe(4);
    });
  },
);
