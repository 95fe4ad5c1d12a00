// Turns what a probe run measured into the `voipready.probe/1` document: per-direction statistics,
// DSCP evidence naming the path that rewrote a mark, latency (one-way only with synchronised
// clocks), E-model R/MOS and the policy's checks. Pure: no sockets, no clocks.
import type { z } from 'zod';
import { bandwidthPerCall, type Codec } from '../../src/codecs.js';
import { mosFromR, mouthToEarMs, rFactor } from '../../src/emodel.js';
import { isReady, judgeNetwork, type Policy } from '../../src/policy.js';
import { priorityChecks } from '../../src/priority.js';
import type { PriorityResult } from '../../src/priority-schema.js';
import { evidenceFromProbe } from '../../src/probe-evidence.js';
import {
  type Check,
  type CheckId,
  type ClockSync,
  type DscpCounts,
  PROBE_SCHEMA,
  type ProbeResult,
  type ProbeTimeline,
  type SendPacing as SendPacingSchema,
} from '../../src/schemas.js';
import type { SummaryResponse } from '../../src/wire.js';
import { decideOneWay } from '../net/clock-sync.js';
import type { Summary } from './timing.js';

/** One direction of one stream. */
export interface DirectionCounts {
  /** null when the sender's count is not known (no summary from the reflector). */
  sent: number | null;
  received: number;
  duplicates: number;
  reordered: number;
  maxBurstLoss: number;
  jitterMs: number;
  jitterMaxMs: number;
  dscp: DscpCounts;
}

export interface StreamMeasurement {
  ssrc: number;
  /** The agent's port (source of forward packets). */
  localPort: number;
  /** The reflector's port. */
  remotePort: number;
  /** Forward as counted at the reflector (or, without its summary, as proven by replies). */
  forward: DirectionCounts;
  /** Where the forward figures come from: the reflector's summary, echoed sequences, or nothing. */
  forwardSource: 'reflector' | 'replies' | 'none';
  reverse: DirectionCounts;
  /**
   * Set when the reflector refused or forgot the stream: neither direction's counts are known
   * (the reflector's are missing or partial). The stream counts nothing and carries `unmeasured`,
   * so its packets are never counted as lost.
   */
  unmeasuredReason?: string;
}

export interface ReflectorReport {
  dscpReadable: boolean;
  marksReplies: boolean;
  clock: ClockSync;
  holdUs: { p50: number; p99: number; max: number; samples: number };
}

/** What kept the send times (ProbeMeasurement.sendPacing): the contract's, every key present. */
export type SendPacing = Required<z.infer<typeof SendPacingSchema>>;

export interface ProbeMeasurement {
  peer: string;
  codec: Codec;
  calls: number;
  durationMs: number;
  startedAt: string;
  /** The agent could open a raw socket: it marked its packets and read marks on arrival. */
  privileged: boolean;
  /** Why the agent could not mark/read DSCP (when not privileged). */
  localDscpReason?: string;
  /** The socket layer that measured (agent/probe/sockets.ts), and why not the native one when not. */
  socketPath: { path: 'native' | 'dgram'; reason?: string };
  /** The DSCP the agent marked media and signalling with, and asked the replies to carry. */
  mediaDscp: number;
  signallingDscp: number;
  media: StreamMeasurement[];
  signalling: StreamMeasurement;
  /** From the reflector's summaries; null when none arrived. */
  reflector: ReflectorReport | null;
  localClock: ClockSync;
  /** Round trips on the agent's clock, less the reflector's hold time; undefined without replies. */
  rtt: Summary | undefined;
  /** Mean one-way delays from the two clocks' stamps (meaningful only when both are synchronised). */
  oneWayForwardMs: number | null;
  oneWayReverseMs: number | null;
  /** How late each packet left relative to its ideal time on the grid, ms. */
  sendLateness: Summary | undefined;
  /**
   * What sent on time: the native layer's sender thread (packets carry their due time; the
   * lateness is the send error) or a JavaScript timer (packets carry the actual send instant),
   * and how the thread was scheduled.
   */
  sendPacing?: SendPacing;
  /**
   * Datagrams the kernel dropped because a receive queue was full (SO_RXQ_OVFL): the agent's
   * sockets (replies), and the reflector's while the run's streams were active (probes, anyone's);
   * null where that end cannot say (dgram, an older reflector).
   */
  receiveQueueDrops?: { agent: number | null; reflector: number | null };
  /** The run over time (absent in measurements made without one, e.g. tests'). */
  timeline?: ProbeTimeline;
  /** --priority-test: EF against its best-effort twins, unloaded and under load. */
  priority?: PriorityResult;
}

