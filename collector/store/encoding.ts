// The stored form of assessments and reports, the same in every store.
import type { AgentReport } from '../../src/schemas.js';
import type { Assessment } from '../assessment.js';
import type { SiteLatest } from './store.js';

/**
 * The stored form of an assessment. With one peer the site's checks are that peer's checks: they
 * are stored once (half the document to serialise, copy to the writer thread and write).
 */
export function encodeAssessment(a: Assessment): string {
  const single = a.peers.length === 1 && a.checks === a.peers[0]!.checks;
  return JSON.stringify(single ? { ...a, checks: undefined } : a);
}

export function decodeAssessment(doc: string): Assessment {
  const assessment = JSON.parse(doc) as Assessment;
  assessment.checks ??= assessment.peers[0]!.checks;
  return assessment;
}

export function decode(row: { doc: string; body: string }): SiteLatest {
  return { assessment: decodeAssessment(row.doc), report: JSON.parse(row.body) as AgentReport };
}
