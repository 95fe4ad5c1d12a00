// Host-health series on the collector's registry (docs/host.md): each host's latest host result,
// filled at scrape time, base units. Labels: site, host, and path / backup / level where a host has
// several of a kind (bounded by the report schema: at most 64 disks and 64 backups per host).
import { Gauge, type Registry } from 'prom-client';
import type { HostResult } from '../src/host-schema.js';
import { maintenanceAt } from './maintenance.js';
import type { SiteLatest } from './store/store.js';

export interface HostMetricsSources {
  latestHosts: () => Iterable<SiteLatest>;
  now: () => number;
}

type HostLabels = { site: string; host: string };

function eachHost(
  sources: HostMetricsSources,
  fn: (labels: HostLabels, host: HostResult, l: SiteLatest) => void,
) {
  for (const l of sources.latestHosts()) {
    const host = l.report.host;
    if (host) fn({ site: l.report.site, host: host.host }, host, l);
  }
}

export function registerHostMetrics(registry: Registry, sources: HostMetricsSources): void {
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (set: (labels: Record<L, string>, value: number) => void) => void,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill((labels, value) => this.set(labels, value));
      },
    });
  const hostLabels = ['site', 'host'] as const;
  const diskLabels = ['site', 'host', 'path'] as const;
  const eachDisk = (
    fn: (labels: Record<(typeof diskLabels)[number], string>, d: HostResult['disks'][number]) => void,
  ) =>
    eachHost(sources, (labels, host) => {
      for (const d of host.disks) fn({ ...labels, path: d.path }, d);
    });

  gauge(
    'voipready_host_disk_free_bytes',
    'Bytes an unprivileged writer can still use (df Avail), per path.',
    diskLabels,
    (set) => eachDisk((labels, d) => d.freeBytes !== null && set(labels, d.freeBytes)),
  );
  gauge('voipready_host_disk_size_bytes', 'Size of the filesystem holding each path.', diskLabels, (set) =>
    eachDisk((labels, d) => d.totalBytes !== null && set(labels, d.totalBytes)),
  );
  gauge(
    'voipready_host_disk_free_ratio',
    'Free share of the usable space (as df: avail / (used + avail)).',
    diskLabels,
    (set) => eachDisk((labels, d) => d.freePct !== null && set(labels, d.freePct / 100)),
  );
  gauge(
    'voipready_host_disk_days_until_full',
    'Days until the filesystem is full at the least-squares fill rate; absent while there is too little history or it is not filling.',
    diskLabels,
    (set) => eachDisk((labels, d) => d.daysUntilFull !== null && set(labels, d.daysUntilFull)),
  );
  gauge(
    'voipready_host_disk_fill_rate_bytes_per_second',
    'Bytes consumed per second (least-squares slope of free bytes; negative when freeing).',
    diskLabels,
    (set) =>
      eachDisk((labels, d) => d.growthBytesPerDay !== null && set(labels, d.growthBytesPerDay / 86_400)),
  );
  gauge(
    'voipready_host_eventlog_errors',
    'Critical (level="critical": Windows Level 1, journald PRIORITY 0-2) and error (level="error": Level 2, PRIORITY 3) events in the last collection window, after the include/exclude rules.',
    ['site', 'host', 'level'] as const,
    (set) =>
      eachHost(sources, (labels, host) => {
        const e = host.eventlog;
        if (e.critical !== null) set({ ...labels, level: 'critical' }, e.critical);
        if (e.errors !== null) set({ ...labels, level: 'error' }, e.errors);
      }),
  );
  gauge(
    'voipready_host_eventlog_warnings',
    'Warning events in the last collection window (listed, not judged).',
    hostLabels,
    (set) =>
      eachHost(
        sources,
        (labels, host) => host.eventlog.warnings !== undefined && set(labels, host.eventlog.warnings),
      ),
  );
  gauge(
    'voipready_host_backup_age_seconds',
    'Age of the newest backup per configured backup, at collection time; absent when unknown or failed.',
    ['site', 'host', 'backup'] as const,
    (set) =>
      eachHost(sources, (labels, host) => {
        for (const b of host.backups)
          if (b.ageHours !== null) set({ ...labels, backup: b.name }, b.ageHours * 3600);
      }),
  );
  gauge(
    'voipready_host_backup_failed',
    '1 when the backup command reported a failed backup (or no backup file exists), else 0.',
    ['site', 'host', 'backup'] as const,
    (set) =>
      eachHost(sources, (labels, host) => {
        for (const b of host.backups) set({ ...labels, backup: b.name }, b.failed ? 1 : 0);
      }),
  );
  const system = (name: string, help: string, value: (s: HostResult['system']) => number | null) =>
    gauge(name, help, hostLabels, (set) =>
      eachHost(sources, (labels, host) => {
        const v = value(host.system);
        if (v !== null) set(labels, v);
      }),
    );
  system('voipready_host_cpu_busy_ratio', 'CPU busy share since the previous collection.', (s) =>
    s.cpuPct === null ? null : s.cpuPct / 100,
  );
  system('voipready_host_load1', 'One-minute load average (absent on Windows).', (s) => s.load1);
  system('voipready_host_memory_used_ratio', 'Memory in use (Linux: MemTotal - MemAvailable).', (s) =>
    s.memUsedPct === null ? null : s.memUsedPct / 100,
  );
  system('voipready_host_swap_used_ratio', 'Swap in use (0 without swap; absent on Windows).', (s) =>
    s.swapUsedPct === null ? null : s.swapUsedPct / 100,
  );
  system('voipready_host_uptime_seconds', 'Time since the host booted.', (s) => s.uptimeS);
  gauge(
    'voipready_host_maintenance_ready',
    '1 when the host passes every maintenance check now (latest host result passes and is not stale), else 0.',
    hostLabels,
    (set) => {
      const now = sources.now();
      for (const l of sources.latestHosts()) {
        const [m] = maintenanceAt([l.assessment], now).hosts;
        if (m) set({ site: l.report.site, host: m.host }, m.ready ? 1 : 0);
      }
    },
  );
}