/**
 * Why the reflector's summary cannot stand for a stream, when it says it refused or forgot the
 * stream (`answered`: replies came back for it): then the stream is unmeasured, never lost.
 */
export function reflectorRefusal(sum: SummaryResponse, answered: boolean): string | undefined {
  if (sum.remark === 'evicted') {
    return sum.known
      ? 'the reflector forgot this stream during the run to make room for others and counted only its later packets'
      : 'the reflector forgot this stream to make room for others (its stream table was full)';
  }
  if (sum.remark === 'ssrc-in-use') {
    return 'the reflector refused this stream: another source address holds its SSRC (a replayed probe?)';
  }
  if (sum.remark === 'stale') {
    return "the reflector refused this stream: the probe's send time is outside its freshness window (do the agent's and the reflector's clocks agree?)";
  }
  if (!sum.known && answered)
    return 'the reflector answered this stream but has no record of it now (restarted?)';
  return undefined;
}

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;
const hex32 = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

function addCounts(into: DscpCounts, from: DscpCounts): DscpCounts {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}

/**
 * Longest run of losses. Sequence accounting sees runs between received packets only; a stream of
 * which nothing arrived lost all its packets in one run.
 */
const burstOf = (d: DirectionCounts) => (d.received === 0 && d.sent ? d.sent : d.maxBurstLoss);

const lostOf = (d: DirectionCounts) => (d.sent === null ? 0 : Math.max(0, d.sent - d.received));

interface DirectionView {
  label: 'forward path' | 'reverse path';
  /** The sender of this direction set the requested DSCP. */
  marked: boolean;
  dscpReadable: boolean;
  dscpUnknownReason: string | undefined;
}

function direction(
  streams: StreamMeasurement[],
  which: 'forward' | 'reverse',
  view: DirectionView,
  sentClass: number,
) {
  // A stream the reflector refused or forgot counts nothing: listed, with why and what was sent.
  const ds = streams.map((s) => (s.unmeasuredReason === undefined ? s[which] : NOTHING));
  const unmeasured = streams.filter((s) => s.unmeasuredReason !== undefined);
  // Nothing measured at all: no mark was read either, and the reflector's refusal says why.
  const dscpUnknownReason =
    view.dscpUnknownReason ??
    (unmeasured.length === streams.length ? unmeasured[0]?.unmeasuredReason : undefined);
  const sent = ds.reduce((a, d) => a + (d.sent ?? 0), 0);
  const received = ds.reduce((a, d) => a + d.received, 0);
  const lost = ds.reduce((a, d) => a + lostOf(d), 0);
  const jitterMs = Math.max(0, ...ds.map((d) => d.jitterMs));
  const stats = {
    sent,
    received,
    lost,
    lossPct: sent > 0 ? round((100 * lost) / sent, 4) : 0,
    duplicates: ds.reduce((a, d) => a + d.duplicates, 0),
    reordered: ds.reduce((a, d) => a + d.reordered, 0),
    maxBurstLoss: Math.max(0, ...ds.map(burstOf)),
    jitterMs: round(jitterMs),
    jitterMaxMs: round(Math.max(0, ...ds.map((d) => d.jitterMaxMs))),
    dscpSent: view.marked ? sentClass : null,
    dscpReceived: view.dscpReadable ? ds.reduce((a, d) => addCounts(a, d.dscp), {} as DscpCounts) : {},
    ...(dscpUnknownReason ? { dscpUnknownReason } : {}),
    streams: streams.map((s, i) => {
      const d = ds[i]!;
      const why = s.unmeasuredReason;
      return {
        ssrc: hex32(s.ssrc),
        srcPort: which === 'forward' ? s.localPort : s.remotePort,
        dstPort: which === 'forward' ? s.remotePort : s.localPort,
        sent: d.sent ?? 0,
        received: d.received,
        lost: lostOf(d),
        duplicates: d.duplicates,
        reordered: d.reordered,
        maxBurstLoss: burstOf(d),
        jitterMs: round(d.jitterMs),
        jitterMaxMs: round(d.jitterMaxMs),
        ...(which === 'forward' ? { source: s.forwardSource } : {}),
        ...(why === undefined
          ? {}
          : { unmeasured: { reason: why, sent: which === 'forward' ? s.forward.sent : null } }),
      };
    }),
  };
  return stats;
}

