// The one measurement shape: what probes produce, what the collector stores and judges, what
// reports and dashboards read. Keys marked "contract" are relied on by other tools; keep them.
import { z } from 'zod';
import { HostResult } from './host-schema.js';
import { PriorityResult } from './priority-schema.js';
import { SipResult } from './sip/schema.js';
import { TagText } from './tag-text.js';
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

export { TagText } from './tag-text.js';

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
  /** The stream's longest run of lost packets (absent in documents of older agents). */
  maxBurstLoss: z.number().int().nonnegative().optional(),
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
/** How late the agent's packets left against their place on the pacing grid, ms (null: none sent). */
export const SendTiming = z.object({
  p50Ms: Ms.nullable(),
  p99Ms: Ms.nullable(),
  maxMs: Ms.nullable(),
  samples: z.number().int().nonnegative(),
});
/** What kept the send times: the native sender thread (and how it was scheduled) or a JS timer. */
export const SendPacing = z.object({
  by: z.enum(['native-thread', 'js-timer']),
  /** The thread ran at SCHED_FIFO. */
  realtime: z.boolean(),
  /**
   * It did not, and asked the fair scheduler for a 0.1 ms slice so that its wake-ups preempt
   * (Linux ≥ 6.12). Added after `realtime`: absent in older documents.
   */
  shortSlice: z.boolean().optional(),
});

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
  /** Added after the first release (issue 14): absent in older documents. */
  sendTiming: SendTiming.optional(),
  sendPacing: SendPacing.optional(),
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

export const CAPTURE_SCHEMA = 'voipready.capture/1';

/** What an endpoint reported in RTCP about a stream (RFC 3550 §6.4, RFC 3611 §4.7 VoIP metrics). */
const CaptureStreamRtcp = z.looseObject({
  reports: z.number().int().nonnegative(),
  fractionLost: z.number(),
  cumulativeLost: z.number().int(),
  jitterMs: z.number().nullable(),
  xr: z
    .looseObject({
      lossRate: z.number(),
      discardRate: z.number(),
      roundTripDelayMs: z.number(),
      rFactor: z.number().nullable(),
      mosLq: z.number().nullable(),
      mosCq: z.number().nullable(),
    })
    .optional(),
});

/**
 * One RTP stream of a capture (`voipready analyze`), measured as tshark's `-z rtp,streams` does:
 * `lost` is expected − received with duplicates counted as received, so it (and lossPct) can be
 * negative; times are seconds since the capture's first packet.
 */
export const CaptureStream = z.looseObject({
  id: z.string(),
  src: z.string(),
  dst: z.string(),
  ssrc: z.string().regex(/^0x[0-9A-F]{8}$/),
  payloadType: z.number().int().min(0).max(127),
  payloadTypes: z.array(z.number().int().min(0).max(127)),
  codec: z.string().nullable(),
  media: z.enum(['audio', 'video', 'unknown']),
  clockRate: z.number().nullable(),
  /** How the stream was found: announced by SDP, or by the RTP heuristic. */
  foundBy: z.enum(['sdp', 'heuristic']),
  callId: z.string().nullable(),
  startS: z.number(),
  endS: z.number(),
  packets: z.number().int().nonnegative(),
  expected: z.number().int(),
  lost: z.number().int(),
  lossPct: z.number(),
  duplicates: z.number().int().nonnegative(),
  reordered: z.number().int().nonnegative(),
  maxBurstLoss: z.number().int().nonnegative(),
  jitterMs: z.number().nullable(),
  jitterMaxMs: z.number().nullable(),
  jitterMeanMs: z.number().nullable(),
  maxDeltaMs: z.number(),
  dscp: DscpCounts,
  /** What the endpoints themselves reported in RTCP about this stream, when they did. */
  rtcp: CaptureStreamRtcp.optional(),
});
export type CaptureStream = z.infer<typeof CaptureStream>;

/** One SIP call (a Call-ID) of a capture. */
export const CaptureCall = z.looseObject({
  callId: z.string(),
  from: z.string().nullable(),
  to: z.string().nullable(),
  /** The codec in use: the busiest audio stream's, else the first of the SDP's audio codecs. */
  codec: z.string().nullable(),
  /** ISO 8601; null only when the capture's timestamp is damaged beyond a date. */
  start: z.iso.datetime().nullable(),
  end: z.iso.datetime().nullable(),
  messages: z.number().int().nonnegative(),
  /** Final response to the INVITE, when seen. */
  status: z.number().int().nullable(),
  /** Ids of the call's streams (CaptureStream.id). */
  streams: z.array(z.string()),
});
export type CaptureCall = z.infer<typeof CaptureCall>;

/** `voipready analyze --json`: a capture's calls and streams judged against the policy (issue 4). */
export const CaptureResult = z.looseObject({
  schema: z.literal(CAPTURE_SCHEMA),
  file: z.string(),
  format: z.enum(['pcap', 'pcapng']),
  packets: z.number().int().nonnegative(),
  durationS: z.number(),
  calls: z.array(CaptureCall),
  streams: z.array(CaptureStream),
  sip: z.looseObject({ messages: z.number().int().nonnegative(), dscp: DscpCounts }),
  rtcp: z.looseObject({ packets: z.number().int().nonnegative(), rttMs: z.array(z.number()).nullable() }),
  checks: z.array(Check),
  /** No judged check fails and audio was present (unknown checks do not block a capture). */
  ready: z.boolean(),
  warnings: z.array(z.string()),
});
export type CaptureResult = z.infer<typeof CaptureResult>;
