// The sections of a capture analysis (`voipready.capture/1`): the file, each SIP call, each RTP
// stream with its loss, jitter and marks, and where in the capture the streams were worst.
import type { CaptureResult, CaptureStream } from '../../capture/analyze.js';
import type { ChartSpec } from './charts.js';
import { chartFigure } from './charts.js';
import { facts, foldText, marksText, num } from './format.js';
import { html } from './markup.js';
import type { Section } from './probe.js';

function callsTable(r: CaptureResult) {
  if (r.calls.length === 0) return html`<p>No SIP call was found in the capture.</p>`;
  return html`<div class="table-wrap"><table>
<caption>SIP calls (${r.calls.length})</caption>
<thead><tr><th scope="col">Call-ID</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Codec</th><th scope="col">Start</th><th scope="col">End</th><th scope="col" class="num">Messages</th><th scope="col" class="num">Final status</th><th scope="col">Streams</th></tr></thead>
<tbody>${r.calls.map(
    (c) =>
      html`<tr><th scope="row" class="mono">${foldText(c.callId)}</th><td>${foldText(c.from ?? '—')}</td><td>${foldText(c.to ?? '—')}</td><td>${c.codec ?? '—'}</td><td>${c.start ?? '—'}</td><td>${c.end ?? '—'}</td><td class="num">${c.messages}</td><td class="num">${c.status ?? '—'}</td><td>${c.streams.join(' ') || '—'}</td></tr>`,
  )}</tbody></table></div>`;
}

function streamRow(s: CaptureStream) {
  return html`<tr><th scope="row">${s.id}</th><td>${s.src} → ${s.dst}</td><td class="mono">${s.ssrc}</td><td>${s.codec ?? `PT${s.payloadType}`}${s.media === 'video' ? ' (video)' : ''}</td><td class="num">${s.packets}</td><td class="num">${s.lost} (${num(s.lossPct, 2)} %)</td><td class="num">${num(s.jitterMaxMs, 3)}</td><td class="num">${num(s.jitterMeanMs, 3)}</td><td class="num">${num(s.maxDeltaMs, 3)}</td><td>${marksText(s.dscp)}</td><td>${s.rtcp?.xr?.mosLq !== null && s.rtcp?.xr?.mosLq !== undefined ? num(s.rtcp.xr.mosLq) : '—'}</td><td>${s.foundBy}</td></tr>`;
}

function streamsTable(r: CaptureResult) {
  if (r.streams.length === 0) return html`<p>No RTP stream was found in the capture.</p>`;
  return html`<div class="table-wrap"><table>
<caption>RTP streams (${r.streams.length}; loss, jitter and max delta as tshark -z rtp,streams computes them)</caption>
<thead><tr><th scope="col">Id</th><th scope="col">Source → destination</th><th scope="col">SSRC</th><th scope="col">Codec</th><th scope="col" class="num">Packets</th><th scope="col" class="num">Lost</th><th scope="col" class="num">Max jitter ms</th><th scope="col" class="num">Mean jitter ms</th><th scope="col" class="num">Max delta ms</th><th scope="col">DSCP</th><th scope="col">MOS (RTCP XR)</th><th scope="col">Found by</th></tr></thead>
<tbody>${r.streams.map(streamRow)}</tbody></table></div>`;
}

function captureCharts(r: CaptureResult, limits: { jitterMs: number; lossPct: number }): ChartSpec[] {
  if (r.streams.length === 0) return [];
  const byStart = [...r.streams].sort((a, b) => a.startS - b.startS);
  const x = byStart.map((s) => Math.round(s.startS * 1000) / 1000);
  const worst = (vs: number[]) => Math.max(0, ...vs);
  return [
    {
      id: 'capture-chart-jitter',
      title: 'Jitter of each stream, by when it started',
      summary: `one point per RTP stream; highest ${num(worst(byStart.map((s) => s.jitterMaxMs ?? 0)), 3)} ms (limit ${limits.jitterMs} ms).`,
      xKind: 'offset',
      x,
      yLabel: 'ms',
      series: [
        {
          label: 'Max jitter (ms)',
          values: byStart.map((s) => s.jitterMaxMs),
          color: '#7a3fb0',
          points: true,
        },
      ],
      limit: { value: limits.jitterMs, label: `limit ${limits.jitterMs} ms` },
      dataIn: 'the streams table above (Max jitter ms)',
    },
    {
      id: 'capture-chart-loss',
      title: 'Loss of each stream, by when it started',
      summary: `one point per RTP stream; highest ${num(worst(byStart.map((s) => s.lossPct)), 2)} % (limit ${limits.lossPct} %).`,
      xKind: 'offset',
      x,
      yLabel: '%',
      series: [{ label: 'Loss (%)', values: byStart.map((s) => s.lossPct), color: '#c2410c', points: true }],
      limit: { value: limits.lossPct, label: `limit ${limits.lossPct} %` },
      dataIn: 'the streams table above (Lost)',
    },
  ];
}

export function captureSections(r: CaptureResult, limits: { jitterMs: number; lossPct: number }): Section {
  const charts = captureCharts(r, limits);
  const body = html`
<h2>The capture</h2>
${facts([
  ['File', r.file],
  ['Format', r.format],
  ['Packets', String(r.packets)],
  ['Duration', `${num(r.durationS, 3)} s`],
  ['SIP messages', `${r.sip.messages} (marked ${marksText(r.sip.dscp)})`],
  ['RTCP packets', String(r.rtcp.packets)],
  [
    'Round trip from RTCP',
    r.rtcp.rttMs && r.rtcp.rttMs.length > 0 ? `${r.rtcp.rttMs.map((v) => num(v)).join(', ')} ms` : null,
  ],
])}
${r.warnings.length ? html`<h3>Warnings</h3><ul>${r.warnings.map((w) => html`<li>${foldText(w)}</li>`)}</ul>` : ''}
<h2>Calls</h2>
${callsTable(r)}
<h2>Streams</h2>
${streamsTable(r)}
${charts.map(chartFigure)}`;
  return { body, charts };
}
