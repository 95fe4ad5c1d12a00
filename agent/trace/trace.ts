// The DSCP path trace: marked UDP probes with rising TTL (IPv6: Hop Limit); each hop's ICMP Time
// Exceeded (and the peer's Port Unreachable) quotes the IP header as that hop received it, so its
// DS field says where the mark changed. A voipready reflector on the port answers the probe itself
// and reports the mark on arrival. Same outer form as the other probes: config in, result document
// out, failure as data (outcome unknown with the reason); the sockets and clocks are passed in.
import { randomBytes } from 'node:crypto';
import { dscpFromTos } from '../../src/dscp.js';
import { TRACE_SCHEMA, type TraceHop, type TraceResult } from '../../src/trace-schema.js';
import { decodeMessage, encodeProbe, MIN_PROBE_BYTES } from '../../src/wire.js';
import { wallNowMs } from '../net/wall-clock.js';
import { type IcmpQuote, quotesProbe, type SentProbe } from './icmp.js';
import { openTraceSockets, type TraceSockets } from './sockets.js';

export interface TraceConfig {
  /** HOST:PORT as the user gave it, for the document. */
  peer: string;
  /** The resolved address (IPv6 in canonical text). */
  address: string;
  port: number;
  dscp: number;
  maxHops: number;
  /** The reflector's shared secret, when the peer is a voipready reflector that has one. */
  secret?: Buffer;
  /** Probes per TTL: one, plus retries for hops whose ICMP was rate limited or lost. */
  attempts?: number;
  /** Longest wait for an answer to one probe (until a hop has answered; then see NEAR_RTT_FACTOR). */
  waitMs?: number;
  /** Least time between two probes: Linux routers answer ~1 ICMP error/s per source after a burst (icmp_ratelimit). */
  paceMs?: number;
  /** Consecutive silent hops after which the peer is taken as unreachable (scamper's gap limit). */
  gapLimit?: number;
}

export interface TraceDeps {
  open(address: string, port: number): Promise<TraceSockets | string>;
  now(): number;
  /** Wall clock (ms since the epoch) for the probes' send time, which a reflector with a secret checks. */
  wallNow(): number;
  sleep(ms: number): Promise<void>;
}

