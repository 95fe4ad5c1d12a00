// Rebuilds the neutral NetworkEvidence from a `voipready.probe/1` result, so anyone holding a probe
// result (the collector, a report renderer) can judge it again with another policy. Pure.
import { codecByName } from './codecs.js';
import type { DscpEvidence, NetworkEvidence, Policy } from './policy.js';
import type { CheckId, DirectionStats, ProbeResult, SignallingDirection } from './schemas.js';

const DIRECTIONS = ['forward', 'reverse'] as const;

function dscpEvidence(
  label: string,
  d: DirectionStats | SignallingDirection,
  expected: number,
): DscpEvidence {
  const seen = Object.keys(d.dscpReceived).length > 0;
  // Packets arrived but no mark was read: the marks were not readable (e.g. no raw socket).
  const readable = seen || (d.received === 0 && d.dscpUnknownReason === undefined);
  return {
    label,
    expected,
    sent: d.dscpSent,
    received: readable ? d.dscpReceived : null,
    ...(d.dscpUnknownReason !== undefined ? { unknownReason: d.dscpUnknownReason } : {}),
  };
}

/** Why the probe itself reported a check as unknown ("not measured: <reason>"), by check id. */
function unknownReasons(probe: ProbeResult): Partial<Record<CheckId, string>> {
  const reasons: Partial<Record<CheckId, string>> = {};
  for (const c of probe.checks) {
    if (c.status === 'unknown') reasons[c.id] = c.evidence.replace(/^not measured: /, '');
  }
  return reasons;
}

export function evidenceFromProbe(probe: ProbeResult, policy: Policy): NetworkEvidence {
  const { forward, reverse, oneWayMs } = probe;
  const hasDelay = oneWayMs.forward !== null || oneWayMs.reverse !== null;
  const codec = codecByName(probe.codec);
  const received = DIRECTIONS.filter((dir) => probe[dir].received > 0);
  return {
    ...(hasDelay
      ? {
          latency: {
            forwardMs: oneWayMs.forward,
            reverseMs: oneWayMs.reverse,
            estimated: oneWayMs.estimated,
            basis: oneWayMs.estimated ? 'clocks not synchronised' : 'clocks synchronised',
          },
        }
      : {}),
    // RFC 3550 A.8 jitter exists only for a direction where packets arrived.
    jitter: received.map((dir) => ({ label: dir, jitterMs: probe[dir].jitterMs })),
    // The sender knows how many it sent: lost = sent - received (src/rtp.ts SequenceTracker note).
    loss: DIRECTIONS.map((dir) => ({ label: dir, lost: probe[dir].lost, expected: probe[dir].sent })),
    dscpRtp: [
      dscpEvidence('forward RTP', forward, policy['dscp-rtp'].audio),
      dscpEvidence('reverse RTP', reverse, policy['dscp-rtp'].audio),
    ],
    dscpSip: [
      dscpEvidence('forward signalling', probe.signalling.forward, policy['dscp-sip'].class),
      dscpEvidence('reverse signalling', probe.signalling.reverse, policy['dscp-sip'].class),
    ],
    ...(codec ? { bandwidth: { codec, calls: probe.calls } } : {}),
    unknownReasons: unknownReasons(probe),
  };
}
