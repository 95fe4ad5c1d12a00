import { describe, expect, it } from 'vitest';
import { NEEDS_CAP_NET_RAW } from '../../agent/net/raw-udp.js';
import {
  buildProbeResult,
  type DirectionCounts,
  type ProbeMeasurement,
  type StreamMeasurement,
  unsentProbeResult,
} from '../../agent/probe/result.js';
import { summarize } from '../../agent/probe/timing.js';
import { CODECS } from '../../src/codecs.js';
import { DEFAULT_POLICY, judgeNetwork } from '../../src/policy.js';
import { evidenceFromProbe } from '../../src/probe-evidence.js';
import { renderProbeTable } from '../../src/report/probe-table.js';
import { ProbeResult } from '../../src/schemas.js';

const counts = (over: Partial<DirectionCounts> = {}): DirectionCounts => ({
  sent: 1500,
  received: 1500,
  duplicates: 0,
  reordered: 0,
  maxBurstLoss: 0,
  jitterMs: 0.5,
  jitterMaxMs: 0.8,
  dscp: { '46': 1500 },
  ...over,
});

const stream = (ssrc: number, over: Partial<StreamMeasurement> = {}): StreamMeasurement => ({
  ssrc,
  localPort: 16384 + 2 * ssrc,
  remotePort: 5004,
  forward: counts(),
  forwardSource: 'reflector',
  reverse: counts(),
  ...over,
});

const synced = { synchronised: true, errorBoundMs: 0.3, source: 'chrony' };
const unsynced = { synchronised: false, errorBoundMs: null, source: 'none' };

function measurement(over: Partial<ProbeMeasurement> = {}): ProbeMeasurement {
  return {
    peer: '192.0.2.10:5004',
    codec: CODECS.g711u,
    calls: 2,
    durationMs: 30_000,
    startedAt: '2026-11-26T01:00:00.000Z',
    privileged: true,
    socketPath: { path: 'native' },
    mediaDscp: 46,
    signallingDscp: 24,
    media: [stream(1), stream(2)],
    signalling: stream(3, {
      forward: counts({ sent: 300, received: 300, dscp: { '24': 300 } }),
      reverse: counts({ sent: 300, received: 300, dscp: { '24': 300 } }),
    }),
    reflector: {
      dscpReadable: true,
      marksReplies: true,
      clock: unsynced,
      holdUs: { p50: 40, p99: 100, max: 500, samples: 3300 },
    },
    localClock: unsynced,
    rtt: summarize([20, 22, 24, 26, 28]),
    oneWayForwardMs: 10,
    oneWayReverseMs: 15,
    sendLateness: summarize([0.1, 0.2, 0.3]),
    ...over,
  };
}

const byId = (r: ProbeResult, id: string) => r.checks.find((c) => c.id === id)!;

/** Only the replies lost their EF mark, on every call. */
function reverseRewritten(): ProbeMeasurement {
  const m = measurement();
  return { ...m, media: m.media.map((s) => ({ ...s, reverse: counts({ dscp: { '0': 1500 } }) })) };
}

/** Nothing came back: no reply, no summary. */
function unreachable(): ProbeMeasurement {
  const silent = (ssrc: number) =>
    stream(ssrc, {
      forwardSource: 'none',
      forward: counts({ received: 0, jitterMs: 0, jitterMaxMs: 0, dscp: {} }),
      reverse: counts({ sent: 0, received: 0, jitterMs: 0, jitterMaxMs: 0, dscp: {} }),
    });
  return measurement({
    media: [silent(1), silent(2)],
    signalling: silent(3),
    reflector: null,
    rtt: undefined,
    oneWayForwardMs: null,
    oneWayReverseMs: null,
  });
}

