// The media and signalling probe: N concurrent call-shaped RTP streams (the codec's payload type,
// size and packetization, marked EF) plus a CS3-marked signalling stream to a `voipready reflector`;
// then the reflector's per-stream summaries for the forward direction, and the result.
// Failure is data: an unreachable peer gives 100 % loss and failing checks, never an exception.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../src/args.js';
import { CODECS, type CodecName } from '../src/codecs.js';
import { dscpFromTos } from '../src/dscp.js';
import { errorMessage, UserError } from '../src/errors.js';
import { DEFAULT_POLICY, type Policy } from '../src/policy.js';
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
import { IPV6_DSCP_REASON, openRawUdp, type RawUdp, stopReading } from './net/raw-udp.js';
import { wallNowMs } from './net/wall-clock.js';
import { mainThreadTicker, runPacer, type Ticker } from './probe/pacer.js';
import {
  buildProbeResult,
  type DirectionCounts,
  type StreamMeasurement,
  unsentProbeResult,
} from './probe/result.js';
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
  /** Wakes the pacer at each tick (tests inject a fake). */
  ticker: Ticker;
  clockSync: () => Promise<ClockSync>;
  /** Set false to measure without raw sockets even when privileged. */
  useRawSocket: boolean;
  /** Even source ports are picked at random from this range (RTP convention, RFC 3550 §11). */
  portRange: [number, number];
  /** Resolves the peer's host name (tests inject failures such as EAI_AGAIN). */
  lookup: (host: string) => Promise<{ address: string }>;
}

export const MAX_CALLS = 500;
/** One hour: within the reflector's per-stream sequence span (MAX_STREAM_SPAN). */
const MAX_DURATION_MS = 3600 * 1000;
/** Signalling probes: one every 100 ms, the size of a typical SIP request. */
const SIGNALLING_INTERVAL_MS = 100;
const SIGNALLING_BYTES = 600;
/** Summary requests: retried this often, within this long after the wait. */
const SUMMARY_RETRY_MS = 200;
const SUMMARY_DEADLINE_MS = 1500;
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
function resolveHost(host: string): Promise<{ address: string }> {
  if (/(^|\.)invalid\.?$/i.test(host)) {
    return Promise.reject(
      Object.assign(new Error(`${host} is an RFC 6761 invalid name`), { code: 'ENOTFOUND' }),
    );
  }
  return lookup(host);
}

const defaultDeps: ProbeDeps = {
  now: wallNowMs,
  ticker: mainThreadTicker(),
  clockSync: () => detectClockSync(),
  useRawSocket: true,
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
  socket: dgram.Socket;
  localPort: number;
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
  /** Packet buffer reused for synchronous (raw) sends. */
  buffer: Buffer;
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

function bindEven(family: 4 | 6, range: [number, number]): Promise<dgram.Socket> {
  const [lo, hi] = range;
  const attempt = (tries: number): Promise<dgram.Socket> =>
    new Promise((resolve, reject) => {
      const port = lo + 2 * Math.floor((Math.random() * (hi - lo)) / 2);
      const sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
      sock.once('error', (err: NodeJS.ErrnoException) => {
        sock.close();
        if (err.code === 'EADDRINUSE' && tries > 1) resolve(attempt(tries - 1));
        else reject(new UserError(`cannot bind a local UDP port: ${err.code ?? err.message}`));
      });
      sock.bind({ port, exclusive: true }, () => {
        sock.removeAllListeners('error');
        resolve(sock);
      });
    });
  return attempt(200);
}

function connect(sock: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.connect(port, host, (err?: Error) => (err ? reject(err) : resolve()));
  });
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
  return { codec, host, port, signallingPort };
}

