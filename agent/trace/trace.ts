// The DSCP path trace: marked UDP probes with rising TTL; each hop's ICMP Time Exceeded (and the
// peer's Port Unreachable) quotes the IP header as that hop received it, so its DS field says where
// the mark changed. Same outer form as the other probes: config in, result document out, failure
// as data (outcome unknown with the reason); the sockets and clock are passed in.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { dscpFromTos } from '../../src/dscp.js';
import { TRACE_SCHEMA, type TraceHop, type TraceResult } from '../../src/trace-schema.js';
import { type IcmpQuote, parseIcmpQuote, quotesProbe, type SentProbe } from './icmp.js';
import { openTraceSockets, type TraceSockets } from './sockets.js';

export interface TraceConfig {
  /** HOST:PORT as the user gave it, for the document. */
  peer: string;
  /** The resolved address. */
  address: string;
  port: number;
  dscp: number;
  maxHops: number;
  /** Probes per TTL: one, plus retries for hops whose ICMP was rate limited or lost. */
  attempts?: number;
  /** How long to wait for an answer to one probe. */
  waitMs?: number;
  /** Least time between two probes: Linux routers answer ~1 ICMP error/s per source after a burst (icmp_ratelimit). */
  paceMs?: number;
}

export interface TraceDeps {
  open(address: string, port: number): Promise<TraceSockets | string>;
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realDeps: TraceDeps = {
  open: openTraceSockets,
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

export const IPV6_TRACE_REASON =
  'IPv6 trace not implemented: raw-socket offers no IPv6 Hop Limit or traffic class option for the probes';

/** Payload: a per-run random token, then the sequence number; its length (16 + seq) tells probes apart in 8-byte quotes. */
const TOKEN_BYTES = 8;
const BASE_PAYLOAD = 16;

interface Pending extends SentProbe {
  ttl: number;
  sentMs: number;
}

interface Answer {
  quote: IcmpQuote | undefined;
  from: string;
  rttMs: number;
}

function unknown(config: TraceConfig, reason: string): TraceResult {
  return conclude(config, [], false, reason);
}

const firstChange = (hops: TraceHop[]) => hops.find((h) => h.changed)?.ttl ?? null;

export async function runTrace(config: TraceConfig, deps: TraceDeps = realDeps): Promise<TraceResult> {
  if (!isIPv4(config.address)) return unknown(config, IPV6_TRACE_REASON);
  const sockets = await deps.open(config.address, config.port);
  if (typeof sockets === 'string') return unknown(config, `not measured: ${sockets}`);
  try {
    return await traceHops(config, deps, sockets);
  } finally {
    sockets.close();
  }
}

async function traceHops(config: TraceConfig, deps: TraceDeps, sockets: TraceSockets): Promise<TraceResult> {
  const attempts = config.attempts ?? 2;
  const waitMs = config.waitMs ?? 1000;
  const paceMs = config.paceMs ?? 50;
  const token = randomBytes(TOKEN_BYTES);
  const pending: Pending[] = [];
  let waiting: { ttl: number; resolve: (a: Answer) => void } | undefined;

  sockets.onIcmp((packet) => {
    const arrivalMs = deps.now();
    if (!waiting) return;
    const quote = parseIcmpQuote(packet);
    if (!quote) return;
    // Late answers to an earlier TTL's retries are dropped: that hop is settled.
    const probe = pending.find((p) => p.ttl === waiting!.ttl && quotesProbe(quote, p));
    if (probe) waiting.resolve({ quote, from: quote.from, rttMs: Math.max(0, arrivalMs - probe.sentMs) });
  });
  sockets.onPeerReply(() => {
    const arrivalMs = deps.now();
    const probe = waiting && pending.filter((p) => p.ttl === waiting!.ttl).at(-1);
    if (waiting && probe)
      waiting.resolve({
        quote: undefined,
        from: config.address,
        rttMs: Math.max(0, arrivalMs - probe.sentMs),
      });
  });

  let lastSendMs = Number.NEGATIVE_INFINITY;
  const probeOnce = async (ttl: number): Promise<Answer | undefined> => {
    const gap = lastSendMs + paceMs - deps.now();
    if (gap > 0) await deps.sleep(gap);
    const seq = pending.length;
    const payload = Buffer.alloc(BASE_PAYLOAD + seq);
    token.copy(payload, 0);
    payload.writeUInt32BE(seq, TOKEN_BYTES);
    const answer = new Promise<Answer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs);
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
  for (let ttl = 1; ttl <= config.maxHops && !reached && !stoppedBy; ttl++) {
    let answer: Answer | undefined;
    let sent = 0;
    while (!answer && sent < attempts) {
      sent++;
      answer = await probeOnce(ttl);
    }
    const hop = toHop(ttl, sent, answer, lastSeen);
    if (hop.dscpSeen !== null) lastSeen = hop.dscpSeen;
    hops.push(hop);
    if (answer?.from === config.address) reached = true;
    else if (hop.reply === 'unreachable')
      stoppedBy = `${hop.address} answered Destination Unreachable at TTL ${ttl}`;
  }
  return conclude(config, hops, reached, stoppedBy);
}

function toHop(ttl: number, attempts: number, answer: Answer | undefined, lastSeen: number): TraceHop {
  if (!answer)
    return { ttl, address: null, rttMs: null, dscpSeen: null, changed: false, reply: 'none', attempts };
  const dscpSeen = answer.quote ? dscpFromTos(answer.quote.quotedTos) : null;
  return {
    ttl,
    address: answer.from,
    rttMs: Math.round(answer.rttMs * 1000) / 1000,
    dscpSeen,
    changed: dscpSeen !== null && dscpSeen !== lastSeen,
    reply: answer.quote ? answer.quote.kind : 'udp-reply',
    attempts,
  };
}

/** The document; `notMeasured` (no sockets, IPv6, a Destination Unreachable on the way) makes it unknown unless a change was seen. */
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
    else if (last?.dscpSeen === null)
      unknownReason = `the peer answered on UDP port ${config.port} itself, so its arrival mark was not quoted: trace a closed port (default 33434)`;
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
