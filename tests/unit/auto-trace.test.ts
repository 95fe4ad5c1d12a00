// The agent traces the forward path by itself when a DSCP check fails there — once per peer and
// check per hour — and the collector names the hop in that check's evidence. The trace itself is
// tests/integration/netns-trace.test.ts's; here a recorded result stands in for it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { autoTracer, type TraceRequest, traceTargets } from '../../agent/service/auto-trace.js';
import type { Clock } from '../../agent/service/clock.js';
import { sampleProbe, sampleReport } from '../../bench/collector-report.js';
import { assessReport } from '../../collector/assessment.js';
import { DEFAULT_POLICY, judgeNetwork } from '../../src/policy.js';
import { evidenceFromProbe } from '../../src/probe-evidence.js';
import { AgentReport, type ProbeResult } from '../../src/schemas.js';
import { TRACE_SCHEMA, TraceResult, traceFinding } from '../../src/trace-schema.js';

const CHANGED: TraceResult = {
  schema: TRACE_SCHEMA,
  peer: 'dc1.example.net:4000',
  address: '198.18.23.2',
  dscpSent: 46,
  hops: [
    {
      ttl: 1,
      address: '198.18.20.2',
      rttMs: 0.3,
      dscpSeen: 46,
      changed: false,
      reply: 'time-exceeded',
      attempts: 1,
    },
    {
      ttl: 2,
      address: '198.18.21.2',
      rttMs: 0.4,
      dscpSeen: 46,
      changed: false,
      reply: 'time-exceeded',
      attempts: 1,
    },
    {
      ttl: 3,
      address: '198.18.22.2',
      rttMs: 0.5,
      dscpSeen: 0,
      changed: true,
      reply: 'time-exceeded',
      attempts: 1,
    },
    {
      ttl: 4,
      address: '198.18.23.2',
      rttMs: 0.6,
      dscpSeen: 0,
      changed: false,
      reply: 'reflector-reply',
      attempts: 1,
    },
  ],
  firstChangeAtTtl: 3,
  reached: true,
  outcome: 'changed',
  unknownReason: null,
};

/** A probe result judged as the probe judges it, with these arrival marks. */
function judged(o: Parameters<typeof sampleProbe>[0]): ProbeResult {
  const p = sampleProbe(o);
  return { ...p, checks: judgeNetwork(evidenceFromProbe(p, DEFAULT_POLICY), DEFAULT_POLICY) };
}

function fakeClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, sleep: async () => {}, advance: (ms) => (now += ms) };
}

