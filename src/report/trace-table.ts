// The human-readable `voipready trace` result: one line per hop (as traceroute prints), the mark
// each hop received, and where it first changed.
import { dscpName } from '../dscp.js';
import { type TraceResult, traceFinding } from '../trace-schema.js';
import { tableLines } from './table.js';

export function renderTraceTable(r: TraceResult): string {
  const sent = dscpName(r.dscpSent);
  const out = [`voipready trace ${r.peer} (${r.address}), marked ${sent}`, ''];
  if (r.hops.length > 0) {
    out.push(
      ...tableLines(
        ['TTL', 'ADDRESS', 'RTT ms', 'DSCP SEEN', 'NOTE'],
        r.hops.map((h) => [
          String(h.ttl),
          h.address ?? '* (silent)',
          h.rttMs === null ? '-' : h.rttMs.toFixed(1),
          h.dscpSeen === null ? '-' : dscpName(h.dscpSeen),
          [
            h.changed ? 'mark changed before this hop' : '',
            h.reply === 'reflector-reply' ? 'reflector reported' : '',
          ]
            .filter(Boolean)
            .join('; '),
        ]),
        { alignRight: [0, 2] },
      ),
      '',
    );
  }
  if (r.outcome === 'changed') out.push(traceFinding(r));
  else if (r.outcome === 'kept') out.push(`mark kept: every hop up to the peer received ${sent}`);
  else out.push(`unknown: ${r.unknownReason}`);
  return `${out.join('\n')}\n`;
}
