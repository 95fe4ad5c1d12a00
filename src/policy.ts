// Policy: the handbook's rules as thresholds (defaults from handbook.txt, "Implementations Must Be
// VoIP-Ready"), and pure functions that judge evidence against them. No I/O here except loadPolicy.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type Bandwidth, bandwidthPerCall, type Codec } from './codecs.js';
import { dscpName, parseDscp } from './dscp.js';
import { UserError } from './errors.js';
import type { Check, CheckId, CheckStatus, DscpCounts } from './schemas.js';

export const RULES: Record<CheckId, string> = {
  latency: 'Latency must be less than 150ms.',
  jitter: 'Jitter should be less than 30ms.',
  loss: 'No more than 1% loss in any RTP stream.',
  'dscp-rtp':
    'RTP traffic needs to be marked with the DSCP set as EF and should be processed as such in the priority queue.',
  'dscp-sip':
    'SIP traffic needs to be marked as it enters the network and should be marked with DSCP as CS3 and should be honored throughout the network path.',
  bandwidth: 'Your network must meet the bandwidth requirements of the codecs used.',
  disk: 'Ensure adequate hard drive space is available, including with increased tracing levels.',
  eventlog: 'Monitor the Windows event Logs for anything which could be system impacting.',
  backup: 'Perform regular system/configuration backups.',
  // Not a handbook sentence: what support asks of the customer's SIP servers (issue 12).
  sip: 'The SIP server answers OPTIONS (RFC 3261 §11) with an accepted final response within the configured time.',
  system: 'Monitor system performance and communicate hardware needs.',
  // The second half of the dscp-rtp sentence: marked EF is not enough, EF must be queued first.
  priority:
    'RTP traffic needs to be marked with the DSCP set as EF and should be processed as such in the priority queue.',
};

