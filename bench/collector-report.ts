// Realistic `voipready.report/1` documents for the collector's benchmark and tests: one G.711 probe
// result per report, with per-direction figures the caller can override.
import type { PriorityResult } from '../src/priority-schema.js';
import type { AgentReport, DirectionStats, ProbeResult } from '../src/schemas.js';

export interface SampleOptions {
  reportId: string;
  site?: string;
  agent?: string;
  createdAt?: string;
  peer?: string;
  forward?: Partial<DirectionStats>;
  reverse?: Partial<DirectionStats>;
  oneWayMs?: ProbeResult['oneWayMs'];
  /** DSCP read on arrival for the signalling stream (default CS3 both ways). */
  signallingDscp?: number;
  /** The agent's own send times (absent by default, as in documents from before issue 14). */
  sendTiming?: ProbeResult['sendTiming'];
  sendPacing?: ProbeResult['sendPacing'];
}

function direction(over: Partial<DirectionStats> = {}): DirectionStats {
  return {
    sent: 500,
    received: 500,
    lost: 0,
    lossPct: 0,
    duplicates: 0,
    reordered: 0,
    maxBurstLoss: 0,
    jitterMs: 0.8,
    jitterMaxMs: 2.1,
    dscpSent: 46,
    dscpReceived: { '46': 500 },
    ...over,
  };
}

export function sampleProbe(o: Omit<SampleOptions, 'reportId'> = {}): ProbeResult {
  const sig = String(o.signallingDscp ?? 24);
  const durationS = 10;
  // The report is made when the probe has ended.
  const endedAt = o.createdAt ? Date.parse(o.createdAt) : Date.now();
  const forward = direction(o.forward);
  const reverse = direction(o.reverse);
  return {
    schema: 'voipready.probe/1',
    peer: o.peer ?? 'dc1.example.net:4000',
    codec: 'g711u',
    calls: 1,
    durationS,
    privileged: true,
    startedAt: new Date(endedAt - durationS * 1000).toISOString(),
    forward,
    reverse,
    signalling: {
      forward: { sent: 10, received: 10, lost: 0, dscpSent: 24, dscpReceived: { [sig]: 10 } },
      reverse: { sent: 10, received: 10, lost: 0, dscpSent: 24, dscpReceived: { [sig]: 10 } },
    },
    rttMs: { min: 20.1, mean: 22.4, p50: 22.1, p95: 25.3, p99: 27.9, max: 31.2 },
    oneWayMs: o.oneWayMs ?? { forward: 11.2, reverse: 11.2, estimated: true },
    rFactor: 92.6,
    mos: 4.4,
    checks: [],
    ready: true,
    ...(o.sendTiming ? { sendTiming: o.sendTiming } : {}),
    ...(o.sendPacing ? { sendPacing: o.sendPacing } : {}),
  };
}

export function sampleReport(o: SampleOptions): AgentReport {
  const createdAt = o.createdAt ?? new Date().toISOString();
  return {
    schema: 'voipready.report/1',
    reportId: o.reportId,
    site: o.site ?? 'hq',
    agent: o.agent ?? 'hq-agent-1',
    createdAt,
    probes: [sampleProbe({ ...o, createdAt })],
  };
}

/**
 * The `priority` block of a sample probe run with --priority-test (500 packets per class over three
 * phases): EF and best effort add these p95 delays under load, best effort loses `beLoadedLost`.
 */
export function samplePriority(efAddedP95Ms: number, beAddedP95Ms: number, beLoadedLost = 0): PriorityResult {
  const phase = (sent: number, lost: number, p50: number, p95: number) => ({
    sent,
    returned: sent - lost,
    lossPct: (100 * lost) / sent,
    delayP50Ms: p50,
    delayP95Ms: p95,
    jitterMs: 0.2,
  });
  const cls = (dscp: number, addedP95Ms: number, lost: number) => ({
    dscp,
    unloaded: phase(167, 0, 0.2, 0.5),
    loaded: phase(167, lost, 0.2 + addedP95Ms / 2, 0.5 + addedP95Ms),
    after: phase(166, 0, 0.2, 0.5),
    addedDelayP50Ms: addedP95Ms / 2,
    addedDelayP95Ms: addedP95Ms,
  });
  return {
    loadMode: 'fixed',
    loadCapBps: 8_000_000,
    loadTargetBps: 8_000_000,
    loadSentBps: 7_950_000,
    loadSentPackets: 2700,
    loadDatagramBytes: 1200,
    loadSteps: [{ atS: 3.333, rateBps: 8_000_000 }],
    phasesS: { unloaded: [0, 3.333], loaded: [3.333, 6.667], after: [6.667, 10] },
    ef: cls(46, efAddedP95Ms, 0),
    be: cls(0, beAddedP95Ms, beLoadedLost),
    loadNotSentReason: null,
  };
}
