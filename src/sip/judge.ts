// Judging a SIP OPTIONS run (voipready.sip/1) against the policy: the `sip` check (does the server
// answer, with an accepted final response, in time) and the `dscp-sip` check on the directions whose
// marks the agent can see. Pure: the document in, checks out.
import { check, type DscpEvidence, judgeDscp, type Policy, unknown } from '../policy.js';
import type { Check, SignallingDirection } from '../schemas.js';
import type { SipResult } from './schema.js';

/** What the judges read from a SIP result (everything but its own checks and readiness). */
export type SipEvidence = Pick<
  SipResult,
  | 'target'
  | 'transport'
  | 'sent'
  | 'answered'
  | 'codes'
  | 'responseMs'
  | 'succeeded'
  | 'reason'
  | 'failedAt'
  | 'dscp'
>;

const round1 = (v: number) => Math.round(v * 10) / 10;

/** Whether a final response code is in the policy's accepted list ("2xx" classes or exact codes). */
export function acceptedCode(code: number, accept: readonly string[]): boolean {
  const text = String(code);
  return accept.some((a) => (a.endsWith('xx') ? a[0] === text[0] : a === text));
}

function codesText(codes: Record<string, number>): string {
  const parts = Object.entries(codes)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([code, n]) => `${code} ×${n}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

/**
 * The `sip` check: every request must get a final response the policy accepts (2xx by default; a 503
 * or no answer fails), and the slowest within maxResponseMs. Unknown when no run happened, or when
 * the run failed on this machine (no socket) rather than at the target.
 */
export function judgeSip(
  r: SipEvidence | undefined,
  policy: Policy,
  reason = 'no SIP OPTIONS probe was run',
): Check {
  const { accept, maxResponseMs, severity } = policy.sip;
  if (!r) return unknown('sip', reason, maxResponseMs, 'ms');
  const who = `${r.target} (${r.transport})`;
  if (!r.succeeded) {
    const why = r.reason ?? 'the probe did not run';
    if (r.failedAt === 'socket' || r.failedAt === undefined)
      return unknown('sip', `${who}: ${why}`, maxResponseMs, 'ms');
    return check('sip', severity, 'no answer', maxResponseMs, 'ms', `${who}: ${why}`);
  }
  if (r.sent === 0) return unknown('sip', `${who}: no request was sent`, maxResponseMs, 'ms');
  const unanswered = r.sent - r.answered;
  const rejected = Object.entries(r.codes)
    .filter(([code, n]) => n > 0 && !acceptedCode(Number(code), accept))
    .map(([code]) => code);
  const summary = `${r.answered} of ${r.sent} OPTIONS answered (codes ${codesText(r.codes)}; accepted ${accept.join(', ')})`;
  if (rejected.length > 0 || unanswered > 0) {
    const why = [
      rejected.length > 0 ? `answered ${rejected.join(', ')}` : null,
      unanswered > 0 ? `${unanswered} without a final response before Timer F` : null,
    ].filter(Boolean);
    const value = rejected.length > 0 ? rejected.join(',') : 'no answer';
    return check('sip', severity, value, maxResponseMs, 'ms', `${who}: ${summary}: ${why.join('; ')}`);
  }
  const slowest = r.responseMs.max ?? 0;
  const times = `response ${round1(r.responseMs.min ?? 0)}/${round1(r.responseMs.p50 ?? 0)}/${round1(slowest)} ms min/median/max`;
  const status = slowest <= maxResponseMs ? 'pass' : severity;
  return check('sip', status, round1(slowest), maxResponseMs, 'ms', `${who}: ${summary}; ${times}`);
}

/** A direction is observable when its marks on arrival were read (or could have been, had any arrived). */
function observed(d: SignallingDirection): boolean {
  return d.dscpUnknownReason === undefined;
}

/**
 * `dscp-sip` from a SIP run: the directions whose arrival marks the agent saw. The responses
 * (reverse) are read on arrival with CAP_NET_RAW; a SIP server does not report the marks our
 * requests (forward) arrived with, so that direction is named as not seen, not guessed.
 */
export function judgeSipDscp(r: SipEvidence | undefined, policy: Policy): Check {
  const expected = policy['dscp-sip'].class;
  if (!r) return judgeDscp('dscp-sip', [], policy, 'no SIP OPTIONS probe was run');
  const labels = {
    forward: `forward path (requests to ${r.target})`,
    reverse: `reverse path (responses from ${r.target})`,
  } as const;
  const items: DscpEvidence[] = [];
  const notSeen: string[] = [];
  for (const dir of ['forward', 'reverse'] as const) {
    const d = r.dscp[dir];
    if (!observed(d)) {
      notSeen.push(`${labels[dir]}: not seen (${d.dscpUnknownReason})`);
      continue;
    }
    items.push({ label: labels[dir], expected, sent: d.dscpSent, received: d.dscpReceived });
  }
  if (items.length === 0) return judgeDscp('dscp-sip', [], policy, notSeen.join('; '));
  const judged = judgeDscp('dscp-sip', items, policy, '');
  const notes = [...notSeen];
  // We cannot tell how the server marked: a wrong mark on a response is its marking or a rewrite.
  const reverse = r.dscp.reverse;
  if (observed(reverse) && Object.keys(reverse.dscpReceived).some((d) => Number(d) !== expected)) {
    notes.push('the server may have sent its responses unmarked, or the path rewrote them');
  }
  return notes.length > 0 ? { ...judged, evidence: `${judged.evidence}; ${notes.join('; ')}` } : judged;
}

/** The checks a SIP run carries, in this order. */
export function judgeSipRun(r: SipEvidence, policy: Policy): Check[] {
  return [judgeSip(r, policy), judgeSipDscp(r, policy)];
}