const NOTHING: DirectionCounts = {
  sent: 0,
  received: 0,
  duplicates: 0,
  reordered: 0,
  maxBurstLoss: 0,
  jitterMs: 0,
  jitterMaxMs: 0,
  dscp: {},
};

/** Who could mark and read in each direction, and why not when they could not. */
function dscpViews(m: ProbeMeasurement): { forward: DirectionView; reverse: DirectionView } {
  const local = m.privileged ? undefined : m.localDscpReason;
  const r = m.reflector;
  const forwardReason = local
    ? `the agent could not mark its packets: ${local}`
    : !r
      ? 'no summary from the reflector'
      : !r.dscpReadable
        ? 'the reflector cannot read marks on arrival (it lacks CAP_NET_RAW, or listens on IPv6)'
        : undefined;
  const reverseReasons = [
    !r
      ? 'no summary from the reflector'
      : !r.marksReplies
        ? 'the reflector cannot mark its replies (it lacks CAP_NET_RAW, or listens on IPv6)'
        : undefined,
    local ? `the agent cannot read marks on arrival: ${local}` : undefined,
  ].filter((v): v is string => v !== undefined);
  const reverseReason = reverseReasons.length > 0 ? reverseReasons.join('; ') : undefined;
  return {
    forward: {
      label: 'forward path',
      marked: m.privileged,
      dscpReadable: r?.dscpReadable ?? false,
      dscpUnknownReason: forwardReason,
    },
    reverse: {
      label: 'reverse path',
      marked: r?.marksReplies ?? false,
      dscpReadable: m.privileged,
      dscpUnknownReason: reverseReason,
    },
  };
}

const timing = (s: Summary | undefined) =>
  s
    ? { p50Ms: round(s.p50), p99Ms: round(s.p99), maxMs: round(s.max), samples: s.samples }
    : { p50Ms: null, p99Ms: null, maxMs: null, samples: 0 };

/** Why a check is unknown when nothing came back: the probe's own words, kept in its document's checks. */
const NO_REPLY_REASONS = {
  latency:
    'no reply came back from the reflector, so no round trip was timed (is it running and reachable, with the same --secret-file as the probe?)',
  jitter: 'no RTP packet arrived in either direction',
  loss: 'no RTP packet was sent',
};

/** What was run, as every document states it. */
type Run = Pick<ProbeMeasurement, 'peer' | 'codec' | 'calls' | 'durationMs' | 'startedAt' | 'privileged'>;
type Measured = Pick<ProbeResult, 'forward' | 'reverse' | 'signalling' | 'rttMs' | 'oneWayMs' | 'priority'>;

/**
 * Judges the measured document the way the collector re-judges it (src/probe-evidence.ts), so the
 * probe's checks and a collector's with the same policy cannot disagree; adds R/MOS and the
 * codec's bandwidth and E-model figures.
 */