describe('probe result assembly', () => {
  it('a clean run is ready, matches the contract schema, and estimates latency as RTT/2', () => {
    const r = buildProbeResult(measurement(), DEFAULT_POLICY);
    expect(ProbeResult.safeParse(r).success).toBe(true);
    expect(r.ready).toBe(true);
    expect(r.checks.map((c) => c.status)).toEqual(['pass', 'pass', 'pass', 'pass', 'pass', 'pass']);
    expect(r.oneWayMs).toEqual({ forward: 12, reverse: 12, estimated: true });
    expect(byId(r, 'latency').evidence).toMatch(/RTT\/2.*clocks not known to be synchronised/);
    expect(r.forward).toMatchObject({
      sent: 3000,
      received: 3000,
      lost: 0,
      dscpSent: 46,
      dscpReceived: { '46': 3000 },
    });
    expect(r.forward.streams).toHaveLength(2);
    expect(r.forward.streams[0]).toMatchObject({ ssrc: '0x00000001', srcPort: 16386, dstPort: 5004 });
    expect(r.reverse.streams[0]).toMatchObject({ ssrc: '0x00000001', srcPort: 5004, dstPort: 16386 });
    expect(byId(r, 'bandwidth').evidence).toContain(
      '2 × g711u at 80 kbit/s IP (87.2 kbit/s Ethernet) per call',
    );
    expect(r.mos).toBeGreaterThan(4);
  });

  it('uses one-way delay when both clocks are synchronised', () => {
    const r = buildProbeResult(
      measurement({ localClock: synced, reflector: { ...measurement().reflector!, clock: synced } }),
      DEFAULT_POLICY,
    );
    expect(r.oneWayMs).toEqual({ forward: 10, reverse: 15, estimated: false });
    expect(byId(r, 'latency').evidence).toMatch(/^one-way: forward 10 ms, reverse 15 ms/);
  });

  it('names the reverse path when only the replies lost their EF mark, and fails dscp-rtp', () => {
    const r = buildProbeResult(reverseRewritten(), DEFAULT_POLICY);
    const dscp = byId(r, 'dscp-rtp');
    expect(dscp.status).toBe('fail');
    expect(dscp.evidence).toContain('EF sent, arrived as CS0 (3000 of 3000) on reverse path');
    expect(dscp.evidence).toContain('forward path: EF on arrival');
    expect(byId(r, 'dscp-sip').status).toBe('pass');
    expect(r.ready).toBe(false);
  });

  it('counts forward loss from the sender and the reflector, not from lost replies', () => {
    const m = measurement();
    const lossy = { ...m.media[0]!, forward: counts({ received: 1470, maxBurstLoss: 3 }) };
    const r = buildProbeResult({ ...m, media: [lossy, m.media[1]!] }, DEFAULT_POLICY);
    expect(r.forward).toMatchObject({ sent: 3000, received: 2970, lost: 30, lossPct: 1, maxBurstLoss: 3 });
    expect(r.forward.streams?.map((s) => s.maxBurstLoss)).toEqual([3, 0]);
    expect(r.reverse.lost).toBe(0);
    // 30 of 1500 is 2 % on that stream: the rule is per stream.
    expect(byId(r, 'loss')).toMatchObject({ status: 'fail', value: 2 });
    expect(byId(r, 'loss').evidence).toContain('30 of 1500 packets lost on forward path, stream 0x00000001');
    expect(byId(r, 'bandwidth').status).toBe('fail');
  });

  it('without privilege: dscpSent null, DSCP checks unknown with the reason, never pass', () => {
    const r = buildProbeResult(
      measurement({ privileged: false, localDscpReason: NEEDS_CAP_NET_RAW }),
      DEFAULT_POLICY,
    );
    expect(ProbeResult.safeParse(r).success).toBe(true);
    expect(r.forward.dscpSent).toBeNull();
    expect(r.reverse.dscpReceived).toEqual({});
    for (const id of ['dscp-rtp', 'dscp-sip']) {
      expect(byId(r, id).status).toBe('unknown');
      expect(byId(r, id).evidence).toContain('setcap cap_net_raw+ep');
    }
    expect(r.ready).toBe(false);
  });

  it('an unreachable peer: 100 % forward loss, unknown latency, not ready', () => {
    const r = buildProbeResult(unreachable(), DEFAULT_POLICY);
    expect(ProbeResult.safeParse(r).success).toBe(true);
    expect(r.forward).toMatchObject({
      sent: 3000,
      received: 0,
      lost: 3000,
      lossPct: 100,
      maxBurstLoss: 1500,
    });
    expect(byId(r, 'loss').status).toBe('fail');
    expect(byId(r, 'latency').status).toBe('unknown');
    expect(byId(r, 'dscp-rtp').status).toBe('unknown');
    expect(r.rttMs).toBeNull();
    expect(r.mos).toBeNull();
    expect(r.ready).toBe(false);
  });
});

