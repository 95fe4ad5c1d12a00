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
  encodeLoadResponse,
  encodeReply,
  encodeSummaryResponse,
  type Rejection,
  type StreamRemark,
  type SummaryResponse,
} from '../../src/wire.js';
import { SampleRing, type Summary } from '../probe/timing.js';

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
  /** Streams forgotten to make room for new ones (the source's own oldest, or the table's). */
  evicted: number;
  /** `--priority-test` load: datagrams and bytes discarded unanswered (accepted), requests answered. */
  load: { requests: number; packets: number; bytes: number };
  rejected: Record<
    | Rejection
    | 'duplicate'
    | 'stale'
    | 'ssrc-in-use'
    | 'summary-rate'
    | 'unexpected'
    | 'load-refused'
    | 'load-request-rate',
    number
  >;
}

/** One datagram as it arrived: who sent it, where to, when, and its DSCP (null: not readable). */
export interface Arrival {
  msg: Buffer;
  src: string;
  srcPort: number;
  localPort: number;
  arrivalMs: number;
  dscp: number | null;
  /** The receiving socket's receive-queue drops so far (SO_RXQ_OVFL); -1 when unknown. */
  queueDrops: number;
}

/**
 * What to send back to the arrival's source, from the port it arrived on: a probe's reply (the
 * probe's own buffer, rewritten; to be marked with `dscp` where the socket layer can) or a summary
 * response (a new buffer of the request's size, sent unmarked).
 */
export type Answer = { kind: 'reply'; msg: Buffer; dscp: number } | { kind: 'summary'; msg: Buffer };

/** Load requests answered per source address: a bucket of 16, then 2 a second. */
const LOAD_REQUEST_BURST = 16;
const LOAD_REQUEST_RATE_PER_S = 2;

export interface StreamTableOptions {
  secret?: Buffer;
  /** Streams tracked at once (each a few kB); the least recently heard is evicted for a new one. */
  maxStreams: number;
  /** Streams one source address may hold; its own least recently heard is evicted beyond. */
  perSourceStreams: number;
  /** A stream not heard from for this long is forgotten (by expire()). */
  idleMs: number;
  /** With a secret: a probe whose send time is further than this from our clock is refused. */
  freshnessMs: number;
  /** Summary requests per source address: a bucket of this many, refilled at summaryRatePerS. */
  summaryBurst: number;
  summaryRatePerS: number;
  /**
   * `--accept-load`: load datagrams (the probe's --priority-test) are counted and discarded, and
   * load requests granted; otherwise refused (the request answered "no", the datagrams dropped).
   */
  acceptLoad?: boolean;
  /** The reflector's wall clock, ms (reply send instants, freshness, rate limits). */
  now: () => number;
  log: (event: Record<string, unknown>) => void;
}

/** Defaults: 1024 streams; a 500-call probe (501 streams) fits under one source's share. */
export const STREAM_DEFAULTS = {
  maxStreams: 1024,
  perSourceStreams: 512,
  idleMs: 120_000,
  /** Five minutes either way, the customary Kerberos clock-skew allowance: agents' clocks drift. */
  freshnessMs: 300_000,
  /** Two rounds of a 501-stream probe's requests at once, then 256/s. */
  summaryBurst: 1024,
  summaryRatePerS: 256,
} as const;

interface Stream {
  key: string;
  src: string;
  ssrc: number;
  tracker: SequenceTracker;
  jitter: JitterEstimator;
  clockRate: number;
  dscp: Uint32Array;
  replySequence: number;
  replyTimestampBase: number;
  firstReplyMs: number;
  repliesSent: number;
  lastSeenMs: number;
  /** When the stream last moved to the recent end of the eviction order. */
  touchedMs: number;
  /** This key's earlier record was evicted: this one lacks its first packets. */
  restarted: boolean;
  /** The socket's receive-queue drop count at the stream's first and latest datagram (-1: unknown). */
  dropsFirst: number;
  dropsLast: number;
}

/** Streams are re-ordered for eviction at most this often (a Map re-insert per packet is waste). */
const TOUCH_MS = 250;
/** Remarks kept for streams refused or forgotten, so a summary can say why (oldest dropped). */
const MAX_REMARKS = 16384;
/** Sources whose summary budget is tracked (oldest dropped: it starts again with a full bucket). */
const MAX_BUCKETS = 4096;
/** Bitmap walks for the longest loss run, table-wide, per second (and at once). */
const WALKS_PER_S = 32;
/** Hold-time percentiles over the recent replies are recomputed at most this often. */
const HOLD_SUMMARY_MS = 1000;

