// The media and signalling probe: N concurrent call-shaped RTP streams (the codec's payload type,
// size and packetization, marked EF) plus a CS3-marked signalling stream to a `voipready reflector`;
// then the reflector's per-stream summaries for the forward direction, and the result.
// Failure is data: an unreachable peer gives 100 % loss and failing checks, never an exception.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../src/args.js';
import { CODECS, type CodecName } from '../src/codecs.js';
import { errorMessage, UserError } from '../src/errors.js';
import { DEFAULT_POLICY, type Policy } from '../src/policy.js';
import { PROBE_LATE_WAIT_MS, PROBE_SUMMARY_DEADLINE_MS } from '../src/probe-run.js';
import { JitterEstimator, RTP_HEADER_BYTES, SequenceTracker } from '../src/rtp.js';
import type { ClockSync, DscpCounts, ProbeResult } from '../src/schemas.js';
import {
  decodeMessage,
  encodeProbe,
  encodeSummaryRequest,
  MIN_PAYLOAD_BYTES,
  type SummaryResponse,
} from '../src/wire.js';
import { detectClockSync } from './net/clock-sync.js';
import { loadNativeUdp, type NativeBinding, noticeFallback } from './net/native-udp.js';
import { wallNowMs } from './net/wall-clock.js';
import { mainThreadTicker, runPacer, type Ticker } from './probe/pacer.js';
import {
  buildProbeResult,
  type DirectionCounts,
  reflectorRefusal,
  type StreamMeasurement,
  unsentProbeResult,
} from './probe/result.js';
import {
  openDgramProbeSockets,
  openNativeProbeSockets,
  type ProbeSockets,
  type ProbeSocketsRequest,
} from './probe/sockets.js';
import { Timeline } from './probe/timeline.js';
import { Histogram, Mean } from './probe/timing.js';

export interface ProbeOptions {
  /** host:port of the reflector's media port. */
  peer: string;
  /** Reflector's signalling port; default media port + 1. */
  signallingPort?: number;
  codec: CodecName;
  calls: number;
  durationMs: number;
  /** How long to wait for late packets after the last send; default 2 s. */
  waitMs?: number;
  secret?: Buffer;
  policy?: Policy;
  onProgress?: (fraction: number) => void;
}

export interface ProbeDeps {
  now: () => number;
  /** Wakes the pacer at each tick (tests inject a fake); default: mainThreadTicker on the socket layer's clock. */
  ticker?: Ticker;
  clockSync: () => Promise<ClockSync>;
  /** Dgram path only: set false to measure without raw sockets even when privileged. */
  useRawSocket: boolean;
  /** Even source ports are picked at random from this range (RTP convention, RFC 3550 §11). */
  portRange: [number, number];
  /** The native socket layer, or why it cannot be used (then dgram measures, with a notice). */
  nativeUdp: () => NativeBinding | string;
  /** Says once that the fallback measures (default: one line on stderr). */
  notice: (reason: string) => void;
  /** Resolves the peer's host name (tests inject failures such as EAI_AGAIN). */
  lookup: (host: string) => Promise<{ address: string }>;
}

export const MAX_CALLS = 500;
/** One hour: within the reflector's per-stream sequence span (MAX_STREAM_SPAN). */
const MAX_DURATION_MS = 3600 * 1000;
/** Signalling probes: one every 100 ms, the size of a typical SIP request. */
const SIGNALLING_INTERVAL_MS = 100;
const SIGNALLING_BYTES = 600;
/** Summary requests: retried this often, within PROBE_SUMMARY_DEADLINE_MS after the wait. */
const SUMMARY_RETRY_MS = 200;
/**
 * Slots of the pacing grid are at least this far apart. Each wake-up costs about 0.1 ms of CPU on
 * the build machine (a timer and a timed wait), so wake-ups, not packets, dominate the probe's CPU,
 * and each may hold the event loop for up to 1.2 ms: 4 ms slots (250 wake-ups/s at 20 ms ptime)
 * cost a quarter of 1 ms slots and leave the loop free most of the time, and a slot's packets still
 * leave within a fraction of a millisecond.
 */
