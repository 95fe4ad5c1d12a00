// The sections of a capture analysis (`voipready.capture/1`): the file, each SIP call with its RTP
// streams (loss, jitter, marks), the worst streams, and where in the capture the streams were worst.
//
// A contact centre's capture lists hundreds of calls: one table, a row group per call (its facts in
// the group's header row, its streams below), keeps every call and stream on the page in about
// half the elements of a calls table plus a streams table. Past LISTING_OPEN_ROWS rows the listing
// sits in a closed <details>: the browser parses it but lays none of it out until it is opened
// (or printed: the print CSS opens it), which is what keeps a 400-call page under a second.
import type { CaptureCall, CaptureResult, CaptureStream } from '../../schemas.js';
import type { ChartSpec } from './charts.js';
import { chartFigure } from './charts.js';
import { facts, foldText, marksText, num } from './format.js';
import { type Html, html } from './markup.js';
import type { Section } from './probe.js';

/** Up to this many stream rows the listing is shown open; more are folded (see above). */
export const LISTING_OPEN_ROWS = 60;
/** How many of the worst streams stand above a folded listing. */
const WORST_SHOWN = 10;

type Limits = { jitterMs: number; lossPct: number };

/** The streams' columns; MOS only when some endpoint reported one (RTCP XR), else it is all dashes. */
interface Columns {
  head: Html;
  count: number;
  mos: boolean;
}

function columns(r: CaptureResult): Columns {
  const mos = r.streams.some((s) => typeof s.rtcp?.xr?.mosLq === 'number');
  return {
    head: html`<th scope="col">Stream</th><th scope="col">Source → destination</th><th scope="col">SSRC</th><th scope="col">Codec</th><th scope="col">Packets</th><th scope="col">Lost</th><th scope="col">Max jitter ms</th><th scope="col">Mean jitter ms</th><th scope="col">Max delta ms</th><th scope="col">DSCP</th>${mos ? html`<th scope="col">MOS (RTCP XR)</th>` : ''}`,
    count: mos ? 11 : 10,
    mos,
  };
}

/** One stream's row: cells only, numeric columns aligned by the table's CSS (no per-cell class). */
function streamRow(s: CaptureStream, cols: Columns, label: Html | string = s.id): Html {
  const mos = s.rtcp?.xr?.mosLq;
  return html`<tr><th scope="row">${label}</th><td>${s.src} → ${s.dst}</td><td>${s.ssrc}</td><td>${s.codec ?? `PT${s.payloadType}`}${s.media === 'video' ? ' (video)' : ''}</td><td>${s.packets}</td><td>${s.lost} (${num(s.lossPct, 2)} %)</td><td>${num(s.jitterMaxMs, 3)}</td><td>${num(s.jitterMeanMs, 3)}</td><td>${num(s.maxDeltaMs, 3)}</td><td>${marksText(s.dscp)}</td>${cols.mos ? html`<td>${mos === null || mos === undefined ? '—' : num(mos)}</td>` : ''}</tr>`;
}

function callHeader(c: CaptureCall, n: number, cols: Columns): Html {
  const status = c.status === null ? 'no final response seen' : `final status ${c.status}`;
  return html`<tr><th colspan="${cols.count}" scope="rowgroup">Call ${n}: ${foldText(c.callId)} · ${foldText(c.from ?? '—')} → ${foldText(c.to ?? '—')} · ${c.codec ?? 'codec unknown'} · ${c.start ?? '—'} – ${c.end ?? '—'} · ${c.messages} SIP messages, ${status}${c.streams.length === 0 ? ' · no RTP stream' : ''}</th></tr>`;
}

/** Streams grouped under their calls, in the document's order; streams of no call last. */
function listing(r: CaptureResult, cols: Columns): Html {
  const byId = new Map(r.streams.map((s) => [s.id, s]));
  const inCall = new Set<string>();
  const groups = r.calls.map((c, i) => {
    const streams = c.streams.flatMap((id) => {
      const s = byId.get(id);
      if (!s) return [];
      inCall.add(id);
      return [s];
    });
    return html`<tbody>${callHeader(c, i + 1, cols)}${streams.map((s) => streamRow(s, cols))}</tbody>`;
  });
  const loose = r.streams.filter((s) => !inCall.has(s.id));
  const looseGroup = loose.length
    ? html`<tbody><tr><th colspan="${cols.count}" scope="rowgroup">RTP streams in no SIP call (${loose.length}; found by the RTP heuristic, or their SDP was not in the capture)</th></tr>${loose.map((s) => streamRow(s, cols))}</tbody>`
    : '';
  return html`<div class="table-wrap"><table class="streams">
<caption>${r.calls.length} SIP call(s) and ${r.streams.length} RTP stream(s): each call's facts, then its streams (loss, jitter and max delta as tshark -z rtp,streams computes them)</caption>
<thead><tr>${cols.head}</tr></thead>
${groups}${looseGroup}</table></div>`;
}

/** How far past its limits a stream is: its worse ratio of loss and jitter to their limits. */
const badness = (s: CaptureStream, limits: Limits) =>
  Math.max(s.lossPct / limits.lossPct, (s.jitterMaxMs ?? 0) / limits.jitterMs);

function worstTable(r: CaptureResult, limits: Limits, cols: Columns): Html {
  const worst = [...r.streams].sort((a, b) => badness(b, limits) - badness(a, limits)).slice(0, WORST_SHOWN);
  return html`<div class="table-wrap"><table class="streams">
<caption>The ${worst.length} worst of ${r.streams.length} RTP streams (highest loss or jitter against the limits ${limits.lossPct} % and ${limits.jitterMs} ms), with their call</caption>
<thead><tr>${cols.head}</tr></thead>
<tbody>${worst.map((s) => streamRow(s, cols, html`${s.id} <span class="muted">${s.callId === null ? 'no call' : foldText(s.callId)}</span>`))}</tbody></table></div>`;
}

function callsAndStreams(r: CaptureResult, limits: Limits): Html {
  if (r.calls.length === 0 && r.streams.length === 0)
    return html`<p>No SIP call and no RTP stream was found in the capture.</p>`;
  const cols = columns(r);
  const rows = r.calls.length + r.streams.length;
  const none = r.calls.length === 0 ? html`<p>No SIP call was found in the capture.</p>` : '';
  if (rows <= LISTING_OPEN_ROWS) return html`${none}${listing(r, cols)}`;
  return html`${none}${r.streams.length > 0 ? worstTable(r, limits, cols) : ''}
<details class="listing"><summary>Every call and stream: ${r.calls.length} SIP call(s), ${r.streams.length} RTP stream(s) (folded; printed in full)</summary>
${listing(r, cols)}</details>`;
}

function captureCharts(r: CaptureResult, limits: Limits): ChartSpec[] {
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
      dataIn: 'the calls and streams table above (Max jitter ms)',
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
      dataIn: 'the calls and streams table above (Lost)',
    },
  ];
}

export function captureSections(r: CaptureResult, limits: Limits): Section {
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
<h2>Calls and streams</h2>
${callsAndStreams(r, limits)}
${charts.map(chartFigure)}`;
  return { body, charts };
}
