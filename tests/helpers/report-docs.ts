// Documents for the report tests: a judged probe result with a timeline and streams, the same with
// hostile text in every free-text field a page shows, and a judged capture made from a generated
// pcap. The checks are the policy's own judgement of the figures, never written by hand.
import { Timeline } from '../../agent/probe/timeline.js';
import { sampleProbe } from '../../bench/collector-report.js';
import { analyzeCapture, type CaptureResult } from '../../src/capture/analyze.js';
import { memorySource } from '../../src/capture/reader.js';
import { DEFAULT_POLICY, isReady, judgeNetwork } from '../../src/policy.js';
import { evidenceFromProbe } from '../../src/probe-evidence.js';
import type { DirectionStats, ProbeResult } from '../../src/schemas.js';
import {
  type Endpoints,
  type Frame,
  frameFor,
  rtpPacket,
  sipInvite,
  udpPacket,
  writePcap,
} from './pcap-writer.js';

export const HOSTILE = {
  script: '<script>alert("peer")</script>',
  img: '"><img src=x onerror=alert(1)>',
  long: `${'A'.repeat(3000)}-no-break-${'B'.repeat(2000)}`,
};

/** A run of `seconds` with a loss spike in its middle, as the probe's Timeline records it. */
export function timelineOf(seconds: number, calls: number) {
  const t = new Timeline(0, seconds * 1000);
  for (let ms = 0; ms < seconds * 1000; ms += 20) {
    for (let c = 0; c < calls; c++) {
      t.sentAt(ms);
      const spike = Math.abs(ms - (seconds * 1000) / 2) < 500;
      if (spike && c % 10 === 0) continue;
      const rtt = 20 + (spike ? 40 : 0) + ((ms / 20 + c) % 7);
      t.returnedAt(ms, rtt, ms + rtt, 0.5 + (spike ? 4 : 0) + (c % 3) * 0.1);
    }
  }
  return t.result();
}

function streams(calls: number, d: DirectionStats, forward: boolean) {
  return Array.from({ length: calls }, (_, i) => ({
    ssrc: `0x${(0x1000 + i).toString(16).padStart(8, '0')}`,
    srcPort: forward ? 20000 + 2 * i : 4000,
    dstPort: forward ? 4000 : 20000 + 2 * i,
    sent: Math.round(d.sent / calls),
    received: Math.round(d.received / calls),
    lost: Math.round(d.lost / calls),
    duplicates: 0,
    reordered: 0,
    jitterMs: d.jitterMs,
    jitterMaxMs: d.jitterMaxMs,
  }));
}

/** A probe result judged by the default policy; `over` changes figures before judging. */
export function judgedProbe(over: Partial<ProbeResult> = {}, calls = 5, seconds = 30): ProbeResult {
  const base = sampleProbe({ peer: 'dc1.example.net:4000' });
  const p: ProbeResult = {
    ...base,
    calls,
    durationS: seconds,
    timeline: timelineOf(seconds, calls),
    latencyBasis: 'clocks not synchronised: RTT/2',
    ...over,
  };
  p.forward = { ...p.forward, streams: streams(calls, p.forward, true) };
  p.reverse = { ...p.reverse, streams: streams(calls, p.reverse, false) };
  const checks = judgeNetwork(evidenceFromProbe(p, DEFAULT_POLICY), DEFAULT_POLICY);
  return { ...p, checks, ready: isReady(checks) };
}

/** A probe whose forward path rewrote EF to CS0 and whose text fields are hostile. */
export function hostileProbe(): ProbeResult {
  const p = judgedProbe({
    peer: `${HOSTILE.script}${HOSTILE.img}`,
    forward: { ...sampleProbe().forward, dscpReceived: { '0': 500 } },
    latencyBasis: `${HOSTILE.img} ${HOSTILE.long}`,
  });
  // Evidence is the probe's own text in its checks: make every one hostile too.
  return {
    ...p,
    checks: p.checks.map((c, i) => ({
      ...c,
      evidence: `${c.evidence} ${i % 2 ? HOSTILE.img : HOSTILE.script} ${HOSTILE.long}`,
    })),
  };
}

const A = '10.1.1.10';
const B = '10.2.2.20';

/**
 * `calls` G.711 calls of `packets` packets each, the nth call losing n % 3 packets and every fifth
 * call's media arriving unmarked; with `bothWays`, each call is answered (200 OK with SDP) and has
 * its reverse stream too, as a capture at a site sees a real call. Judged.
 */
export function generatedCapture(
  calls: number,
  o: { packets?: number; name?: string; bothWays?: boolean } = {},
): CaptureResult {
  const packets = o.packets ?? 100;
  const frames: Frame[] = [];
  const T0 = 1_700_000_000;
  const media = (rtp: Endpoints, ssrc: number, c: number, startS: number) => {
    for (let n = 0; n < packets; n++) {
      if (n > 10 && n <= 10 + (c % 3)) continue;
      const bytes = frameFor(1, udpPacket(rtp, rtpPacket({ ssrc, payloadType: 0, timestampStep: 160 }, n)));
      frames.push({ time: startS + n * 0.02, bytes });
    }
  };
  for (let c = 0; c < calls; c++) {
    const sdp = {
      callId: `call-${c}@example`,
      from: `sip:agent${c}@example.com`,
      to: 'sip:queue@example.com',
      payloadTypes: [0],
    };
    const invite = sipInvite({ ...sdp, mediaAddress: B, mediaPort: 30000 + 2 * c });
    const sip: Endpoints = { src: A, dst: B, srcPort: 5060, dstPort: 5060, dscp: 24 };
    frames.push({ time: T0 + c * 0.01, bytes: frameFor(1, udpPacket(sip, invite)) });
    const dscp = c % 5 === 0 ? 0 : 46;
    media(
      { src: A, dst: B, srcPort: 20000 + 2 * c, dstPort: 30000 + 2 * c, dscp },
      0x5000 + c,
      c,
      T0 + 1 + c * 0.01,
    );
    if (o.bothWays) {
      const ok = sipInvite({ ...sdp, mediaAddress: A, mediaPort: 20000 + 2 * c, response: 200 });
      const back: Endpoints = { src: B, dst: A, srcPort: 5060, dstPort: 5060, dscp: 24 };
      frames.push({ time: T0 + c * 0.01 + 0.5, bytes: frameFor(1, udpPacket(back, ok)) });
      media(
        { src: B, dst: A, srcPort: 30000 + 2 * c, dstPort: 20000 + 2 * c, dscp },
        0x9000 + c,
        c + 1,
        T0 + 1.005 + c * 0.01,
      );
    }
  }
  frames.sort((a, b) => a.time - b.time);
  return analyzeCapture(memorySource(writePcap(frames)), o.name ?? 'gen.pcap', { policy: DEFAULT_POLICY });
}