const MIN_SLOT_MS = 4;
/** Send times kept per stream to match replies (RTT): 2^10 packets, 20 s at 20 ms. */
const SEND_RING = 1024;

/**
 * RFC 6761 §6.4: name resolution libraries "SHOULD recognize 'invalid' names as special and
 * SHOULD always return immediately with a negative response". glibc asks the configured server
 * instead, so we answer them here.
 */
export function resolveHost(host: string): Promise<{ address: string }> {
  if (/(^|\.)invalid\.?$/i.test(host)) {
    return Promise.reject(
      Object.assign(new Error(`${host} is an RFC 6761 invalid name`), { code: 'ENOTFOUND' }),
    );
  }
  return lookup(host);
}

const defaultDeps: ProbeDeps = {
  now: wallNowMs,
  clockSync: () => detectClockSync(),
  useRawSocket: true,
  nativeUdp: loadNativeUdp,
  notice: noticeFallback,
  portRange: [16384, 32766],
  lookup: resolveHost,
};

const randomU32 = () => (Math.random() * 0x100000000) >>> 0;

interface Direction {
  tracker: SequenceTracker;
  jitter: JitterEstimator;
  dscp: Uint32Array;
}

interface StreamState {
  index: number;
  remotePort: number;
  ssrc: number;
  signalling: boolean;
  packetBytes: number;
  payloadType: number;
  clockRate: number;
  sequenceBase: number;
  timestampBase: number;
  /** Ideal send time of packet 0. */
  originMs: number;
  sent: number;
  sendTimes: Float64Array;
  sendSequences: Int32Array;
  reverse: Direction;
  /** Forward packets known to have arrived, from the sequences echoed in replies. */
  echoed: SequenceTracker;
  summary?: SummaryResponse;
}

function newDirection(clockRate: number): Direction {
  return {
    tracker: new SequenceTracker(),
    jitter: new JitterEstimator(clockRate),
    dscp: new Uint32Array(64),
  };
}

function countsOf(dscp: Uint32Array): DscpCounts {
  const out: DscpCounts = {};
  dscp.forEach((n, d) => {
    if (n > 0) out[String(d)] = n;
  });
  return out;
}

function validate(o: ProbeOptions) {
  const codec = CODECS[o.codec];
  if (!codec) throw new UserError(`unknown codec "${o.codec}" (choose ${Object.keys(CODECS).join(', ')})`);
  if (codec.payloadBytes < MIN_PAYLOAD_BYTES) {
    throw new UserError(
      `codec ${o.codec} payload is shorter than the ${MIN_PAYLOAD_BYTES}-byte probe fields`,
    );
  }
  if (!Number.isInteger(o.calls) || o.calls < 1 || o.calls > MAX_CALLS) {
    throw new UserError(`calls must be a whole number between 1 and ${MAX_CALLS}`);
  }
  if (!(o.durationMs >= codec.ptimeMs && o.durationMs <= MAX_DURATION_MS)) {
    throw new UserError(`duration must be between ${codec.ptimeMs} ms and 1 h`);
  }
  if (o.waitMs !== undefined && !(o.waitMs >= 0 && o.waitMs <= 60_000)) {
    throw new UserError('wait must be between 0 and 60 s');
  }
  const { host, port } = parseHostPort(o.peer, '--peer');
  const signallingPort = o.signallingPort ?? port + 1;
  if (!Number.isInteger(signallingPort) || signallingPort < 1 || signallingPort > 65535) {
    throw new UserError('signalling port must be 1..65535');
  }
  return {
    codec,
    host,
    port,
    signallingPort,
    policy: o.policy ?? DEFAULT_POLICY,
    waitMs: o.waitMs ?? PROBE_LATE_WAIT_MS,
    perCall: Math.floor(o.durationMs / codec.ptimeMs),
    sigTotal: Math.max(1, Math.floor(o.durationMs / SIGNALLING_INTERVAL_MS)),
  };
}

type Plan = ReturnType<typeof validate>;

/** The streams of one run and what their replies measured. */
interface Run {
  media: StreamState[];
  sig: StreamState;
  all: StreamState[];
  rtt: Histogram;
  oneWayForward: Mean;
  oneWayReverse: Mean;
  /** The run over time; set when sending starts. */
  timeline: Timeline | undefined;
}

