// Judging a report: every probe result is re-judged with the site's policy (the same judges as
// `voipready probe`, src/policy.ts), and the site's checks are the worst of its peers. Pure: the
// clock and ids come in as arguments.

import { insufficientPriority, sufficientEvidence } from '../src/evidence-sufficiency.js';
import { isReady, judgeNetwork, type Policy, RULES } from '../src/policy.js';
import { judgePriority, priorityChecks } from '../src/priority.js';
import { evidenceFromProbe } from '../src/probe-evidence.js';
import {
  type AgentReport,
  type Check,
  type CheckStatus,
  NETWORK_CHECK_IDS,
  type ProbeResult,
} from '../src/schemas.js';
import { judgeSip, judgeSipRun } from '../src/sip/judge.js';
import type { SipResult } from '../src/sip/schema.js';
import { type TraceEvidence, traceFinding } from '../src/trace-schema.js';
import { assessHost, type HostAssessment } from './maintenance.js';

export interface PeerAssessment {
  peer: string;
  codec: string;
  calls: number;
  ready: boolean;
  checks: Check[];
  /** Set when the peer's evidence came from an earlier report than the assessment's own. */
  carriedFrom?: { reportId: string; measuredAt: string };
}

/** One SIP server asked with OPTIONS (voipready.sip/1), judged with the site's policy. */
export interface SipTargetAssessment {
  target: string;
  transport: string;
  ready: boolean;
  checks: Check[];
  sent: number;
  answered: number;
  codes: Record<string, number>;
  responseMs: { min: number | null; p50: number | null; p95: number | null; max: number | null };
  reportId: string;
  measuredAt: string;
}

export interface Assessment {
  assessmentId: string;
  site: string;
  agent: string;
  /** The report the evidence came from. */
  reportId: string;
  /** When the evidence was measured: when its oldest probe ended, never later than its arrival. */
  measuredAt: string;
  assessedAt: string;
  /** Readiness expires here unless newer evidence arrives: stale is not ready. */
  validUntil: string;
  ready: boolean;
  /** The site's checks: for each check, the worst result over the peers probed. */
  checks: Check[];
  peers: PeerAssessment[];
  /** SIP servers asked (this report's, or carried from the site's previous assessment). */
  sip?: SipTargetAssessment[];
  /** The host checks (maintenance), when the report carried a host result (collector/maintenance.ts). */
  maintenance?: HostAssessment;
}

// Which result speaks for the site when peers disagree: a failure first, then what was not
// measured (unknown is not pass), then a warning, then a pass.
const RANK: Record<CheckStatus, number> = { fail: 0, unknown: 1, warn: 2, pass: 3 };

function worstPerCheck(peers: PeerAssessment[]): Check[] {
  const first = peers[0];
  if (!first) return [];
  if (peers.length === 1) return first.checks;
  // By id: a peer probed with --priority-test has a `priority` check the others lack.
  const ids = [...new Set(peers.flatMap((p) => p.checks.map((c) => c.id)))];
  return ids.map((id) => {
    const candidates = peers.flatMap((p) => {
      const check = p.checks.find((c) => c.id === id);
      return check ? [{ peer: p.peer, check }] : [];
    });
    const worst = candidates.reduce((a, b) => (RANK[b.check.status] < RANK[a.check.status] ? b : a));
    return {
      ...worst.check,
      evidence: `${worst.peer}: ${worst.check.evidence}${candidates.length > 1 ? ` (worst of ${candidates.length} peers)` : ''}`,
    };
  });
}

export interface AssessInput {
  report: AgentReport;
  policy: Policy;
  assessmentId: string;
  /** Arrival time at the collector, ms since the epoch. */
  receivedAtMs: number;
  validForMs: number;
  /**
   * The site's latest assessment before this report. A report carries one kind of result (RTP
   * probes from one schedule entry, SIP OPTIONS from another): the kinds it lacks are carried from
   * here, so the site's verdict always covers all its evidence and expires with the oldest part.
   */
  previous?: Assessment;
}

/**
 * When a probe's evidence was measured: its end (startedAt + duration), else, for a result without
 * startedAt, the report's createdAt; never later than arrival (an agent clock running ahead cannot
 * make evidence newer than it is).
 */
