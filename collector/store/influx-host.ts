// Host-health points for InfluxDB (docs/host.md), at the host result's collection time; tags site,
// agent, host (and path / backup); one measurement per part of the result.
import type { AgentReport } from '../../src/schemas.js';
import type { HostAssessment } from '../maintenance.js';
import type { SeriesPoint } from './store.js';

export const HOST_MEASUREMENTS = {
  disk: 'voipready_host_disk',
  eventlog: 'voipready_host_eventlog',
  backup: 'voipready_host_backup',
  system: 'voipready_host_system',
  maintenance: 'voipready_host_maintenance',
} as const;

type Fields = SeriesPoint['fields'];

/** Fields from the entries whose value is a number (nulls — not measured — are left out). */
function numbers(values: Record<string, number | null | undefined>): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(values)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return out;
}

export function hostPoints(report: AgentReport, judged: HostAssessment | undefined): SeriesPoint[] {
  const host = report.host;
  if (!host) return [];
  const timeMs = Date.parse(host.collectedAt);
  const tags = { site: report.site, agent: report.agent, host: host.host };
  const point = (measurement: string, extra: Record<string, string>, fields: Fields): SeriesPoint[] =>
    Object.keys(fields).length > 0 ? [{ measurement, tags: { ...tags, ...extra }, fields, timeMs }] : [];
  const e = host.eventlog;
  return [
    ...host.disks.flatMap((d) =>
      point(
        HOST_MEASUREMENTS.disk,
        { path: d.path },
        numbers({
          totalBytes: d.totalBytes,
          freeBytes: d.freeBytes,
          freePct: d.freePct,
          growthBytesPerDay: d.growthBytesPerDay,
          daysUntilFull: d.daysUntilFull,
        }),
      ),
    ),
    ...point(
      HOST_MEASUREMENTS.eventlog,
      {},
      numbers({
        critical: e.critical,
        errors: e.errors,
        warnings: e.warnings,
        excluded: e.excluded,
      }),
    ),
    ...host.backups.flatMap((b) =>
      point(
        HOST_MEASUREMENTS.backup,
        { backup: b.name },
        {
          ...numbers({ ageHours: b.ageHours }),
          failed: b.failed !== undefined,
        },
      ),
    ),
    ...point(
      HOST_MEASUREMENTS.system,
      {},
      numbers({
        cpuPct: host.system.cpuPct,
        load1: host.system.load1,
        memUsedPct: host.system.memUsedPct,
        swapUsedPct: host.system.swapUsedPct,
        uptimeS: host.system.uptimeS,
      }),
    ),
    ...(judged
      ? point(
          HOST_MEASUREMENTS.maintenance,
          {},
          {
            ready: judged.ready,
            reportId: report.reportId,
            ...Object.fromEntries(judged.checks.map((c) => [`${c.id}Status`, c.status])),
          },
        )
      : []),
  ];
}
