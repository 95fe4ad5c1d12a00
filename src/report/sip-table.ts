// The human-readable `voipready sip-ping` result: one line per request (as ping prints), the run's
// summary, and the readiness table.
import type { SipResult } from '../sip/schema.js';
import { checkTableLines, marksOf } from './probe-table.js';
import { tableLines } from './table.js';

const ms = (v: number | null) => (v === null ? '-' : v.toFixed(1));

export function renderSipTable(r: SipResult): string {
  const out: string[] = [];
  const verdict = r.ready ? 'READY' : 'NOT READY';
  out.push(`voipready sip-ping ${r.target} (${r.transport}) — ${verdict}`, '');
  if (!r.succeeded) out.push(`did not run: ${r.reason ?? 'unknown reason'}`, '');
  if (r.requests.length > 0) {
    out.push(
      ...tableLines(
        ['CSEQ', 'RESPONSE', 'TIME ms', 'RETRANS', 'NOTE'],
        r.requests.map((q) => [
          String(q.cseq),
          q.code === null ? 'none' : `${q.code} ${q.reason ?? ''}`.trim(),
          ms(q.responseMs),
          String(q.retransmissions),
          q.error ?? '',
        ]),
        { alignRight: [0, 2, 3] },
      ),
      '',
    );
  }
  const lossPct = r.sent > 0 ? ((100 * (r.sent - r.answered)) / r.sent).toFixed(1) : '0.0';
  const codes = Object.entries(r.codes)
    .map(([c, n]) => `${c} ×${n}`)
    .join(', ');
  out.push(
    `sent ${r.sent}, answered ${r.answered} (${lossPct} % unanswered), codes ${codes || 'none'}; ` +
      `response ms min/median/p95/max ${ms(r.responseMs.min)}/${ms(r.responseMs.p50)}/${ms(r.responseMs.p95)}/${ms(r.responseMs.max)}`,
    `retransmissions ${r.retransmissions}; ignored: ${r.strays} stray, ${r.malformed} malformed, ${r.duplicates} duplicate`,
    `DSCP: requests ${marksOf(r.dscp.forward)}; responses ${marksOf(r.dscp.reverse)}`,
    '',
    ...checkTableLines(r.checks),
  );
  return `${out.join('\n')}\n`;
}
