// The collector with its real neighbours: a real influxd receives the measurements (queried back
// with InfluxQL) and a real prometheus scrapes /metrics (queried through its HTTP API). Also: with
// InfluxDB down, reports are still acknowledged and their points arrive once it is up.
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemHostDeps } from '../../agent/host/deps.js';
import { HOST_STATE_FILE, persistentHostCollector } from '../../agent/host/state.js';
import { samplePriority, sampleReport } from '../../bench/collector-report.js';
import { hashToken } from '../../collector/auth.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { HOST_MEASUREMENTS } from '../../collector/store/influx-host.js';
import { PRIORITY_MEASUREMENT } from '../../collector/store/influx-priority.js';
import { CollectorConfig } from '../../src/config/collector.js';
import { HostConfig } from '../../src/config/host.js';
import {
  type CliProcess,
  killAllCli,
  parseProbeJson,
  probeJson,
  REPO_ROOT,
  runCli,
  startCli,
} from '../helpers/cli.js';
import { influxQuery, startInfluxd } from '../helpers/influxd.js';
import {
  createTopology,
  DC_ADDR,
  netnsUnavailableReason,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';
import { type PromSample, promQuery, startPrometheus } from '../helpers/prometheus.js';
import { binaryMissing, freeLoopbackPort, type Service, waitUntil } from '../helpers/service.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-prometheus-01234567';
const missing = binaryMissing('influxd') ?? binaryMissing('prometheus');

function collectorConfig(influxUrl: string, retentionPolicy = 'autogen') {
  return CollectorConfig.parse({
    collector: {
      agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) }],
      viewers: [{ name: 'prometheus', tokenHash: hashToken(VIEWER) }],
      influxdb: {
        url: influxUrl,
        database: 'voipready_test',
        retentionPolicy,
        retentionDuration: '30d',
        retryMax: '1s',
      },
    },
  }).collector;
}