describe('automatic trace on a failing DSCP check', () => {
  it('targets the forward direction that saw a rewrite: media port for dscp-rtp, signalling port for dscp-sip', () => {
    expect(traceTargets(judged({}), 4000, 4001)).toEqual([]);
    const forwardRtp = judged({ forward: { dscpReceived: { '0': 500 } } });
    expect(traceTargets(forwardRtp, 4000, 4001)).toEqual([{ check: 'dscp-rtp', port: 4000, dscp: 46 }]);
    // Only the reverse path rewrote: a trace from the site would not follow it.
    expect(traceTargets(judged({ reverse: { dscpReceived: { '0': 500 } } }), 4000, 4001)).toEqual([]);
    const sip = judged({ signallingDscp: 0 });
    expect(traceTargets(sip, 4000, 4001)).toEqual([{ check: 'dscp-sip', port: 4001, dscp: 24 }]);
  });

  it('traces once per peer and check per hour, and a failed trace is logged, not thrown', async () => {
    const requests: TraceRequest[] = [];
    const clock = fakeClock();
    const logged: string[] = [];
    let fail = false;
    const tracer = autoTracer(
      async (r) => {
        requests.push(r);
        if (fail) throw new Error('--peer: cannot resolve "dc1.example.net"');
        return CHANGED;
      },
      clock,
      (_level, event, msg) => logged.push(`${event} ${msg}`),
    );
    const result = judged({ forward: { dscpReceived: { '0': 500 } } });
    const probe = { peer: 'dc1.example.net:4000' };
    const first = await tracer(probe, result);
    expect(first).toEqual([{ peer: result.peer, check: 'dscp-rtp', direction: 'forward', trace: CHANGED }]);
    expect(requests).toEqual([{ host: 'dc1.example.net', port: 4000, dscp: 46 }]);
    expect(logged[0]).toMatch(
      /trace.done dscp-rtp failed towards dc1.example.net:4000: mark first changed at hop 3/,
    );
    clock.advance(59 * 60_000);
    expect(await tracer(probe, result)).toEqual([]);
    clock.advance(60_000);
    fail = true;
    expect(await tracer(probe, result)).toEqual([]);
    expect(logged.at(-1)).toMatch(/trace.failed .*cannot resolve/);
    // A clock stepped back does not hold the limit for the size of the step.
    fail = false;
    clock.advance(-24 * 3_600_000);
    expect(await tracer(probe, result)).toHaveLength(1);
    expect(requests).toHaveLength(3);
  });

  it('a trace the report contract would refuse is logged, not attached: the report stays acceptable', async () => {
    const logged: string[] = [];
    const tracer = autoTracer(
      async () => ({ ...CHANGED, outcome: 'unknown', unknownReason: 'not measured: bind failed\nat line 2' }),
      fakeClock(),
      (_level, event, msg) => logged.push(`${event} ${msg}`),
    );
    const result = judged({ forward: { dscpReceived: { '0': 500 } } });
    expect(await tracer({ peer: 'dc1.example.net:4000' }, result)).toEqual([]);
    expect(logged).toEqual([
      expect.stringMatching(
        /^trace\.unfit dscp-rtp trace .* not attached: .* at trace\.unknownReason: control characters/,
      ),
    ]);
  });

  it('the collector names the hop in the failing check, for that peer only', () => {
    const base = sampleReport({ reportId: 'rep-trace-1', forward: { dscpReceived: { '0': 500 } } });
    const report = AgentReport.parse({
      ...base,
      traces: [{ peer: base.probes[0]!.peer, check: 'dscp-rtp', direction: 'forward', trace: CHANGED }],
    });
    const a = assessReport({
      report,
      policy: DEFAULT_POLICY,
      assessmentId: 'a1',
      receivedAtMs: Date.parse(report.createdAt) + 1000,
      validForMs: 3_600_000,
    });
    const rtp = a.checks.find((c) => c.id === 'dscp-rtp')!;
    expect(rtp.status).toBe('fail');
    expect(rtp.evidence).toContain(
      'path trace (forward): mark first changed at hop 3 (198.18.22.2): EF → CS0, on the link after 198.18.21.2',
    );
    expect(a.checks.find((c) => c.id === 'dscp-sip')!.evidence).not.toContain('path trace');
    // A trace about another peer says nothing here.
    const other = AgentReport.parse({
      ...report,
      traces: [{ ...report.traces![0]!, peer: 'elsewhere:4000' }],
    });
    const b = assessReport({
      report: other,
      policy: DEFAULT_POLICY,
      assessmentId: 'a2',
      receivedAtMs: Date.parse(report.createdAt) + 1000,
      validForMs: 3_600_000,
    });
    expect(b.checks.find((c) => c.id === 'dscp-rtp')!.evidence).not.toContain('path trace');
  });

  it('the report contract bounds the traces and rejects unknown keys in them', () => {
    const base = sampleReport({ reportId: 'rep-trace-2' });
    const one = { peer: 'p:1', check: 'dscp-rtp', direction: 'forward', trace: CHANGED };
    expect(AgentReport.safeParse({ ...base, traces: Array(9).fill(one) }).success).toBe(false);
    expect(AgentReport.safeParse({ ...base, traces: [{ ...one, direction: 'reverse' }] }).success).toBe(
      false,
    );
    expect(AgentReport.safeParse({ ...base, traces: [{ ...one, extra: 1 }] }).success).toBe(false);
    expect(AgentReport.safeParse({ ...base, traces: [one] }).success).toBe(true);
    expect(traceFinding({ ...CHANGED, outcome: 'unknown', firstChangeAtTtl: null, unknownReason: 'x' })).toBe(
      'not located: x',
    );
  });

  it('names a hop from any document the contract accepts, without throwing (a report is hostile input)', () => {
    // Any text the contract accepts: non-empty, no control characters.
    const text = (maxLength: number) =>
      fc.string({ minLength: 1, maxLength }).filter((t) => !/[\u0000-\u001f\u007f]/.test(t));
    const hop = fc.record({
      ttl: fc.integer({ min: 1, max: 255 }),
      address: fc.option(text(64)),
      rttMs: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true })),
      dscpSeen: fc.option(fc.integer({ min: 0, max: 63 })),
      changed: fc.boolean(),
      reply: fc.constantFrom(
        'time-exceeded',
        'port-unreachable',
        'unreachable',
        'reflector-reply',
        'udp-reply',
        'none',
      ),
      attempts: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(
      fc.property(
        fc.array(hop, { maxLength: 10 }),
        fc.option(fc.integer({ min: 1, max: 255 })),
        fc.constantFrom('kept', 'changed', 'unknown'),
        fc.option(text(500)),
        (hops, firstChangeAtTtl, outcome, unknownReason) => {
          const doc = TraceResult.parse({ ...CHANGED, hops, firstChangeAtTtl, outcome, unknownReason });
          expect(traceFinding(doc).length).toBeLessThan(1000);
        },
      ),
    );
  });
});
