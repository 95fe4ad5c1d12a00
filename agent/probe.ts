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
  encodeLoad,
  encodeLoadRequest,
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
  LOAD_DATAGRAM_BYTES,
  type LoadSender,
  PriorityRun,
  type PriorityTestOptions,
} from './probe/priority.js';
import {
  buildProbeResult,
  type DirectionCounts,
  reflectorRefusal,
  type SendPacing,
  type StreamMeasurement,
  unsentProbeResult,
} from './probe/result.js';
import {
  openDgramProbeSockets,
  openNativeProbeSockets,
  type ProbeSockets,
  type ProbeSocketsRequest,
  type SendScheduler,
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
  /** `--priority-test`: best-effort twins and a best-effort load in the middle third (agent/probe/priority.ts). */
  priorityTest?: PriorityTestOptions;
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
/** With --priority-test every call has a twin: 2 × 250 + 1 streams fit one source's share at the reflector. */
export const MAX_PRIORITY_CALLS = 250;
/** With --priority-test each third of the run must hold 50 packets of a 20 ms stream. */
const MIN_PRIORITY_DURATION_MS = 3000;
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
 * Native pacing: packets are handed to the sender thread up to SCHEDULE_AHEAD_MS ahead of their due
 * time, topped up every SCHEDULE_REFILL_MS. The lead is how long the event loop may stall (start-up
 * compilation, GC, a busy host: 240 ms seen at load 9 on two cores) without delaying a send; the
 * ring holds at most SCHEDULE_RING_BYTES (≈ 1 s of 50 G.711 calls; 500 calls get ≈ 0.45 s).
 */
const SCHEDULE_AHEAD_MS = 1000;
const SCHEDULE_REFILL_MS = 20;
const SCHEDULE_RING_BYTES = 2 << 20;

/** The scheduled-send ring: SCHEDULE_AHEAD_MS + two refills of packets, within SCHEDULE_RING_BYTES. */
function scheduleRing(run: Run, ptimeMs: number): { packets: number; bytes: number } {
  const frames = Math.ceil((SCHEDULE_AHEAD_MS + 2 * SCHEDULE_REFILL_MS) / ptimeMs) + 2;
  const perFrame = run.media.reduce((sum, s) => sum + s.packetBytes, 0) + run.sig.packetBytes;
  return {
    packets: Math.min(65536, (run.media.length + 1) * frames),
    bytes: Math.min(SCHEDULE_RING_BYTES, perFrame * frames),
  };
}

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
  /** A --priority-test twin: the same stream marked CS0, kept out of the document's directions. */
  bestEffort: boolean;
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
  if (o.priorityTest && o.calls > MAX_PRIORITY_CALLS) {
    throw new UserError(
      `the priority test runs at most ${MAX_PRIORITY_CALLS} calls (each has a best-effort twin)`,
    );
  }
  if (o.priorityTest && o.durationMs < MIN_PRIORITY_DURATION_MS) {
    throw new UserError('the priority test needs a duration of at least 3s (three phases of 1 s)');
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
  /** --priority-test: the media streams' CS0 twins, after the signalling stream in `all`. */
  twins: StreamState[];
  all: StreamState[];
  priority: PriorityRun | undefined;
  rtt: Histogram;
  oneWayForward: Mean;
  oneWayReverse: Mean;
  /** How late each media packet left against its place on the grid. */
  lateness: Histogram;
  /** The run over time; set when sending starts. */
  timeline: Timeline | undefined;
}

function newRun(plan: Plan, calls: number, priority: PriorityRun | undefined): Run {
  const bySsrc = new Set<number>();
  const stream = (index: number, signalling: boolean, bestEffort = false): StreamState => {
    let ssrc = randomU32();
    while (bySsrc.has(ssrc)) ssrc = randomU32();
    bySsrc.add(ssrc);
    return {
      index,
      bestEffort,
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
  const twins = priority ? Array.from({ length: calls }, (_, i) => stream(calls + 1 + i, false, true)) : [];
  return {
    media,
    sig,
    twins,
    all: [...media, sig, ...twins],
    priority,
    rtt: new Histogram(),
    oneWayForward: new Mean(),
    oneWayReverse: new Mean(),
    lateness: new Histogram(),
    timeline: undefined,
  };
}

/** A reply or summary response for one of the run's streams (already known to come from the peer). */
function onDatagram(run: Run, secret: Buffer | undefined) {
  return (index: number, msg: Buffer, arrivalMs: number, dscp: number | null) => {
    const m = decodeMessage(msg, secret);
    if (typeof m === 'string') return;
    const s = run.all[index];
    if (!s) {
      // The load socket: the reflector's answer to the load request.
      if (m.type === 'loadResponse') run.priority?.onLoadResponse(m.nonce, m.accepted);
      return;
    }
    if (!('ssrc' in m) || m.ssrc !== s.ssrc) return;
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
    // The reflector's 32-bit microsecond arrival stamp, unwrapped next to our send time.
    const sentUs = sentMs * 1000;
    const diff =
      ((((m.arrivalUs - (sentUs % 0x100000000)) % 0x100000000) + 0x180000000) % 0x100000000) - 0x80000000;
    const reflectorArrivalMs = (sentUs + diff) / 1000;
    if (!s.signalling) run.priority?.onReply(s.bestEffort ? 'be' : 'ef', s.index, sentMs, reflectorArrivalMs);
    if (s.bestEffort) return;
    run.rtt.add(rttMs);
    if (!s.signalling) run.timeline?.returnedAt(sentMs, rttMs, arrivalMs, s.reverse.jitter.jitterMs);
    run.oneWayForward.add(reflectorArrivalMs - sentMs);
    run.oneWayReverse.add(arrivalMs - (reflectorArrivalMs + holdMs));
  };
}

/** The pacing grid of a run: event e at startMs + e·stepMs sends the media of slot e mod `slots`. */
interface Grid {
  startMs: number;
  stepMs: number;
  slots: number;
  total: number;
}

/**
 * Calls spread over the frame in S slots, at least MIN_SLOT_MS apart: call i sends packet k at
 * start + k·ptime + (i mod S)·ptime/S; the signalling stream every 100 ms.
 */
function gridOf(run: Run, plan: Plan, startMs: number): Grid {
  const { media, twins, sig, priority } = run;
  const ptimeMs = plan.codec.ptimeMs;
  // The priority test's load is sent on every tick: the finest grid, however few the calls.
  const gridSlots = Math.floor(ptimeMs / MIN_SLOT_MS);
  const slots = Math.max(1, priority ? gridSlots : Math.min(media.length, gridSlots));
  const stepMs = ptimeMs / slots;
  run.timeline = new Timeline(startMs, plan.perCall * ptimeMs);
  for (const s of media) s.originMs = startMs + (s.index % slots) * stepMs;
  twins.forEach((s, i) => {
    s.originMs = media[i]!.originMs;
  });
  sig.originMs = startMs;
  priority?.begin(startMs, plan.perCall * ptimeMs);
  return { startMs, stepMs, slots, total: plan.perCall * slots };
}

/** Encodes packet `sequence` of stream s with send time `atMs` into buf. */
function encodeAt(
  s: StreamState,
  buf: Buffer,
  sequence: number,
  atMs: number,
  dscp: number,
  secret?: Buffer,
) {
  // The RTP timestamp is the send instant (RFC 3550 §5.1: the sampling instant), so the
  // receiver's A.8 jitter sees network variation, not our pacing.
  const timestamp = s.timestampBase + Math.round(((atMs - s.originMs) * s.clockRate) / 1000);
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
      sentAtMs: atMs,
    },
    secret,
  );
}

/** Packet `sequence` of stream s left at sentMs, `idealMs` on the grid. */
function accountSent(run: Run, s: StreamState, sequence: number, sentMs: number, idealMs: number) {
  s.sendTimes[sequence % SEND_RING] = sentMs;
  s.sendSequences[sequence % SEND_RING] = sequence;
  s.sent++;
  if (s.signalling) return;
  if (!s.bestEffort) {
    run.timeline?.sentAt(sentMs);
    run.lateness.add(sentMs - idealMs);
  }
  run.priority?.onSent(s.bestEffort ? 'be' : 'ef', sentMs);
}

interface SendOptions {
  secret?: Buffer;
  ticker: Ticker;
  onProgress?: (fraction: number) => void;
  loadSender?: LoadSender;
}

/** Reports progress by whole percents of the grid's events. */
function progress(total: number, onProgress?: (fraction: number) => void) {
  let last = -1;
  return (done: number) => {
    const pct = Math.floor((100 * done) / total);
    if (pct !== last) {
      last = pct;
      onProgress?.(done / total);
    }
  };
}

/**
 * The sending phase: the native layer's sender thread where there is one, else (and for the
 * priority test, whose load is generated tick by tick) the JavaScript timer.
 */
async function sendCalls(
  run: Run,
  io: ProbeSockets,
  plan: Plan,
  o: SendOptions,
): Promise<{ startMs: number; pacing: SendPacing }> {
  const grid = gridOf(run, plan, io.now() + 20);
  const scheduler = run.priority ? undefined : io.scheduler;
  if (scheduler) await sendScheduled(run, scheduler, io.now, plan, grid, o);
  else await sendOnTimer(run, io, plan, grid, o);
  return {
    startMs: grid.startMs,
    pacing: scheduler
      ? {
          by: 'native-thread',
          realtime: scheduler.scheduling === 'fifo',
          shortSlice: scheduler.scheduling === 'short-slice',
        }
      : { by: 'js-timer', realtime: false, shortSlice: false },
  };
}

/**
 * Native pacing: the packets of the next SCHEDULE_AHEAD_MS are encoded here with their due time as
 * their send time (the HMAC covers it) and sent at that time by the addon's sender thread, which
 * reports when each actually left (onSent → accountSent): the difference is `sendTiming`, and it is
 * the only part of our pacing a receiver's jitter can see.
 */
async function sendScheduled(
  run: Run,
  sch: SendScheduler,
  now: () => number,
  plan: Plan,
  g: Grid,
  o: SendOptions,
): Promise<void> {
  const mediaDscp = plan.policy['dscp-rtp'].audio;
  const signallingDscp = plan.policy['dscp-sip'].class;
  const { media, sig } = run;
  const n = media.length;
  const report = progress(g.total, o.onProgress);
  const schedule = (s: StreamState, k: number, dscp: number, dueMs: number) => {
    const sequence = (s.sequenceBase + k) & 0xffff;
    encodeAt(s, sch.buffer(), sequence, dueMs, dscp, o.secret);
    // Until the thread reports the send (before any reply to it is read), the due time stands.
    s.sendTimes[sequence % SEND_RING] = dueMs;
    s.sendSequences[sequence % SEND_RING] = sequence;
    sch.schedule(s.index, s.packetBytes, dscp, dueMs, sequence);
  };
  let e = 0;
  let sigNext = 0;
  while (e < g.total) {
    sch.collect();
    const horizon = now() + SCHEDULE_AHEAD_MS;
    for (; e < g.total; e++) {
      const dueMs = g.startMs + e * g.stepMs;
      const slot = e % g.slots;
      const signalling = sigNext < plan.sigTotal && g.startMs + sigNext * SIGNALLING_INTERVAL_MS <= dueMs;
      const needed = Math.ceil((n - slot) / g.slots) + (signalling ? 1 : 0);
      if (dueMs > horizon || !sch.fits(needed, SIGNALLING_BYTES)) break;
      const k = Math.floor(e / g.slots);
      for (let i = slot; i < n; i += g.slots) schedule(media[i]!, k, mediaDscp, dueMs);
      if (signalling) schedule(sig, sigNext++, signallingDscp, dueMs);
      // Each event is handed over as soon as it is encoded: the first fill encodes a whole second
      // (tens of milliseconds before the code is compiled), and the first events are due in 20 ms.
      sch.commit();
    }
    report(e);
    await new Promise((r) => setTimeout(r, SCHEDULE_REFILL_MS));
  }
  // The last packets leave at their due time; then the thread has reported them all.
  while (sch.pending() > 0) {
    await new Promise((r) => setTimeout(r, SCHEDULE_REFILL_MS));
    sch.collect();
  }
}

/**
 * The fallback's pacing (dgram): a JavaScript timer (agent/probe/pacer.ts) wakes at each event and
 * the packets are encoded with the actual send instant and sent at once.
 */
async function sendOnTimer(run: Run, io: ProbeSockets, plan: Plan, g: Grid, o: SendOptions): Promise<void> {
  const mediaDscp = plan.policy['dscp-rtp'].audio;
  const signallingDscp = plan.policy['dscp-sip'].class;
  const send = (s: StreamState, k: number, dscp: number, idealMs: number) => {
    const buf = io.buffer(s.index);
    const t = io.now();
    const sequence = (s.sequenceBase + k) & 0xffff;
    encodeAt(s, buf, sequence, t, dscp, o.secret);
    accountSent(run, s, sequence, t, idealMs);
    io.send(s.index, s.packetBytes, dscp);
  };
  const { media, sig, twins, priority } = run;
  const load = o.loadSender;
  const n = media.length;
  let sigNext = 0;
  const report = progress(g.total, o.onProgress);
  const pacer = runPacer({
    startMs: g.startMs,
    stepMs: g.stepMs,
    total: g.total,
    now: io.now,
    ticker: o.ticker,
    onSend: (e, idealMs) => {
      const k = Math.floor(e / g.slots);
      for (let i = e % g.slots; i < n; i += g.slots) {
        send(media[i]!, k, mediaDscp, idealMs);
        // The twin: the same packet right after, best effort both ways.
        if (twins[i]) send(twins[i]!, k, 0, idealMs);
      }
      while (sigNext < plan.sigTotal && g.startMs + sigNext * SIGNALLING_INTERVAL_MS <= idealMs) {
        send(sig, sigNext, signallingDscp, idealMs);
        sigNext++;
      }
      if (priority && load) priority.tick(io.now(), load);
      io.flush();
      report(e + 1);
    },
  });
  await pacer.done;
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

/**
 * Asks the reflector whether it takes load (retried every SUMMARY_RETRY_MS up to the summary
 * deadline): a refusal is the CLI's one-line error, or the check's reason; silence is a reason too.
 */
async function negotiateLoad(
  priority: PriorityRun,
  io: ProbeSockets,
  loadIndex: number,
  o: { peer: string; secret?: Buffer; refusalIsError?: boolean },
): Promise<void> {
  const deadline = io.now() + PROBE_SUMMARY_DEADLINE_MS;
  const request = encodeLoadRequest(priority.loadId, o.secret);
  while (priority.answer === undefined && io.now() < deadline) {
    io.sendControl(loadIndex, request);
    await Promise.race([priority.answered, new Promise((r) => setTimeout(r, SUMMARY_RETRY_MS))]);
  }
  if (priority.answer === false) {
    const why = `the reflector at ${o.peer} refuses load: start it with --accept-load`;
    if (o.refusalIsError) throw new UserError(why);
    priority.loadNotSentReason = why;
  } else if (priority.answer === undefined) {
    priority.loadNotSentReason = `the reflector at ${o.peer} did not answer the load request within ${PROBE_SUMMARY_DEADLINE_MS / 1000} s (not reachable, a version without load, or another --secret-file)`;
  }
}

/** Sends load datagrams on the load socket (its own port), best effort. */
function loadSender(
  io: ProbeSockets,
  loadIndex: number,
  priority: PriorityRun,
  family: 4 | 6,
  secret?: Buffer,
): LoadSender {
  return {
    headerBytes: family === 6 ? 48 : 28,
    send(sequence, nowMs) {
      const buf = io.buffer(loadIndex);
      encodeLoad(buf, LOAD_DATAGRAM_BYTES, { loadId: priority.loadId, sequence, sentAtMs: nowMs }, secret);
      io.send(loadIndex, LOAD_DATAGRAM_BYTES, 0);
    },
  };
}

/**
 * The reflector's receive-queue drops during the run: the media streams share one socket (their
 * windows overlap: the largest count), the signalling stream has its own.
 */
function reflectorQueueDrops(run: Run): number | null {
  const of = (s: StreamState) => (s.summary?.known ? (s.summary.queueDrops ?? null) : null);
  const media = run.media.map(of).filter((d) => d !== null);
  const sig = of(run.sig);
  if (media.length === 0 && sig === null) return null;
  return Math.max(0, ...media) + (sig ?? 0);
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

  const priority = options.priorityTest
    ? new PriorityRun(options.priorityTest, policy.priority.congestedAddedDelayMs)
    : undefined;
  const run = newRun(plan, options.calls, priority);
  // The load socket comes after the streams' (its answers are not a stream's).
  const loadIndex = run.all.length;
  const family = isIP(peerIp) as 4 | 6;
  const request: ProbeSocketsRequest = {
    family,
    peerIp,
    endpoints: priority ? [...run.all, { remotePort: plan.port, packetBytes: LOAD_DATAGRAM_BYTES }] : run.all,
    portRange: d.portRange,
    onDatagram: onDatagram(run, options.secret),
    onSent: (index, sequence, dueMs, sentMs) =>
      // A refused packet is sent and lost; it left (nowhere) at its due time.
      accountSent(run, run.all[index]!, sequence, sentMs < 0 ? dueMs : sentMs, dueMs),
  };
  const native = d.nativeUdp();
  if (typeof native === 'string') d.notice(native);
  const io =
    typeof native === 'string'
      ? await openDgramProbeSockets(request, { useRawSocket: d.useRawSocket, now: d.now })
      : openNativeProbeSockets(request, native, scheduleRing(run, codec.ptimeMs));
  try {
    if (priority) {
      await negotiateLoad(priority, io, loadIndex, {
        peer: options.peer,
        ...(options.secret ? { secret: options.secret } : {}),
        ...(options.priorityTest?.refusalIsError ? { refusalIsError: true } : {}),
      });
    }
    const { startMs, pacing } = await sendCalls(run, io, plan, {
      ...options,
      ticker: d.ticker ?? mainThreadTicker(io.now),
      ...(priority ? { loadSender: loadSender(io, loadIndex, priority, family, options.secret) } : {}),
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
        sendLateness: run.lateness.summary(),
        receiveQueueDrops: { agent: io.queueDrops(), reflector: reflectorQueueDrops(run) },
        sendPacing: pacing,
        ...(run.timeline ? { timeline: run.timeline.result() } : {}),
        ...(priority ? { priority: priority.result(policy['dscp-rtp'].audio) } : {}),
      },
      policy,
    );
  } finally {
    io.close();
  }
}
