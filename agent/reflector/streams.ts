// The reflector's state, apart from its sockets: decodes each arriving datagram, keeps per-stream
// forward statistics (RFC 3550 A.1/A.3 sequence accounting, A.8 jitter, the DSCP on arrival) and
// says what to send back — a reply written over the probe, or a summary. The socket layer
// (agent/reflector.ts) only receives, stamps and sends.
import { CODECS } from '../../src/codecs.js';
import { JitterEstimator, SequenceTracker } from '../../src/rtp.js';
import type { ClockSync } from '../../src/schemas.js';
import {
  type Decoded,
  decodeMessage,
  encodeReply,
  encodeSummaryResponse,
  type Rejection,
  type SummaryResponse,
} from '../../src/wire.js';
import { SampleRing } from '../probe/timing.js';

/**
 * Sequence span tracked per stream: 2^18 packets (over an hour at 50 packets/s, the probe's longest
 * run) in a 32 kB bitmap at most, so state is bounded at maxStreams × 32 kB even when a hostile
 * sender jumps its sequence numbers; packets beyond the span are ignored.
 */
export const MAX_STREAM_SPAN = 1 << 18;

export interface ReflectorStats {
  received: number;
  replied: number;
  summaries: number;
  streams: number;
  rejected: Record<Rejection | 'capacity' | 'unexpected', number>;
}

/** One datagram as it arrived: who sent it, where to, when, and its DSCP (null: not readable). */
export interface Arrival {
  msg: Buffer;
  src: string;
  srcPort: number;
  localPort: number;
  arrivalMs: number;
  dscp: number | null;
}

/**
 * What to send back to the arrival's source, from the port it arrived on: a probe's reply (the
 * probe's own buffer, rewritten; to be marked with `dscp` where the socket layer can) or a summary
 * response (a new buffer of the request's size, sent unmarked).
 */
export type Answer = { kind: 'reply'; msg: Buffer; dscp: number } | { kind: 'summary'; msg: Buffer };

export interface StreamTableOptions {
  secret?: Buffer;
  /** Streams tracked at once (each a few kB); new streams beyond it are dropped and counted. */
  maxStreams: number;
  /** A stream not heard from for this long is forgotten (by expire()). */
  idleMs: number;
  /** The send instant of a reply, taken just before it is encoded. */
  now: () => number;
  log: (event: Record<string, unknown>) => void;
}

interface Stream {
  tracker: SequenceTracker;
  jitter: JitterEstimator;
  clockRate: number;
  dscp: Uint32Array;
  replySequence: number;
  replyTimestampBase: number;
  firstReplyMs: number;
  repliesSent: number;
  lastSeenMs: number;
}

const clockRateOf = (payloadType: number) =>
  Object.values(CODECS).find((c) => c.payloadType === payloadType)?.clockRate ?? 8000;

const randomU32 = () => (Math.random() * 0x100000000) >>> 0;

export class StreamTable {
  readonly stats: ReflectorStats = {
    received: 0,
    replied: 0,
    summaries: 0,
    streams: 0,
    rejected: {
      short: 0,
      'not-probe': 0,
      version: 0,
      'bad-auth': 0,
      unauthenticated: 0,
      capacity: 0,
      unexpected: 0,
    },
  };
  /** The reflector's clock state, reported in summaries (refreshed by the owner). */
  clock: ClockSync = { synchronised: false, errorBoundMs: null, source: 'unknown' };
  /** DSCP on arrival is read and replies are marked (a raw socket is open). */
  marks = false;
  private readonly streams = new Map<string, Stream>();
  private readonly holdUs = new SampleRing(16384);

  constructor(private readonly o: StreamTableOptions) {}

  /** Accounts one datagram; returns what to send back, or undefined when nothing is answered. */
  handle(a: Arrival): Answer | undefined {
    this.stats.received++;
    const m = decodeMessage(a.msg, this.o.secret);
    if (typeof m === 'string') {
      this.stats.rejected[m]++;
      return undefined;
    }
    if (m.type === 'probe') return this.onProbe(m, a);
    if (m.type === 'summaryRequest') {
      // The response overwrites a copy of the request: exactly as many bytes as received.
      const out = Buffer.from(a.msg);
      encodeSummaryResponse(out, this.summaryOf(`${a.src}|${m.ssrc}`, m.ssrc, m.nonce), this.o.secret);
      this.stats.summaries++;
      this.o.log({ event: 'summary', from: `${a.src}:${a.srcPort}`, ssrc: m.ssrc });
      return { kind: 'summary', msg: out };
    }
    this.stats.rejected.unexpected++;
    return undefined;
  }

