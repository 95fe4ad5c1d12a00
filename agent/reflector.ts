// The reflector: answers probe packets (src/wire.ts) with same-size replies that report the arrival
// time, the sender's sequence and the DSCP on arrival, marked with the class the sender asked for;
// keeps per-stream forward statistics (RFC 3550 A.1/A.3 sequence accounting, A.8 jitter) and
// hands them out as summaries. Design after STAMP (RFC 8762 §4.3: stateful reflector; RFC 8972
// §5.2: reporting the received DSCP). Junk is rejected by the cheapest test that catches it, state
// is bounded, and no reply is ever larger than the message it answers.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { CODECS } from '../src/codecs.js';
import { dscpFromTos } from '../src/dscp.js';
import { UserError } from '../src/errors.js';
import { JitterEstimator, SequenceTracker } from '../src/rtp.js';
import type { ClockSync } from '../src/schemas.js';
import {
  type Decoded,
  decodeMessage,
  encodeReply,
  encodeSummaryResponse,
  type Rejection,
  type SummaryResponse,
} from '../src/wire.js';
import { detectClockSync } from './net/clock-sync.js';
import { IPV6_DSCP_REASON, openRawUdp, type RawUdp, stopReading } from './net/raw-udp.js';
import { wallNowMs } from './net/wall-clock.js';
import { SampleRing } from './probe/timing.js';

export interface ReflectorOptions {
  /** IPv4 or IPv6 address to listen on (0.0.0.0 / :: for all). */
  host: string;
  /** Media port; 0 picks a free one. */
  port: number;
  /** Signalling port; default port + 1 (or a free one when port is 0). */
  signallingPort?: number;
  secret?: Buffer;
  /** Streams tracked at once (each a few kB); new streams beyond it are dropped and counted. */
  maxStreams?: number;
  /** A stream not heard from for this long is forgotten. */
  idleMs?: number;
  /** Set false to measure without raw sockets even when privileged (tests of the unprivileged path). */
  useRawSocket?: boolean;
  clockSync?: () => Promise<ClockSync>;
  now?: () => number;
  /** Structured events (listening, stream, summary, stopped) for --json-log. */
  log?: (event: Record<string, unknown>) => void;
}

export interface ReflectorStats {
  received: number;
  replied: number;
  summaries: number;
  streams: number;
  rejected: Record<Rejection | 'capacity' | 'unexpected', number>;
}

export interface Reflector {
  address: string;
  port: number;
  signallingPort: number;
  /** Whether DSCP on arrival is read (and replies marked); reason when not. */
  dscpReadable: boolean;
  dscpUnknownReason?: string;
  stats(): ReflectorStats;
  close(): Promise<void>;
}

/**
 * Sequence span tracked per stream: 2^18 packets (over an hour at 50 packets/s, the probe's longest
 * run) in a 32 kB bitmap at most, so state is bounded at maxStreams × 32 kB even when a hostile
 * sender jumps its sequence numbers; packets beyond the span are ignored.
 */
export const MAX_STREAM_SPAN = 1 << 18;

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

/** One datagram as it arrived: who sent it, where to, when, and its DSCP (null: not readable). */
interface Arrival {
  msg: Buffer;
  src: string;
  srcPort: number;
  localIp: string;
  localPort: number;
  arrivalMs: number;
  dscp: number | null;
}

const clockRateOf = (payloadType: number) =>
  Object.values(CODECS).find((c) => c.payloadType === payloadType)?.clockRate ?? 8000;

const randomU32 = () => (Math.random() * 0x100000000) >>> 0;

function bindSocket(host: string, port: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      sock.close();
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      if (err.code === 'EADDRINUSE') reject(new UserError(`cannot listen on ${where}: port already in use`));
      else if (err.code === 'EADDRNOTAVAIL')
        reject(new UserError(`cannot listen on ${where}: not an address of this host`));
      else if (err.code === 'EACCES') reject(new UserError(`cannot listen on ${where}: permission denied`));
      else reject(new UserError(`cannot listen on ${where}: ${err.code ?? err.message}`));
    };
    sock.once('error', onError);
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

