// Internal consistency of a SIP OPTIONS result (voipready.sip/1): the run's totals are its requests'
// sums, the response-time order statistics are ordered and present exactly when something was
// answered. A result that contradicts itself is refused with the report (400 naming the fields). Pure.
import type { Inconsistency } from '../evidence-consistency.js';
import type { SipResult } from './schema.js';

export function sipInconsistencies(r: SipResult, at: string): Inconsistency[] {
  const out: Inconsistency[] = [];
  const f = (k: string) => `${at}.${k}`;
  const add = (fields: string[], message: string) => out.push({ fields: fields.map(f), message });
  if (r.requests.length !== r.sent)
    add(['sent', 'requests'], `sent ${r.sent} but ${r.requests.length} requests listed`);
  const answered = r.requests.filter((q) => q.code !== null).length;
  if (answered !== r.answered)
    add(['answered', 'requests'], `answered ${r.answered} but ${answered} requests have a code`);
  const coded = Object.values(r.codes).reduce((a, b) => a + b, 0);
  if (coded !== r.answered)
    add(['codes', 'answered'], `codes count ${coded} responses, answered is ${r.answered}`);
  const retrans = r.requests.reduce((a, q) => a + q.retransmissions, 0);
  if (retrans !== r.retransmissions) {
    add(
      ['retransmissions', 'requests'],
      `retransmissions ${r.retransmissions}, the requests' sum is ${retrans}`,
    );
  }
  const { min, p50, p95, max } = r.responseMs;
  const stats = [min, p50, p95, max];
  if (r.answered === 0 ? stats.some((v) => v !== null) : stats.some((v) => v === null)) {
    add(['responseMs', 'answered'], 'response times must be given exactly when a request was answered');
  } else if (min !== null && !(min <= p50! && p50! <= p95! && p95! <= max!)) {
    add(['responseMs'], `response times out of order: min ${min}, p50 ${p50}, p95 ${p95}, max ${max}`);
  }
  const lossPct = r.sent > 0 ? (100 * (r.sent - r.answered)) / r.sent : 0;
  if (r.lossPct !== undefined && Math.abs(r.lossPct - lossPct) > 0.01) {
    add(['lossPct', 'sent', 'answered'], `lossPct ${r.lossPct} is not (sent - answered) / sent = ${lossPct}`);
  }
  if (!r.succeeded && r.sent > 0) add(['succeeded', 'sent'], 'a run that did not succeed sent nothing');
  return out;
}
