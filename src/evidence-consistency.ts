// Internal consistency of a report's evidence: figures a probe derives from one another must agree
// (a direction's totals are its streams' sums, lossPct is lost/sent, a jitter is the worst of its
// streams', DSCP counts cover the packets received, an RTT/2 estimate is half the mean RTT). A
// document that contradicts itself proves nothing and is refused (400 naming the fields). Pure.
//
// Each result kind of the report contract adds its own rule to REPORT_CONSISTENCY_RULES.
import { codecByName } from './codecs.js';
import { type ClassFigures, PRIORITY_PHASES, type PriorityResult } from './priority-schema.js';
import type {
  AgentReport,
  DirectionStats,
  DscpCounts,
  ProbeResult,
  ProbeStream,
  SignallingDirection,
} from './schemas.js';
import { sipInconsistencies } from './sip/consistency.js';

export interface Inconsistency {
  /** The fields that disagree, as dotted paths into the report; the first is the one reported. */
  fields: string[];
  message: string;
}

export type ConsistencyRule = (report: AgentReport) => Inconsistency[];

/** Rounding slack: the probe rounds ms to 3 digits and percentages to 4. */
const EPS = 0.01;

/** Counters a direction (or signalling direction) shares with its streams. */
type Counts = Pick<ProbeStream, 'sent' | 'received' | 'lost'>;

function countRules(at: string, c: Counts, out: Inconsistency[]): void {
  const f = (k: string) => `${at}.${k}`;
  if (c.lost < 0) out.push({ fields: [f('lost')], message: `lost is negative (${c.lost})` });
  // A sender that did not get its count (no summary from the reflector) reports sent 0.
  if (c.sent === 0) return;
  if (c.received > c.sent) {
    out.push({
      fields: [f('received'), f('sent')],
      message: `received ${c.received} is more than sent ${c.sent}`,
    });
  } else if (c.lost > c.sent || c.lost < c.sent - c.received) {
    out.push({
      fields: [f('lost'), f('sent'), f('received')],
      message: `lost ${c.lost} does not fit sent ${c.sent} and received ${c.received}`,
    });
  }
}

function dscpRule(
  at: string,
  d: { dscpReceived: DscpCounts; received: number; duplicates?: number },
  out: Inconsistency[],
): void {
  const counts = Object.values(d.dscpReceived);
  if (counts.length === 0) return;
  const marked = counts.reduce((a, b) => a + b, 0);
  // Every packet received had its mark read; a receiver may also count the marks of duplicates.
  if (marked < d.received || marked > d.received + (d.duplicates ?? 0)) {
    out.push({
      fields: [`${at}.dscpReceived`, `${at}.received`],
      message: `DSCP counts sum to ${marked}, not to the ${d.received} packets received`,
    });
  }
}

const STREAM_SUMS = ['sent', 'received', 'lost', 'duplicates', 'reordered'] as const;

function streamRules(at: string, d: DirectionStats, calls: number, out: Inconsistency[]): void {
  const streams = d.streams;
  if (!streams || streams.length === 0) return;
  if (streams.length !== calls) {
    out.push({
      fields: [`${at}.streams`, 'calls'],
      message: `${streams.length} streams listed for ${calls} calls (one stream per call)`,
    });
  }
  for (const key of STREAM_SUMS) {
    const sum = streams.reduce((a, s) => a + s[key], 0);
    if (sum !== d[key]) {
      out.push({
        fields: [`${at}.${key}`, `${at}.streams`],
        message: `${key} ${d[key]} is not the sum over the listed streams (${sum})`,
      });
    }
  }
  streams.forEach((s, i) => {
    const sAt = `${at}.streams.${i}`;
    countRules(sAt, s, out);
    // The direction's jitter is the worst of its streams'.
    for (const key of ['jitterMs', 'jitterMaxMs'] as const) {
      if (s[key] > d[key] + EPS) {
        out.push({
          fields: [`${sAt}.${key}`, `${at}.${key}`],
          message: `stream ${key} ${s[key]} is above the direction's ${d[key]} (the worst stream's)`,
        });
      }
    }
  });
}

function directionRules(at: string, d: DirectionStats, calls: number, out: Inconsistency[]): void {
  countRules(at, d, out);
  const expectedPct = d.sent > 0 ? (100 * d.lost) / d.sent : 0;
  if (Math.abs(d.lossPct - expectedPct) > EPS) {
    out.push({
      fields: [`${at}.lossPct`, `${at}.lost`, `${at}.sent`],
      message: `lossPct ${d.lossPct} is not lost/sent (${Math.round(expectedPct * 1e4) / 1e4} %)`,
    });
  }
  dscpRule(at, d, out);
  streamRules(at, d, calls, out);
}

