// The human-readable `voipready analyze` output: calls, streams and verdicts as plain-text tables.
import type { CaptureResult, CaptureStream } from '../capture/analyze.js';
import { dscpName } from '../dscp.js';
import { tableLines } from './table.js';

const table = (header: string[], rows: string[][]) => tableLines(header, rows, { rule: true }).join('\n');

const ms = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));

function marks(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '-' : entries.map(([d, n]) => `${dscpName(Number(d))}×${n}`).join(' ');
}

function streamRow(s: CaptureStream): string[] {
  return [
    s.id,
    `${s.src} → ${s.dst}`,
    s.ssrc,
    `${s.codec ?? `PT${s.payloadType}`}${s.media === 'video' ? ' (video)' : ''}`,
    String(s.packets),
    `${s.lost} (${s.lossPct.toFixed(1)}%)`,
    ms(s.jitterMaxMs),
    ms(s.jitterMeanMs),
    ms(s.maxDeltaMs),
    marks(s.dscp),
    s.foundBy,
  ];
}

export function renderCaptureTable(r: CaptureResult): string {
  const out: string[] = [];
  out.push(
    `${r.file}: ${r.format}, ${r.packets} packets over ${r.durationS.toFixed(3)} s; ${r.calls.length} call(s), ${r.streams.length} RTP stream(s), ${r.sip.messages} SIP message(s)`,
  );
  if (r.calls.length > 0) {
    out.push('', 'Calls');
    out.push(
      table(
        ['Call-ID', 'From', 'To', 'Codec', 'Start', 'Status', 'Streams'],
        r.calls.map((c) => [
          c.callId,
          c.from ?? '-',
          c.to ?? '-',
          c.codec ?? '-',
          c.start ?? '-',
          c.status === null ? '-' : String(c.status),
          c.streams.join(' ') || '-',
        ]),
      ),
    );
  }
  if (r.streams.length > 0) {
    out.push('', 'RTP streams (lost, jitter and max delta as tshark -z rtp,streams computes them; ms)');
    out.push(
      table(
        [
          'Id',
          'Source → Destination',
          'SSRC',
          'Codec',
          'Pkts',
          'Lost',
          'MaxJit',
          'MeanJit',
          'MaxDelta',
          'DSCP',
          'Found by',
        ],
        r.streams.map(streamRow),
      ),
    );
  }
  const reported = r.streams.filter((s) => s.rtcp);
  if (reported.length > 0) {
    out.push('', 'What the endpoints reported in RTCP (receiver reports; XR VoIP metrics, RFC 3611)');
    out.push(
      table(
        [
          'Id',
          'Reports',
          'Fraction lost',
          'Cumulative lost',
          'Jitter ms',
          'XR loss',
          'XR RTT ms',
          'XR R',
          'XR MOS-LQ',
        ],
        reported.map((s) => {
          const x = s.rtcp!;
          return [
            s.id,
            String(x.reports),
            `${(x.fractionLost * 100).toFixed(1)}%`,
            String(x.cumulativeLost),
            ms(x.jitterMs),
            x.xr ? `${(x.xr.lossRate * 100).toFixed(1)}%` : '-',
            x.xr ? String(x.xr.roundTripDelayMs) : '-',
            x.xr?.rFactor != null ? String(x.xr.rFactor) : '-',
            x.xr?.mosLq != null ? String(x.xr.mosLq) : '-',
          ];
        }),
      ),
    );
  }
  if (r.rtcp.rttMs) out.push('', `RTCP round-trip times: ${r.rtcp.rttMs.slice(0, 10).join(', ')} ms`);
  if (r.sip.messages > 0) out.push('', `SIP marks: ${marks(r.sip.dscp)}`);
  out.push('', 'Checks');
  out.push(
    table(
      ['Check', 'Status', 'Value', 'Limit', 'Evidence'],
      r.checks.map((c) => [
        c.id,
        c.status.toUpperCase(),
        c.value === null ? '-' : `${c.value}${c.unit && c.unit !== 'dscp' ? ` ${c.unit}` : ''}`,
        c.limit === null ? '-' : `${c.limit}${c.unit && c.unit !== 'dscp' ? ` ${c.unit}` : ''}`,
        c.evidence,
      ]),
    ),
  );
  for (const w of r.warnings) out.push(`warning: ${w}`);
  out.push('', r.ready ? 'READY: no judged check fails and audio was present' : 'NOT READY');
  return out.join('\n');
}
