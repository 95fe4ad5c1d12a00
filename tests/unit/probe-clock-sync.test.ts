import { describe, expect, it } from 'vitest';
import {
  type ClockSyncDeps,
  decideOneWay,
  detectClockSync,
  parseChronyTracking,
} from '../../agent/net/clock-sync.js';

// `chronyc -c tracking` of a synchronised host: offset 12 µs, root delay 8 ms, root dispersion 0.5 ms.
const CHRONY_SYNCED =
  'A29FC87B,ntp.example,3,1700000000.123456789,0.000012000,0.000003,0.000020,-12.345,-0.001,0.010,0.008000,0.000500,64.2,Normal\n';
const CHRONY_UNSYNCED =
  '00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n';

function deps(over: { chrony?: string; file?: boolean; timedatectl?: string }): ClockSyncDeps {
  return {
    exec: async (cmd) => {
      if (cmd === 'chronyc' && over.chrony !== undefined) return over.chrony;
      if (cmd === 'timedatectl' && over.timedatectl !== undefined) return over.timedatectl;
      throw Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: 'ENOENT' });
    },
    readFile: async (path) => {
      if (over.file) return '';
      throw Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
    },
  };
}

describe('clock synchronisation state', () => {
  it('reads chrony: synchronised with an error bound of |offset| + dispersion + delay/2', () => {
    const c = parseChronyTracking(CHRONY_SYNCED)!;
    expect(c.synchronised).toBe(true);
    expect(c.source).toBe('chrony');
    expect(c.errorBoundMs).toBeCloseTo(0.012 + 0.5 + 4, 6);
    expect(parseChronyTracking(CHRONY_UNSYNCED)).toEqual({
      synchronised: false,
      errorBoundMs: null,
      source: 'chrony',
    });
    expect(parseChronyTracking('506 Cannot talk to daemon')).toBeUndefined();
  });

  it('falls back from chrony to systemd-timesyncd to timedatectl to "none"', async () => {
    expect(await detectClockSync(deps({ chrony: CHRONY_SYNCED }))).toMatchObject({
      synchronised: true,
      source: 'chrony',
    });
    expect(await detectClockSync(deps({ file: true }))).toEqual({
      synchronised: true,
      errorBoundMs: null,
      source: 'systemd-timesyncd',
    });
    expect(await detectClockSync(deps({ timedatectl: 'no\n' }))).toEqual({
      synchronised: false,
      errorBoundMs: null,
      source: 'timedatectl',
    });
    expect(await detectClockSync(deps({}))).toEqual({
      synchronised: false,
      errorBoundMs: null,
      source: 'none',
    });
  });
});

describe('one-way delay or RTT/2', () => {
  const synced = (bound: number | null) => ({ synchronised: true, errorBoundMs: bound, source: 'chrony' });
  const none = { synchronised: false, errorBoundMs: null, source: 'none' };

  it('is one-way only when both ends are synchronised with small known bounds', () => {
    const d = decideOneWay(synced(0.5), synced(1));
    expect(d.oneWay).toBe(true);
    expect(d.basis).toContain('agent clock synchronised by chrony (error ≤ 0.50 ms)');
    expect(d.basis).toContain('reflector clock synchronised by chrony (error ≤ 1.00 ms)');
  });

  it('is RTT/2, saying why, in every other case', () => {
    expect(decideOneWay(synced(0.5), none)).toMatchObject({ oneWay: false });
    expect(decideOneWay(none, synced(0.5)).basis).toMatch(
      /^clocks not known to be synchronised: agent clock not synchronised/,
    );
    expect(decideOneWay(synced(0.5), null).basis).toContain('reflector clock state unknown');
    // Synchronised, but without an error bound (systemd-timesyncd): not good enough.
    expect(decideOneWay(synced(null), synced(0.5)).oneWay).toBe(false);
    const far = decideOneWay(synced(4), synced(3));
    expect(far.oneWay).toBe(false);
    expect(far.basis).toMatch(/^combined clock error exceeds 5 ms/);
  });
});
