// Judging host health against the policy's maintenance keys (disk, eventlog, backup, system): the
// handbook's "Customer Must Perform Regular System Maintenance/Monitoring". Pure: the agent judges
// with its local policy, the collector judges the same result again with the site's policy.
import type { HostBackup, HostDisk, HostEventLog, HostResult, HostSystem } from './host-schema.js';
import { check, DEFAULT_POLICY, type Policy, round, unknown } from './policy.js';
import type { Check, CheckStatus } from './schemas.js';

/** The maintenance checks, in the handbook's order; `system` only where the policy sets a limit. */
export const HOST_CHECK_IDS = ['system', 'disk', 'backup', 'eventlog'] as const;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${round(v, i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Items judged one by one: any failure speaks for the check, then what was not measured, then passes. */
interface Verdicts {
  failures: string[];
  unknowns: string[];
  passes: string[];
}

function combine(
  id: Check['id'],
  v: Verdicts,
  severity: 'fail' | 'warn',
  value: Check['value'],
  limit: Check['limit'],
  unit: string | null,
): Check {
  const evidence = [...v.failures, ...v.unknowns, ...v.passes].join('; ');
  const status: CheckStatus = v.failures.length > 0 ? severity : v.unknowns.length > 0 ? 'unknown' : 'pass';
  return check(id, status, status === 'unknown' ? null : value, limit, unit, evidence);
}

function diskVerdict(d: HostDisk, policy: Policy, v: Verdicts): void {
  const { minFreePct, minFreeBytes, minDaysUntilFull } = policy.disk;
  if (d.freeBytes === null || d.freePct === null || d.totalBytes === null) {
    v.unknowns.push(`${d.path}: not measured: ${d.unknownReason ?? 'no figures'}`);
    return;
  }
  const free = `${d.path}: ${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)} (${round(d.freePct, 1)} %)`;
  const problems: string[] = [];
  if (d.freePct < minFreePct) problems.push(`below ${minFreePct} % free`);
  if (d.freeBytes < minFreeBytes) problems.push(`below ${formatBytes(minFreeBytes)} free`);
  let forecast: string;
  if (d.daysUntilFull !== null) {
    forecast = `full in ${round(d.daysUntilFull, 1)} days at ${formatBytes(d.growthBytesPerDay ?? 0)}/day`;
    if (d.daysUntilFull < minDaysUntilFull) problems.push(`fills within ${minDaysUntilFull} days`);
  } else if (d.growthBytesPerDay !== null) {
    forecast = 'not filling';
  } else {
    // Too little history does not make the check unknown: the free space was measured.
    forecast = `no forecast yet (${d.historySamples ?? 1} sample(s) over ${round(d.historyHours ?? 0, 1)} h)`;
  }
  const line = `${free}, ${forecast}`;
  if (problems.length > 0) v.failures.push(`${line}: ${problems.join(', ')}`);
  else v.passes.push(line);
}

/** "Ensure adequate hard drive space is available ... with increased tracing levels." */
export function judgeDisks(disks: HostDisk[], policy: Policy): Check {
  const { minFreePct, severity } = policy.disk;
  if (disks.length === 0) return unknown('disk', 'no disk path was measured', minFreePct, '%');
  const v: Verdicts = { failures: [], unknowns: [], passes: [] };
  for (const d of disks) diskVerdict(d, policy, v);
  const measured = disks.filter((d) => d.freePct !== null).map((d) => d.freePct!);
  const worst = measured.length > 0 ? round(Math.min(...measured), 2) : null;
  return combine('disk', v, severity, worst, minFreePct, '%');
}

function offenders(e: HostEventLog): string {
  const top = e.top.slice(0, 3).map((o) => {
    const id = o.eventId === null ? '' : ` ${o.eventId}`;
    return `${o.provider}${id} ×${o.count} ("${o.sample.slice(0, 120)}")`;
  });
  return top.length > 0 ? `; top: ${top.join(', ')}` : '';
}

/** "Monitor the Windows event Logs for anything which could be system impacting." */
export function judgeEventLog(e: HostEventLog, policy: Policy): Check {
  const { maxErrors, severity } = policy.eventlog;
  if (e.critical === null || e.errors === null) {
    return unknown('eventlog', `${e.source}: ${e.unknownReason ?? 'not read'}`, maxErrors, 'events');
  }
  const n = e.critical + e.errors;
  const since = e.since ? ` since ${e.since}` : '';
  const parts = [`${e.critical} critical, ${e.errors} error event(s) in ${e.source}${since}${offenders(e)}`];
  if (e.excluded) parts.push(`${e.excluded} left out by the include/exclude rules`);
  if (e.warnings) parts.push(`${e.warnings} warning(s) listed, not counted`);
  if (e.warning) parts.push(`read in part: ${e.warning}`);
  return check('eventlog', n <= maxErrors ? 'pass' : severity, n, maxErrors, 'events', parts.join('; '));
}

function backupVerdict(b: HostBackup, maxAgeHours: number, v: Verdicts): void {
  if (b.failed) {
    v.failures.push(`${b.name}: ${b.failed}`);
    return;
  }
  if (b.ageHours === null || b.newest === null) {
    v.unknowns.push(`${b.name}: ${b.unknownReason ?? 'no backup time'}`);
    return;
  }
  // A time ahead of the clock says the clock or the file is wrong, not that the backup is fresh.
  if (b.ageHours < -0.1) {
    v.unknowns.push(`${b.name}: newest backup dated ${b.newest}, ${round(-b.ageHours, 1)} h in the future`);
    return;
  }
  const line = `${b.name}: newest ${b.newest}${b.file ? ` (${b.file})` : ''}, ${round(Math.max(0, b.ageHours), 1)} h old`;
  if (b.ageHours > maxAgeHours) v.failures.push(`${line}, older than ${maxAgeHours} h`);
  else v.passes.push(line);
}

/** "Perform regular system/configuration backups." */
export function judgeBackups(backups: HostBackup[], policy: Policy): Check {
  const { maxAgeHours, severity } = policy.backup;
  if (backups.length === 0)
    return unknown('backup', 'no backup location or command configured', maxAgeHours, 'h');
  const v: Verdicts = { failures: [], unknowns: [], passes: [] };
  for (const b of backups) backupVerdict(b, maxAgeHours, v);
  const ages = backups.filter((b) => b.ageHours !== null && !b.failed).map((b) => b.ageHours!);
  const oldest = ages.length > 0 ? round(Math.max(...ages), 2) : null;
  return combine('backup', v, severity, oldest, maxAgeHours, 'h');
}

const SYSTEM_LIMITS = [
  ['cpuPct', 'maxCpuPct', 'CPU', '%'],
  ['load1', 'maxLoad1', 'load (1 min)', ''],
  ['memUsedPct', 'maxMemUsedPct', 'memory used', '%'],
  ['swapUsedPct', 'maxSwapUsedPct', 'swap used', '%'],
] as const;

/** "Monitor system performance": judged only against the limits the policy sets; else undefined. */
export function judgeSystem(s: HostSystem, policy: Policy): Check | undefined {
  const limits = SYSTEM_LIMITS.filter(([, key]) => policy.system[key] !== null);
  if (limits.length === 0) return undefined;
  const v: Verdicts = { failures: [], unknowns: [], passes: [] };
  for (const [field, key, label, unit] of limits) {
    const limit = policy.system[key]!;
    const value = s[field];
    if (value === null) v.unknowns.push(`${label}: not measured on this platform`);
    else if (value > limit) v.failures.push(`${label} ${round(value, 1)}${unit} above ${limit}${unit}`);
    else v.passes.push(`${label} ${round(value, 1)}${unit} (limit ${limit}${unit})`);
  }
  const first = limits[0]!;
  return combine('system', v, policy.system.severity, s[first[0]], policy.system[first[1]], first[3] || null);
}

/** Every maintenance check for one host result (its own `checks` are ignored: judged afresh). */
export function judgeHost(
  result: Pick<HostResult, 'disks' | 'eventlog' | 'backups' | 'system'>,
  policy: Policy = DEFAULT_POLICY,
): Check[] {
  const system = judgeSystem(result.system, policy);
  return [
    ...(system ? [system] : []),
    judgeDisks(result.disks, policy),
    judgeBackups(result.backups, policy),
    judgeEventLog(result.eventlog, policy),
  ];
}
