// The one measurement shape: what probes produce, what the collector stores and judges, what
// reports and dashboards read. Keys marked "contract" are relied on by other tools; keep them.
import { z } from 'zod';
import { HostResult } from './host-schema.js';
import { PriorityResult } from './priority-schema.js';
import { SipResult } from './sip/schema.js';
import { MAX_REPORT_TRACES, TraceEvidence } from './trace-schema.js';

export const CHECK_IDS = [
  'latency',
  'jitter',
  'loss',
  'dscp-rtp',
  'dscp-sip',
  'bandwidth',
  'disk',
  'eventlog',
  'backup',
  'system',
  'sip',
  'priority',
] as const;
export const CheckId = z.enum(CHECK_IDS);
export type CheckId = z.infer<typeof CheckId>;

/** The network checks: a site is VoIP-ready when all of these pass in a recent assessment. */
export const NETWORK_CHECK_IDS = ['latency', 'jitter', 'loss', 'dscp-rtp', 'dscp-sip', 'bandwidth'] as const;

/** The probe's own limit on concurrent calls (agent/probe.ts MAX_CALLS). */
export const MAX_PROBE_CALLS = 500;

/**
 * Text that may become an InfluxDB tag or a metric label: no control characters (a newline in a
 * tag splits a line-protocol point in two).
 */
export const TagText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'control characters are not allowed');

export const CheckStatus = z.enum(['pass', 'warn', 'fail', 'unknown']);
export type CheckStatus = z.infer<typeof CheckStatus>;

/** contract: { id, status, value, limit, unit, evidence } */
export const Check = z.object({
  id: CheckId,
  status: CheckStatus,
  value: z.union([z.number(), z.string(), z.null()]),
  limit: z.union([z.number(), z.string(), z.null()]),
  unit: z.string().nullable(),
  evidence: z.string(),
  /** The handbook sentence the rule comes from. */
  rule: z.string().optional(),
});
export type Check = z.infer<typeof Check>;

/** DSCP value (decimal 0–63, as a string key) to packet count: at most 64 keys. */
export const DscpCounts = z.record(
  z.string().regex(/^(?:[0-9]|[1-5][0-9]|6[0-3])$/, 'a DSCP value 0-63 without leading zeros'),
  z.number().int().nonnegative(),
);
export type DscpCounts = z.infer<typeof DscpCounts>;

/**
 * One RTP stream (one call) as the probe lists it in `forward.streams` / `reverse.streams`, beyond
 * the contract keys: the stream's SSRC, its UDP ports and its own counts.
 */
/** Why a stream (or the signalling stream) was not measured, and what the probe sent on it. */
export const Unmeasured = z.object({
  reason: z.string().max(500),
  sent: z.number().int().nonnegative().nullable(),
});
export type Unmeasured = z.infer<typeof Unmeasured>;

export const ProbeStream = z.looseObject({
  ssrc: z.string().regex(/^0x[0-9a-fA-F]{8}$/),
  srcPort: z.number().int().min(1).max(65535),
  dstPort: z.number().int().min(1).max(65535),
  sent: z.number().int().nonnegative(),
  received: z.number().int().nonnegative(),
  lost: z.number().int(),
  duplicates: z.number().int().nonnegative(),
  reordered: z.number().int().nonnegative(),
  jitterMs: z.number().nonnegative(),
  jitterMaxMs: z.number().nonnegative(),
  /** The reflector refused or forgot this stream: its counts above are 0 (kept out of the
   * direction's), the probe's own count of what it sent is `sent`, and the loss check is unknown. */
  unmeasured: Unmeasured.optional(),
});
export type ProbeStream = z.infer<typeof ProbeStream>;

/** One direction of a probed stream set. contract keys listed in the probe issue. */
export const DirectionStats = z.looseObject({
  sent: z.number().int().nonnegative(),
  received: z.number().int().nonnegative(),
  lost: z.number().int(),
  lossPct: z.number(),
  duplicates: z.number().int().nonnegative(),
  reordered: z.number().int().nonnegative(),
  maxBurstLoss: z.number().int().nonnegative(),
  jitterMs: z.number().nonnegative(),
  jitterMaxMs: z.number().nonnegative(),
  /** DSCP the sender marked; null when it could not mark (no privilege). */
  dscpSent: z.number().int().min(0).max(63).nullable(),
  /** DSCP on arrival; empty when it could not be read (see dscpUnknownReason). */
  dscpReceived: DscpCounts,
  dscpUnknownReason: z.string().optional(),
  /** The direction's RTP streams, one per call (optional; that it is `calls` long is a consistency
   * rule, src/evidence-consistency.ts). */
  streams: z.array(ProbeStream).max(MAX_PROBE_CALLS).optional(),
});
export type DirectionStats = z.infer<typeof DirectionStats>;

