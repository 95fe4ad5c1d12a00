// runProbe (the programmatic API) against an in-process reflector on loopback, with the clock
// synchronisation state injected at both ends, and its option validation.
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProbeOptions, runProbe } from '../../agent/probe.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import type { CodecName } from '../../src/codecs.js';
import { UserError } from '../../src/errors.js';
import { DEFAULT_POLICY, judgeNetwork } from '../../src/policy.js';
import { evidenceFromProbe } from '../../src/probe-evidence.js';
import { type ClockSync, ProbeResult } from '../../src/schemas.js';
import { encodeProbe } from '../../src/wire.js';

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
  more: {
    reflector?: Partial<Parameters<typeof startReflector>[0]>;
    probe?: Parameters<typeof runProbe>[1];
  } = {},
): Promise<Awaited<ReturnType<typeof runProbe>>> {
  reflector = await startReflector({
    host: '127.0.0.1',
    port: 0,
    useRawSocket: false,
    nativeUdp: () => 'switched off in this test',
    notice: () => {},
    clockSync: reflectorClock,
    ...more.reflector,
  });
  return runProbe(
    { peer: `127.0.0.1:${reflector.port}`, signallingPort: reflector.signallingPort, ...options },
    {
      useRawSocket: false,
      nativeUdp: () => 'switched off in this test',
      notice: () => {},
      clockSync: synced,
      ...more.probe,
    },
  );
}

/** The collector's view: the document after a JSON round trip, judged again. */
const rejudged = (r: ProbeResult) =>
  judgeNetwork(evidenceFromProbe(JSON.parse(JSON.stringify(r)), DEFAULT_POLICY));

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

  it('streams the reflector forgot (its table flooded) are unknown with the reason, never loss', async () => {
    // A stranger on 127.0.0.2 opens a new stream every 2 ms against a 3-stream table: the probe's
    // streams are evicted and start over. Before, they were refused and reported as 100 % loss.
    const flooder = createSocket('udp4');
    await new Promise<void>((r) => flooder.bind(0, '127.0.0.2', () => r()));
    let ssrc = 0x5000_0000;
    const flood = setInterval(() => {
      const buf = Buffer.alloc(172);
      const f = { payloadType: 0, sequence: 0, timestamp: 0, ssrc: ssrc++, replyDscp: 0, signalling: false };
      encodeProbe(buf, 172, { ...f, sentAtMs: Date.now() });
      if (reflector) flooder.send(buf, reflector.port, '127.0.0.1');
    }, 2);
    try {
      const r = await probeOnce(
        unsynced,
        { codec: 'g711u', calls: 2, durationMs: 1000, waitMs: 100 },
        { reflector: { maxStreams: 3, perSourceStreams: 3 } },
      );
      expect(ProbeResult.safeParse(r).success).toBe(true);
      const loss = r.checks.find((c) => c.id === 'loss')!;
      expect(loss.status).toBe('unknown');
      expect(loss.evidence).toMatch(/the reflector forgot this stream/);
      // Every call is still listed (one stream per call): the forgotten ones count nothing and say why.
      expect(r.forward.streams).toHaveLength(2);
      const forgotten = r.forward.streams!.filter((s) => s.unmeasured);
      expect(forgotten.length).toBeGreaterThan(0);
      for (const s of forgotten) {
        expect(s).toMatchObject({ sent: 0, received: 0, lost: 0 });
        expect(s.unmeasured!.reason).toMatch(/forgot/);
        expect(s.unmeasured!.sent).toBeGreaterThan(0);
      }
      expect(r.ready).toBe(false);
      // Nothing the reflector forgot is counted as lost in the totals either.
      expect(r.forward.lost).toBe(r.forward.sent - r.forward.received);
      expect(r.checks).toEqual(rejudged(r));
    } finally {
      clearInterval(flood);
      flooder.close();
    }
  });

  it("clocks ten minutes apart: the reflector's refusal is unknown with the reason, never loss", async () => {
    const secret = Buffer.from('a shared probe secret');
    const r = await probeOnce(
      unsynced,
      { codec: 'g711u', calls: 1, durationMs: 300, waitMs: 100, secret },
      {
        reflector: {
          secret,
          freshnessMs: 60_000,
          now: () => performance.timeOrigin + performance.now() + 600_000,
        },
      },
    );
    expect(ProbeResult.safeParse(r).success).toBe(true);
    const status = Object.fromEntries(r.checks.map((c) => [c.id, c.status]));
    expect(status).toMatchObject({ loss: 'unknown', jitter: 'unknown', bandwidth: 'unknown' });
    expect(r.checks.find((c) => c.id === 'loss')!.evidence).toMatch(/freshness window/);
    expect(r.forward).toMatchObject({ sent: 0, received: 0, lost: 0 });
    expect(r.forward.streams).toEqual([
      expect.objectContaining({
        sent: 0,
        unmeasured: { reason: expect.stringMatching(/freshness/), sent: 15 },
      }),
    ]);
    expect(r.signalling.forward).toMatchObject({ sent: 0, lost: 0, unmeasured: { sent: 3 } });
    expect(r.checks).toEqual(rejudged(r));
  });
});