function judged<M extends Measured, T extends object>(
  run: Run,
  measured: M,
  tail: T,
  policy: Policy,
  reasons: Partial<Record<CheckId, string>>,
) {
  const { codec } = run;
  const { forward, reverse, oneWayMs } = measured;
  let r: number | null = null;
  if (oneWayMs.forward !== null && oneWayMs.reverse !== null) {
    const worstLossPct = Math.max(forward.lossPct, reverse.sent > 0 ? reverse.lossPct : 0);
    const worstJitter = Math.max(forward.jitterMs, reverse.jitterMs);
    r = rFactor({
      codec,
      mouthToEarMs: mouthToEarMs(codec, Math.max(oneWayMs.forward, oneWayMs.reverse), worstJitter),
      lossPct: worstLossPct,
    });
  }
  const bw = bandwidthPerCall(codec);
  const kbps = (v: number) => round(v, 1);
  const draft = {
    schema: PROBE_SCHEMA,
    peer: run.peer,
    codec: codec.name,
    calls: run.calls,
    durationS: run.durationMs / 1000,
    privileged: run.privileged,
    startedAt: run.startedAt,
    ...measured,
    rFactor: r === null ? null : round(r, 1),
    mos: r === null ? null : round(mosFromR(r), 2),
    checks: [] as Check[],
    ready: false,
    ...tail,
    bandwidth: {
      codec: codec.name,
      packetsPerSecond: bw.packetsPerSecond,
      ipBytesPerPacket: bw.ipBytesPerPacket,
      perCall: { ipKbps: kbps(bw.ipKbps), ethernetKbps: kbps(bw.ethernetKbps) },
      total: { ipKbps: kbps(bw.ipKbps * run.calls), ethernetKbps: kbps(bw.ethernetKbps * run.calls) },
    },
    emodel: {
      ie: codec.ie,
      bpl: codec.bpl,
      approximate: codec.emodelApproximate,
      source: 'ITU-T G.107 (06/2015) with Ie/Bpl from ITU-T G.113 Appendix I (src/codecs.ts)',
    },
  } satisfies ProbeResult;
  // The whole document, as a collector would receive it, is what gets judged.
  const checks = [
    ...judgeNetwork(evidenceFromProbe(draft, policy, reasons), policy),
    ...priorityChecks(draft, policy),
  ];
  return { ...draft, checks, ready: isReady(checks) } satisfies ProbeResult;
}

const signallingOf = (d: ReturnType<typeof direction>) => ({
  sent: d.sent,
  received: d.received,
  lost: d.lost,
  lossPct: d.lossPct,
  dscpSent: d.dscpSent,
  dscpReceived: d.dscpReceived,
  ...(d.dscpUnknownReason !== undefined ? { dscpUnknownReason: d.dscpUnknownReason } : {}),
  ...(d.streams[0]?.unmeasured ? { unmeasured: d.streams[0].unmeasured } : {}),
});