function signallingRules(at: string, d: SignallingDirection, out: Inconsistency[]): void {
  countRules(at, d, out);
  dscpRule(at, d, out);
}

function delayRules(at: string, p: ProbeResult, out: Inconsistency[]): void {
  const rtt = p.rttMs;
  const { forward, reverse } = p.oneWayMs;
  if (!rtt) {
    if (forward !== null || reverse !== null) {
      out.push({
        fields: [`${at}.oneWayMs`, `${at}.rttMs`],
        message: 'one-way delays without any round trip measured',
      });
    }
    return;
  }
  const order = [rtt.min, rtt.p50, rtt.p95, rtt.p99, rtt.max];
  if (
    order.some((v, i) => i > 0 && v < order[i - 1]! - EPS) ||
    rtt.mean < rtt.min - EPS ||
    rtt.mean > rtt.max + EPS
  ) {
    out.push({
      fields: [`${at}.rttMs`],
      message: 'round-trip statistics out of order (min ≤ p50 ≤ p95 ≤ p99 ≤ max, min ≤ mean ≤ max)',
    });
  }
  if (p.oneWayMs.estimated) {
    for (const [dir, v] of [
      ['forward', forward],
      ['reverse', reverse],
    ] as const) {
      if (v !== null && Math.abs(v - rtt.mean / 2) > EPS + rtt.mean * 1e-3) {
        out.push({
          fields: [`${at}.oneWayMs.${dir}`, `${at}.rttMs.mean`],
          message: `one-way ${v} ms "estimated as RTT/2" beside a mean RTT of ${rtt.mean} ms`,
        });
      }
    }
  } else if (forward !== null && reverse !== null && forward + reverse > rtt.max + 1) {
    // Mean one-way delays of the same packets add up to their mean round trip.
    out.push({
      fields: [`${at}.oneWayMs`, `${at}.rttMs.max`],
      message: `one-way delays ${forward} + ${reverse} ms exceed the longest round trip (${rtt.max} ms)`,
    });
  }
}

/** The forward direction cannot carry more packets than `calls` streams of the codec send. */
function loadRule(at: string, p: ProbeResult, out: Inconsistency[]): void {
  const codec = codecByName(p.codec);
  if (!codec) return;
  const perCall = (p.durationS * 1000) / codec.ptimeMs;
  const most = Math.ceil(perCall * 1.05) * p.calls + p.calls;
  if (p.forward.sent > most) {
    out.push({
      fields: [`${at}.forward.sent`, `${at}.calls`, `${at}.durationS`],
      message: `${p.forward.sent} packets sent, more than ${p.calls} ${codec.name} calls send in ${p.durationS} s`,
    });
  }
}

/**
 * The priority test's figures: each class's phases count the calls' packets (EF are the calls, the
 * best-effort twins the same again), replies never exceed sends, loss is what is missing, p50 ≤ p95,
 * added delay is loaded minus unloaded, the phases tile the run, and the load stays under its cap.
 */
function priorityRules(at: string, p: ProbeResult, out: Inconsistency[]): void {
  const pr: PriorityResult | undefined = p.priority;
  if (!pr) return;
  const f = (k: string) => `${at}.priority.${k}`;
  for (const name of ['ef', 'be'] as const) {
    const c: ClassFigures = pr[name];
    const sent = PRIORITY_PHASES.reduce((a, ph) => a + c[ph].sent, 0);
    if (sent < p.forward.sent) {
      out.push({
        fields: [f(`${name}`), `${at}.forward.sent`],
        message: `${name} packets over the phases (${sent}) are fewer than the ${p.forward.sent} the calls sent`,
      });
    }
    for (const ph of PRIORITY_PHASES) {
      const x = c[ph];
      const expectedPct = x.sent > 0 ? (100 * (x.sent - x.returned)) / x.sent : 0;
      if (x.returned > x.sent || Math.abs(x.lossPct - expectedPct) > EPS) {
        out.push({
          fields: [f(`${name}.${ph}.lossPct`), f(`${name}.${ph}.returned`), f(`${name}.${ph}.sent`)],
          message: `${name} ${ph}: ${x.returned} returned of ${x.sent} sent does not give ${x.lossPct} % loss`,
        });
      }
      if (x.delayP50Ms !== null && x.delayP95Ms !== null && x.delayP50Ms > x.delayP95Ms + EPS) {
        out.push({ fields: [f(`${name}.${ph}.delayP50Ms`)], message: `${name} ${ph}: p50 delay above p95` });
      }
    }
    for (const [k, q] of [
      ['addedDelayP50Ms', 'delayP50Ms'],
      ['addedDelayP95Ms', 'delayP95Ms'],
    ] as const) {
      const l = c.loaded[q];
      const u = c.unloaded[q];
      const expected = l === null || u === null ? null : l - u;
      const v = c[k];
      if ((v === null) !== (expected === null) || (v !== null && Math.abs(v - expected!) > EPS)) {
        out.push({
          fields: [f(`${name}.${k}`), f(`${name}.loaded.${q}`), f(`${name}.unloaded.${q}`)],
          message: `${name} ${k} ${v} is not the loaded phase's ${q} less the unloaded phase's`,
        });
      }
    }
  }
  const { unloaded, loaded, after } = pr.phasesS;
  const bounds = [unloaded[0], unloaded[1], loaded[0], loaded[1], after[0], after[1]];
  if (
    bounds.some((b, i) => i > 0 && b < bounds[i - 1]! - EPS) ||
    Math.abs(unloaded[1] - loaded[0]) > EPS ||
    Math.abs(loaded[1] - after[0]) > EPS ||
    after[1] > p.durationS + EPS
  ) {
    out.push({
      fields: [f('phasesS'), `${at}.durationS`],
      message: 'the phases do not follow one another within the run',
    });
  }
  if (pr.loadTargetBps > pr.loadCapBps) {
    out.push({
      fields: [f('loadTargetBps'), f('loadCapBps')],
      message: `load target ${pr.loadTargetBps} bit/s above its cap ${pr.loadCapBps}`,
    });
  }
}

