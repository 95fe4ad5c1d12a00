// contract: the `voipready trace --json` document, schema `voipready.trace/1` (docs/trace.md). The
// issue's keys (schema, peer, dscpSent, hops[].{ttl, address, rttMs, dscpSeen, changed},
// firstChangeAtTtl) are kept exactly; the others are additions.
import { z } from 'zod';
import { dscpName } from './dscp.js';
import { TagText } from './tag-text.js';

export const TRACE_SCHEMA = 'voipready.trace/1';
/** --max-hops bound: an IPv4 TTL (IPv6 Hop Limit) is one byte. */
export const MAX_TRACE_HOPS = 255;
/** traceroute's first UDP port (RFC 1393 era convention): nothing listens there, so the peer answers Port Unreachable. */
export const DEFAULT_TRACE_PORT = 33434;

/** What answered a probe at one TTL. */
export const HOP_REPLIES = [
  'time-exceeded',
  'port-unreachable',
  'unreachable',
  /** A voipready reflector answered and reported the mark on arrival. */
  'reflector-reply',
  /** Something else answered on the port: no arrival mark. */
  'udp-reply',
  'none',
] as const;

const Dscp = z.number().int().min(0).max(63);

export const TraceHop = z.looseObject({
  ttl: z.number().int().min(1).max(MAX_TRACE_HOPS),
  /** Who answered; null: the hop stayed silent (no ICMP within the wait, retries included). */
  address: TagText(64).nullable(),
  rttMs: z.number().nonnegative().nullable(),
  /** The DSCP in the IP header this hop quoted back (or a voipready reflector reported), i.e. the mark as the hop received the probe. */
  dscpSeen: Dscp.nullable(),
  /** dscpSeen differs from the last mark seen before it (dscpSent for the first answering hop). */
  changed: z.boolean(),
  reply: z.enum(HOP_REPLIES),
  /** Probes sent at this TTL (1 + retries). */
  attempts: z.number().int().positive(),
});
export type TraceHop = z.infer<typeof TraceHop>;

export const TraceResult = z.looseObject({
  schema: z.literal(TRACE_SCHEMA),
  /** HOST:PORT as given (IPv6 in brackets). */
  peer: TagText(300),
  /** The address the probes went to. */
  address: TagText(64),
  dscpSent: Dscp,
  hops: z.array(TraceHop).max(MAX_TRACE_HOPS),
  /** TTL of the first hop that saw a mark other than the one before it; null when no hop saw a change. */
  firstChangeAtTtl: z.number().int().min(1).max(MAX_TRACE_HOPS).nullable(),
  /** Whether the peer itself answered. */
  reached: z.boolean(),
  /**
   * kept: the peer answered and every quote carried dscpSent; changed: firstChangeAtTtl names the
   * hop; unknown: not measured (unknownReason says why) — a null firstChangeAtTtl then proves nothing.
   */
  outcome: z.enum(['kept', 'changed', 'unknown']),
  unknownReason: TagText(500).nullable(),
});
export type TraceResult = z.infer<typeof TraceResult>;

/** Traces one agent report may carry: one per DSCP check of each probe result in it, bounded. */
export const MAX_REPORT_TRACES = 8;

/**
 * A trace the agent ran by itself because a DSCP check failed (the `traces` key of
 * voipready.report/1): which probe result (`peer`, as in it) and check it explains, and the path it
 * traced — always the forward one (site → peer): a trace shows the path its probes take, and the
 * reverse path can only be traced from the far end.
 */
export const TraceEvidence = z.strictObject({
  peer: TagText(300),
  check: z.enum(['dscp-rtp', 'dscp-sip']),
  direction: z.literal('forward'),
  trace: TraceResult,
});
export type TraceEvidence = z.infer<typeof TraceEvidence>;

/** The last answering hop before ttl: where the changed link starts. */
const hopBefore = (r: TraceResult, ttl: number) =>
  r.hops.filter((h) => h.ttl < ttl && h.address !== null && h.dscpSeen !== null).at(-1);

/**
 * One sentence naming where the mark changed — "mark first changed at hop 3 (198.18.22.2): EF → CS0,
 * on the link after 198.18.21.2" — or that it was kept, or why the trace says nothing.
 */
export function traceFinding(r: TraceResult): string {
  // A document from a report is checked by shape only: a hop it names may be missing.
  const at = r.outcome === 'changed' ? r.hops.find((h) => h.ttl === r.firstChangeAtTtl) : undefined;
  if (r.outcome === 'changed' && r.firstChangeAtTtl !== null) {
    const before = hopBefore(r, r.firstChangeAtTtl);
    const from = dscpName(before?.dscpSeen ?? r.dscpSent);
    const to = at?.dscpSeen != null ? dscpName(at.dscpSeen) : 'another mark';
    return `mark first changed at hop ${r.firstChangeAtTtl} (${at?.address ?? 'address not given'}): ${from} → ${to}, on the link after ${before?.address ?? 'this host'}`;
  }
  if (r.outcome === 'kept') return `${dscpName(r.dscpSent)} kept at every hop up to ${r.address}`;
  return `not located: ${r.unknownReason ?? 'no reason given'}`;
}
