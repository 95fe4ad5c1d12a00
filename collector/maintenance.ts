// The maintenance verdict beside VoIP readiness: each host's latest host result judged with the
// site's policy (src/host-policy.ts), per host, expiring like network evidence. Pure.
import { judgeHost } from '../src/host-policy.js';
import type { HostResult } from '../src/host-schema.js';
import { isReady, type Policy } from '../src/policy.js';
import type { Check } from '../src/schemas.js';
import type { Assessment } from './assessment.js';

/** One host's maintenance judgement, inside the assessment of the report that carried it. */
export interface HostAssessment {
  host: string;
  collectedAt: string;
  ready: boolean;
  checks: Check[];
}

export function assessHost(host: HostResult, policy: Policy): HostAssessment {
  const checks = judgeHost(host, policy);
  return { host: host.host, collectedAt: host.collectedAt, ready: isReady(checks), checks };
}

export interface HostMaintenance {
  host: string;
  agent: string;
  assessmentId: string;
  reportId: string;
  collectedAt: string;
  validUntil: string;
  stale: boolean;
  ready: boolean;
  checks: Check[];
}

export interface Maintenance {
  /** Every host reported and none is failing, unknown or stale; false when no host reported. */
  ready: boolean;
  hosts: HostMaintenance[];
}

/** A site's maintenance verdict now, from the latest assessment of each of its hosts. */
export function maintenanceAt(latest: Assessment[], nowMs: number): Maintenance {
  const hosts = latest
    .filter((a): a is Assessment & { maintenance: HostAssessment } => a.maintenance !== undefined)
    .map((a): HostMaintenance => {
      const m = a.maintenance;
      const stale = nowMs > Date.parse(a.validUntil);
      const base = {
        host: m.host,
        agent: a.agent,
        assessmentId: a.assessmentId,
        reportId: a.reportId,
        collectedAt: m.collectedAt,
        validUntil: a.validUntil,
        stale,
      };
      if (!stale) return { ...base, ready: m.ready, checks: m.checks };
      return {
        ...base,
        ready: false,
        checks: m.checks.map((c) => ({
          ...c,
          status: 'unknown' as const,
          evidence: `evidence stale: collected ${m.collectedAt}, valid until ${a.validUntil}; it said ${c.status}: ${c.evidence}`,
        })),
      };
    })
    .sort((x, y) => x.host.localeCompare(y.host));
  return { ready: hosts.length > 0 && hosts.every((h) => h.ready), hosts };
}