export const SignallingDirection = z.looseObject({
  sent: z.number().int().nonnegative(),
  received: z.number().int().nonnegative(),
  lost: z.number().int(),
  dscpSent: z.number().int().min(0).max(63).nullable(),
  dscpReceived: DscpCounts,
  dscpUnknownReason: z.string().optional(),
});
export type SignallingDirection = z.infer<typeof SignallingDirection>;

const Ms = z.number().nonnegative();
export const RttStats = z.object({ min: Ms, mean: Ms, p50: Ms, p95: Ms, p99: Ms, max: Ms });
export type RttStats = z.infer<typeof RttStats>;

export const ClockSync = z.object({
  synchronised: z.boolean(),
  /** Upper bound of the clock's error against true time, ms (e.g. chrony root dispersion + delay/2). */
  errorBoundMs: z.number().nonnegative().nullable(),
  source: z.string(),
});
export type ClockSync = z.infer<typeof ClockSync>;

export const PROBE_SCHEMA = 'voipready.probe/1';

const MAX_TIMELINE_BUCKETS = 600;
const Column = <T extends z.ZodType>(t: T) => z.array(t).max(MAX_TIMELINE_BUCKETS);
/**
 * The run over time, column by column (one entry per bucket of `bucketS` seconds from the start):
 * media packets sent in the bucket and how many of them came back, their round-trip time, and the
 * highest reverse-path RFC 3550 jitter estimate seen in it. null where nothing came back.
 */
export const ProbeTimeline = z
  .object({
    bucketS: z.number().positive(),
    offsetS: Column(z.number().nonnegative()),
    sent: Column(z.number().int().nonnegative()),
    returned: Column(z.number().int().nonnegative()),
    rttMeanMs: Column(Ms.nullable()),
    rttMaxMs: Column(Ms.nullable()),
    reverseJitterMs: Column(Ms.nullable()),
  })
  .refine(
    (t) =>
      [t.sent, t.returned, t.rttMeanMs, t.rttMaxMs, t.reverseJitterMs].every(
        (c) => c.length === t.offsetS.length,
      ),
    'every timeline column has one entry per bucket',
  );
export type ProbeTimeline = z.infer<typeof ProbeTimeline>;

/** contract: the `voipready probe --json` document. */
export const ProbeResult = z.looseObject({
  schema: z.literal(PROBE_SCHEMA),
  peer: TagText(300),
  codec: TagText(32),
  calls: z.number().int().positive().max(MAX_PROBE_CALLS),
  durationS: z.number().positive().max(86_400),
  privileged: z.boolean(),
  startedAt: z.iso.datetime({ offset: true }).optional(),
  forward: DirectionStats,
  reverse: DirectionStats,
  signalling: z.object({ forward: SignallingDirection, reverse: SignallingDirection }),
  rttMs: RttStats.nullable(),
  oneWayMs: z.object({
    forward: Ms.nullable(),
    reverse: Ms.nullable(),
    estimated: z.boolean(),
  }),
  rFactor: z.number().nullable(),
  mos: z.number().nullable(),
  /** Added after the first release: absent in older documents. */
  timeline: ProbeTimeline.optional(),
  /** `--priority-test` only (src/priority-schema.ts); added after the first release. */
  priority: PriorityResult.optional(),
  checks: z.array(Check).max(CHECK_IDS.length),
  ready: z.boolean(),
});
export type ProbeResult = z.infer<typeof ProbeResult>;

export const REPORT_SCHEMA = 'voipready.report/1';

/** Probe results one report may carry. */
export const MAX_REPORT_PROBES = 64;
/** SIP OPTIONS results (voipready.sip/1) one report may carry. */
export const MAX_REPORT_SIP = 16;

/** Site and agent names: short, printable, safe as metric labels and file names. */
export const Identifier = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'letters, digits, ".", "_" and "-" only, starting with a letter or digit',
  );

/** What an agent sends to POST /api/v1/reports: one measurement shape from probe to dashboard. */
export const AgentReport = z.strictObject({
  schema: z.literal(REPORT_SCHEMA),
  /** Chosen by the agent, unique per report; a repeat is acknowledged and not stored again. */
  reportId: z
    .string()
    .min(8)
    .max(128)
    .regex(/^[A-Za-z0-9._:-]+$/),
  site: Identifier,
  agent: Identifier,
  createdAt: z.iso.datetime({ offset: true }),
  /** RTP probe results; empty in a report of another schedule entry (e.g. SIP OPTIONS). */
  probes: z.array(ProbeResult).max(MAX_REPORT_PROBES),
  // Lazy: src/sip/schema.ts builds on this module's Check and SignallingDirection.
  sip: z.lazy(() => z.array(SipResult).max(MAX_REPORT_SIP)).optional(),
  /** Host health (src/host-schema.ts); lazy: host-schema.ts builds on this module's Check. */
  host: z.lazy(() => HostResult).optional(),
  /** DSCP path traces the agent ran because a DSCP check of a probe in this report failed (src/trace-schema.ts). */
  traces: z.array(TraceEvidence).max(MAX_REPORT_TRACES).optional(),
});
export type AgentReport = z.infer<typeof AgentReport>;