export function buildProbeResult(m: ProbeMeasurement, policy: Policy) {
  const { forward: fwdView, reverse: revView } = dscpViews(m);
  const forward = direction(m.media, 'forward', fwdView, m.mediaDscp);
  const reverse = direction(m.media, 'reverse', revView, m.mediaDscp);
  const signalling = {
    forward: signallingOf(direction([m.signalling], 'forward', fwdView, m.signallingDscp)),
    reverse: signallingOf(direction([m.signalling], 'reverse', revView, m.signallingDscp)),
  };
  const rtt = m.rtt;
  const peerClock = m.reflector?.clock ?? null;
  const decision = decideOneWay(m.localClock, peerClock);
  const oneWay =
    decision.oneWay && m.oneWayForwardMs !== null && m.oneWayReverseMs !== null
      ? { forward: round(m.oneWayForwardMs), reverse: round(m.oneWayReverseMs), estimated: false }
      : rtt
        ? { forward: round(rtt.mean / 2), reverse: round(rtt.mean / 2), estimated: true }
        : { forward: null, reverse: null, estimated: true };
  return judged(
    m,
    {
      forward,
      reverse,
      signalling,
      rttMs: rtt
        ? {
            min: round(rtt.min),
            mean: round(rtt.mean),
            p50: round(rtt.p50),
            p95: round(rtt.p95),
            p99: round(rtt.p99),
            max: round(rtt.max),
          }
        : null,
      oneWayMs: oneWay,
      ...(m.timeline ? { timeline: m.timeline } : {}),
      ...(m.priority ? { priority: m.priority } : {}),
    },
    {
      socketPath: m.socketPath.path,
      ...(m.socketPath.reason ? { socketPathReason: m.socketPath.reason } : {}),
      sendTiming: timing(m.sendLateness),
      ...(m.sendPacing ? { sendPacing: m.sendPacing } : {}),
      ...(m.receiveQueueDrops ? { receiveQueueDrops: m.receiveQueueDrops } : {}),
      reflectorSendTiming: m.reflector
        ? {
            p50Ms: round(m.reflector.holdUs.p50 / 1000),
            p99Ms: round(m.reflector.holdUs.p99 / 1000),
            maxMs: round(m.reflector.holdUs.max / 1000),
            samples: m.reflector.holdUs.samples,
          }
        : null,
      clockSync: { local: m.localClock, peer: peerClock },
      latencyBasis: decision.basis,
    },
    policy,
    refusalReasons(m) ?? NO_REPLY_REASONS,
  );
}

/** When the reflector refused or forgot streams, that (not "nothing arrived") is why checks lack data. */
function refusalReasons(m: ProbeMeasurement): Partial<Record<CheckId, string>> | undefined {
  const refused = [...m.media, m.signalling].filter((s) => s.unmeasuredReason !== undefined);
  if (refused.length === 0) return undefined;
  const reason = `${refused.length} of ${m.media.length + 1} streams not measured: ${refused[0]!.unmeasuredReason}`;
  return { latency: NO_REPLY_REASONS.latency, jitter: reason, loss: reason };
}

/** A run that could not start (the peer's name does not resolve): what it would have sent. */
export interface UnsentRun {
  peer: string;
  codec: Codec;
  calls: number;
  durationMs: number;
  startedAt: string;
  /** Packets each call (and the signalling stream) would have sent. */
  packetsPerCall: number;
  signallingPackets: number;
  localClock: ClockSync;
  /** Why nothing was sent, e.g. "cannot resolve dc.example: ENOTFOUND". */
  reason: string;
}

/**
 * Failure is data (blackbox_exporter's probe_success 0): every packet the run would have sent, and
 * every reply, counts as lost; latency, jitter and DSCP are unknown with the reason.
 */
export function unsentProbeResult(u: UnsentRun, policy: Policy) {
  const lostDirection = (calls: number, packets: number) => ({
    sent: calls * packets,
    received: 0,
    lost: calls * packets,
    lossPct: calls * packets > 0 ? 100 : 0,
    duplicates: 0,
    reordered: 0,
    maxBurstLoss: packets,
    jitterMs: 0,
    jitterMaxMs: 0,
    dscpSent: null,
    dscpReceived: {},
    dscpUnknownReason: u.reason,
    streams: [],
  });
  const media = lostDirection(u.calls, u.packetsPerCall);
  const sig = signallingOf(lostDirection(1, u.signallingPackets));
  const decision = decideOneWay(u.localClock, null);
  return judged(
    { ...u, privileged: false },
    {
      forward: media,
      reverse: { ...media },
      signalling: { forward: sig, reverse: { ...sig } },
      rttMs: null,
      oneWayMs: { forward: null, reverse: null, estimated: true },
    },
    {
      sendTiming: timing(undefined),
      reflectorSendTiming: null,
      clockSync: { local: u.localClock, peer: null },
      latencyBasis: decision.basis,
    },
    policy,
    { latency: u.reason, jitter: u.reason, loss: u.reason },
  );
}
