// Judging a report: every probe result is re-judged with the site's policy (the same judges as
// `voipready probe`, src/policy.ts), and the site's checks are the worst of its peers. Pure: the
// clock and ids come in as arguments.

import { sufficientEvidence } from '../src/evidence-sufficiency.js';
import { isReady, judgeNetwork, type Policy, RULES } from '../src/policy.js';
import { evidenceFromProbe } from '../src/probe-evidence.js';
import {
  type AgentReport,
  type Check,
  type CheckStatus,
  NETWORK_CHECK_IDS,
  type ProbeResult,
} from '../src/schemas.js';

export interface PeerAssessment {
  peer: string;
  codec: string;
  calls: number;
  ready: boolean;
  checks: Check[];
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
}

// Which result speaks for the site when peers disagree: a failure first, then what was not
// measured (unknown is not pass), then a warning, then a pass.
const RANK: Record<CheckStatus, number> = { fail: 0, unknown: 1, warn: 2, pass: 3 };

function worstPerCheck(peers: PeerAssessment[]): Check[] {
  const first = peers[0];
  if (!first) return [];
  if (peers.length === 1) return first.checks;
  return first.checks.map((_, i) => {
    const candidates = peers.map((p) => ({ peer: p.peer, check: p.checks[i]! }));
    const worst = candidates.reduce((a, b) => (RANK[b.check.status] < RANK[a.check.status] ? b : a));
    return {
      ...worst.check,
      evidence: `${worst.peer}: ${worst.check.evidence} (worst of ${peers.length} peers)`,
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

export function assessReport({
  report,
  policy,
  assessmentId,
  receivedAtMs,
  validForMs,
}: AssessInput): Assessment {
  const peers = report.probes.map((probe) => {
    const checks = judgeNetwork(sufficientEvidence(probe, evidenceFromProbe(probe, policy)), policy);
    return { peer: probe.peer, codec: probe.codec, calls: probe.calls, ready: isReady(checks), checks };
  });
  const checks = worstPerCheck(peers);
  // The site's verdict needs every peer's evidence: it is as old as the oldest.
  const createdAtMs = Date.parse(report.createdAt);
  const measuredAtMs = Math.min(
    ...report.probes.map((p) => probeEvidenceTimeMs(p, createdAtMs, receivedAtMs)),
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