function newRun(plan: Plan, calls: number): Run {
  const bySsrc = new Set<number>();
  const stream = (index: number, signalling: boolean): StreamState => {
    let ssrc = randomU32();
    while (bySsrc.has(ssrc)) ssrc = randomU32();
    bySsrc.add(ssrc);
    return {
      index,
      remotePort: signalling ? plan.signallingPort : plan.port,
      ssrc,
      signalling,
      packetBytes: signalling ? SIGNALLING_BYTES : RTP_HEADER_BYTES + plan.codec.payloadBytes,
      payloadType: plan.codec.payloadType,
      clockRate: plan.codec.clockRate,
      sequenceBase: randomU32() & 0xffff,
      timestampBase: randomU32(),
      originMs: 0,
      sent: 0,
      sendTimes: new Float64Array(SEND_RING),
      sendSequences: new Int32Array(SEND_RING).fill(-1),
      reverse: newDirection(plan.codec.clockRate),
      echoed: new SequenceTracker(),
    };
  };
  const media = Array.from({ length: calls }, (_, i) => stream(i, false));
  const sig = stream(calls, true);
  return {
    media,
    sig,
    all: [...media, sig],
    rtt: new Histogram(),
    oneWayForward: new Mean(),
    oneWayReverse: new Mean(),
    timeline: undefined,
  };
}

/** A reply or summary response for one of the run's streams (already known to come from the peer). */
function onDatagram(run: Run, secret: Buffer | undefined) {
  return (index: number, msg: Buffer, arrivalMs: number, dscp: number | null) => {
    const s = run.all[index]!;
    const m = decodeMessage(msg, secret);
    if (typeof m === 'string' || m.ssrc !== s.ssrc) return;
    if (m.type === 'summaryResponse') {
      s.summary = m;
      return;
    }
    if (m.type !== 'reply') return;
    const status = s.reverse.tracker.add(m.sequence);
    if (status === 'duplicate' || status === 'ignored') return;
    // RFC 3550 A.8 over (arrival, the reflector's send-instant timestamp): reverse-path jitter only.
    s.reverse.jitter.update(arrivalMs, m.timestamp);
    if (dscp !== null) s.reverse.dscp[dscp]!++;
    s.echoed.add(m.echoedSequence);
    const slot = m.echoedSequence % SEND_RING;
    if (s.sendSequences[slot] !== m.echoedSequence) return;
    const sentMs = s.sendTimes[slot]!;
    const holdMs = m.holdUs / 1000;
    const rttMs = arrivalMs - sentMs - holdMs;
    run.rtt.add(rttMs);
    if (!s.signalling) run.timeline?.returnedAt(sentMs, rttMs, arrivalMs, s.reverse.jitter.jitterMs);
    // The reflector's 32-bit microsecond arrival stamp, unwrapped next to our send time.
    const sentUs = sentMs * 1000;
    const diff =
      ((((m.arrivalUs - (sentUs % 0x100000000)) % 0x100000000) + 0x180000000) % 0x100000000) - 0x80000000;
    const reflectorArrivalMs = (sentUs + diff) / 1000;
    run.oneWayForward.add(reflectorArrivalMs - sentMs);
    run.oneWayReverse.add(arrivalMs - (reflectorArrivalMs + holdMs));
  };
}

/**
 * The sending phase: calls spread over the frame in S slots, at least MIN_SLOT_MS apart: call i
 * sends packet k at start + k·ptime + (i mod S)·ptime/S; the signalling stream every 100 ms.
 * Returns how late each media packet left against its ideal time.
 */