async function post(url: string, body: unknown): Promise<number> {
  const res = await fetch(`${url}/api/v1/reports`, {
    method: 'POST',
    headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

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

async function collector(influxUrl: string, retentionPolicy?: string): Promise<RunningCollector> {
  const dataDir = mkdtempSync(join(tmpdir(), 'voipready-collector-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const running = await startCollector({
    config: collectorConfig(influxUrl, retentionPolicy),
    dataDir,
    host: '127.0.0.1',
    port: 0,
  });
  cleanups.push(() => running.close());
  return running;
}

describe.skipIf(missing)(
  `collector with real influxd and prometheus${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    let influx: Service;
    let prometheus: Service;
    let running: RunningCollector;
    /** The InfluxDB started after the outage (holds its points in the default retention policy). */
    let late: Service;
    const t0 = Date.now() - 5 * 60_000;
    const at = (min: number) => new Date(t0 + min * 60_000).toISOString();

    beforeAll(async () => {
      influx = await startInfluxd();
      cleanups.push(() => influx.stop());
      running = await collector(influx.url, 'voipready_30d');
      prometheus = await startPrometheus([
        { job: 'voipready', target: `127.0.0.1:${running.port}`, bearerToken: VIEWER },
      ]);
      cleanups.push(() => prometheus.stop());
    });

    it('writes one point per direction per probe to InfluxDB, in the configured retention policy', async () => {
      const reports = [
        sampleReport({ reportId: 'rep-influx-0001', createdAt: at(0), forward: { jitterMs: 1.25 } }),
        sampleReport({
          reportId: 'rep-influx-0002',
          createdAt: at(1),
          forward: {
            jitterMs: 2.5,
            received: 490,
            lost: 10,
            lossPct: 2,
            dscpReceived: { '46': 480, '0': 10 },
          },
          reverse: { jitterMs: 0.5 },
        }),
      ];
      for (const r of reports) expect(await post(running.url, r)).toBe(202);
      // a repeat is acknowledged and must not become a second point
      expect(await post(running.url, reports[0])).toBe(200);

      const q = `SELECT "jitterMs", "lost", "lossPct", "dscpHonoured", "reportId", "site", "agent", "peer", "codec", "direction" FROM "voipready_30d"."voipready_rtp" WHERE "site" = 'hq' ORDER BY time`;
      let rows: unknown[][] = [];
      await waitUntil(
        'four points in InfluxDB',
        async () => {
          rows = (await influxQuery(influx.url, 'voipready_test', q))[0]?.values ?? [];
          return rows.length >= 4;
        },
        15_000,
      );
      const series = (await influxQuery(influx.url, 'voipready_test', q))[0]!;
      const col = (name: string) => series.columns.indexOf(name);
      const byKey = new Map(series.values.map((v) => [`${v[col('reportId')]}/${v[col('direction')]}`, v]));
      expect(series.values).toHaveLength(4);
      const fwd2 = byKey.get('rep-influx-0002/forward')!;
      // at the probe's start
      expect(Date.parse(fwd2[col('time')] as string)).toBe(Date.parse(reports[1]!.probes[0]!.startedAt!));
      expect(fwd2[col('jitterMs')]).toBe(2.5);
      expect(fwd2[col('lost')]).toBe(10);
      expect(fwd2[col('lossPct')]).toBe(2);
      expect(fwd2[col('dscpHonoured')]).toBe(0);
      expect([fwd2[col('agent')], fwd2[col('peer')], fwd2[col('codec')]]).toEqual([
        'hq-agent-1',
        'dc1.example.net:4000',
        'g711u',
      ]);
      expect(byKey.get('rep-influx-0001/forward')![col('jitterMs')]).toBe(1.25);
      expect(byKey.get('rep-influx-0002/reverse')![col('jitterMs')]).toBe(0.5);
      // site, agent, peer, codec and direction are tags (indexed), not fields
      const tagKeys = await influxQuery(
        influx.url,
        'voipready_test',
        'SHOW TAG KEYS FROM "voipready_30d"."voipready_rtp"',
      );
      expect(tagKeys[0]?.values.flat().sort()).toEqual(['agent', 'codec', 'direction', 'peer', 'site']);
    });

    it('is scraped by prometheus: latest path figures, readiness and ingest counters', async () => {
      let jitter: PromSample[] = [];
      await waitUntil(
        'the forward jitter series in prometheus',
        async () => {
          jitter = await promQuery(
            prometheus.url,
            'voipready_path_jitter_seconds{site="hq",direction="forward"}',
          );
          return jitter.length === 1 && jitter[0]!.value[1] === '0.0025';
        },
        20_000,
      );
      expect(jitter[0]!.metric).toMatchObject({ job: 'voipready', peer: 'dc1.example.net:4000' });
      const loss = await promQuery(
        prometheus.url,
        'voipready_path_loss_ratio{site="hq",direction="forward"}',
      );
      expect(Number(loss[0]?.value[1])).toBeCloseTo(0.02, 6);
      const ready = await promQuery(prometheus.url, 'voipready_site_ready{site="hq"}');
      // forward EF arrived partly as CS0: not ready
      expect(ready[0]?.value[1]).toBe('0');
      const dscp = await promQuery(
        prometheus.url,
        'voipready_path_dscp_honoured{site="hq",direction="forward",traffic="rtp"}',
      );
      expect(dscp[0]?.value[1]).toBe('0');
      const stored = await promQuery(prometheus.url, 'voipready_reports_ingested_total{result="stored"}');
      expect(stored[0]?.value[1]).toBe('2');
      const dup = await promQuery(prometheus.url, 'voipready_reports_ingested_total{result="duplicate"}');
      expect(dup[0]?.value[1]).toBe('1');
      const hist = await promQuery(
        prometheus.url,
        'voipready_http_request_duration_seconds_count{route="/api/v1/reports",status_code="202"}',
      );
      expect(hist[0]?.value[1]).toBe('2');
      const up = await promQuery(prometheus.url, 'up{job="voipready"}');
      expect(up[0]?.value[1]).toBe('1');
    });

    it('acknowledges reports while InfluxDB is down and delivers their points once it is up', async () => {
      const port = await freeLoopbackPort();
      const down = await collector(`http://127.0.0.1:${port}`);
      expect(await post(down.url, sampleReport({ reportId: 'rep-outage-0001', createdAt: at(2) }))).toBe(202);
      // the second ran the priority test: 6 more points (2 classes × 3 phases)
      const withPriority = sampleReport({ reportId: 'rep-outage-0002', createdAt: at(3) });
      withPriority.probes[0]!.priority = samplePriority(0.5, 40);
      expect(await post(down.url, withPriority)).toBe(202);
      expect(await down.app.collector.store.outboxSize()).toBe(10);
      const readyz = await (await fetch(`${down.url}/readyz`)).json();
      expect(readyz).toMatchObject({ ready: true });
      late = await startInfluxd({ port });
      cleanups.push(() => late.stop());
      await waitUntil(
        'the outbox to drain',
        async () => (await down.app.collector.store.outboxSize()) === 0,
        20_000,
      );
      const rows = await influxQuery(
        late.url,
        'voipready_test',
        `SELECT "reportId", "direction", "jitterMs" FROM "voipready_rtp" ORDER BY time`,
      );
      expect(rows[0]?.values.map((v) => `${v[1]}/${v[2]}`)).toEqual([
        'rep-outage-0001/forward',
        'rep-outage-0001/reverse',
        'rep-outage-0002/forward',
        'rep-outage-0002/reverse',
      ]);
      const metrics = await (
        await fetch(`${down.url}/metrics`, { headers: { authorization: `Bearer ${VIEWER}` } })
      ).text();
      expect(metrics).toMatch(/^voipready_influx_write_failures_total [1-9]\d*$/m);
      expect(metrics).toMatch(/^voipready_influx_points_written_total 10$/m);
    });

    it('serves every panel query of the Grafana dashboards', async () => {
      const dashboard = (file: string) =>
        JSON.parse(readFileSync(join(REPO_ROOT, 'dashboards', file), 'utf8')) as {
          panels: { title: string; targets: { expr?: string; query?: string }[] }[];
        };
      for (const panel of dashboard('voipready-prometheus.json').panels) {
        for (const t of panel.targets) {
          const result = await promQuery(prometheus.url, t.expr!.replace(/\$(site|peer|direction)\b/g, '.*'));
          // every path and site series exists for the site that reported
          if (/voipready_(path|site)_/.test(t.expr!)) expect(result.length, panel.title).toBeGreaterThan(0);
        }
      }
      for (const panel of dashboard('voipready-influxdb.json').panels) {
        for (const t of panel.targets) {
          const q = t
            .query!.replaceAll('$site', 'hq')
            .replace(/\$(peer|direction)\b/g, '.*')
            .replaceAll('$timeFilter', 'time > now() - 1d')
            .replaceAll('$__interval', '1m');
          const series = await influxQuery(late.url, 'voipready_test', q);
          expect(series.length, panel.title).toBeGreaterThan(0);
        }
      }
    });
  },
);