  /** Forgets streams idle for longer than idleMs. */
  expire(nowMs: number): void {
    const cutoff = nowMs - this.o.idleMs;
    for (const [key, s] of this.streams) if (s.lastSeenMs < cutoff) this.streams.delete(key);
    this.stats.streams = this.streams.size;
  }

  private onProbe(m: Extract<Decoded, { type: 'probe' }>, a: Arrival): Answer | undefined {
    const { msg, src, srcPort, arrivalMs, dscp } = a;
    const key = `${src}|${m.ssrc}`;
    let s = this.streams.get(key);
    if (!s) {
      if (this.streams.size >= this.o.maxStreams) {
        this.stats.rejected.capacity++;
        return undefined;
      }
      const clockRate = clockRateOf(m.payloadType);
      s = {
        tracker: new SequenceTracker(MAX_STREAM_SPAN),
        jitter: new JitterEstimator(clockRate),
        clockRate,
        dscp: new Uint32Array(64),
        replySequence: randomU32() & 0xffff,
        replyTimestampBase: randomU32(),
        firstReplyMs: Number.NaN,
        repliesSent: 0,
        lastSeenMs: arrivalMs,
      };
      this.streams.set(key, s);
      this.stats.streams = this.streams.size;
      this.o.log({ event: 'stream', from: `${src}:${srcPort}`, ssrc: m.ssrc });
    }
    s.lastSeenMs = arrivalMs;
    const seen = s.tracker.add(m.sequence);
    if (seen === 'ignored') {
      this.stats.rejected.unexpected++;
      return undefined;
    }
    if (seen !== 'duplicate') s.jitter.update(arrivalMs, m.timestamp);
    if (dscp !== null) s.dscp[dscp]!++;
    const sendMs = this.o.now();
    if (Number.isNaN(s.firstReplyMs)) s.firstReplyMs = sendMs;
    // The reply's RTP timestamp is its actual send instant, so reverse jitter excludes our own delay.
    const timestamp = s.replyTimestampBase + Math.round(((sendMs - s.firstReplyMs) * s.clockRate) / 1000);
    encodeReply(
      msg,
      {
        sequence: s.replySequence,
        timestamp,
        echoedSequence: m.sequence,
        arrivalUs: Math.round(arrivalMs * 1000) % 0x100000000,
        holdUs: (sendMs - arrivalMs) * 1000,
        arrivalDscp: dscp,
        marked: this.marks,
      },
      this.o.secret,
    );
    s.replySequence = (s.replySequence + 1) & 0xffff;
    s.repliesSent++;
    this.holdUs.add((sendMs - arrivalMs) * 1000);
    this.stats.replied++;
    return { kind: 'reply', msg, dscp: m.replyDscp };
  }

  private summaryOf(key: string, ssrc: number, nonce: number): SummaryResponse {
    const s = this.streams.get(key);
    const hold = this.holdUs.summary();
    const clock = this.clock;
    const common = {
      ssrc,
      nonce,
      dscpReadable: this.marks,
      marksReplies: this.marks,
      holdP50Us: hold?.p50 ?? 0,
      holdP99Us: hold?.p99 ?? 0,
      holdMaxUs: hold?.max ?? 0,
      holdSamples: hold?.samples ?? 0,
      clock: {
        synchronised: clock.synchronised,
        errorBoundUs: clock.errorBoundMs === null ? null : clock.errorBoundMs * 1000,
        source: clock.source,
      },
    };
    if (!s) {
      return {
        ...common,
        known: false,
        received: 0,
        duplicates: 0,
        reordered: 0,
        maxBurstLoss: 0,
        repliesSent: 0,
        jitterUs: 0,
        jitterMaxUs: 0,
        dscpCounts: [],
      };
    }
    const dscpCounts: Array<[number, number]> = [];
    s.dscp.forEach((count, dscp) => {
      if (count > 0) dscpCounts.push([dscp, count]);
    });
    dscpCounts.sort((a, b) => b[1] - a[1]);
    return {
      ...common,
      known: true,
      received: s.tracker.received,
      duplicates: s.tracker.duplicates,
      reordered: s.tracker.reordered,
      maxBurstLoss: s.tracker.maxBurstLoss(),
      repliesSent: s.repliesSent,
      jitterUs: s.jitter.jitterMs * 1000,
      jitterMaxUs: s.jitter.maxJitterMs * 1000,
      dscpCounts,
    };
  }
}