const realDeps: TraceDeps = {
  open: openTraceSockets,
  now: () => performance.now(),
  wallNow: wallNowMs,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * Once hops have answered, a probe waits 10 × the slowest answer so far (traceroute's "near"
 * factor, its -w 5,3,10), but at least MIN_WAIT_MS (a router's ICMP comes from its slow path) and
 * at most waitMs: a silent hop on a LAN-fast path costs a fraction of a second, not seconds.
 */
const NEAR_RTT_FACTOR = 10;
const MIN_WAIT_MS = 250;

/** PCMU: any payload type the reflector knows serves; the probes are not media. */
const PROBE_PAYLOAD_TYPE = 0;
/** RFC 3550 §5.1: the SSRC's place in the RTP header (a reflector's reply keeps the probe's). */
const RTP_SSRC_OFFSET = 8;

interface Pending extends SentProbe {
  ttl: number;
  sentMs: number;
  rtpSequence: number;
}

interface Answer {
  quote: IcmpQuote | undefined;
  from: string;
  rttMs: number;
  /** The reflector's report of the mark on arrival (null: it could not read it); undefined: not a reflector reply. */
  reflectorDscp?: number | null;
}

function unknown(config: TraceConfig, reason: string): TraceResult {
  return conclude(config, [], false, reason);
}

const firstChange = (hops: TraceHop[]) => hops.find((h) => h.changed)?.ttl ?? null;

export async function runTrace(config: TraceConfig, deps: TraceDeps = realDeps): Promise<TraceResult> {
  const sockets = await deps.open(config.address, config.port);
  if (typeof sockets === 'string') return unknown(config, `not measured: ${sockets}`);
  try {
    return await traceHops(config, deps, sockets);
  } catch (err) {
    // A send refused by the kernel (no route, interface gone): failure as data.
    return unknown(config, `not measured: ${(err as Error).message}`);
  } finally {
    sockets.close();
  }
}

/**
 * Each probe is a voipready wire probe (a reflector answers it); the per-run random SSRC and RTP
 * timestamp are the token a forged quote cannot know, and the size (the smallest probe + the
 * probe's number) tells probes apart even in 8-byte quotes.
 */
function probeMaker(config: TraceConfig, deps: TraceDeps) {
  const token = randomBytes(8);
  const ssrc = token.readUInt32BE(0);
  const timestampBase = token.readUInt32BE(4);
  return (seq: number): Buffer => {
    const size = MIN_PROBE_BYTES + seq;
    const payload = Buffer.alloc(size);
    encodeProbe(
      payload,
      size,
      {
        payloadType: PROBE_PAYLOAD_TYPE,
        sequence: seq,
        timestamp: (timestampBase + seq) >>> 0,
        ssrc,
        replyDscp: config.dscp,
        signalling: false,
        sentAtMs: deps.wallNow(),
      },
      config.secret,
    );
    return payload;
  };
}

async function traceHops(config: TraceConfig, deps: TraceDeps, sockets: TraceSockets): Promise<TraceResult> {
  const attempts = config.attempts ?? 2;
  const maxWaitMs = config.waitMs ?? 1000;
  let slowestRttMs: number | undefined;
  const waitMs = () =>
    slowestRttMs === undefined
      ? maxWaitMs
      : Math.min(maxWaitMs, Math.max(MIN_WAIT_MS, NEAR_RTT_FACTOR * slowestRttMs));
  const paceMs = config.paceMs ?? 50;
  const gapLimit = config.gapLimit ?? 5;
  const makeProbe = probeMaker(config, deps);
  const pending: Pending[] = [];
  let waiting: { ttl: number; resolve: (a: Answer) => void } | undefined;
  const current = () => (waiting ? pending.filter((p) => p.ttl === waiting!.ttl) : []);

  sockets.onQuote((quote) => {
    const arrivalMs = deps.now();
    // Late answers to an earlier TTL's retries are dropped: that hop is settled.
    const probe = current().find((p) => quotesProbe(quote, p));
    if (probe) waiting!.resolve({ quote, from: quote.from, rttMs: Math.max(0, arrivalMs - probe.sentMs) });
  });
  sockets.onPeerReply((msg) => {
    const arrivalMs = deps.now();
    const ours = current();
    if (ours.length === 0) return;
    const m = decodeMessage(msg, config.secret);
    // A reflector's reply is the probe's size and echoes its SSRC and sequence; any other datagram
    // from the peer's port says only that something listens there.
    const probe =
      typeof m === 'object' && m.type === 'reply'
        ? ours.find(
            (p) =>
              p.payload.length === msg.length &&
              p.rtpSequence === m.echoedSequence &&
              p.payload.readUInt32BE(RTP_SSRC_OFFSET) === m.ssrc,
          )
        : ours.at(-1);
    if (!probe) return;
    const reflectorDscp = typeof m === 'object' && m.type === 'reply' ? m.arrivalDscp : undefined;
    const reply = { quote: undefined, from: config.address, rttMs: Math.max(0, arrivalMs - probe.sentMs) };
    waiting!.resolve(reflectorDscp === undefined ? reply : { ...reply, reflectorDscp });
  });

  let lastSendMs = Number.NEGATIVE_INFINITY;
  const probeOnce = async (ttl: number): Promise<Answer | undefined> => {
    const gap = lastSendMs + paceMs - deps.now();
    if (gap > 0) await deps.sleep(gap);
    const seq = pending.length;
    const payload = makeProbe(seq);
    const answer = new Promise<Answer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs());
      waiting = {
        ttl,
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
      };
    });
    lastSendMs = deps.now();
    const udpChecksum = sockets.send(ttl, config.dscp, payload);
    pending.push({
      ttl,
      sentMs: lastSendMs,
      rtpSequence: seq,
      src: sockets.localAddress,
      dst: config.address,
      srcPort: sockets.localPort,
      dstPort: config.port,
      udpLength: 8 + payload.length,
      udpChecksum,
      payload,
    });
    const a = await answer;
    waiting = undefined;
    return a;
  };

  const hops: TraceHop[] = [];
  let lastSeen = config.dscp;
  let reached = false;
  let stoppedBy: string | undefined;
  let silentRun = 0;
  for (let ttl = 1; ttl <= config.maxHops && !reached && !stoppedBy; ttl++) {
    let answer: Answer | undefined;
    let sent = 0;
    while (!answer && sent < attempts) {
      sent++;
      answer = await probeOnce(ttl);
    }
    if (answer) slowestRttMs = Math.max(slowestRttMs ?? 0, answer.rttMs);
    const hop = toHop(ttl, sent, answer, lastSeen);
    if (hop.dscpSeen !== null) lastSeen = hop.dscpSeen;
    hops.push(hop);
    silentRun = answer ? 0 : silentRun + 1;
    if (answer?.from === config.address) reached = true;
    else if (hop.reply === 'unreachable')
      stoppedBy = `${hop.address} answered Destination Unreachable at TTL ${ttl}`;
    else if (silentRun >= gapLimit && ttl < config.maxHops)
      stoppedBy = `no answer from TTL ${ttl - gapLimit + 1} to ${ttl}: the peer is unreachable or the path filters the probes`;
  }
  return conclude(config, hops, reached, stoppedBy);
}

