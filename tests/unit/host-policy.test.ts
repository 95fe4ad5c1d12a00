// Judging host results (src/host-policy.ts) and the days-to-full fit (agent/host/disk.ts): pure.
import { describe, expect, it } from 'vitest';
import { type DiskSample, forecast, slopePerDay } from '../../agent/host/disk.js';
import { judgeBackups, judgeDisks, judgeEventLog, judgeHost, judgeSystem } from '../../src/host-policy.js';
import type { HostDisk, HostEventLog } from '../../src/host-schema.js';
import { Policy } from '../../src/policy.js';

const GIB = 1024 ** 3;
const policy = Policy.parse({});

function disk(freeBytes: number, totalBytes: number, extra: Partial<HostDisk> = {}): HostDisk {
  return {
    path: '/data',
    mount: '/data',
    fsType: 'ext4',
    totalBytes,
    freeBytes,
    freePct: (100 * freeBytes) / totalBytes,
    growthBytesPerDay: null,
    daysUntilFull: null,
    historySamples: 1,
    historyHours: 0,
    ...extra,
  };
}

const events = (
  critical: number | null,
  errors: number | null,
  extra: Partial<HostEventLog> = {},
): HostEventLog => ({
  source: 'journald',
  since: '2026-11-28T00:00:00.000Z',
  critical,
  errors,
  top: [],
  ...extra,
});

describe('disk judgement', () => {
  it('passes headroom above both limits, says there is no forecast yet, and stays pass', () => {
    const c = judgeDisks([disk(100 * GIB, 200 * GIB)], policy);
    expect(c.status).toBe('pass');
    expect(c.value).toBe(50);
    expect(c.evidence).toMatch(/no forecast yet \(1 sample/);
  });
  it('fails below minFreePct or below minFreeBytes, and a fill faster than minDaysUntilFull', () => {
    expect(judgeDisks([disk(15 * GIB, 100 * GIB)], policy).status).toBe('fail');
    expect(judgeDisks([disk(5 * GIB, 6 * GIB)], policy).evidence).toMatch(/below 10 GiB free/);
    const filling = disk(50 * GIB, 100 * GIB, { growthBytesPerDay: 10 * GIB, daysUntilFull: 5 });
    const c = judgeDisks([filling], policy);
    expect(c.status).toBe('fail');
    expect(c.evidence).toMatch(/fills within 14 days/);
    const relaxed = Policy.parse({ disk: { severity: 'warn' } });
    expect(judgeDisks([filling], relaxed).status).toBe('warn');
  });
  it('is unknown, never pass, for a path not measured, and with no path at all', () => {
    const missing = {
      ...disk(1, 1),
      totalBytes: null,
      freeBytes: null,
      freePct: null,
      unknownReason: 'the path does not exist',
    };
    const c = judgeDisks([disk(100 * GIB, 200 * GIB), missing], policy);
    expect(c.status).toBe('unknown');
    expect(c.evidence).toMatch(/the path does not exist/);
    expect(judgeDisks([], policy).status).toBe('unknown');
  });
});

describe('event log judgement', () => {
  it('compares critical + errors with maxErrors', () => {
    expect(judgeEventLog(events(0, 0), policy).status).toBe('pass');
    const c = judgeEventLog(events(1, 2), policy);
    expect(c).toMatchObject({ status: 'fail', value: 3, limit: 0 });
    expect(judgeEventLog(events(1, 2), Policy.parse({ eventlog: { maxErrors: 3 } })).status).toBe('pass');
  });
  it('is unknown with the reason when the log was not read', () => {
    const c = judgeEventLog(events(null, null, { unknownReason: 'no journal files' }), policy);
    expect(c.status).toBe('unknown');
    expect(c.evidence).toMatch(/no journal files/);
  });
});

describe('backup judgement', () => {
  const b = (ageHours: number | null, extra = {}) => ({
    name: 'nightly',
    newest: ageHours === null ? null : '2026-11-28T00:00:00.000Z',
    ageHours,
    ...extra,
  });
  it('passes a fresh backup, fails a stale one or a failed command', () => {
    expect(judgeBackups([b(10)], policy).status).toBe('pass');
    expect(judgeBackups([b(200)], policy).status).toBe('fail');
    expect(judgeBackups([b(null, { failed: 'backup command: exited 3' })], policy).status).toBe('fail');
  });
  it('is unknown when nothing is configured, the time is unknown, or it lies in the future', () => {
    expect(judgeBackups([], policy).status).toBe('unknown');
    expect(judgeBackups([b(null, { unknownReason: 'x' })], policy).status).toBe('unknown');
    expect(judgeBackups([b(-48)], policy).evidence).toMatch(/in the future/);
  });
});

describe('system judgement', () => {
  const s = { cpuPct: 50, load1: 1, memUsedPct: 95, swapUsedPct: null, uptimeS: 10 };
  it('is absent unless the policy sets a limit; then judged, unknown where not measured', () => {
    expect(judgeSystem(s, policy)).toBeUndefined();
    expect(judgeSystem(s, Policy.parse({ system: { maxMemUsedPct: 90 } }))?.status).toBe('fail');
    expect(judgeSystem(s, Policy.parse({ system: { maxSwapUsedPct: 50 } }))?.status).toBe('unknown');
    expect(
      judgeHost({ disks: [], eventlog: events(0, 0), backups: [], system: s }, policy).map((c) => c.id),
    ).toEqual(['disk', 'backup', 'eventlog']);
  });
});

describe('days-to-full fit', () => {
  const HOUR = 3_600_000;
  it('fits a least-squares line, not two points: noise around a steady fill averages out', () => {
    const samples: DiskSample[] = [];
    // 1 GiB/day with ±50 MiB noise, every hour for two days
    for (let h = 0; h <= 48; h++) {
      const noise = (h % 2 === 0 ? 1 : -1) * 50 * 1024 ** 2;
      samples.push({ tMs: h * HOUR, freeBytes: 100 * GIB - (h / 24) * GIB + noise });
    }
    expect(-slopePerDay(samples)! / GIB).toBeCloseTo(1, 2);
  });
  it('needs 3 samples over an hour; a clock stepped back starts the history again', () => {
    const history: DiskSample[] = [];
    expect(forecast(history, { tMs: 0, freeBytes: 10 * GIB }).daysUntilFull).toBeNull();
    expect(forecast(history, { tMs: HOUR, freeBytes: 9 * GIB }).daysUntilFull).toBeNull();
    const f = forecast(history, { tMs: 2 * HOUR, freeBytes: 8 * GIB });
    expect(f.growthBytesPerDay).toBe(24 * GIB);
    expect(f.daysUntilFull).toBeCloseTo(8 / 24, 2);
    const back = forecast(history, { tMs: HOUR / 2, freeBytes: 8 * GIB });
    expect(back).toMatchObject({ historySamples: 1, daysUntilFull: null });
  });
  it('says not filling when free space grows', () => {
    const history: DiskSample[] = [];
    for (let h = 0; h < 4; h++) forecast(history, { tMs: h * HOUR, freeBytes: GIB * (1 + h) });
    const f = forecast(history, { tMs: 4 * HOUR, freeBytes: 5 * GIB });
    expect(f.daysUntilFull).toBeNull();
    expect(f.growthBytesPerDay).toBeLessThan(0);
    expect(
      judgeDisks([disk(5 * GIB, 6 * GIB, f)], Policy.parse({ disk: { minFreeBytes: 0 } })).evidence,
    ).toMatch(/not filling/);
  });
});
