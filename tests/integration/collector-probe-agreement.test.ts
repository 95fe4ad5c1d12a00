// "Evaluated by the same policy as voipready probe": a real probe run over loopback (reflector and
// probe as child processes), its result posted to the collector, which must reach the same verdict
// check by check with the handbook policy, and its own verdict with a site's stricter policy.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { pointsFromReport } from '../../collector/store/influx.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';
import { type AgentReport, REPORT_SCHEMA } from '../../src/schemas.js';
import { cliUnavailableReason, killAllCli, parseProbeJson, runCli, startCli } from '../helpers/cli.js';

const unavailable = cliUnavailableReason();
const AGENT = 'agent-token-hq-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'voipready-agreement-'));
afterAll(async () => {
  await killAllCli();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(unavailable)(
  `collector and probe agree${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    it('re-judges a real probe result to the probe’s own checks, and to the site’s policy', async () => {
      const reflector = startCli(['reflector', '--listen', '127.0.0.1:0']);
      const line = await reflector.waitForStderr(/^reflector listening on/, 10_000);
      const [, port, sigPort] = /127\.0\.0\.1:(\d+) \(media\), 127\.0\.0\.1:(\d+) \(signalling\)/.exec(line)!;
      const run = await runCli(
        [
          'probe',
          '--peer',
          `127.0.0.1:${port}`,
          '--signalling-port',
          sigPort!,
          '--calls',
          '2',
          '--duration',
          '2s',
          '--json',
        ],
        { timeoutMs: 30_000 },
      );
      await reflector.stop();
      const probe = parseProbeJson(run.stdout);

      const store = new SqliteStore(dir);
      const app = buildApp({
        config: CollectorConfig.parse({
          collector: {
            agents: [
              { name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) },
              { name: 'strict-agent', site: 'strict', tokenHash: hashToken(`${AGENT}-strict`) },
            ],
            reads: 'open',
            // loopback delay is far below 1 ms: a 0.0001 ms limit must fail latency (and bandwidth with it)
            sites: { strict: { policy: { latency: { maxMs: 0.0001 } } } },
          },
        }).collector,
        store,
      });
      try {
        const post = (site: string, token: string) =>
          app.inject({
            method: 'POST',
            url: '/api/v1/reports',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            payload: {
              schema: REPORT_SCHEMA,
              reportId: `rep-agree-${site}`,
              site,
              agent: site === 'hq' ? 'hq-agent-1' : 'strict-agent',
              createdAt: new Date().toISOString(),
              probes: [probe],
            },
          });
        expect((await post('hq', AGENT)).statusCode).toBe(202);
        const hq = (await app.inject({ url: '/api/v1/sites/hq/readiness' })).json();
        // same status, value, limit and evidence, check by check
        expect(hq.checks).toEqual(probe.checks);
        expect(hq.ready).toBe(probe.ready);
        // the probe lists its two calls' streams: InfluxDB gets one point per call and direction
        const assessment = (await app.inject({ url: `/api/v1/assessments/${hq.assessmentId}` })).json();
        const report = {
          schema: REPORT_SCHEMA,
          reportId: 'x',
          site: 'hq',
          agent: 'a',
          createdAt: '',
          probes: [probe],
        };
        const points = pointsFromReport(report as AgentReport, assessment);
        expect(points.map((p) => `${p.tags.direction}/${p.tags.stream}`)).toEqual([
          'forward/0',
          'forward/1',
          'reverse/0',
          'reverse/1',
        ]);
        expect(points.reduce((n, p) => n + Number(p.fields.sent), 0)).toBe(
          probe.forward.sent + probe.reverse.sent,
        );

        expect((await post('strict', `${AGENT}-strict`)).statusCode).toBe(202);
        const strict = (await app.inject({ url: '/api/v1/sites/strict/readiness' })).json();
        const byId = Object.fromEntries(
          (strict.checks as { id: string; status: string; limit: unknown }[]).map((c) => [c.id, c]),
        );
        expect(byId.latency).toMatchObject({ status: 'fail', limit: 0.0001 });
        expect(byId.bandwidth?.status).toBe('fail');
        expect(strict.ready).toBe(false);
      } finally {
        await app.close();
        await store.close();
      }
    });
  },
);
