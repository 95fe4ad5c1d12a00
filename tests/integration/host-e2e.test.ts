// End to end: the agent's host entry collects real host health (a tmpfs it fills, a syslog file, a
// backup directory), queues each report on disk and sends it to a real collector with a real influxd
// behind it; the site's readiness shows maintenance beside VoIP readiness, /metrics and InfluxDB
// carry the host series, and a collector restart in the middle loses no report.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemHostDeps } from '../../agent/host/deps.js';
import { persistentHostCollector } from '../../agent/host/state.js';
import { type RunningAgent, startAgent } from '../../agent/service/agent.js';
import { systemClock } from '../../agent/service/clock.js';
import { postReport } from '../../agent/uplink/post-report.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { parseAgentConfig } from '../../src/config/agent.js';
import { CollectorConfig } from '../../src/config/collector.js';
import { HostResult } from '../../src/host-schema.js';
import { influxQuery, startInfluxd } from '../helpers/influxd.js';
import { type MountNamespace, mountNamespaceUnavailable, startTmpfsNamespace } from '../helpers/mountns.js';
import { binaryMissing, type Service, waitUntil } from '../helpers/service.js';

const skip = binaryMissing('influxd') ?? mountNamespaceUnavailable();
const hash = (t: string) => `sha256:${createHash('sha256').update(t).digest('hex')}`;
const AGENT_TOKEN = randomBytes(16).toString('hex');
const VIEWER_TOKEN = randomBytes(16).toString('hex');
const MIB = 1024 ** 2;

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