export function probeEvidenceTimeMs(probe: ProbeResult, createdAtMs: number, receivedAtMs: number): number {
  const endMs = probe.startedAt ? Date.parse(probe.startedAt) + probe.durationS * 1000 : createdAtMs;
  return Math.min(endMs, receivedAtMs);
}

/**
 * Names the hop where the mark changed in the evidence of a failing DSCP check, from the trace the
 * agent ran for it (first, so a folded evidence cell still shows it).
 */
function withTraces(checks: Check[], peer: string, traces: TraceEvidence[]): Check[] {
  return checks.map((c) => {
    if (c.status !== 'fail' && c.status !== 'warn') return c;
    const found = traces.filter((t) => t.peer === peer && t.check === c.id);
    if (found.length === 0) return c;
    const located = found.map((t) => `path trace (${t.direction}): ${traceFinding(t.trace)}`).join('; ');
    return { ...c, evidence: `${located}; ${c.evidence}` };
  });
}

export function assessReport({
  report,
  policy,
  assessmentId,
  receivedAtMs,
  validForMs,
  previous,
}: AssessInput): Assessment {
  const createdAtMs = Date.parse(report.createdAt);
  const ownTimes = [
    ...report.probes.map((p) => probeEvidenceTimeMs(p, createdAtMs, receivedAtMs)),
    ...(report.sip ?? []).map((r) => sipEvidenceTimeMs(r, createdAtMs, receivedAtMs)),
    // A host result is as old as its collection, never after arrival (an agent clock far ahead).
    ...(report.host ? [Math.min(Date.parse(report.host.collectedAt), receivedAtMs)] : []),
  ];
  const ownMeasuredAtMs = ownTimes.length > 0 ? Math.min(...ownTimes) : Math.min(createdAtMs, receivedAtMs);
  // Carry only from older evidence: a report replayed late from an agent's queue stands alone.
  const carry =
    previous && Date.parse(previous.measuredAt) <= ownMeasuredAtMs && previous.site === report.site
      ? previous
      : undefined;
  let peers: PeerAssessment[] = report.probes.map((probe) => {
    const judged = [
      ...judgeNetwork(sufficientEvidence(probe, evidenceFromProbe(probe, policy)), policy),
      ...priorityChecks(probe, policy, insufficientPriority),
    ];
    const checks = withTraces(judged, probe.peer, report.traces ?? []);
    return { peer: probe.peer, codec: probe.codec, calls: probe.calls, ready: isReady(checks), checks };
  });
  if (peers.length === 0 && carry) {
    peers = carry.peers.map((p) => ({
      ...p,
      carriedFrom: p.carriedFrom ?? { reportId: carry.reportId, measuredAt: carry.measuredAt },
    }));
  }
  const ownSip = (report.sip ?? []).map((r) => {
    const checks = judgeSipRun(r, policy);
    return {
      target: r.target,
      transport: r.transport,
      ready: isReady(checks),
      checks,
      sent: r.sent,
      answered: r.answered,
      codes: r.codes,
      responseMs: r.responseMs,
      reportId: report.reportId,
      measuredAt: new Date(sipEvidenceTimeMs(r, createdAtMs, receivedAtMs)).toISOString(),
    };
  });
  const sip = ownSip.length > 0 ? ownSip : (carry?.sip ?? []);
  const checks = siteChecks(peers, sip, policy);
  // The site's verdict needs all its evidence: it is as old as the oldest part.
  const measuredAtMs = Math.min(
    ownMeasuredAtMs,
    ...peers.flatMap((p) => (p.carriedFrom ? [Date.parse(p.carriedFrom.measuredAt)] : [])),
    ...sip.map((t) => Date.parse(t.measuredAt)),
  );
  return {
    assessmentId,
    site: report.site,
    agent: report.agent,
    reportId: report.reportId,
    measuredAt: new Date(measuredAtMs).toISOString(),
    assessedAt: new Date(receivedAtMs).toISOString(),
    validUntil: new Date(measuredAtMs + validForMs).toISOString(),
    ready: isReady(checks),
    checks,
    peers,
    ...(sip.length > 0 ? { sip } : {}),
    ...(report.host ? { maintenance: assessHost(report.host, policy) } : {}),
  };
}