const clockRateOf = (payloadType: number) =>
  Object.values(CODECS).find((c) => c.payloadType === payloadType)?.clockRate ?? 8000;

const randomU32 = () => (Math.random() * 0x100000000) >>> 0;

/** A token bucket (RFC 2697's single-rate idea, without colours): `burst` at once, `ratePerS` after. */
class TokenBucket {
  private tokens: number;
  private atMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly burst: number,
    private readonly ratePerS: number,
  ) {
    this.tokens = burst;
  }

  take(nowMs: number): boolean {
    const elapsedMs = Math.max(0, nowMs - this.atMs);
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs * this.ratePerS) / 1000);
    this.atMs = nowMs;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

/** Sets key → value as the newest entry, dropping the oldest beyond max (a bounded FIFO). */
function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

/**
 * Streams are keyed by source address, source port and SSRC. Admission always succeeds for a
 * fresh (and, with a secret, authenticated) probe whose SSRC no other source holds: when the
 * source holds its share, its own least recently heard stream makes room; when the table is full,
 * the table's. A captured probe re-sent from many addresses holds one stream at most (its SSRC
 * belongs to the first), and only within the freshness window. Whatever is refused or forgotten
 * leaves a remark, which the stream's summary reports, so the probe can say "unknown" rather
 * than count loss.
 */
export class StreamTable {
  readonly stats: ReflectorStats = {
    received: 0,
    replied: 0,
    summaries: 0,
    streams: 0,
    evicted: 0,
    load: { requests: 0, packets: 0, bytes: 0 },
    rejected: {
      short: 0,
      'not-probe': 0,
      version: 0,
      'bad-auth': 0,
      unauthenticated: 0,
      duplicate: 0,
      stale: 0,
      'ssrc-in-use': 0,
      'summary-rate': 0,
      unexpected: 0,
      'load-refused': 0,
      'load-request-rate': 0,
    },
  };
  /** The reflector's clock state, reported in summaries (refreshed by the owner). */
  clock: ClockSync = { synchronised: false, errorBoundMs: null, source: 'unknown' };
  /** DSCP on arrival is read and replies are marked (a raw socket is open). */
  marks = false;
  /** All streams, least recently heard first. */
  private readonly streams = new Map<string, Stream>();
  /** The same streams by source address, least recently heard first. */
  private readonly bySource = new Map<string, Map<string, Stream>>();
  private readonly ssrcOwner = new Map<number, string>();
  private readonly remarks = new Map<string, StreamRemark>();
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly loadBuckets = new Map<string, TokenBucket>();
  private readonly walks = new TokenBucket(WALKS_PER_S, WALKS_PER_S);
  private readonly holdUs = new SampleRing(16384);
  private hold: { summary: Summary | undefined; atMs: number } = { summary: undefined, atMs: -Infinity };

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
    if (m.type === 'load') return this.onLoad(m, a);
    if (m.type === 'loadRequest') return this.onLoadRequest(m.nonce, a);
    if (m.type === 'summaryRequest') {
      if (!this.takeSummaryToken(a.src)) {
        this.stats.rejected['summary-rate']++;
        return undefined;
      }
      // The response overwrites a copy of the request: exactly as many bytes as received.
      const out = Buffer.allocUnsafe(a.msg.length);
      a.msg.copy(out); // (Buffer.from(buffer) copies byte by byte: slower than the summary itself)
      const key = streamKey(a.src, a.srcPort, m.ssrc);
      // The request arrives on the stream's socket after its last probe: drops up to now count.
      const s = this.streams.get(key);
      if (s) s.dropsLast = a.queueDrops;
      encodeSummaryResponse(out, this.summaryOf(key, m.ssrc, m.nonce), this.o.secret);
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
    for (const s of this.streams.values()) if (s.lastSeenMs < cutoff) this.drop(s);
    this.stats.streams = this.streams.size;
  }

  /** A token bucket per source address. */
  private takeSummaryToken(src: string): boolean {
    return this.takeToken(this.buckets, src, this.o.summaryBurst, this.o.summaryRatePerS);
  }

  private takeToken(buckets: Map<string, TokenBucket>, src: string, burst: number, ratePerS: number) {
    let b = buckets.get(src);
    if (!b) {
      b = new TokenBucket(burst, ratePerS);
      remember(buckets, src, b, MAX_BUCKETS);
    }
    return b.take(this.o.now());
  }