describe.skipIf(skip)(
  'host checks end to end: agent → queue → collector → readiness, /metrics, InfluxDB',
  () => {
    it('delivers every host report across a collector restart and shows it everywhere', async () => {
      const work = mkdtempSync(join(tmpdir(), 'voipready-host-e2e-'));
      cleanups.push(() => rmSync(work, { recursive: true, force: true }));
      const ns: MountNamespace = await startTmpfsNamespace(1, 32 * MIB);
      cleanups.push(() => ns.close());
      const disk = ns.paths[0]!;
      writeFileSync(join(disk, 'trace.log'), Buffer.alloc(8 * MIB, 1));
      const backups = join(work, 'backups');
      mkdirSync(backups);
      writeFileSync(join(backups, 'ic-config.zip'), 'x');
      const backupTime = (Date.now() - 5 * 3_600_000) / 1000;
      utimesSync(join(backups, 'ic-config.zip'), backupTime, backupTime);
      const syslog = join(work, 'syslog');
      writeFileSync(
        syslog,
        `<11>1 ${new Date().toISOString()} ic-srv ininotify 1 - - notifier lost its peer\n`,
      );

      const influx: Service = await startInfluxd();
      cleanups.push(() => influx.stop());
      const config = CollectorConfig.parse({
        collector: {
          agents: [{ name: 'ic-agent', site: 'branch-07', tokenHash: hash(AGENT_TOKEN) }],
          viewers: [{ name: 'ops', tokenHash: hash(VIEWER_TOKEN) }],
          influxdb: { url: influx.url, database: 'voipready_host_e2e', retryMax: '1s' },
          // the site's policy: a 32 MiB disk passes with 10 MiB free
          sites: { 'branch-07': { policy: { disk: { minFreeBytes: 10 * MIB } } } },
        },
      }).collector;
      const dataDir = join(work, 'collector');
      let collector: RunningCollector | undefined = await startCollector({
        config,
        dataDir,
        host: '127.0.0.1',
        port: 0,
      });
      cleanups.push(() => collector?.close());
      const port = collector.port;

      const agentYaml = `agent:
  name: ic-agent
  site: branch-07
  collector: { url: "http://127.0.0.1:${port}", token: "${AGENT_TOKEN}", timeout: 5s }
  queue: { dir: ${join(work, 'queue')} }
  retry: { initial: 200ms, max: 1s }
  host:
    interval: 1s
    disk: { paths: [${disk}] }
    eventlog: { source: syslog, syslogFiles: [${syslog}] }
    backups: [{ name: ic-config, glob: "${backups}/*.zip" }]
`;
      const parsed = parseAgentConfig(agentYaml, join(work, 'agent.yaml'));
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
      const agentConfig = parsed.config.agent;
      const queued: string[] = [];
      const agent: RunningAgent = await startAgent(agentConfig, {
        probe: () => Promise.reject(new Error('no probes configured')),
        host: persistentHostCollector(agentConfig.host!, agentConfig.queue.dir, systemHostDeps(), (err) => {
          throw err;
        }),
        send: (body) =>
          postReport({ url: `http://127.0.0.1:${port}`, token: AGENT_TOKEN, timeoutMs: 5000 }, body),
        clock: systemClock,
        log: (_level, event, msg, fields) => {
          if (process.env.HOST_E2E_DEBUG) console.error(event, msg);
          if (event === 'report.queued') queued.push(fields!.reportId as string);
        },
      });
      cleanups.push(() => agent.stop());
      const read = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${port}${path}`, {
          headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
        });
        expect(res.status, path).toBe(200);
        return path === '/metrics' ? res.text() : res.json();
      };

      await waitUntil(
        'two host reports delivered',
        async () => queued.length >= 2 && agent.queue.length === 0,
        60_000,
      );
      // the collector goes away; the agent keeps collecting into its queue
      await collector.close();
      collector = undefined;
      const before = queued.length;
      await waitUntil(
        'reports queued while the collector is down',
        async () => queued.length >= before + 2,
        60_000,
      );
      expect(agent.queue.length).toBeGreaterThan(0);
      collector = await startCollector({ config, dataDir, host: '127.0.0.1', port });
      await waitUntil('the queue drained after the restart', async () => agent.queue.length === 0, 60_000);
      // every report queued so far, those of the outage included, was delivered once the queue drained
      const delivered = [...queued];
      await agent.stop();

      const { reports } = (await read('/api/v1/reports?site=branch-07')) as {
        reports: { reportId: string }[];
      };
      const stored = new Set(reports.map((r) => r.reportId));
      for (const id of delivered) expect(stored.has(id), `report ${id} lost`).toBe(true);
      // a run after the drain may still sit in the agent's queue on disk: not lost either
      expect(stored.size + agent.queue.length).toBe(queued.length);

      // two verdicts side by side: no network evidence, maintenance judged with the site's policy
      const readiness = (await read('/api/v1/sites/branch-07/readiness')) as {
        ready: boolean;
        maintenance: {
          ready: boolean;
          hosts: { host: string; checks: { id: string; status: string; value: unknown }[] }[];
        };
      };
      expect(readiness.ready).toBe(false);
      const [host] = readiness.maintenance.hosts;
      const status = Object.fromEntries(host!.checks.map((c) => [c.id, c.status]));
      // the syslog error was counted once, by the first collection; the latest window has none
      expect(status).toEqual({ disk: 'pass', backup: 'pass', eventlog: 'pass' });
      expect(readiness.maintenance.ready).toBe(true);

      // /metrics carries the newest host result, in base units
      const metrics = (await read('/metrics')) as string;
      const sample = (name: string) => {
        const line = metrics
          .split('\n')
          .find((l) => l.startsWith(`${name}{`) && l.includes('site="branch-07"'));
        expect(line, name).toBeDefined();
        return Number(line!.split(' ').pop());
      };
      expect(sample('voipready_host_disk_size_bytes')).toBe(32 * MIB);
      const free = sample('voipready_host_disk_free_bytes');
      expect(free).toBeGreaterThan(20 * MIB);
      expect(free).toBeLessThanOrEqual(24 * MIB);
      expect(sample('voipready_host_disk_free_ratio')).toBeCloseTo(free / (32 * MIB), 3);
      expect(sample('voipready_host_backup_age_seconds') / 3600).toBeGreaterThan(4.9);
      expect(metrics).toMatch(
        /voipready_host_eventlog_errors\{site="branch-07",host="[^"]+",level="error"\} 0/,
      );
      expect(sample('voipready_host_maintenance_ready')).toBe(1);

      // InfluxDB: one disk point per delivered report
      await waitUntil(
        'every disk point in InfluxDB',
        async () => {
          const rows = await influxQuery(
            influx.url,
            'voipready_host_e2e',
            'SELECT count(freeBytes) FROM voipready_host_disk',
          );
          return rows[0]?.values[0]?.[1] === stored.size;
        },
        60_000,
      );
      const [series] = await influxQuery(
        influx.url,
        'voipready_host_e2e',
        'SELECT last(ageHours) FROM voipready_host_backup',
      );
      expect(series!.values[0]![1] as number).toBeGreaterThan(4.9);
      const [errors] = await influxQuery(
        influx.url,
        'voipready_host_e2e',
        'SELECT sum(errors) FROM voipready_host_eventlog',
      );
      expect(errors!.values[0]![1]).toBe(1);
      expect(HostResult.shape.host.safeParse(host!.host).success).toBe(true);
    }, 240_000);
  },
);
