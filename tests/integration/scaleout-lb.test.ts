// The repository's haproxy configuration (deploy/haproxy/voipready.cfg), run by a real haproxy in
// front of two real collector processes sharing one store: reports are spread over both and stored
// once; a collector SIGKILLed mid-stream costs no agent a 5xx (haproxy redispatches the POST, which
// is idempotent by report id) and is marked down by the /readyz check; with no collector up the
// agent gets 503 with Retry-After (never haproxy's bare 502/503/504) and waits that long; a
// restarted collector is taken back. Prometheus scraping both collectors shows every dashboard
// figure once, exactly as when it scrapes one.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postReport } from '../../agent/uplink/post-report.js';
import { sampleReport } from '../../bench/collector-report.js';
import { hashToken } from '../../collector/auth.js';
import { cliUnavailableReason, killAllCli, REPO_ROOT } from '../helpers/cli.js';
import { type CollectorPool, type Haproxy, startCollectorPool } from '../helpers/haproxy.js';
import { type PromSample, promQuery, startPrometheus } from '../helpers/prometheus.js';
import { binaryMissing, waitUntil } from '../helpers/service.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const unavailable = binaryMissing('haproxy') ?? binaryMissing('prometheus') ?? cliUnavailableReason();
const CREATED = new Date().toISOString();
const dir = mkdtempSync(join(tmpdir(), 'voipready-haproxy-lb-'));
const configFile = join(dir, 'collector.yaml');

let lb: Haproxy;
let pool: CollectorPool;

const bodyOf = (id: string, createdAt = CREATED) => JSON.stringify(sampleReport({ reportId: id, createdAt }));

