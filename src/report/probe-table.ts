// The human-readable probe result: the readiness table (one row per check) and a per-direction
// summary of what was measured, as plain text for a terminal.
import { dscpName } from '../dscp.js';
import { formatRate, priorityTable } from '../priority.js';
import type { Check, DirectionStats, ProbeResult } from '../schemas.js';
import { sendTimesText } from './sends.js';
import { tableLines } from './table.js';

/** A check's value or limit with its unit: "150 ms", "1 call", "4 calls", "EF". */
function withUnit(v: number | string | null, unit: string | null): string {
  if (v === null) return '-';
  if (!unit || typeof v !== 'number') return String(v);
  return `${v} ${unit === 'calls' && v === 1 ? 'call' : unit}`;
}

const STATUS_LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', unknown: 'UNKNOWN' } as const;

/** The readiness table: one row per check. */
export function checkTableLines(checks: readonly Check[]): string[] {
  return tableLines(
    ['CHECK', 'STATUS', 'VALUE', 'LIMIT', 'EVIDENCE'],
    checks.map((c) => [
      c.id,
      STATUS_LABEL[c.status],
      withUnit(c.value, c.unit),
      withUnit(c.limit, c.unit),
      c.evidence,
    ]),
  );
}

export function marksOf(d: {
  dscpSent: number | null;
  dscpReceived: Record<string, number>;
  dscpUnknownReason?: string;
}) {
  const sent = d.dscpSent === null ? 'unmarked' : dscpName(d.dscpSent);
  const got = Object.entries(d.dscpReceived)
    .sort((a, b) => b[1] - a[1])
    .map(([v, n]) => `${dscpName(Number(v))}×${n}`)
    .join(' ');
  return `${sent} → ${got || 'unknown'}`;
}

function directionRow(name: string, d: DirectionStats): string[] {
  return [
    name,
    String(d.sent),
    String(d.received),
    `${d.lost} (${d.lossPct.toFixed(2)}%)`,
    String(d.duplicates),
    String(d.reordered),
    String(d.maxBurstLoss),
    d.jitterMs.toFixed(3),
    d.jitterMaxMs.toFixed(3),
    marksOf(d),
  ];
}

export function renderProbeTable(r: ProbeResult): string {
  const out: string[] = [];
  const verdict = r.ready ? 'READY' : 'NOT READY';
  out.push(
    `voipready probe to ${r.peer}: ${r.calls} × ${r.codec} for ${r.durationS} s — ${verdict}` +
      (r.privileged ? '' : ' (this agent could not mark or read DSCP: see the dscp rows)'),
    '',
  );
  out.push(...checkTableLines(r.checks));
  out.push('');
  out.push(
    ...tableLines(
      [
        'DIRECTION',
        'SENT',
        'RECEIVED',
        'LOST',
        'DUP',
        'REORD',
        'BURST',
        'JITTER ms',
        'JITTER MAX ms',
        'DSCP',
      ],
      [
        directionRow('forward (agent → reflector)', r.forward),
        directionRow('reverse (reflector → agent)', r.reverse),
      ],
    ),
  );
  const sig = r.signalling;
  out.push(
    `signalling: forward ${sig.forward.received}/${sig.forward.sent} ${marksOf(sig.forward)}; ` +
      `reverse ${sig.reverse.received}/${sig.reverse.sent} ${marksOf(sig.reverse)}`,
  );
  const rtt = r.rttMs;
  out.push(
    rtt
      ? `RTT ms: min ${rtt.min} mean ${rtt.mean} p50 ${rtt.p50} p95 ${rtt.p95} p99 ${rtt.p99} max ${rtt.max}; ` +
          `one-way ms: forward ${r.oneWayMs.forward} reverse ${r.oneWayMs.reverse}${r.oneWayMs.estimated ? ' (estimated as RTT/2)' : ''}`
      : 'RTT: no reply received',
  );
  out.push(
    r.mos === null ? 'MOS: not computed (no delay measured)' : `E-model: R ${r.rFactor}, MOS ${r.mos}`,
  );
  const sends = sendTimesText(r);
  if (sends) out.push(`sends left ${sends}`);
  if (r.priority) {
    const t = priorityTable(r.priority);
    const p = r.priority;
    out.push(
      '',
      `priority test: load ${formatRate(p.loadSentBps)} sent in the loaded phase (${p.loadMode}, target ${formatRate(p.loadTargetBps)}, cap ${formatRate(p.loadCapBps)})${p.loadNotSentReason ? `; ${p.loadNotSentReason}` : ''}; delays are forward, above the run's lowest`,
      ...tableLines(t.header, t.rows),
    );
  }
  return `${out.join('\n')}\n`;
}