describe('the send times in the human table', () => {
  const sendsLine = (m: ProbeMeasurement) =>
    renderProbeTable(buildProbeResult(m, DEFAULT_POLICY))
      .split('\n')
      .find((l) => l.startsWith('sends left'));

  it('says how late the sends left and what paced them, and how to make an ordinary thread real-time', () => {
    const thread = { by: 'native-thread', realtime: true, shortSlice: false } as const;
    expect(sendsLine(measurement({ sendPacing: thread }))).toBe(
      'sends left p50 0.2 p99 0.3 max 0.3 ms after their due time (sender thread, real-time)',
    );
    expect(sendsLine(measurement({ sendPacing: { ...thread, realtime: false, shortSlice: true } }))).toMatch(
      /\(sender thread, not real-time, 0\.1 ms slice: root, CAP_SYS_NICE or LimitRTPRIO=1 makes it real-time\)$/,
    );
    expect(
      sendsLine(measurement({ sendPacing: { by: 'js-timer', realtime: false, shortSlice: false } })),
    ).toMatch(/\(JavaScript timer; each packet carries its actual send time\)$/);
  });

  it('says nothing of sends where none were timed, and the contract takes documents without the keys', () => {
    expect(
      sendsLine(
        measurement({
          sendLateness: undefined,
          sendPacing: { by: 'js-timer', realtime: false, shortSlice: false },
        }),
      ),
    ).toBeUndefined();
    const doc = buildProbeResult(
      measurement({ sendPacing: { by: 'native-thread', realtime: true, shortSlice: false } }),
      DEFAULT_POLICY,
    );
    expect(ProbeResult.parse(doc).sendPacing).toEqual({
      by: 'native-thread',
      realtime: true,
      shortSlice: false,
    });
    const { sendTiming: _t, sendPacing: _p, ...older } = doc as Record<string, unknown>;
    expect(ProbeResult.safeParse(older).success).toBe(true);
    // An older agent's pacing had no shortSlice; a negative lateness is refused.
    expect(ProbeResult.safeParse({ ...doc, sendPacing: { by: 'js-timer', realtime: false } }).success).toBe(
      true,
    );
    expect(
      ProbeResult.safeParse({ ...doc, sendTiming: { p50Ms: -1, p99Ms: 1, maxMs: 1, samples: 3 } }).success,
    ).toBe(false);
  });
});

describe('the probe and the collector judge one document alike', () => {
  /** The collector's re-judgement (collector/assessment.ts) of the document as it arrives: JSON. */
  const rejudged = (doc: ProbeResult) => {
    const received = ProbeResult.parse(JSON.parse(JSON.stringify(doc)));
    return judgeNetwork(evidenceFromProbe(received, DEFAULT_POLICY), DEFAULT_POLICY);
  };
  const m = measurement();
  const cases: [string, ProbeResult, Record<string, string>][] = [
    ['clean', buildProbeResult(m, DEFAULT_POLICY), { 'dscp-rtp': 'pass' }],
    ['reverse rewrite', buildProbeResult(reverseRewritten(), DEFAULT_POLICY), { 'dscp-rtp': 'fail' }],
    [
      // The reflector (privileged) reads what an agent without CAP_NET_RAW sent: unmarked, CS0.
      'unprivileged agent, privileged reflector',
      buildProbeResult(
        {
          ...m,
          privileged: false,
          localDscpReason: NEEDS_CAP_NET_RAW,
          media: m.media.map((s) => ({
            ...s,
            forward: counts({ dscp: { '0': 1500 } }),
            reverse: counts({ dscp: {} }),
          })),
          signalling: { ...m.signalling, forward: counts({ sent: 300, received: 300, dscp: { '0': 300 } }) },
        },
        DEFAULT_POLICY,
      ),
      { 'dscp-rtp': 'unknown', 'dscp-sip': 'unknown' },
    ],
    ['unreachable', buildProbeResult(unreachable(), DEFAULT_POLICY), { latency: 'unknown', loss: 'fail' }],
    [
      'unresolvable',
      unsentProbeResult(
        {
          peer: 'dc.invalid:5004',
          codec: CODECS.g711u,
          calls: 2,
          durationMs: 1000,
          startedAt: '2026-11-26T01:00:00.000Z',
          packetsPerCall: 50,
          signallingPackets: 10,
          localClock: unsynced,
          reason: 'cannot resolve dc.invalid: ENOTFOUND',
        },
        DEFAULT_POLICY,
      ),
      { latency: 'unknown', loss: 'fail', 'dscp-rtp': 'unknown' },
    ],
  ];
  it.each(cases)('%s', (_, doc, expected) => {
    expect(ProbeResult.safeParse(doc).success).toBe(true);
    expect(rejudged(doc)).toEqual(doc.checks);
    expect(doc.checks.filter((c) => c.id in expected).map((c) => [c.id, c.status])).toEqual(
      Object.entries(expected),
    );
  });

  it('an unmarked sender is never reported as a rewrite, and the reason is kept', () => {
    const doc = cases[2]![1];
    expect(doc.forward).toMatchObject({ dscpSent: null, dscpReceived: { '0': 3000 } });
    const dscp = byId(doc, 'dscp-rtp');
    expect(dscp.evidence).not.toContain('arrived as');
    expect(dscp.evidence).toContain(
      `forward path: the agent could not mark its packets: ${NEEDS_CAP_NET_RAW}`,
    );
    // A document without the reason (an older agent) still says the sender did not mark.
    const { dscpUnknownReason: _, ...bare } = doc.forward;
    const older = rejudged({ ...doc, forward: bare });
    expect(byId({ ...doc, checks: older }, 'dscp-rtp').evidence).toContain(
      'forward path: the sender did not mark its packets',
    );
  });

  it('keeps the evidence wording of a rewrite', () => {
    expect(byId(cases[1]![1], 'dscp-rtp').evidence).toContain(
      'EF sent, arrived as CS0 (3000 of 3000) on reverse path',
    );
  });
});