  /**
   * Load is discarded without a reply (no amplification); counted when accepted. With a secret
   * only authenticated, fresh load counts (the decoder already refused untagged or forged tags).
   */
  private onLoad(m: Extract<Decoded, { type: 'load' }>, a: Arrival): undefined {
    if (!this.o.acceptLoad) {
      this.stats.rejected['load-refused']++;
      return undefined;
    }
    if (this.o.secret && Math.abs(a.arrivalMs - m.sentAtMs) > this.o.freshnessMs) {
      this.stats.rejected.stale++;
      return undefined;
    }
    this.stats.load.packets++;
    this.stats.load.bytes += a.msg.length;
    return undefined;
  }

  /** Says yes or no to a load request, in a response of the request's size (rate-limited per source). */
  private onLoadRequest(nonce: number, a: Arrival): Answer | undefined {
    if (!this.takeToken(this.loadBuckets, a.src, LOAD_REQUEST_BURST, LOAD_REQUEST_RATE_PER_S)) {
      this.stats.rejected['load-request-rate']++;
      return undefined;
    }
    this.stats.load.requests++;
    const out = Buffer.allocUnsafe(a.msg.length);
    a.msg.copy(out);
    encodeLoadResponse(out, nonce, this.o.acceptLoad === true, this.o.secret);
    this.o.log({
      event: 'load-request',
      from: `${a.src}:${a.srcPort}`,
      accepted: this.o.acceptLoad === true,
    });
    return { kind: 'summary', msg: out };
  }

  /**
   * The longest loss run: kept as packets arrive; after a late packet filled a gap it takes a walk
   * over the stream's bitmap (up to 32 kB), which the whole table may take only WALKS_PER_S times a
   * second — beyond that the summary carries the last walked value, an upper bound.
   */
  private maxBurstOf(s: Stream): number {
    const t = s.tracker;
    if (t.maxBurstLossExact || this.walks.take(this.o.now())) return t.maxBurstLoss();
    return t.maxBurstLossBound;
  }

  private drop(s: Stream): void {
    this.streams.delete(s.key);
    const mine = this.bySource.get(s.src);
    mine?.delete(s.key);
    if (mine?.size === 0) this.bySource.delete(s.src);
    if (this.ssrcOwner.get(s.ssrc) === s.key) this.ssrcOwner.delete(s.ssrc);
  }

  private evict(s: Stream): void {
    this.drop(s);
    this.stats.evicted++;
    remember(this.remarks, s.key, 'evicted', MAX_REMARKS);
  }

  /** Refuses a probe that would start a stream, remembering why for the stream's summary. */
  private refuse(key: string, why: 'stale' | 'ssrc-in-use'): undefined {
    this.stats.rejected[why]++;
    if (!this.streams.has(key)) remember(this.remarks, key, why, MAX_REMARKS);
    return undefined;
  }

  private admit(key: string, m: Extract<Decoded, { type: 'probe' }>, a: Arrival): Stream | undefined {
    const owner = this.ssrcOwner.get(m.ssrc);
    if (owner !== undefined && owner !== key) return this.refuse(key, 'ssrc-in-use');
    let mine = this.bySource.get(a.src);
    if (mine && mine.size >= this.o.perSourceStreams) this.evict(mine.values().next().value!);
    else if (this.streams.size >= this.o.maxStreams) this.evict(this.streams.values().next().value!);
    const clockRate = clockRateOf(m.payloadType);
    const s: Stream = {
      key,
      src: a.src,
      ssrc: m.ssrc,
      tracker: new SequenceTracker(MAX_STREAM_SPAN),
      jitter: new JitterEstimator(clockRate),
      clockRate,
      dscp: new Uint32Array(64),
      replySequence: randomU32() & 0xffff,
      replyTimestampBase: randomU32(),
      firstReplyMs: Number.NaN,
      repliesSent: 0,
      lastSeenMs: a.arrivalMs,
      touchedMs: a.arrivalMs,
      restarted: this.remarks.get(key) === 'evicted',
      dropsFirst: a.queueDrops,
      dropsLast: a.queueDrops,
    };
    this.remarks.delete(key);
    this.streams.set(key, s);
    mine = this.bySource.get(a.src) ?? new Map<string, Stream>();
    mine.set(key, s);
    this.bySource.set(a.src, mine);
    this.ssrcOwner.set(m.ssrc, key);
    this.stats.streams = this.streams.size;
    this.o.log({ event: 'stream', from: `${a.src}:${a.srcPort}`, ssrc: m.ssrc });
    return s;
  }