async function sendCalls(
  run: Run,
  io: ProbeSockets,
  plan: Plan,
  o: { secret?: Buffer; ticker: Ticker; onProgress?: (fraction: number) => void },
): Promise<{ startMs: number; lateness: Histogram }> {
  const mediaDscp = plan.policy['dscp-rtp'].audio;
  const signallingDscp = plan.policy['dscp-sip'].class;
  const send = (s: StreamState, k: number, dscp: number) => {
    const buf = io.buffer(s.index);
    const t = io.now();
    const sequence = (s.sequenceBase + k) & 0xffff;
    // The RTP timestamp is the actual send instant (RFC 3550 §5.1: the sampling instant), so
    // the receiver's A.8 jitter sees network variation only, not our timer's lateness.
    const timestamp = s.timestampBase + Math.round(((t - s.originMs) * s.clockRate) / 1000);
    encodeProbe(
      buf,
      s.packetBytes,
      {
        payloadType: s.payloadType,
        sequence,
        timestamp,
        ssrc: s.ssrc,
        replyDscp: dscp,
        signalling: s.signalling,
        sentAtMs: t,
      },
      o.secret,
    );
    s.sendTimes[sequence % SEND_RING] = t;
    s.sendSequences[sequence % SEND_RING] = sequence;
    s.sent++;
    if (!s.signalling) run.timeline?.sentAt(t);
    io.send(s.index, s.packetBytes, dscp);
    return t;
  };

  const { media, sig } = run;
  const n = media.length;
  const ptimeMs = plan.codec.ptimeMs;
  const slots = Math.max(1, Math.min(n, Math.floor(ptimeMs / MIN_SLOT_MS)));
  const stepMs = ptimeMs / slots;
  const total = plan.perCall * slots;
  const startMs = io.now() + 20;
  run.timeline = new Timeline(startMs, plan.perCall * ptimeMs);
  for (const s of media) s.originMs = startMs + (s.index % slots) * stepMs;
  sig.originMs = startMs;
  let sigNext = 0;
  const lateness = new Histogram();
  let lastProgress = -1;
  const pacer = runPacer({
    startMs,
    stepMs,
    total,
    now: io.now,
    ticker: o.ticker,
    onSend: (e, idealMs) => {
      const k = Math.floor(e / slots);
      for (let i = e % slots; i < n; i += slots) {
        lateness.add(send(media[i]!, k, mediaDscp) - idealMs);
      }
      while (sigNext < plan.sigTotal && startMs + sigNext * SIGNALLING_INTERVAL_MS <= idealMs) {
        send(sig, sigNext, signallingDscp);
        sigNext++;
      }
      io.flush();
      const pct = Math.floor((100 * (e + 1)) / total);
      if (pct !== lastProgress) {
        lastProgress = pct;
        o.onProgress?.((e + 1) / total);
      }
    },
  });
  await pacer.done;
  return { startMs, lateness };
}

/** Late packets, then the reflector's forward-direction summaries (retried: they can be lost too). */
async function fetchSummaries(run: Run, io: ProbeSockets, waitMs: number, secret?: Buffer): Promise<void> {
  await new Promise((r) => setTimeout(r, waitMs));
  const deadline = io.now() + PROBE_SUMMARY_DEADLINE_MS;
  let nonce = randomU32();
  while (io.now() < deadline) {
    const missing = run.all.filter((s) => !s.summary);
    if (missing.length === 0) break;
    for (const s of missing)
      io.sendControl(s.index, encodeSummaryRequest({ ssrc: s.ssrc, nonce: nonce++ }, secret));
    await new Promise((r) => setTimeout(r, SUMMARY_RETRY_MS));
  }
}

/** One stream's figures: forward from the reflector's summary (or the echoed sequences), reverse our own. */
function measure(s: StreamState, localPort: number): StreamMeasurement {
  const sum = s.summary?.known ? s.summary : undefined;
  const forward: DirectionCounts = sum
    ? {
        sent: s.sent,
        received: sum.received,
        duplicates: sum.duplicates,
        reordered: sum.reordered,
        maxBurstLoss: sum.maxBurstLoss,
        jitterMs: sum.jitterUs / 1000,
        jitterMaxMs: sum.jitterMaxUs / 1000,
        dscp: Object.fromEntries(sum.dscpCounts.map(([k, v]) => [String(k), v])),
      }
    : {
        // Without the reflector's count, replies prove at least these forward packets arrived.
        sent: s.sent,
        received: s.echoed.received,
        duplicates: 0,
        reordered: 0,
        maxBurstLoss: s.echoed.maxBurstLoss(),
        jitterMs: 0,
        jitterMaxMs: 0,
        dscp: {},
      };
  const rev = s.reverse;
  const unmeasuredReason = s.summary ? reflectorRefusal(s.summary, s.echoed.received > 0) : undefined;
  return {
    ...(unmeasuredReason ? { unmeasuredReason } : {}),
    ssrc: s.ssrc,
    localPort,
    remotePort: s.remotePort,
    forwardSource: sum ? 'reflector' : s.echoed.received > 0 ? 'replies' : 'none',
    forward,
    reverse: {
      sent: sum ? sum.repliesSent : s.echoed.received > 0 ? null : 0,
      received: rev.tracker.received,
      duplicates: rev.tracker.duplicates,
      reordered: rev.tracker.reordered,
      maxBurstLoss: rev.tracker.maxBurstLoss(),
      jitterMs: rev.jitter.jitterMs,
      jitterMaxMs: rev.jitter.maxJitterMs,
      dscp: countsOf(rev.dscp),
    },
  };
}