// The handbook heads its list with "the network performance must conform to these parameters", so
// every rule fails by default, even where a line says "should"; a policy may relax one to warn.
const Severity = z.enum(['fail', 'warn']);
const DscpClass = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDscp(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

export const Policy = z.strictObject({
  latency: z
    .strictObject({ maxMs: z.number().positive().default(150), severity: Severity.default('fail') })
    .prefault({}),
  jitter: z
    .strictObject({ maxMs: z.number().positive().default(30), severity: Severity.default('fail') })
    .prefault({}),
  loss: z
    .strictObject({ maxPct: z.number().min(0).max(100).default(1), severity: Severity.default('fail') })
    .prefault({}),
  'dscp-rtp': z
    .strictObject({
      audio: DscpClass.default(46),
      // RFC 4594 §4.3 multimedia conferencing: AF41.
      video: DscpClass.default(34),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  'dscp-sip': z
    .strictObject({ class: DscpClass.default(24), severity: Severity.default('fail') })
    .prefault({}),
  bandwidth: z
    .strictObject({
      /** Concurrent calls the site plans; a run with fewer calls cannot prove the path carries them. */
      plannedCalls: z.number().int().positive().nullable().default(null),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  disk: z
    .strictObject({
      minFreePct: z.number().min(0).max(100).default(20),
      minFreeBytes: z
        .number()
        .nonnegative()
        .default(10 * 1024 ** 3),
      /** Raised tracing levels fill disks fast: warn when the forecast runs out sooner than this. */
      minDaysUntilFull: z.number().nonnegative().default(14),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  eventlog: z
    .strictObject({
      maxErrors: z.number().int().nonnegative().default(0),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  backup: z
    .strictObject({
      maxAgeHours: z
        .number()
        .positive()
        .default(7 * 24),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  sip: z
    .strictObject({
      /** Final responses that count as answered: classes ("2xx") or codes ("404"); 503 is not by default. */
      accept: z
        .array(z.string().regex(/^[1-6](xx|\d\d)$/, 'a response class (2xx) or code (404)'))
        .min(1)
        .max(32)
        .default(['2xx']),
      /** Slowest acceptable final response; T1 (RFC 3261 §17.1.1.1, the RTT estimate) by default. */
      maxResponseMs: z.number().positive().default(500),
      /** true: a site without a SIP OPTIONS result is not ready (the check is unknown). */
      required: z.boolean().default(false),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  /**
   * `voipready probe --priority-test` (src/priority.ts): EF must keep the delay, jitter and loss
   * limits while best effort queues behind a bulk load.
   */
  priority: z
    .strictObject({
      /** EF's p95 forward delay under load may exceed its unloaded p95 by at most this. */
      maxAddedDelayMs: z.number().positive().default(10),
      /** The load congested the path when best effort's p95 grew by this much (or it lost > loss.maxPct). */
      congestedAddedDelayMs: z.number().positive().default(20),
      /** true: a site without a priority test result is not ready (the check is unknown). */
      required: z.boolean().default(false),
      severity: Severity.default('fail'),
    })
    .prefault({}),
  /** System performance is reported always and judged only against the limits a site sets. */
  system: z
    .strictObject({
      maxCpuPct: z.number().min(0).max(100).nullable().default(null),
      maxLoad1: z.number().nonnegative().nullable().default(null),
      maxMemUsedPct: z.number().min(0).max(100).nullable().default(null),
      maxSwapUsedPct: z.number().min(0).max(100).nullable().default(null),
      severity: Severity.default('fail'),
    })
    .prefault({}),
});
export type Policy = z.infer<typeof Policy>;
export type PolicyInput = z.input<typeof Policy>;

export const DEFAULT_POLICY: Policy = Policy.parse({});

/** Formats zod issues as "key.path: message; ..." for one-line errors. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** Reads a YAML or JSON policy file; values not given keep the handbook defaults. */
export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read policy file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (err) {
    throw new UserError(
      `policy file ${file} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const parsed = Policy.safeParse(raw);
  if (!parsed.success) throw new UserError(`policy file ${file}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

// ---- evidence: what a probe or a capture measured, in a neutral shape ----

export interface LatencyEvidence {
  /** One-way delay per direction, ms; null where not measured. */
  forwardMs: number | null;
  reverseMs: number | null;
  /** True when derived from RTT/2 rather than synchronised clocks. */
  estimated: boolean;
  /** How the value was obtained, e.g. "clocks synchronised (chrony, error ≤ 0.4 ms)". */
  basis: string;
}

export interface StreamJitter {
  /** Names the stream or direction, e.g. "forward" or "10.0.0.1:4000 → 10.0.0.2:5000". */
  label: string;
  jitterMs: number;
}

export interface StreamLoss {
  label: string;
  lost: number;
  expected: number;
  /** Not measured (e.g. the reflector refused the stream): the rule cannot pass while it is unknown. */
  unknownReason?: string;
}

export interface DscpEvidence {
  label: string;
  /** The class the rule expects for this traffic. */
  expected: number;
  /** What the sender marked, when known (a probe knows; a capture sees it at the capture point). */
  sent: number | null;
  /** Marks seen on arrival; null when they could not be read. */
  received: DscpCounts | null;
  unknownReason?: string;
}

export interface BandwidthEvidence {
  codec: Codec;
  calls: number;
}

export interface NetworkEvidence {
  /** Absent: latency was not measured; unknownReason says why. */
  latency?: LatencyEvidence;
  jitter: StreamJitter[];
  loss: StreamLoss[];
  dscpRtp: DscpEvidence[];
  dscpSip: DscpEvidence[];
  bandwidth?: BandwidthEvidence;
  /** Why a check has no evidence, by check id. */
  unknownReasons?: Partial<Record<CheckId, string>>;
}

export const round = (v: number, digits = 2): number => Math.round(v * 10 ** digits) / 10 ** digits;

export function check(
  id: CheckId,
  status: CheckStatus,
  value: Check['value'],
  limit: Check['limit'],
  unit: string | null,
  evidence: string,
): Check {
  return { id, status, value, limit, unit, evidence, rule: RULES[id] };
}

export function unknown(id: CheckId, reason: string, limit: Check['limit'], unit: string | null): Check {
  return check(id, 'unknown', null, limit, unit, `not measured: ${reason}`);
}

export function judgeLatency(
  e: LatencyEvidence | undefined,
  policy: Policy,
  reason = 'no delay measurement',
): Check {
  const { maxMs, severity } = policy.latency;
  const values = [e?.forwardMs, e?.reverseMs].filter((v): v is number => typeof v === 'number');
  if (!e || values.length === 0) return unknown('latency', reason, maxMs, 'ms');
  const worst = Math.max(...values);
  const parts = [
    e.forwardMs !== null ? `forward ${round(e.forwardMs)} ms` : null,
    e.reverseMs !== null ? `reverse ${round(e.reverseMs)} ms` : null,
  ].filter(Boolean);
  const kind = e.estimated ? 'one-way estimated as RTT/2' : 'one-way';
  const status: CheckStatus = worst < maxMs ? 'pass' : severity;
  return check('latency', status, round(worst), maxMs, 'ms', `${kind}: ${parts.join(', ')}; ${e.basis}`);
}

export function judgeJitter(
  streams: StreamJitter[],
  policy: Policy,
  reason = 'no RTP stream received',
): Check {
  const { maxMs, severity } = policy.jitter;
  if (streams.length === 0) return unknown('jitter', reason, maxMs, 'ms');
  const worst = streams.reduce((a, b) => (b.jitterMs > a.jitterMs ? b : a));
  const status: CheckStatus = worst.jitterMs < maxMs ? 'pass' : severity;
  const others = streams.length > 1 ? ` (worst of ${streams.length})` : '';
  return check(
    'jitter',
    status,
    round(worst.jitterMs, 3),
    maxMs,
    'ms',
    `RFC 3550 interarrival jitter ${round(worst.jitterMs, 3)} ms on ${worst.label}${others}`,
  );
}

export function judgeLoss(streams: StreamLoss[], policy: Policy, reason = 'no RTP stream measured'): Check {
  const { maxPct, severity } = policy.loss;
  const measured = streams.filter((s) => s.unknownReason === undefined && s.expected > 0);
  const unmeasured = streams.filter((s) => s.unknownReason !== undefined);
  const unmeasuredNote =
    unmeasured.length === 0
      ? ''
      : `${unmeasured.length} stream${unmeasured.length > 1 ? 's' : ''} not measured (${unmeasured[0]!.label}: ${unmeasured[0]!.unknownReason})`;
  if (measured.length === 0) return unknown('loss', unmeasuredNote || reason, maxPct, '%');
  const pct = (s: StreamLoss) => (100 * Math.max(0, s.lost)) / s.expected;
  const worst = measured.reduce((a, b) => (pct(b) > pct(a) ? b : a));
  const worstPct = pct(worst);
  const others = measured.length > 1 ? ` (worst of ${measured.length})` : '';
  const found = `${Math.max(0, worst.lost)} of ${worst.expected} packets lost on ${worst.label}${others}`;
  if (worstPct > maxPct) {
    return check(
      'loss',
      severity,
      round(worstPct, 3),
      maxPct,
      '%',
      [found, unmeasuredNote].filter(Boolean).join('; '),
    );
  }
  // Every measured stream is within the limit, but a stream the rule covers was not measured.
  if (unmeasured.length > 0) return unknown('loss', `${unmeasuredNote}; ${found}`, maxPct, '%');
  return check('loss', 'pass', round(worstPct, 3), maxPct, '%', found);
}

/** Judges DSCP marks: the sender must mark the expected class and every arrival must still carry it. */
export function judgeDscp(
  id: 'dscp-rtp' | 'dscp-sip',
  items: DscpEvidence[],
  policy: Policy,
  reason: string,
): Check {
  const severity = policy[id].severity;
  const expectedNames = [...new Set(items.map((i) => dscpName(i.expected)))].join('/');
  const limit =
    expectedNames || dscpName(id === 'dscp-rtp' ? policy['dscp-rtp'].audio : policy['dscp-sip'].class);
  if (items.length === 0) return unknown(id, reason, limit, 'dscp');
  const failures: string[] = [];
  const unknowns: string[] = [];
  const passes: string[] = [];
  for (const item of items) {
    const want = dscpName(item.expected);
    if (item.sent !== null && item.sent !== item.expected) {
      failures.push(`${item.label}: marked ${dscpName(item.sent)} at the sender, not ${want}`);
      continue;
    }
    if (item.received === null) {
      unknowns.push(`${item.label}: ${item.unknownReason ?? 'marks on arrival not readable'}`);
      continue;
    }
    const total = Object.values(item.received).reduce((a, b) => a + b, 0);
    if (total === 0) {
      unknowns.push(`${item.label}: no packet arrived to read the mark from`);
      continue;
    }
    const wrong = Object.entries(item.received)
      .filter(([dscp]) => Number(dscp) !== item.expected)
      .sort((a, b) => b[1] - a[1]);
    if (wrong.length === 0) {
      passes.push(`${item.label}: ${want} on arrival (${total} packets)`);
      continue;
    }
    const seen = wrong.map(([dscp, n]) => `${dscpName(Number(dscp))} (${n} of ${total})`).join(', ');
    const sent = item.sent !== null ? `${dscpName(item.sent)} sent` : `expected ${want}`;
    failures.push(`${sent}, arrived as ${seen} on ${item.label}`);
  }
  const parts = [...failures, ...unknowns, ...passes];
  if (failures.length > 0) return check(id, severity, 'rewritten', limit, 'dscp', parts.join('; '));
  if (unknowns.length > 0) return check(id, 'unknown', null, limit, 'dscp', parts.join('; '));
  return check(id, 'pass', limit, limit, 'dscp', parts.join('; '));
}

/**
 * The bandwidth rule holds when the path carried the run's N concurrent calls without breaking the
 * delay, jitter and loss rules, and N covers the calls the site plans.
 */
export function judgeBandwidth(
  e: BandwidthEvidence | undefined,
  underLoad: Check[],
  policy: Policy,
  reason = 'no call-shaped load was sent',
): Check {
  const { plannedCalls, severity } = policy.bandwidth;
  if (!e) return unknown('bandwidth', reason, plannedCalls, 'calls');
  const bw: Bandwidth = bandwidthPerCall(e.codec);
  const rate =
    `${e.calls} × ${e.codec.name} at ${round(bw.ipKbps, 1)} kbit/s IP (${round(bw.ethernetKbps, 1)} kbit/s Ethernet) per call ` +
    `each way = ${round(bw.ipKbps * e.calls, 1)} kbit/s IP (${round(bw.ethernetKbps * e.calls, 1)} kbit/s Ethernet)`;
  const broken = underLoad.filter((c) => c.status === 'fail' || c.status === 'warn');
  const notMeasured = underLoad.filter((c) => c.status === 'unknown');
  const limit = plannedCalls ?? e.calls;
  if (broken.length > 0) {
    const which = broken
      .map((c) => `${c.id} ${c.value}${c.unit ?? ''} (limit ${c.limit}${c.unit ?? ''})`)
      .join(', ');
    return check('bandwidth', severity, e.calls, limit, 'calls', `${rate}: broke ${which}`);
  }
  if (notMeasured.length > 0) {
    const which = notMeasured.map((c) => c.id).join(', ');
    return check(
      'bandwidth',
      'unknown',
      e.calls,
      limit,
      'calls',
      `${rate}: ${which} not measured under load`,
    );
  }
  if (plannedCalls !== null && e.calls < plannedCalls) {
    return check(
      'bandwidth',
      'unknown',
      e.calls,
      limit,
      'calls',
      `${rate}: held, but the site plans ${plannedCalls} calls; run with --calls ${plannedCalls}`,
    );
  }
  return check('bandwidth', 'pass', e.calls, limit, 'calls', `${rate}: latency, jitter and loss held`);
}

/** All network checks, in the handbook's order. */
export function judgeNetwork(e: NetworkEvidence, policy: Policy = DEFAULT_POLICY): Check[] {
  const why = e.unknownReasons ?? {};
  const latency = judgeLatency(e.latency, policy, why.latency);
  const jitter = judgeJitter(e.jitter, policy, why.jitter);
  const loss = judgeLoss(e.loss, policy, why.loss);
  const dscpRtp = judgeDscp('dscp-rtp', e.dscpRtp, policy, why['dscp-rtp'] ?? 'no RTP marks observed');
  const dscpSip = judgeDscp('dscp-sip', e.dscpSip, policy, why['dscp-sip'] ?? 'no signalling marks observed');
  const bandwidth = judgeBandwidth(e.bandwidth, [latency, jitter, loss], policy, why.bandwidth);
  return [latency, jitter, loss, dscpRtp, dscpSip, bandwidth];
}

/** Ready when every check given passes or only warns; unknown is not ready. */
export function isReady(checks: Check[]): boolean {
  return checks.length > 0 && checks.every((c) => c.status === 'pass' || c.status === 'warn');
}