interface Dashboard {
  title: string;
  templating: { list: { name: string; type: string; query?: unknown }[] };
  panels: { title: string; targets: { expr?: string; query?: string }[] }[];
}

const DASHBOARDS = readdirSync(join(REPO_ROOT, 'dashboards'))
  .filter((f) => f.endsWith('.json'))
  .map((file) => ({
    file,
    influx: file.includes('influxdb'),
    dashboard: JSON.parse(readFileSync(join(REPO_ROOT, 'dashboards', file), 'utf8')) as Dashboard,
  }));

const EXPORTED = new Set(
  ['metrics.ts', 'metrics-host.ts', 'metrics-priority.ts'].flatMap((f) =>
    [...readFileSync(join(REPO_ROOT, 'collector', f), 'utf8').matchAll(/'(voipready_[a-z_]+)'/g)].map(
      (m) => m[1]!,
    ),
  ),
);
/** The measurements the collector writes to InfluxDB. */
const WRITTEN = new Set(['voipready_rtp', PRIORITY_MEASUREMENT, ...Object.values(HOST_MEASUREMENTS)]);

/** A Prometheus metric name in a query, without a histogram's _bucket/_count/_sum suffix. */
const metricNames = (expr: string) =>
  (expr.match(/voipready_[a-z_]+/g) ?? []).map((m) => m.replace(/_(bucket|count|sum)$/, ''));

