// The human-readable host result: the maintenance table (one row per check), then the disks, the
// event log's top offenders, the backups and the system figures, as plain text for a terminal.
import { formatBytes } from '../host-policy.js';
import type { HostResult } from '../host-schema.js';
import { tableLines } from './table.js';

const STATUS_LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', unknown: 'UNKNOWN' } as const;

const orDash = (v: number | string | null | undefined, suffix = ''): string =>
  v === null || v === undefined ? '-' : `${v}${suffix}`;

export function renderHostTable(r: HostResult): string {
  const out = [`voipready host ${r.host} at ${r.collectedAt} — ${r.ready ? 'READY' : 'NOT READY'}`, ''];
  out.push(
    ...tableLines(
      ['CHECK', 'STATUS', 'VALUE', 'LIMIT', 'EVIDENCE'],
      r.checks.map((c) => [
        c.id,
        STATUS_LABEL[c.status],
        orDash(c.value, c.unit ? ` ${c.unit}` : ''),
        orDash(c.limit, c.unit ? ` ${c.unit}` : ''),
        c.evidence,
      ]),
    ),
    '',
  );
  if (r.disks.length > 0) {
    out.push(
      ...tableLines(
        ['PATH', 'MOUNT', 'TYPE', 'SIZE', 'FREE', 'FREE %', 'GROWTH/DAY', 'DAYS TO FULL'],
        r.disks.map((d) => [
          d.path,
          orDash(d.mount),
          orDash(d.fsType),
          d.totalBytes === null ? '-' : formatBytes(d.totalBytes),
          d.freeBytes === null ? (d.unknownReason ?? '-') : formatBytes(d.freeBytes),
          orDash(d.freePct),
          d.growthBytesPerDay === null ? '-' : formatBytes(d.growthBytesPerDay),
          orDash(d.daysUntilFull),
        ]),
        { alignRight: [3, 4, 5, 6, 7] },
      ),
      '',
    );
  }
  const top = [...r.eventlog.top, ...(r.eventlog.topWarnings ?? [])];
  if (top.length > 0) {
    out.push(
      ...tableLines(
        ['LEVEL', 'COUNT', 'PROVIDER', 'EVENT ID', 'SAMPLE'],
        top.map((o) => [o.level, String(o.count), o.provider, orDash(o.eventId), o.sample.slice(0, 100)]),
        { alignRight: [1] },
      ),
      '',
    );
  }
  if (r.backups.length > 0) {
    out.push(
      ...tableLines(
        ['BACKUP', 'NEWEST', 'AGE (H)'],
        r.backups.map((b) => [b.name, b.newest ?? b.failed ?? b.unknownReason ?? '-', orDash(b.ageHours)]),
        { alignRight: [2] },
      ),
      '',
    );
  }
  const s = r.system;
  out.push(
    `system: CPU ${orDash(s.cpuPct?.toFixed(1), ' %')}, load ${orDash(s.load1?.toFixed(2))}, ` +
      `memory ${orDash(s.memUsedPct?.toFixed(1), ' %')} used, swap ${orDash(s.swapUsedPct?.toFixed(1), ' %')} used, ` +
      `up ${orDash(s.uptimeS === null ? null : Math.round(s.uptimeS / 3600), ' h')}`,
  );
  return `${out.join('\n')}\n`;
}