/** When a SIP run's evidence was measured: its start (the run is short), never after arrival. */
function sipEvidenceTimeMs(r: SipResult, createdAtMs: number, receivedAtMs: number): number {
  return Math.min(r.startedAt ? Date.parse(r.startedAt) : createdAtMs, receivedAtMs);
}

function worstOf(items: { who: string; check: Check }[]): Check {
  const worst = items.reduce((a, b) => (RANK[b.check.status] < RANK[a.check.status] ? b : a));
  const others = items.length > 1 ? ` (worst of ${items.length})` : '';
  return items.length > 1
    ? { ...worst.check, evidence: `${worst.who}: ${worst.check.evidence}${others}` }
    : worst.check;
}

/**
 * The site's checks: the network checks over the peers (unknown while no RTP probe has reported),
 * then the `sip` check over the SIP servers asked (unknown when the policy requires one and none
 * was). A SIP run's `dscp-sip` adds to the network one only where it saw a rewrite: the directions it
 * cannot see say nothing against the reflector's evidence.
 */
function siteChecks(peers: PeerAssessment[], sip: SipTargetAssessment[], policy: Policy): Check[] {
  const measured =
    peers.length > 0
      ? worstPerCheck(peers)
      : NETWORK_CHECK_IDS.map((id) => notMeasured(id, 'no RTP probe result received for this site yet'));
  // A site whose policy requires the priority test is not ready until a peer ran it.
  const network =
    policy.priority.required && !measured.some((c) => c.id === 'priority')
      ? [...measured, judgePriority(undefined, policy)]
      : measured;
  const sipDscp = sip
    .map((t) => ({ who: t.target, check: t.checks.find((c) => c.id === 'dscp-sip') }))
    .filter((x): x is { who: string; check: Check } => x.check !== undefined)
    .filter((x) => x.check.status === 'fail' || x.check.status === 'warn');
  // Unchanged, the one-peer network checks stay the peer's own array (the store writes them once).
  if (sip.length === 0 && !policy.sip.required) return network;
  const merged = network.map((c) =>
    c.id === 'dscp-sip' && sipDscp.length > 0
      ? worstOf([{ who: 'RTP probe signalling', check: c }, ...sipDscp])
      : c,
  );
  const sipChecks = sip.flatMap((t) =>
    t.checks.filter((c) => c.id === 'sip').map((check) => ({ who: t.target, check })),
  );
  if (sipChecks.length > 0) return [...merged, worstOf(sipChecks)];
  return policy.sip.required ? [...merged, judgeSip(undefined, policy)] : merged;
}

function notMeasured(id: Check['id'], reason: string): Check {
  return {
    id,
    status: 'unknown',
    value: null,
    limit: null,
    unit: null,
    evidence: `not measured: ${reason}`,
    rule: RULES[id],
  };
}

export interface Readiness {
  site: string;
  ready: boolean;
  assessedAt: string | null;
  validUntil: string | null;
  assessmentId: string | null;
  reportId: string | null;
  stale: boolean;
  checks: Check[];
}

/** Readiness of a site now: the latest assessment while it is valid; stale evidence is not ready. */
export function readinessAt(site: string, latest: Assessment | undefined, nowMs: number): Readiness {
  if (!latest) {
    return {
      site,
      ready: false,
      assessedAt: null,
      validUntil: null,
      assessmentId: null,
      reportId: null,
      stale: false,
      checks: NETWORK_CHECK_IDS.map((id) => ({
        id,
        status: 'unknown' as const,
        value: null,
        limit: null,
        unit: null,
        evidence: 'not measured: no report received for this site',
        rule: RULES[id],
      })),
    };
  }
  const stale = nowMs > Date.parse(latest.validUntil);
  const base = {
    site,
    assessedAt: latest.assessedAt,
    validUntil: latest.validUntil,
    assessmentId: latest.assessmentId,
    reportId: latest.reportId,
    stale,
  };
  if (!stale) return { ...base, ready: latest.ready, checks: latest.checks };
  return {
    ...base,
    ready: false,
    checks: latest.checks.map((c) => ({
      ...c,
      status: 'unknown' as const,
      evidence: `evidence stale: measured ${latest.measuredAt}, valid until ${latest.validUntil}; it said ${c.status}: ${c.evidence}`,
    })),
  };
}