describe('dashboards parse and name only metrics the collector exports', () => {
  it('every dashboard has panels, the site/peer/direction (host: site/host) variables, known metrics', () => {
    expect(DASHBOARDS.map((d) => d.file).sort()).toEqual([
      'voipready-host-influxdb.json',
      'voipready-host-prometheus.json',
      'voipready-influxdb.json',
      'voipready-overview-influxdb.json',
      'voipready-overview-prometheus.json',
      'voipready-prometheus.json',
    ]);
    for (const { file, influx, dashboard } of DASHBOARDS) {
      expect(dashboard.panels.length, file).toBeGreaterThan(0);
      const vars = dashboard.templating.list.map((v) => v.name);
      expect(vars, file).toContain('site');
      const host = file.includes('-host-');
      if (host) expect(vars, file).toContain('host');
      else if (!file.includes('overview'))
        expect(vars, file).toEqual(expect.arrayContaining(['peer', 'direction']));
      for (const panel of dashboard.panels) {
        expect(panel.targets.length, `${file}: ${panel.title}`).toBeGreaterThan(0);
        for (const t of panel.targets) {
          if (influx) {
            const from = [...t.query!.matchAll(/FROM "([a-z_]+)"/g)].map((m) => m[1]!);
            expect(from.length, panel.title).toBeGreaterThan(0);
            for (const m of from) {
              expect(WRITTEN.has(m), `${file}: ${panel.title}: ${m}`).toBe(true);
              expect(m.startsWith('voipready_host_'), `${file}: ${panel.title}: ${m}`).toBe(host);
            }
          } else
            for (const m of metricNames(t.expr!)) {
              expect(EXPORTED.has(m), `${file}: ${panel.title}: ${m}`).toBe(true);
              expect(m.startsWith('voipready_host_'), `${file}: ${panel.title}: ${m}`).toBe(host);
            }
        }
      }
    }
  });
});

const unavailableRuns = missing ?? netnsUnavailableReason();
const MEDIA_PORT = 5004;