/** One POST (through the load balancer unless `to` names a collector); the status (0: no answer). */
async function post(id: string, to = lb.url, body = bodyOf(id)): Promise<number> {
  try {
    const res = await fetch(`${to}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
      body,
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function storedIds(): Promise<string[]> {
  const res = await fetch(`${lb.url}/api/v1/reports?limit=10000`, {
    headers: { authorization: `Bearer ${VIEWER}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { reports: { reportId: string }[] }).reports.map((r) => r.reportId);
}

describe.skipIf(unavailable)(
  `haproxy in front of two collectors${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    beforeAll(async () => {
      writeFileSync(
        configFile,
        `collector:
  dataDir: data
  rateLimit: { perSecond: 100000, burst: 100000 }
  agents:
    - { name: hq-agent-1, site: hq, tokenHash: "${hashToken(AGENT)}" }
  viewers:
    - { name: noc, tokenHash: "${hashToken(VIEWER)}" }
`,
      );
      pool = await startCollectorPool(configFile, 2);
      lb = pool.lb;
    }, 90_000);

    afterAll(async () => {
      await pool?.stop();
      await killAllCli();
      rmSync(dir, { recursive: true, force: true });
    });

    it('spreads reports over both collectors and stores each once', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push(await post(`rep-spread-${String(i).padStart(3, '0')}`));
      expect(new Set(statuses)).toEqual(new Set([202]));
      const served = lb.requests().filter((r) => r.method === 'POST');
      expect(new Set(served.map((r) => r.server))).toEqual(
        new Set(['collectors/collector1', 'collectors/collector2']),
      );
      const ids = (await storedIds()).filter((id) => id.startsWith('rep-spread-'));
      expect(ids).toHaveLength(20);
      expect(new Set(ids).size).toBe(20);
      // a repeat through either collector is acknowledged as a duplicate, not stored again
      expect(await post('rep-spread-000')).toBe(200);
      expect(await post('rep-spread-001')).toBe(200);
    }, 60_000);

    it('a collector SIGKILLed mid-stream costs no agent a 5xx; haproxy marks it down', async () => {
      const statuses: number[] = [];
      const sent: string[] = [];
      let next = 0;
      let killed = false;
      const worker = async () => {
        while (next < 300) {
          const id = `rep-kill-${String(next++).padStart(4, '0')}`;
          sent.push(id);
          statuses.push(await post(id));
          if (!killed && statuses.length >= 60) {
            killed = true;
            pool.process('collector2').child.kill('SIGKILL');
          }
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      expect(killed).toBe(true);
      // every request answered, none with a 5xx: the killed collector's share went to the other one.
      // A report the killed collector committed just before dying is, re-sent, 200 duplicate: acknowledged.
      expect(statuses.filter((s) => s !== 202 && s !== 200)).toEqual([]);
      const ids = (await storedIds()).filter((id) => id.startsWith('rep-kill-'));
      expect(ids.sort()).toEqual([...sent].sort());
      // haproxy sent at least one POST again to the survivor (refused connection → redispatch)
      const redispatched = lb.requests().filter((r) => r.path === '/api/v1/reports' && r.redispatched);
      expect(redispatched.length).toBeGreaterThan(0);
      expect(
        redispatched.every(
          (r) => r.server === 'collectors/collector1' && (r.status === 202 || r.status === 200),
        ),
      ).toBe(true);
      await lb.waitForServer('collector2', 'DOWN');
    }, 60_000);

    it('with no collector up: 503 with Retry-After from haproxy, and the agent waits that long', async () => {
      await pool.process('collector1').stop();
      // before the health check has noticed (connections refused, retries exhausted) and after
      const early = await fetch(`${lb.url}/api/v1/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
        body: bodyOf('rep-none-000'),
      });
      expect(early.status).toBe(503);
      expect(early.headers.get('retry-after')).toBe('2');
      expect(((await early.json()) as { error: string }).error).toBe('unavailable');
      await lb.waitForServer('collector1', 'DOWN');
      const outcome = await postReport(
        { url: lb.url, token: AGENT, timeoutMs: 10_000 },
        bodyOf('rep-none-001'),
      );
      expect(outcome).toMatchObject({ kind: 'retry', status: 503, retryAfterMs: 2000 });
      // haproxy logged them as 503s of its own (no server)
      const last = lb.requests().slice(-1)[0]!;
      expect(last).toMatchObject({ status: 503, server: 'collectors/<NOSRV>' });
    }, 60_000);

    it('restarted collectors are taken back and see what the other stored', async () => {
      await Promise.all([pool.start('collector1'), pool.start('collector2')]);
      await lb.waitForServer('collector1', 'UP');
      await lb.waitForServer('collector2', 'UP');
      expect(await post('rep-none-001')).toBe(202);
      expect(await post('rep-kill-0000')).toBe(200);
      // every 5xx any client saw through haproxy was its 503 (with Retry-After, above)
      const fiveXx = lb.requests().filter((r) => r.status >= 500);
      expect(fiveXx.every((r) => r.status === 503)).toBe(true);
    }, 60_000);

    it('dashboards show each figure once with two collectors scraped, as with one', async () => {
      const target = (name: string) => ({
        job: 'voipready',
        target: `127.0.0.1:${pool.port(name)}`,
        bearerToken: VIEWER,
      });
      const both = await startPrometheus([target('collector1'), target('collector2')]);
      const one = await startPrometheus([target('collector1')]).catch(async (err) => {
        await both.stop();
        throw err;
      });
      try {
        for (const [prometheus, n] of [
          [both, 2],
          [one, 1],
        ] as const)
          await waitUntil(
            `${n} collector(s) scraped`,
            async () => (await promQuery(prometheus.url, 'voipready_site_ready')).length === n,
            30_000,
          );
        const key = (s: PromSample) => {
          const { instance: _, ...labels } = s.metric;
          return JSON.stringify(Object.entries(labels).sort());
        };
        let compared = 0;
        for (const file of readdirSync(join(REPO_ROOT, 'dashboards')).filter((f) =>
          f.endsWith('prometheus.json'),
        )) {
          const dashboard = JSON.parse(readFileSync(join(REPO_ROOT, 'dashboards', file), 'utf8')) as {
            panels: { title: string; targets: { expr: string }[] }[];
          };
          for (const panel of dashboard.panels) {
            for (const { expr } of panel.targets) {
              // per-collector facts (up, request rates) differ by design
              if (/\bup\{|rate\(/.test(expr)) continue;
              const q = expr.replace(/\$(site|peer|direction|host)\b/g, '.*');
              const [a, b] = await Promise.all([promQuery(both.url, q), promQuery(one.url, q)]);
              const what = `${file}: ${panel.title}: ${q}`;
              if (/voipready_(path|site)_/.test(expr)) expect(a.length, what).toBeGreaterThan(0);
              // the same series (nothing twice), with the same values (evidence age moves between scrapes)
              expect(a.map(key).sort(), what).toEqual(b.map(key).sort());
              const expected = new Map(b.map((s) => [key(s), Number(s.value[1])]));
              for (const s of a) {
                const tolerance = expr.includes('evidence_age') ? 5 : 1e-9;
                expect(Math.abs(Number(s.value[1]) - expected.get(key(s))!), what).toBeLessThanOrEqual(
                  tolerance,
                );
              }
              compared++;
            }
          }
        }
        expect(compared).toBeGreaterThan(20);
      } finally {
        await Promise.all([both.stop(), one.stop()]);
      }
    }, 90_000);
  },
);
