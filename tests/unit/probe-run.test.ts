// runProbe (the programmatic API) against an in-process reflector on loopback, with the clock
// synchronisation state injected at both ends, and its option validation.
import { afterEach, describe, expect, it } from 'vitest';
import { type ProbeOptions, runProbe } from '../../agent/probe.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import type { CodecName } from '../../src/codecs.js';
import { UserError } from '../../src/errors.js';
import { type ClockSync, ProbeResult } from '../../src/schemas.js';

const synced = async () => ({ synchronised: true, errorBoundMs: 0.2, source: 'chrony' });
const unsynced = async () => ({ synchronised: false, errorBoundMs: null, source: 'none' });

let reflector: Reflector | undefined;
afterEach(async () => {
  await reflector?.close();
  reflector = undefined;
});

/** An unprivileged reflector with the given clock state, and a probe of it with ours. */
async function probeOnce(
  reflectorClock: () => Promise<ClockSync>,
  options: Omit<ProbeOptions, 'peer'>,
): Promise<Awaited<ReturnType<typeof runProbe>>> {
  reflector = await startReflector({
    host: '127.0.0.1',
    port: 0,
    useRawSocket: false,
    nativeUdp: () => 'switched off in this test',
    notice: () => {},
    clockSync: reflectorClock,
  });
  return runProbe(
    { peer: `127.0.0.1:${reflector.port}`, signallingPort: reflector.signallingPort, ...options },
    {
      useRawSocket: false,
      nativeUdp: () => 'switched off in this test',
      notice: () => {},
      clockSync: synced,
    },
  );
}

describe('runProbe', () => {
  it('reports one-way delay when both ends say they are synchronised, per codec size', async () => {
    const progress: number[] = [];
    const r = await probeOnce(synced, {
      codec: 'g729',
      calls: 3,
      durationMs: 400,
      waitMs: 100,
      onProgress: (f) => progress.push(f),
    });
    expect(ProbeResult.safeParse(r).success).toBe(true);
    expect(r.forward).toMatchObject({ sent: 60, received: 60, lost: 0 });
    expect(r.oneWayMs.estimated).toBe(false);
    expect(r.oneWayMs.forward).toBeGreaterThanOrEqual(0);
    expect(r.checks.find((c) => c.id === 'latency')!.evidence).toMatch(
      /^one-way: .*agent clock synchronised by chrony/,
    );
    expect(r.clockSync).toEqual({ local: await synced(), peer: await synced() });
    expect(progress.at(-1)).toBe(1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    // Privilege was switched off: DSCP is unknown, never pass; the document names the layer and why.
    expect(r).toMatchObject({ socketPath: 'dgram', socketPathReason: 'switched off in this test' });
    expect(r.privileged).toBe(false);
    expect(r.checks.find((c) => c.id === 'dscp-rtp')!.status).toBe('unknown');
  });

  it('with native sockets at both ends marks and reads DSCP without privilege, and says which layer measured', async () => {
    reflector = await startReflector({ host: '127.0.0.1', port: 0, clockSync: unsynced });
    const r = await runProbe(
      {
        peer: `127.0.0.1:${reflector.port}`,
        signallingPort: reflector.signallingPort,
        codec: 'g711u',
        calls: 2,
        durationMs: 400,
        waitMs: 100,
      },
      { clockSync: unsynced },
    );
    expect(r.socketPath).toBe('native');
    expect(r).not.toHaveProperty('socketPathReason');
    expect(r.privileged).toBe(true);
    expect(r.forward.dscpReceived).toEqual({ '46': r.forward.received });
    expect(r.reverse.dscpReceived).toEqual({ '46': r.reverse.received });
    expect(r.signalling.reverse.dscpReceived).toEqual({ '24': r.signalling.reverse.received });
    expect(r.checks.find((c) => c.id === 'dscp-rtp')!.status).toBe('pass');
  });

  it('falls back to RTT/2 when only one end is synchronised', async () => {
    const r = await probeOnce(unsynced, { codec: 'opus', calls: 1, durationMs: 200, waitMs: 50 });
    expect(r.oneWayMs.estimated).toBe(true);
    expect(r.signalling.forward).toMatchObject({ sent: 2, received: 2 });
    expect(r.checks.find((c) => c.id === 'latency')!.evidence).toContain('reflector clock not synchronised');
  });

  it('throws UserError for bad options only', async () => {
    const base = { peer: '127.0.0.1:5004', codec: 'g711u' as CodecName, calls: 1, durationMs: 1000 };
    await expect(runProbe({ ...base, calls: 0 })).rejects.toThrow(UserError);
    await expect(runProbe({ ...base, durationMs: 5 })).rejects.toThrow(/duration/);
    await expect(runProbe({ ...base, codec: 'speex' as CodecName })).rejects.toThrow(/unknown codec/);
    await expect(runProbe({ ...base, peer: 'no-port' })).rejects.toThrow(UserError);
    await expect(runProbe({ ...base, waitMs: -1 })).rejects.toThrow(/wait/);
  });

  it('a host name that does not resolve is data: 100 % loss both ways, the cause in the checks, not ready', async () => {
    const base = { codec: 'g711u' as CodecName, calls: 2, durationMs: 60_000 };
    const started = Date.now();
    // RFC 6761: .invalid never resolves and is answered locally, so no DNS query leaves the host.
    const r = await runProbe({ ...base, peer: 'no-such-host.invalid:5004' }, { clockSync: unsynced });
    // Nothing was scheduled: it returns long before the minute the run would have taken.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(ProbeResult.safeParse(r).success).toBe(true);
    const reason = 'cannot resolve no-such-host.invalid: ENOTFOUND';
    for (const d of [r.forward, r.reverse]) {
      expect(d).toMatchObject({
        sent: 6000,
        received: 0,
        lost: 6000,
        lossPct: 100,
        dscpUnknownReason: reason,
      });
    }
    expect(r.signalling.forward).toMatchObject({ sent: 600, lost: 600, dscpUnknownReason: reason });
    const status = Object.fromEntries(r.checks.map((c) => [c.id, c.status]));
    expect(status).toEqual({
      latency: 'unknown',
      jitter: 'unknown',
      loss: 'fail',
      'dscp-rtp': 'unknown',
      'dscp-sip': 'unknown',
      bandwidth: 'fail',
    });
    for (const id of ['latency', 'jitter', 'dscp-rtp', 'dscp-sip']) {
      expect(r.checks.find((c) => c.id === id)!.evidence).toContain(reason);
    }
    expect(r.ready).toBe(false);
    // A resolver that cannot answer now (EAI_AGAIN) is named as such.
    const again = Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    const later = await runProbe(
      { ...base, peer: 'dc.example:5004' },
      { clockSync: unsynced, lookup: () => Promise.reject(again) },
    );
    expect(later.checks[0]!.evidence).toBe('not measured: cannot resolve dc.example: EAI_AGAIN');
  });
});
