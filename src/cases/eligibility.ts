// Whether support may proceed on a voice case: the site's latest readiness (from the collector)
// must pass and be current. Handbook, "Implementations Must Be VoIP-Ready": "We reserve the right to
// withhold support for VoIP implementations until these items are completed." Pure.
import type { Check, CheckId } from '../schemas.js';
import type { MissingCheck, Priority } from './model.js';

/** What the customer does about each check that is not passing. */
const WHAT_TO_DO: Record<CheckId, string> = {
  latency: 'reduce one-way latency below the limit (route, queueing, WAN link), then run the agent again',
  jitter: 'remove the jitter source (congested link, no priority queue for EF), then run the agent again',
  loss: 'find and fix the packet loss on the path (errors, policers, congestion), then run the agent again',
  'dscp-rtp':
    'mark RTP as EF (DSCP 46) and keep it EF end to end: find the hop that rewrites it (the DSCP trace names it), then run the agent again',
  'dscp-sip':
    'mark SIP as CS3 (DSCP 24) and honour it throughout the path: find the hop that rewrites it, then run the agent again',
  bandwidth: 'provide the bandwidth the planned concurrent calls of the codec need, then run the agent again',
  disk: 'free disk space for regular function with increased tracing levels',
  eventlog: 'resolve the system-impacting errors in the event log',
  backup: 'take a system/configuration backup',
  sip: 'make the SIP server answer OPTIONS with an accepted final response in time (check its address, transport, firewall and load), then run the agent again',
  priority:
    'queue EF in a strict-priority queue on the congested link (and classify the marked RTP into it), then run the priority test again',
  system:
    'relieve the server (CPU, memory, swap or load above the site limit) or communicate the hardware need',
};

export interface SiteReadiness {
  ready: boolean;
  stale: boolean;
  assessmentId: string | null;
  validUntil: string | null;
  checks: Check[];
}

export interface Eligibility {
  /** Support is withheld (the case waits as Awaiting Info / Info required from the customer). */
  withheld: boolean;
  missingChecks: MissingCheck[];
}

/** The checks that keep the site from being ready: failing, unknown, or never measured. */
export function missingChecks(r: SiteReadiness): MissingCheck[] {
  if (r.assessmentId === null) {
    return r.checks.map((c) => ({
      id: c.id,
      status: 'missing' as const,
      evidence: c.evidence,
      whatToDo: `run a voipready agent at the site so the collector has evidence; ${WHAT_TO_DO[c.id]}`,
    }));
  }
  return r.checks
    .filter((c) => c.status === 'fail' || c.status === 'unknown')
    .map((c) => ({
      id: c.id,
      status: c.status as 'fail' | 'unknown',
      evidence: c.evidence,
      whatToDo: r.stale
        ? 'run the agent again: the evidence is older than the collector accepts'
        : WHAT_TO_DO[c.id],
    }));
}

/** A voice case is withheld unless the site is ready now; 1-Prod Down is never blocked (but flagged). */
export function eligibility(r: SiteReadiness, priority: Priority): Eligibility {
  const ok = r.ready && !r.stale;
  const missing = ok ? [] : missingChecks(r);
  if (!ok && missing.length === 0) {
    missing.push({
      id: 'assessment',
      status: 'missing',
      evidence: 'the latest assessment holds no network check',
      whatToDo: 'run a voipready agent with a probe at the site',
    });
  }
  return { withheld: missing.length > 0 && priority !== '1-Prod Down', missingChecks: missing };
}