function toHop(ttl: number, attempts: number, answer: Answer | undefined, lastSeen: number): TraceHop {
  if (!answer)
    return { ttl, address: null, rttMs: null, dscpSeen: null, changed: false, reply: 'none', attempts };
  const dscpSeen = answer.quote ? dscpFromTos(answer.quote.quotedTos) : (answer.reflectorDscp ?? null);
  return {
    ttl,
    address: answer.from,
    rttMs: Math.round(answer.rttMs * 1000) / 1000,
    dscpSeen,
    changed: dscpSeen !== null && dscpSeen !== lastSeen,
    reply: answer.quote
      ? answer.quote.kind
      : answer.reflectorDscp !== undefined
        ? 'reflector-reply'
        : 'udp-reply',
    attempts,
  };
}

/** The document; `notMeasured` (no sockets, a Destination Unreachable or a run of silent hops on the way) makes it unknown unless a change was seen. */
function conclude(
  config: TraceConfig,
  hops: TraceHop[],
  reached: boolean,
  notMeasured?: string,
): TraceResult {
  const firstChangeAtTtl = firstChange(hops);
  const last = hops.at(-1);
  let unknownReason: string | null = null;
  if (firstChangeAtTtl === null) {
    if (notMeasured) unknownReason = notMeasured;
    else if (!reached) unknownReason = `the peer did not answer within ${config.maxHops} hops`;
    else if (last?.reply === 'reflector-reply' && last.dscpSeen === null)
      unknownReason =
        'the voipready reflector could not read the mark on arrival (it needs CAP_NET_RAW, or its native sockets)';
    else if (last?.dscpSeen === null)
      unknownReason = `the peer answered on UDP port ${config.port} itself, so its arrival mark was not quoted: trace a closed port (default 33434) or a voipready reflector`;
  }
  return {
    schema: TRACE_SCHEMA,
    peer: config.peer,
    address: config.address,
    dscpSent: config.dscp,
    hops,
    firstChangeAtTtl,
    reached,
    outcome: firstChangeAtTtl !== null ? 'changed' : unknownReason ? 'unknown' : 'kept',
    unknownReason,
  };
}