export async function runProbe(options: ProbeOptions, deps: Partial<ProbeDeps> = {}): Promise<ProbeResult> {
  const d: ProbeDeps = { ...defaultDeps, ...deps };
  const { codec, host, port, signallingPort } = validate(options);
  const policy = options.policy ?? DEFAULT_POLICY;
  const waitMs = options.waitMs ?? 2000;
  const secret = options.secret;
  const mediaDscp = policy['dscp-rtp'].audio;
  const signallingDscp = policy['dscp-sip'].class;

  const perCall = Math.floor(options.durationMs / codec.ptimeMs);
  const sigTotal = Math.max(1, Math.floor(options.durationMs / SIGNALLING_INTERVAL_MS));
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
          packetsPerCall: perCall,
          signallingPackets: sigTotal,
          localClock: await localClockPromise,
          reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
        },
        policy,
      );
    }
  }
  const family = isIP(peerIp) as 4 | 6;

  const streams: StreamState[] = [];
  const bySsrc = new Map<number, StreamState>();
  let raw: RawUdp | undefined;
  let localDscpReason: string | undefined;
  const rtt = new Histogram();
  const oneWayForward = new Mean();
  const oneWayReverse = new Mean();

  const onMessage = (msg: Buffer, srcIp: string, srcPort: number, arrivalMs: number, dscp: number | null) => {
    if (srcIp !== peerIp) return;
    const m = decodeMessage(msg, secret);
    if (typeof m === 'string') return;
    const s = bySsrc.get(m.ssrc);
    if (!s || srcPort !== s.remotePort) return;
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
    rtt.add(arrivalMs - sentMs - holdMs);
    // The reflector's 32-bit microsecond arrival stamp, unwrapped next to our send time.
    const sentUs = sentMs * 1000;
    const diff =
      ((((m.arrivalUs - (sentUs % 0x100000000)) % 0x100000000) + 0x180000000) % 0x100000000) - 0x80000000;
    const reflectorArrivalMs = (sentUs + diff) / 1000;
    oneWayForward.add(reflectorArrivalMs - sentMs);
    oneWayReverse.add(arrivalMs - (reflectorArrivalMs + holdMs));
  };

  const sockets: dgram.Socket[] = [];
  const cleanup = () => {
    raw?.close();
    for (const s of sockets) s.close();
  };
  try {
    if (!d.useRawSocket) localDscpReason = 'raw sockets disabled';
    else if (family === 6) localDscpReason = IPV6_DSCP_REASON;

    const makeStream = async (index: number, signalling: boolean): Promise<StreamState> => {
      const socket = await bindEven(family, d.portRange);
      sockets.push(socket);
      const remotePort = signalling ? signallingPort : port;
      socket.on('error', () => {
        // ICMP port/host unreachable on a connected socket: the loss shows in the counts.
      });
      try {
        await connect(socket, remotePort, peerIp);
      } catch {
        // No route: sends will fail and count as lost.
      }
      socket.on('message', (msg, rinfo) => {
        if (!raw) onMessage(msg, rinfo.address, rinfo.port, d.now(), null);
      });
      let ssrc = randomU32();
      while (bySsrc.has(ssrc)) ssrc = randomU32();
      const s: StreamState = {
        index,
        socket,
        localPort: socket.address().port,
        remotePort,
        ssrc,
        signalling,
        packetBytes: signalling ? SIGNALLING_BYTES : RTP_HEADER_BYTES + codec.payloadBytes,
        payloadType: codec.payloadType,
        clockRate: codec.clockRate,
        sequenceBase: randomU32() & 0xffff,
        timestampBase: randomU32(),
        originMs: 0,
        sent: 0,
        sendTimes: new Float64Array(SEND_RING),
        sendSequences: new Int32Array(SEND_RING).fill(-1),
        reverse: newDirection(codec.clockRate),
        echoed: new SequenceTracker(),
        buffer: Buffer.alloc(signalling ? SIGNALLING_BYTES : RTP_HEADER_BYTES + codec.payloadBytes),
      };
      bySsrc.set(ssrc, s);
      return s;
    };
    for (let i = 0; i < options.calls; i++) streams.push(await makeStream(i, false));
    const sig = await makeStream(options.calls, true);
    const allStreams = [...streams, sig];

    if (!localDscpReason) {
      const ports = new Set(allStreams.map((s) => s.localPort));
      const opened = openRawUdp(
        {
          acceptPort: (p) => ports.has(p),
          onDatagram: (dg, arrivalMs) =>
            onMessage(dg.payload, dg.src, dg.srcPort, arrivalMs, dscpFromTos(dg.tos)),
        },
        d.now,
      );
      if (typeof opened === 'string') localDscpReason = opened;
      else {
        raw = opened;
        for (const s of allStreams) stopReading(s.socket);
      }
    }
    let localIp = '0.0.0.0';
    try {
      localIp = streams[0]!.socket.address().address;
    } catch {
      // unconnected: raw sends will use the kernel's choice and a checksum that may not match
    }

    const send = (s: StreamState, k: number, dscp: number) => {
      // A raw send is a synchronous copy, so the stream's buffer is reused; dgram may queue it.
      const buf = raw ? s.buffer : Buffer.allocUnsafe(s.packetBytes);
      const t = d.now();
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
        },
        secret,
      );
      s.sendTimes[sequence % SEND_RING] = t;
      s.sendSequences[sequence % SEND_RING] = sequence;
      s.sent++;
      try {
        if (raw) raw.send(localIp, s.localPort, peerIp, s.remotePort, dscp, buf);
        else s.socket.send(buf, () => {});
      } catch {
        // Refused by the local stack (no route, firewall): the packet is sent and lost.
      }
      return t;
    };

    // Calls spread over the frame in S slots, at least MIN_SLOT_MS apart: call i sends packet k at
    // start + k·ptime + (i mod S)·ptime/S.
    const n = options.calls;
    const slots = Math.max(1, Math.min(n, Math.floor(codec.ptimeMs / MIN_SLOT_MS)));
    const stepMs = codec.ptimeMs / slots;
    const total = perCall * slots;
    const startMs = d.now() + 20;
    for (const s of streams) s.originMs = startMs + (s.index % slots) * stepMs;
    sig.originMs = startMs;
    let sigNext = 0;
    const lateness = new Histogram();
    let lastProgress = -1;
    const pacer = runPacer({
      startMs,
      stepMs,
      total,
      now: d.now,
      ticker: d.ticker,
      onSend: (e, idealMs) => {
        const k = Math.floor(e / slots);
        for (let i = e % slots; i < n; i += slots) {
          lateness.add(send(streams[i]!, k, mediaDscp) - idealMs);
        }
        while (sigNext < sigTotal && startMs + sigNext * SIGNALLING_INTERVAL_MS <= idealMs) {
          send(sig, sigNext, signallingDscp);
          sigNext++;
        }
        const pct = Math.floor((100 * (e + 1)) / total);
        if (pct !== lastProgress) {
          lastProgress = pct;
          options.onProgress?.((e + 1) / total);
        }
      },
    });
    await pacer.done;

    // Late packets, then the reflector's forward-direction summaries (retried: they can be lost too).
    await new Promise((r) => setTimeout(r, waitMs));
    const deadline = d.now() + SUMMARY_DEADLINE_MS;
    let nonce = randomU32();
    while (d.now() < deadline) {
      const missing = allStreams.filter((s) => !s.summary);
      if (missing.length === 0) break;
      for (const s of missing) {
        try {
          s.socket.send(encodeSummaryRequest({ ssrc: s.ssrc, nonce: nonce++ }, secret), () => {});
        } catch {
          // Not connected (no route to the peer): the summary stays missing.
        }
      }
      await new Promise((r) => setTimeout(r, SUMMARY_RETRY_MS));
    }
    const localClock = await localClockPromise;

    const measure = (s: StreamState): StreamMeasurement => {
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
      return {
        ssrc: s.ssrc,
        localPort: s.localPort,
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
    };
    const firstSummary = allStreams.find((s) => s.summary?.known)?.summary;
    return buildProbeResult(
      {
        peer: options.peer,
        codec,
        calls: n,
        durationMs: options.durationMs,
        startedAt: new Date(startMs).toISOString(),
        privileged: raw !== undefined,
        ...(localDscpReason ? { localDscpReason } : {}),
        mediaDscp,
        signallingDscp,
        media: streams.map(measure),
        signalling: measure(sig),
        reflector: firstSummary
          ? {
              dscpReadable: firstSummary.dscpReadable,
              marksReplies: firstSummary.marksReplies,
              clock: {
                synchronised: firstSummary.clock.synchronised,
                errorBoundMs:
                  firstSummary.clock.errorBoundUs === null ? null : firstSummary.clock.errorBoundUs / 1000,
                source: firstSummary.clock.source,
              },
              holdUs: {
                p50: firstSummary.holdP50Us,
                p99: firstSummary.holdP99Us,
                max: firstSummary.holdMaxUs,
                samples: firstSummary.holdSamples,
              },
            }
          : null,
        localClock,
        rtt: rtt.summary(),
        oneWayForwardMs: oneWayForward.value,
        oneWayReverseMs: oneWayReverse.value,
        sendLateness: lateness.summary(),
      },
      policy,
    );
  } finally {
    cleanup();
  }
}