/**
 * A time before 1970 is a clock that was never set; InfluxDB could not store it either (it keeps
 * 1677–2262). Times after arrival are not refused: the collector clamps them to arrival.
 */
function timeRule(field: string, iso: string | undefined, out: Inconsistency[]): void {
  if (iso !== undefined && Date.parse(iso) < 0) {
    out.push({ fields: [field], message: `${iso} is before 1970: the clock was not set` });
  }
}

/** Every way a probe result contradicts itself. */
export function probeInconsistencies(p: ProbeResult, at: string): Inconsistency[] {
  const out: Inconsistency[] = [];
  directionRules(`${at}.forward`, p.forward, p.calls, out);
  directionRules(`${at}.reverse`, p.reverse, p.calls, out);
  signallingRules(`${at}.signalling.forward`, p.signalling.forward, out);
  signallingRules(`${at}.signalling.reverse`, p.signalling.reverse, out);
  delayRules(at, p, out);
  loadRule(at, p, out);
  priorityRules(at, p, out);
  timeRule(`${at}.startedAt`, p.startedAt, out);
  // `calls` in the stream rules names the probe's key.
  for (const i of out) i.fields = i.fields.map((f) => (f === 'calls' ? `${at}.calls` : f));
  return out;
}

const probesConsistency: ConsistencyRule = (report) =>
  report.probes.flatMap((p, i) => probeInconsistencies(p, `probes.${i}`));

const reportTimeConsistency: ConsistencyRule = (report) => {
  const out: Inconsistency[] = [];
  timeRule('createdAt', report.createdAt, out);
  return out;
};

const sipConsistency: ConsistencyRule = (report) =>
  (report.sip ?? []).flatMap((r, i) => {
    const out = sipInconsistencies(r, `sip.${i}`);
    timeRule(`sip.${i}.startedAt`, r.startedAt, out);
    return out;
  });

/** A report carries at least one result, of whichever kind. */
const someResult: ConsistencyRule = (report) =>
  report.probes.length + (report.sip?.length ?? 0) > 0 || report.host !== undefined
    ? []
    : [
        {
          fields: ['probes', 'sip', 'host'],
          message: 'the report carries no result (probes and sip are empty, no host result)',
        },
      ];

/** A host result's disks cannot have more free than total, and its clock must have been set. */
const hostConsistency: ConsistencyRule = (report) => {
  const out: Inconsistency[] = [];
  if (!report.host) return out;
  timeRule('host.collectedAt', report.host.collectedAt, out);
  report.host.disks.forEach((d, i) => {
    if (d.freeBytes !== null && d.totalBytes !== null && d.freeBytes > d.totalBytes) {
      out.push({
        fields: [`host.disks.${i}.freeBytes`, `host.disks.${i}.totalBytes`],
        message: `${d.freeBytes} bytes free of ${d.totalBytes}: more free than the disk holds`,
      });
    }
  });
  return out;
};

/** One rule per result kind the report carries. */
export const REPORT_CONSISTENCY_RULES: ConsistencyRule[] = [
  reportTimeConsistency,
  someResult,
  probesConsistency,
  sipConsistency,
  hostConsistency,
];

export function reportInconsistencies(report: AgentReport): Inconsistency[] {
  return REPORT_CONSISTENCY_RULES.flatMap((rule) => rule(report));
}