describe.skipIf(unavailableRuns)(
  `every panel shows data from real probe runs (hq passing, branch with EF rewritten)${unavailableRuns ? ` (skipped: ${unavailableRuns})` : ''}`,
  () => {
    let topo: Topology;
    let reflector: CliProcess;
    let influx: Service;
    let prometheus: Service;
    let running: RunningCollector;
    const AGENTS = { hq: 'agent-token-hq-real-0123456789ab', branch: 'agent-token-branch-real-012345678' };
    const peer = `${DC_ADDR}:${MEDIA_PORT}`;

    /** Posts a voipready.report/1 as the site's agent: probes, or (host checks only) none and a host result. */
    async function postAs(
      site: 'hq' | 'branch',
      reportId: string,
      content: { probes: unknown[]; host?: unknown },
    ) {
      const res = await fetch(`${running.url}/api/v1/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${AGENTS[site]}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          schema: 'voipready.report/1',
          reportId,
          site,
          agent: `${site}-agent`,
          createdAt: new Date().toISOString(),
          ...content,
        }),
      });
      expect(res.status, await res.text()).toBe(202);
    }

    async function probeAndPost(site: 'hq' | 'branch', reportId: string) {
      const { json } = await probeJson(peer, { ns: topo.site, calls: 2, durationS: 2, waitS: 1 });
      await postAs(site, reportId, { probes: [json] });
      return json;
    }

    /**
     * One host collection by the agent's code (real statfs, syslog file, backup glob) with the
     * agent's saved state holding two earlier disk samples (1 and 2 h ago, 1 and 2 GiB more free),
     * so there is a days-to-full forecast; posted as a host-only report like the agent's.
     */
    async function hostRunAndPost(
      site: 'hq' | 'branch',
      reportId: string,
      backupAgeH: number,
      syslogPri: number,
    ) {
      const dir = mkdtempSync(join(tmpdir(), `voipready-host-${site}-`));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      mkdirSync(join(dir, 'backups'));
      const backup = join(dir, 'backups', 'ic-config.zip');
      writeFileSync(backup, 'x');
      const backupTime = (Date.now() - backupAgeH * 3_600_000) / 1000;
      utimesSync(backup, backupTime, backupTime);
      const syslog = join(dir, 'syslog');
      writeFileSync(
        syslog,
        `<${syslogPri}>1 ${new Date().toISOString()} ic-srv ininotify 1 - - notifier lost its peer\n`,
      );
      const { bavail, bsize } = statfsSync(dir);
      const now = Date.now();
      const GIB = 1024 ** 3;
      const samples = [
        [now - 7_200_000, bavail * bsize + 2 * GIB],
        [now - 3_600_000, bavail * bsize + GIB],
      ];
      writeFileSync(join(dir, HOST_STATE_FILE), JSON.stringify({ disks: { [dir]: samples }, syslog: {} }));
      const config = HostConfig.parse({
        disk: { paths: [dir] },
        eventlog: { source: 'syslog', syslogFiles: [syslog] },
        backups: [{ name: 'ic-config', glob: `${dir}/backups/*.zip` }],
      });
      const host = await persistentHostCollector(config, dir, systemHostDeps(), (err) => {
        throw err;
      })();
      await postAs(site, reportId, { probes: [], host });
      return host;
    }

    beforeAll(async () => {
      topo = await createTopology();
      cleanups.push(() => topo.destroy());
      // --accept-load: the priority test's runs send their best-effort load to it
      reflector = startCli(['reflector', '--listen', `${DC_ADDR}:${MEDIA_PORT}`, '--accept-load'], {
        ns: topo.dc,
      });
      cleanups.push(async () => {
        await reflector.stop();
        await killAllCli();
      });
      await reflector.waitForStderr(/accepting load/, 10_000);
      influx = await startInfluxd();
      cleanups.push(() => influx.stop());
      const dataDir = mkdtempSync(join(tmpdir(), 'voipready-collector-'));
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const config = CollectorConfig.parse({
        collector: {
          agents: [
            { name: 'hq-agent', site: 'hq', tokenHash: hashToken(AGENTS.hq) },
            { name: 'branch-agent', site: 'branch', tokenHash: hashToken(AGENTS.branch) },
          ],
          viewers: [{ name: 'prometheus', tokenHash: hashToken(VIEWER) }],
          influxdb: { url: influx.url, database: 'voipready_real', retryMax: '1s' },
        },
      }).collector;
      running = await startCollector({ config, dataDir, host: '127.0.0.1', port: 0 });
      cleanups.push(() => running.close());
      prometheus = await startPrometheus([
        { job: 'voipready', target: `127.0.0.1:${running.port}`, bearerToken: VIEWER },
      ]);
      cleanups.push(() => prometheus.stop());
    }, 120_000);

    it('the runs: hq passes DSCP, branch has EF rewritten to CS0 on its forward path (nft counts it)', async () => {
      const hq = await probeAndPost('hq', 'rep-real-hq-1');
      expect(hq.checks.find((c) => c.id === 'dscp-rtp')?.status).toBe('pass');
      await topo.impair({
        counters: ['fwd_ef_to_cs0'],
        forward: [
          `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${MEDIA_PORT} ip dscp ef counter name "fwd_ef_to_cs0" ip dscp set cs0`,
        ],
      });
      const branch = await probeAndPost('branch', 'rep-real-branch-1');
      expect((await topo.counters()).fwd_ef_to_cs0!.packets).toBeGreaterThan(0);
      expect(branch.checks.find((c) => c.id === 'dscp-rtp')?.status).toBe('fail');
      await topo.impair({ counters: [], forward: [] });
      // a second run each: counters and rates have more than one sample
      await probeAndPost('hq', 'rep-real-hq-2');
      // host health: hq with a 5 h old backup and an info event; branch with a 10 day old backup
      // and an error event (syslog PRI 11: user.err)
      const hqHost = await hostRunAndPost('hq', 'rep-real-hq-host', 5, 14);
      const branchHost = await hostRunAndPost('branch', 'rep-real-branch-host', 240, 11);
      const status = (h: typeof hqHost, id: string) => h.checks.find((c) => c.id === id)?.status;
      expect([status(hqHost, 'backup'), status(hqHost, 'eventlog')]).toEqual(['pass', 'pass']);
      expect([status(branchHost, 'backup'), status(branchHost, 'eventlog')]).toEqual(['fail', 'fail']);
      expect(branchHost.eventlog.errors).toBe(1);
      expect(hqHost.disks[0]!.daysUntilFull).toBeGreaterThan(0);
      await waitUntil(
        'prometheus to hold both sites, three scrapes each',
        async () =>
          (await promQuery(prometheus.url, 'count_over_time(voipready_site_ready[1m]) >= 3')).length === 2,
        30_000,
      );
      let counted: unknown;
      await waitUntil(
        'the InfluxDB points of every run (3 runs × 2 directions × 2 calls: a point per stream)',
        async () => {
          const q = 'SELECT count("jitterMs") FROM "voipready_rtp"';
          counted = (await influxQuery(influx.url, 'voipready_real', q))[0]?.values[0]?.[1];
          return counted === 12;
        },
        30_000,
      ).catch((err) => {
        throw new Error(`${(err as Error).message} (count is ${String(counted)})`);
      });
      const honoured = async (site: string) =>
        (
          await promQuery(
            prometheus.url,
            `voipready_path_dscp_honoured{site="${site}",direction="forward",traffic="rtp"}`,
          )
        )[0]?.value[1];
      expect(await honoured('hq')).toBe('1');
      expect(await honoured('branch')).toBe('0');
      await waitUntil(
        'the host points of both sites in InfluxDB',
        async () =>
          (
            await influxQuery(
              influx.url,
              'voipready_real',
              `SELECT count("freeBytes") FROM "${HOST_MEASUREMENTS.disk}"`,
            )
          )[0]?.values[0]?.[1] === 2,
        30_000,
      );
      // branch's old backup and error event: not maintained, on the next scrape
      await waitUntil(
        'prometheus to hold branch not maintenance-ready',
        async () =>
          (await promQuery(prometheus.url, 'voipready_host_maintenance_ready{site="branch"}'))[0]
            ?.value[1] === '0',
        30_000,
      );
    }, 120_000);

    /**
     * A real `voipready probe --priority-test` (1 call, 6 s: 2 s per phase, 100 packets per class
     * in each) with a fixed 2 Mbit/s load, posted as the site's report. With no bottleneck on the
     * path the check is unknown (the load never congests it); the figures are still there. An nft
     * counter on the router counts the load datagrams (IP length 1228) that crossed it.
     */
    async function priorityRunAndPost(site: 'hq' | 'branch', reportId: string, forward: string[]) {
      const load = `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${MEDIA_PORT} meta length 1228 counter name "load"`;
      await topo.impair({
        counters: ['load', ...(forward.length ? ['fwd_ef_to_cs0'] : [])],
        forward: [load, ...forward],
      });
      const out = await runCli(
        [
          'probe',
          '--peer',
          peer,
          '--duration',
          '6s',
          '--wait',
          '1s',
          '--json',
          '--priority-test',
          '--load',
          '2mbit',
        ],
        { ns: topo.site, timeoutMs: 60_000 },
      );
      expect([0, 1], out.stderr).toContain(out.code);
      const json = parseProbeJson(out.stdout);
      const p = json.priority!;
      expect(p.loadNotSentReason).toBeNull();
      expect(p.loadSentPackets).toBeGreaterThan(100);
      expect((await topo.counters()).load!.packets).toBe(p.loadSentPackets);
      await topo.impair({ counters: [], forward: [] });
      await postAs(site, reportId, { probes: [json] });
      return json;
    }

    it('priority test runs (hq clean, branch with EF rewritten): InfluxDB points and Prometheus series agree with the documents', async () => {
      const EF_TO_CS0 = `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${MEDIA_PORT} ip dscp ef counter name "fwd_ef_to_cs0" ip dscp set cs0`;
      const runs = {
        hq: await priorityRunAndPost('hq', 'rep-real-hq-prio', []),
        branch: await priorityRunAndPost('branch', 'rep-real-branch-prio', [EF_TO_CS0]),
      };
      await waitUntil(
        'the priority points of both runs (2 classes × 3 phases each)',
        async () =>
          (
            await influxQuery(
              influx.url,
              'voipready_real',
              `SELECT count("sent") FROM "${PRIORITY_MEASUREMENT}"`,
            )
          )[0]?.values[0]?.[1] === 12,
        30_000,
      );
      await waitUntil(
        'prometheus to hold the priority series of both sites',
        async () =>
          (await promQuery(prometheus.url, 'voipready_priority_load_sent_bytes_per_second')).length === 2,
        30_000,
      );
      for (const [site, json] of Object.entries(runs)) {
        const p = json.priority!;
        const rows = await influxQuery(
          influx.url,
          'voipready_real',
          `SELECT "sent", "returned", "lossPct", "addedDelayP95Ms", "loadSentBps", "checkStatus", "class" FROM "${PRIORITY_MEASUREMENT}" WHERE "site" = '${site}' AND "phase" = 'loaded'`,
        );
        const series = rows[0]!;
        const col = (name: string) => series.columns.indexOf(name);
        for (const cls of ['ef', 'be'] as const) {
          const row = series.values.find((v) => v[col('class')] === cls)!;
          expect(row[col('sent')], `${site} ${cls}`).toBe(p[cls].loaded.sent);
          expect(row[col('returned')], `${site} ${cls}`).toBe(p[cls].loaded.returned);
          expect(row[col('lossPct')], `${site} ${cls}`).toBe(p[cls].loaded.lossPct);
          expect(row[col('addedDelayP95Ms')] ?? null, `${site} ${cls}`).toBe(p[cls].addedDelayP95Ms);
          expect(row[col('loadSentBps')]).toBe(p.loadSentBps);
          // the collector judges again with the site's policy (the handbook defaults here, as the probe)
          expect(row[col('checkStatus')]).toBe(json.checks.find((c) => c.id === 'priority')!.status);
        }
        const sent = await promQuery(
          prometheus.url,
          `voipready_priority_load_sent_bytes_per_second{site="${site}"}`,
        );
        expect(Number(sent[0]!.value[1])).toBeCloseTo(p.loadSentBps / 8, 6);
      }
    }, 120_000);

    it('every panel query of every dashboard, variables substituted per site, returns data', async () => {
      for (const site of ['hq', 'branch']) {
        const vars: Record<string, string> = { site, peer, direction: 'forward', host: hostname() };
        const sub = (q: string) =>
          q
            .replace(/\$(site|peer|direction|host)\b/g, (_, v: string) => vars[v]!)
            .replaceAll('$timeFilter', 'time > now() - 1h')
            .replaceAll('$__interval', '10s');
        for (const { file, influx: isInflux, dashboard } of DASHBOARDS) {
          for (const panel of dashboard.panels) {
            for (const t of panel.targets) {
              const what = `${file}: ${panel.title} (site ${site})`;
              const rows = isInflux
                ? (await influxQuery(influx.url, 'voipready_real', sub(t.query!))).length
                : (await promQuery(prometheus.url, sub(t.expr!))).length;
              expect(rows, what).toBeGreaterThan(0);
            }
          }
          // the InfluxDB variables are queries too
          for (const v of dashboard.templating.list) {
            if (isInflux && v.type === 'query')
              expect(
                (await influxQuery(influx.url, 'voipready_real', sub(String(v.query)))).length,
                `${file}: $${v.name}`,
              ).toBeGreaterThan(0);
          }
        }
      }
    }, 120_000);
  },
);