  /** Moves a stream to the recent end of both eviction orders (at most every TOUCH_MS). */
  private touch(s: Stream, arrivalMs: number): void {
    s.lastSeenMs = arrivalMs;
    if (arrivalMs - s.touchedMs < TOUCH_MS) return;
    s.touchedMs = arrivalMs;
    this.streams.delete(s.key);
    this.streams.set(s.key, s);
    const mine = this.bySource.get(s.src)!;
    mine.delete(s.key);
    mine.set(s.key, s);
  }

  private onProbe(m: Extract<Decoded, { type: 'probe' }>, a: Arrival): Answer | undefined {
    const { msg, src, srcPort, arrivalMs, dscp } = a;
    const key = streamKey(src, srcPort, m.ssrc);
    // Only a tagged send time means anything: without a secret anyone can write any time.
    if (this.o.secret && Math.abs(arrivalMs - m.sentAtMs) > this.o.freshnessMs)
      return this.refuse(key, 'stale');
    const s = this.streams.get(key) ?? this.admit(key, m, a);
    if (!s) return undefined;
    this.touch(s, arrivalMs);
    s.dropsLast = a.queueDrops;
    const seen = s.tracker.add(m.sequence);
    if (seen === 'ignored') {
      this.stats.rejected.unexpected++;
      return undefined;
    }
    if (seen === 'duplicate') {
      // A copy (the network's or a replay) is counted once, in the summary's duplicates, and
      // neither answered nor counted again: a replay must not add replies or marks.
      this.stats.rejected.duplicate++;
      return undefined;
    }
    s.jitter.update(arrivalMs, m.timestamp);
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

  /** Hold-time percentiles over the last 16384 replies, at most HOLD_SUMMARY_MS old. */
  private holdSummary(): Summary | undefined {
    const nowMs = this.o.now();
    if (nowMs - this.hold.atMs >= HOLD_SUMMARY_MS || nowMs < this.hold.atMs) {
      this.hold = { summary: this.holdUs.summary(), atMs: nowMs };
    }
    return this.hold.summary;
  }

  /**
   * O(the stream's state): counters, the 64 DSCP slots, a cached hold summary, and the longest loss
   * run (kept as packets arrive; walked only after a late packet filled a gap). Built as one object
   * literal: an object spread here cost more than the rest of the summary together.
   */
  private summaryOf(key: string, ssrc: number, nonce: number): SummaryResponse {
    const s = this.streams.get(key);
    const hold = this.holdSummary();
    const clock = this.clock;
    const dscpCounts: Array<[number, number]> = [];
    if (s) {
      for (let dscp = 0; dscp < 64; dscp++) if (s.dscp[dscp]! > 0) dscpCounts.push([dscp, s.dscp[dscp]!]);
      dscpCounts.sort((a, b) => b[1] - a[1]);
    }
    return {
      ssrc,
      nonce,
      known: s !== undefined,
      remark: s ? (s.restarted ? 'evicted' : 'none') : (this.remarks.get(key) ?? 'none'),
      dscpReadable: this.marks,
      marksReplies: this.marks,
      received: s?.tracker.received ?? 0,
      duplicates: s?.tracker.duplicates ?? 0,
      reordered: s?.tracker.reordered ?? 0,
      maxBurstLoss: s ? this.maxBurstOf(s) : 0,
      repliesSent: s?.repliesSent ?? 0,
      jitterUs: (s?.jitter.jitterMs ?? 0) * 1000,
      jitterMaxUs: (s?.jitter.maxJitterMs ?? 0) * 1000,
      holdP50Us: hold?.p50 ?? 0,
      holdP99Us: hold?.p99 ?? 0,
      holdMaxUs: hold?.max ?? 0,
      holdSamples: hold?.samples ?? 0,
      queueDrops: s && s.dropsFirst >= 0 && s.dropsLast >= 0 ? s.dropsLast - s.dropsFirst : null,
      clock: {
        synchronised: clock.synchronised,
        errorBoundUs: clock.errorBoundMs === null ? null : clock.errorBoundMs * 1000,
        source: clock.source,
      },
      dscpCounts,
    };
  }
}

const streamKey = (src: string, srcPort: number, ssrc: number) => `${src}|${srcPort}|${ssrc}`;
