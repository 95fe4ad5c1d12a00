// Rebuilds the neutral NetworkEvidence from a `voipready.probe/1` result, so anyone holding a probe
// result (the collector, a report renderer) can judge it again with another policy. Pure.
import { codecByName } from './codecs.js';
import type { DscpEvidence, NetworkEvidence, Policy, StreamLoss } from './policy.js';
import type { CheckId, DirectionStats, ProbeResult, ProbeStream, SignallingDirection } from './schemas.js';

const DIRECTIONS = ['forward', 'reverse'] as const;

/** The RTP streams (one per call) a direction lists, or undefined when it lists none (valid). */
export function listedStreams(d: DirectionStats): ProbeStream[] | undefined {
  return d.streams && d.streams.length > 0 ? d.streams : undefined;
}

/**
 * "No more than 1% loss in any RTP stream": per stream when the probe listed its streams, else the
 * direction as a whole.
 */
function lossEvidence(probe: ProbeResult): StreamLoss[] {
  return DIRECTIONS.flatMap((dir) => {
    const streams = listedStreams(probe[dir]);
    if (!streams) return [{ label: `${dir} path`, lost: probe[dir].lost, expected: probe[dir].sent }];
    return streams.map((s) => ({
      label: `${dir} path, stream ${s.ssrc} (port ${s.srcPort} → ${s.dstPort})`,
      lost: s.lost,
      expected: s.sent,
      // Refused or forgotten by the reflector: unknown, never loss.
      ...(s.unmeasured ? { unknownReason: s.unmeasured.reason } : {}),
    }));
  });
}

function dscpEvidence(
  label: string,
  d: DirectionStats | SignallingDirection,
  expected: number,
): DscpEvidence {
  // A direction the probe could not read, or whose sender did not mark, says nothing about the
  // path: unknown with the reason, never a rewrite (an unmarked packet arriving as CS0 is not one).
  if (d.dscpUnknownReason !== undefined || d.dscpSent === null) {
    const unknownReason = d.dscpUnknownReason ?? 'the sender did not mark its packets';
    return { label, expected, sent: d.dscpSent, received: null, unknownReason };
  }
  // Packets arrived but no mark was read: the marks were not readable.
  const readable = Object.keys(d.dscpReceived).length > 0 || d.received === 0;
  return { label, expected, sent: d.dscpSent, received: readable ? d.dscpReceived : null };
}

/** Why the probe itself reported a check as unknown ("not measured: <reason>"), by check id. */
function unknownReasons(probe: ProbeResult): Partial<Record<CheckId, string>> {
  const reasons: Partial<Record<CheckId, string>> = {};
  for (const c of probe.checks) {
    if (c.status === 'unknown') reasons[c.id] = c.evidence.replace(/^not measured: /, '');
  }
  return reasons;
}

/**
 * `reasons`: why a check could not be measured, for a document whose own checks do not say yet (the
 * probe judging the document it just measured); the document's unknown checks take precedence.
 */
export function evidenceFromProbe(
  probe: ProbeResult,
  policy: Policy,
  reasons: Partial<Record<CheckId, string>> = {},
): NetworkEvidence {
  const { forward, reverse, oneWayMs } = probe;
  const hasDelay = oneWayMs.forward !== null || oneWayMs.reverse !== null;
  const codec = codecByName(probe.codec);
  // RFC 3550 A.8 jitter needs two arrivals in a direction.
  const received = DIRECTIONS.filter((dir) => probe[dir].received > 1);
  const basis = typeof probe.latencyBasis === 'string' ? probe.latencyBasis : undefined;
  return {
    ...(hasDelay
      ? {
          latency: {
            forwardMs: oneWayMs.forward,
            reverseMs: oneWayMs.reverse,
            estimated: oneWayMs.estimated,
            basis: basis ?? (oneWayMs.estimated ? 'clocks not synchronised' : 'clocks synchronised'),
          },
        }
      : {}),
    jitter: received.map((dir) => ({ label: `${dir} path`, jitterMs: probe[dir].jitterMs })),
    // The sender knows how many it sent: lost = sent - received (src/rtp.ts SequenceTracker note).
    loss: lossEvidence(probe),
    dscpRtp: [
      dscpEvidence('forward path', forward, policy['dscp-rtp'].audio),
      dscpEvidence('reverse path', reverse, policy['dscp-rtp'].audio),
    ],
    dscpSip: [
      dscpEvidence('forward path', probe.signalling.forward, policy['dscp-sip'].class),
      dscpEvidence('reverse path', probe.signalling.reverse, policy['dscp-sip'].class),
    ],
    ...(codec ? { bandwidth: { codec, calls: probe.calls } } : {}),
    unknownReasons: { ...reasons, ...unknownReasons(probe) },
  };
}