export async function startReflector(options: ReflectorOptions): Promise<Reflector> {
  const { host, secret } = options;
  const family = isIP(host);
  if (family === 0) throw new UserError(`listen address "${host}" is not an IPv4 or IPv6 address`);
  const now = options.now ?? wallNowMs;
  const maxStreams = options.maxStreams ?? 1024;
  const idleMs = options.idleMs ?? 120_000;
  const log = options.log ?? (() => {});

  const media = await bindSocket(host, options.port);
  const mediaPort = media.address().port;
  let signalling: dgram.Socket;
  try {
    signalling = await bindSocket(host, options.signallingPort ?? (options.port === 0 ? 0 : mediaPort + 1));
  } catch (err) {
    media.close();
    throw err;
  }
  const signallingPort = signalling.address().port;

  const stats: ReflectorStats = {
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
  const streams = new Map<string, Stream>();
  const holdUs = new SampleRing(16384);
  let clock: ClockSync = { synchronised: false, errorBoundMs: null, source: 'unknown' };
  const readClock = options.clockSync ?? (() => detectClockSync());
  const refreshClock = () =>
    readClock().then(
      (c) => {
        clock = c;
      },
      () => {},
    );
  await refreshClock();

  let raw: RawUdp | undefined;
  let dscpUnknownReason: string | undefined;
  if (options.useRawSocket === false) dscpUnknownReason = 'raw sockets disabled';
  else if (family === 6) dscpUnknownReason = IPV6_DSCP_REASON;
  else {
    const opened = openRawUdp(
      {
        acceptPort: (p) => p === mediaPort || p === signallingPort,
        onDatagram: (d, arrivalMs) => {
          if (host !== '0.0.0.0' && d.dst !== host) return;
          handle({
            msg: d.payload,
            src: d.src,
            srcPort: d.srcPort,
            localIp: d.dst,
            localPort: d.dstPort,
            arrivalMs,
            dscp: dscpFromTos(d.tos),
          });
        },
      },
      now,
    );
    if (typeof opened === 'string') dscpUnknownReason = opened;
    else raw = opened;
  }

  const reply = (
    msg: Buffer,
    dstIp: string,
    dstPort: number,
    localIp: string,
    localPort: number,
    dscp: number,
  ) => {
    try {
      if (raw) raw.send(localIp, localPort, dstIp, dstPort, dscp, msg);
      else (localPort === mediaPort ? media : signalling).send(msg, dstPort, dstIp);
    } catch {
      // An unreachable sender is its own problem; never let it stop the reflector.
    }
  };

  function onProbe(m: Extract<Decoded, { type: 'probe' }>, a: Arrival) {
    const { msg, src, srcPort, localIp, localPort, arrivalMs, dscp } = a;
    const key = `${src}|${m.ssrc}`;
    let s = streams.get(key);
    if (!s) {
      if (streams.size >= maxStreams) {
        stats.rejected.capacity++;
        return;
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
      streams.set(key, s);
      stats.streams = streams.size;
      log({ event: 'stream', from: `${src}:${srcPort}`, ssrc: m.ssrc });
    }
    s.lastSeenMs = arrivalMs;
    const seen = s.tracker.add(m.sequence);
    if (seen === 'ignored') {
      stats.rejected.unexpected++;
      return;
    }
    if (seen !== 'duplicate') s.jitter.update(arrivalMs, m.timestamp);
    if (dscp !== null) s.dscp[dscp]!++;
    const sendMs = now();
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
        marked: raw !== undefined,
      },
      secret,
    );
    s.replySequence = (s.replySequence + 1) & 0xffff;
    s.repliesSent++;
    holdUs.add((sendMs - arrivalMs) * 1000);
    reply(msg, src, srcPort, localIp, localPort, m.replyDscp);
    stats.replied++;
  }

  function summaryOf(key: string, ssrc: number, nonce: number): SummaryResponse {
    const s = streams.get(key);
    const hold = holdUs.summary();
    const common = {
      ssrc,
      nonce,
      dscpReadable: raw !== undefined,
      marksReplies: raw !== undefined,
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

  function handle(a: Arrival): void {
    const { msg, src, srcPort, localPort } = a;
    stats.received++;
    const m = decodeMessage(msg, secret);
    if (typeof m === 'string') {
      stats.rejected[m]++;
      return;
    }
    if (m.type === 'probe') onProbe(m, a);
    else if (m.type === 'summaryRequest') {
      // The response overwrites a copy of the request: exactly as many bytes as received.
      const out = Buffer.from(msg);
      encodeSummaryResponse(out, summaryOf(`${src}|${m.ssrc}`, m.ssrc, m.nonce), secret);
      (localPort === mediaPort ? media : signalling).send(out, srcPort, src, () => {});
      stats.summaries++;
      log({ event: 'summary', from: `${src}:${srcPort}`, ssrc: m.ssrc });
    } else stats.rejected.unexpected++;
  }

  const fromDgram = (localPort: number) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
    // With a raw socket every datagram is handled from its copy (which carries the TOS byte).
    if (raw) return;
    const arrivalMs = now();
    handle({ msg, src: rinfo.address, srcPort: rinfo.port, localIp: host, localPort, arrivalMs, dscp: null });
  };
  media.on('message', fromDgram(mediaPort));
  signalling.on('message', fromDgram(signallingPort));
  if (raw) {
    stopReading(media);
    stopReading(signalling);
  }
  // ICMP errors for replies to vanished senders surface here on some systems; they are not ours.
  media.on('error', () => {});
  signalling.on('error', () => {});

  const expiry = setInterval(
    () => {
      const cutoff = now() - idleMs;
      for (const [key, s] of streams) if (s.lastSeenMs < cutoff) streams.delete(key);
      stats.streams = streams.size;
    },
    Math.min(idleMs, 10_000),
  );
  expiry.unref();
  const clockTimer = setInterval(refreshClock, 60_000);
  clockTimer.unref();

  log({ event: 'listening', host, port: mediaPort, signallingPort, dscpReadable: raw !== undefined });
  let closed: Promise<void> | undefined;
  return {
    address: host,
    port: mediaPort,
    signallingPort,
    dscpReadable: raw !== undefined,
    ...(dscpUnknownReason ? { dscpUnknownReason } : {}),
    stats: () => structuredClone(stats),
    close() {
      closed ??= (async () => {
        clearInterval(expiry);
        clearInterval(clockTimer);
        raw?.close();
        await Promise.all([
          new Promise<void>((r) => media.close(() => r())),
          new Promise<void>((r) => signalling.close(() => r())),
        ]);
        log({ event: 'stopped', ...stats });
      })();
      return closed;
    },
  };
}
