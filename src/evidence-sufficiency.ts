// Sufficiency: how much a probe must have measured before its figures can decide a check. Evidence
// below a minimum is dropped and the check says `unknown` with the reason (unknown is not pass): a
// 20 ms run of 2 packets proves nothing about a path for the 24 hours its verdict would count. Pure.
import { bandwidthPerCall, codecByName } from './codecs.js';
import type { DscpEvidence, NetworkEvidence } from './policy.js';
import type { PriorityResult } from './priority-schema.js';
import type { CheckId, DscpCounts, ProbeResult } from './schemas.js';

/** The minimums (docs/collector.md, "Sufficiency"). */
export const PROBE_MINIMUMS = {
  /** Every network check: the run lasted at least this long. */
  durationS: 1,
  /** latency: round trips timed (replies received). */
  latencyRoundTrips: 10,
  /** jitter: packets received in a direction for its RFC 3550 estimate to settle (gain 1/16). */
  jitterPackets: 50,
  /** loss: packets sent in every stream (at 50, one lost packet is 2 %). */
  lossPacketsPerStream: 50,
  /** dscp-rtp / dscp-sip: packets whose mark was read on arrival, per direction. */
  dscpRtpPackets: 10,
  dscpSipPackets: 5,
  /** bandwidth: the forward direction carried at least this share of the calls' packets. */
  bandwidthLoadRatio: 0.9,
  /** priority: packets sent per class (EF, best effort) in the unloaded and in the loaded phase. */
  priorityPacketsPerPhase: 50,
} as const;

const NETWORK: CheckId[] = ['latency', 'jitter', 'loss', 'dscp-rtp', 'dscp-sip', 'bandwidth'];

const sum = (c: DscpCounts) => Object.values(c).reduce((a, b) => a + b, 0);

function dscpSufficient(items: DscpEvidence[], minPackets: number): DscpEvidence[] {
  return items.map((item) => {
    if (item.received === null) return item;
    const n = sum(item.received);
    if (n === 0 || n >= minPackets) return item;
    return {
      ...item,
      received: null,
      unknownReason: `too little evidence: ${n} marks read on arrival (at least ${minPackets} needed)`,
    };
  });
}

/** The evidence a probe result holds enough of; what it holds too little of becomes unknown. */
export function sufficientEvidence(probe: ProbeResult, e: NetworkEvidence): NetworkEvidence {
  const min = PROBE_MINIMUMS;
  const reasons: Partial<Record<CheckId, string>> = { ...e.unknownReasons };
  if (probe.durationS < min.durationS) {
    const why = `too little evidence: a ${probe.durationS} s run (at least ${min.durationS} s needed)`;
    for (const id of NETWORK) reasons[id] = why;
    return { jitter: [], loss: [], dscpRtp: [], dscpSip: [], unknownReasons: reasons };
  }
  const out: NetworkEvidence = { ...e, unknownReasons: reasons };
  if (e.latency && probe.reverse.received < min.latencyRoundTrips) {
    delete out.latency;
    reasons.latency = `too little evidence: ${probe.reverse.received} round trips (at least ${min.latencyRoundTrips} needed)`;
  }
  const jitterDirs = (['forward', 'reverse'] as const).filter(
    (dir) => probe[dir].received >= min.jitterPackets,
  );
  out.jitter = e.jitter.filter((j) => jitterDirs.some((dir) => j.label === `${dir} path`));
  if (e.jitter.length > 0 && out.jitter.length === 0) {
    reasons.jitter = `too little evidence: ${probe.forward.received} packets received forward, ${probe.reverse.received} reverse (at least ${min.jitterPackets} needed in a direction)`;
  }
  const short = e.loss.find((s) => s.expected > 0 && s.expected < min.lossPacketsPerStream);
  if (short) {
    out.loss = [];
    reasons.loss = `too little evidence: ${short.expected} packets sent on ${short.label} (at least ${min.lossPacketsPerStream} per stream needed)`;
  }
  out.dscpRtp = dscpSufficient(e.dscpRtp, min.dscpRtpPackets);
  out.dscpSip = dscpSufficient(e.dscpSip, min.dscpSipPackets);
  const codec = codecByName(probe.codec);
  if (e.bandwidth && codec) {
    const carried = probe.calls * bandwidthPerCall(codec).packetsPerSecond * probe.durationS;
    if (probe.forward.sent < carried * min.bandwidthLoadRatio) {
      delete out.bandwidth;
      reasons.bandwidth = `too little evidence: ${probe.forward.sent} packets sent, ${Math.round((100 * probe.forward.sent) / carried)} % of what ${probe.calls} ${codec.name} calls send in ${probe.durationS} s (at least ${100 * min.bandwidthLoadRatio} % needed)`;
    }
  }
  return out;
}

/** Why a priority test's figures are too few to decide the check, or undefined when they suffice. */
export function insufficientPriority(p: PriorityResult): string | undefined {
  const min = PROBE_MINIMUMS.priorityPacketsPerPhase;
  for (const [name, c] of [
    ['EF', p.ef],
    ['best effort', p.be],
  ] as const) {
    for (const phase of ['unloaded', 'loaded'] as const) {
      if (c[phase].sent < min) {
        return `too little evidence: ${c[phase].sent} ${name} packets sent in the ${phase} phase (at least ${min} needed)`;
      }
    }
  }
  return undefined;
}