function reflectorReport(run: Run) {
  const first = run.all.find((s) => s.summary?.known)?.summary;
  if (!first) return null;
  return {
    dscpReadable: first.dscpReadable,
    marksReplies: first.marksReplies,
    clock: {
      synchronised: first.clock.synchronised,
      errorBoundMs: first.clock.errorBoundUs === null ? null : first.clock.errorBoundUs / 1000,
      source: first.clock.source,
    },
    holdUs: { p50: first.holdP50Us, p99: first.holdP99Us, max: first.holdMaxUs, samples: first.holdSamples },
  };
}

export async function runProbe(options: ProbeOptions, deps: Partial<ProbeDeps> = {}): Promise<ProbeResult> {
  const d: ProbeDeps = { ...defaultDeps, ...deps };
  const plan = validate(options);
  const { codec, host, policy } = plan;
  const localClockPromise = d.clockSync();

  let peerIp = host;
  if (!isIP(host)) {
    try {
      peerIp = (await d.lookup(host)).address;
    } catch (err) {
      // Failure is data: a name that does not resolve is a not-ready result, not an exception.
      return unsentProbeResult(
        {
          peer: options.peer,
          codec,
          calls: options.calls,
          durationMs: options.durationMs,
          startedAt: new Date(d.now()).toISOString(),
          packetsPerCall: plan.perCall,
          signallingPackets: plan.sigTotal,
          localClock: await localClockPromise,
          reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
        },
        policy,
      );
    }
  }

  const run = newRun(plan, options.calls);
  const request: ProbeSocketsRequest = {
    family: isIP(peerIp) as 4 | 6,
    peerIp,
    endpoints: run.all,
    portRange: d.portRange,
    onDatagram: onDatagram(run, options.secret),
  };
  const native = d.nativeUdp();
  if (typeof native === 'string') d.notice(native);
  const io =
    typeof native === 'string'
      ? await openDgramProbeSockets(request, { useRawSocket: d.useRawSocket, now: d.now })
      : openNativeProbeSockets(request, native);
  try {
    const { startMs, lateness } = await sendCalls(run, io, plan, {
      ...options,
      ticker: d.ticker ?? mainThreadTicker(io.now),
    });
    await fetchSummaries(run, io, plan.waitMs, options.secret);
    const withPort = (s: StreamState) => measure(s, io.localPorts[s.index]!);
    return buildProbeResult(
      {
        peer: options.peer,
        codec,
        calls: options.calls,
        durationMs: options.durationMs,
        startedAt: new Date(startMs).toISOString(),
        privileged: io.dscpReason === undefined,
        ...(io.dscpReason ? { localDscpReason: io.dscpReason } : {}),
        socketPath: { path: io.path, ...(typeof native === 'string' ? { reason: native } : {}) },
        mediaDscp: policy['dscp-rtp'].audio,
        signallingDscp: policy['dscp-sip'].class,
        media: run.media.map(withPort),
        signalling: withPort(run.sig),
        reflector: reflectorReport(run),
        localClock: await localClockPromise,
        rtt: run.rtt.summary(),
        oneWayForwardMs: run.oneWayForward.value,
        oneWayReverseMs: run.oneWayReverse.value,
        sendLateness: lateness.summary(),
        ...(run.timeline ? { timeline: run.timeline.result() } : {}),
      },
      policy,
    );
  } finally {
    io.close();
  }
}
