// The sections of a probe result (`voipready.probe/1`): the run, per-direction figures, the DSCP
// picture (sent vs arrived for RTP and signalling, each direction), delay and MOS, the codec's
// bandwidth sizing, the run over time (charts) and each call's stream.
import { bandwidthPerCall, codecByName } from '../../codecs.js';
import { dscpName } from '../../dscp.js';
import { formatRate, priorityTable } from '../../priority.js';
import { listedStreams } from '../../probe-evidence.js';
import type { DirectionStats, DscpCounts, ProbeResult, SignallingDirection } from '../../schemas.js';
import { sendTimesText } from '../sends.js';
import type { ChartSpec } from './charts.js';
import { chartFigure } from './charts.js';
import { facts, marksText, num, withUnit } from './format.js';
import { type Html, html } from './markup.js';

export interface Section {
  body: Html;
  charts: ChartSpec[];
}

const DIRECTIONS = [
  ['forward', 'Forward (site → data centre)'],
  ['reverse', 'Reverse (data centre → site)'],
] as const;

function directionTable(p: ProbeResult): Html {
  const row = (label: string, f: (d: DirectionStats) => string) =>
    html`<tr><th scope="row">${label}</th>${DIRECTIONS.map(([dir]) => html`<td class="num">${f(p[dir])}</td>`)}</tr>`;
  return html`<div class="table-wrap"><table>
<caption>RTP media per direction (all calls together)</caption>
<thead><tr><th scope="col">Figure</th>${DIRECTIONS.map(([, label]) => html`<th scope="col" class="num">${label}</th>`)}</tr></thead>
<tbody>
${row('Packets sent', (d) => String(d.sent))}
${row('Packets received', (d) => String(d.received))}
${row('Lost', (d) => `${d.lost} (${num(d.lossPct, 3)} %)`)}
${row('Longest loss burst', (d) => `${d.maxBurstLoss} packets`)}
${row('Duplicates', (d) => String(d.duplicates))}
${row('Reordered', (d) => String(d.reordered))}
${row('Jitter, RFC 3550 (worst stream, end of run)', (d) => withUnit(d.jitterMs, 'ms', 3))}
${row('Jitter, highest during the run', (d) => withUnit(d.jitterMaxMs, 'ms', 3))}
${row('One-way delay', (d) => withUnit(p.oneWayMs[d === p.forward ? 'forward' : 'reverse'], 'ms'))}
</tbody></table></div>`;
}

/** Sent vs arrived marks as a bar (share that kept the expected class) and words. */
function dscpRow(label: string, d: DirectionStats | SignallingDirection, expected: number): Html {
  const total = Object.values(d.dscpReceived as DscpCounts).reduce((a, b) => a + b, 0);
  const kept = (d.dscpReceived as DscpCounts)[String(expected)] ?? 0;
  const unknown = d.dscpUnknownReason ?? (d.dscpSent === null ? 'the sender did not mark' : undefined);
  let picture: Html;
  let verdict: string;
  if (unknown !== undefined || total === 0) {
    picture = html`<span class="muted">not read</span>`;
    verdict = `unknown: ${unknown ?? 'no packet arrived to read the mark from'}`;
  } else {
    const keptPct = (100 * kept) / total;
    picture = html`<div class="dscp-bar" role="img" aria-label="${num(keptPct, 1)} % arrived as ${dscpName(expected)}"><span class="dscp-ok" style="width:${num(keptPct, 2)}%"></span><span class="dscp-bad" style="width:${num(100 - keptPct, 2)}%"></span></div>`;
    verdict =
      kept === total
        ? `kept: every packet arrived as ${dscpName(expected)}`
        : `REWRITTEN: ${total - kept} of ${total} arrived without ${dscpName(expected)}`;
  }
  return html`<tr><th scope="row">${label}</th><td>${d.dscpSent === null ? '—' : dscpName(d.dscpSent)}</td><td>${marksText(d.dscpReceived)}</td><td>${picture}</td><td>${verdict}</td></tr>`;
}

function dscpTable(p: ProbeResult): Html {
  const rtp = p.forward.dscpSent ?? p.reverse.dscpSent ?? 46;
  const sip = p.signalling.forward.dscpSent ?? p.signalling.reverse.dscpSent ?? 24;
  return html`<div class="table-wrap"><table>
<caption>DSCP: marked at the sender vs read on arrival</caption>
<thead><tr><th scope="col">Traffic, direction</th><th scope="col">Sent as</th><th scope="col">Arrived as (packets)</th><th scope="col">Kept (green) / rewritten (red)</th><th scope="col">Reading</th></tr></thead>
<tbody>
${dscpRow('RTP, forward', p.forward, rtp)}
${dscpRow('RTP, reverse', p.reverse, rtp)}
${dscpRow('Signalling, forward', p.signalling.forward, sip)}
${dscpRow('Signalling, reverse', p.signalling.reverse, sip)}
</tbody></table></div>`;
}

function delayAndMos(p: ProbeResult): Html {
  const r = p.rttMs;
  const basis = typeof p.latencyBasis === 'string' ? p.latencyBasis : null;
  return facts([
    [
      'Round-trip time',
      r
        ? `min ${num(r.min)} · mean ${num(r.mean)} · p50 ${num(r.p50)} · p95 ${num(r.p95)} · p99 ${num(r.p99)} · max ${num(r.max)} ms`
        : 'no reply came back',
    ],
    [
      'One-way delay',
      `forward ${withUnit(p.oneWayMs.forward, 'ms')}, reverse ${withUnit(p.oneWayMs.reverse, 'ms')}${p.oneWayMs.estimated ? ' (estimated as RTT/2: clocks not synchronised)' : ''}`,
    ],
    ['Latency basis', basis],
    [
      'MOS (E-model, ITU-T G.107)',
      p.mos === null ? 'not computed (no delay measured)' : `${num(p.mos)} (R = ${num(p.rFactor, 1)})`,
    ],
    ['Send times', sendTimesText(p)],
  ]);
}

function sizing(p: ProbeResult): Html {
  const codec = codecByName(p.codec);
  if (!codec) return html`<p>Codec ${p.codec} is not in the codec table: no sizing.</p>`;
  const bw = bandwidthPerCall(codec);
  const k = (v: number) => `${num(v, 1)} kbit/s`;
  return html`<div class="table-wrap"><table>
<caption>Codec and bandwidth sizing (${codec.encoding}, ${codec.ptimeMs} ms packets, each direction, IPv4)</caption>
<thead><tr><th scope="col">Calls</th><th scope="col" class="num">Packets/s</th><th scope="col" class="num">IP bytes/packet</th><th scope="col" class="num">IP</th><th scope="col" class="num">Ethernet</th></tr></thead>
<tbody>
<tr><th scope="row">1 call</th><td class="num">${bw.packetsPerSecond}</td><td class="num">${bw.ipBytesPerPacket}</td><td class="num">${k(bw.ipKbps)}</td><td class="num">${k(bw.ethernetKbps)}</td></tr>
<tr><th scope="row">${p.calls} calls (this run)</th><td class="num">${bw.packetsPerSecond * p.calls}</td><td class="num">${bw.ipBytesPerPacket}</td><td class="num">${k(bw.ipKbps * p.calls)}</td><td class="num">${k(bw.ethernetKbps * p.calls)}</td></tr>
</tbody></table></div>`;
}

function streamsTable(p: ProbeResult): Html {
  const rows = DIRECTIONS.flatMap(([dir, label]) =>
    (listedStreams(p[dir]) ?? []).map(
      (s) =>
        html`<tr><th scope="row" class="mono">${s.ssrc}</th><td>${label.split(' ')[0]}</td><td class="num">${s.srcPort} → ${s.dstPort}</td><td class="num">${s.sent}</td><td class="num">${s.received}</td><td class="num">${s.lost}${s.sent > 0 ? ` (${num((100 * Math.max(0, s.lost)) / s.sent, 2)} %)` : ''}</td><td class="num">${s.duplicates}</td><td class="num">${s.reordered}</td><td class="num">${num(s.jitterMs, 3)}</td><td class="num">${num(s.jitterMaxMs, 3)}</td></tr>`,
    ),
  );
  if (rows.length === 0) return html`<p class="muted">The probe did not list its streams.</p>`;
  return html`<details open><summary>Each call's RTP stream (${rows.length} stream-directions)</summary><div class="table-wrap"><table>
<caption>Streams: one per call and direction</caption>
<thead><tr><th scope="col">SSRC</th><th scope="col">Direction</th><th scope="col" class="num">Ports</th><th scope="col" class="num">Sent</th><th scope="col" class="num">Received</th><th scope="col" class="num">Lost</th><th scope="col" class="num">Dup.</th><th scope="col" class="num">Reord.</th><th scope="col" class="num">Jitter ms</th><th scope="col" class="num">Max jitter ms</th></tr></thead>
<tbody>${rows}</tbody></table></div></details>`;
}

/** RTT, jitter and loss over the run, from the probe's timeline (absent in older documents). */
export function probeCharts(
  p: ProbeResult,
  idPrefix: string,
  limits: { latencyMs: number; jitterMs: number; lossPct: number },
): ChartSpec[] {
  const t = p.timeline;
  if (!t || t.offsetS.length === 0) return [];
  const loss = t.sent.map((s, i) =>
    s > 0 ? Math.round((10000 * Math.max(0, s - t.returned[i]!)) / s) / 100 : null,
  );
  const max = (vs: (number | null)[]) => Math.max(0, ...vs.filter((v): v is number => v !== null));
  const per = t.bucketS === 1 ? 'each second' : `each ${t.bucketS} s`;
  return [
    {
      id: `${idPrefix}chart-rtt`,
      title: 'Round-trip time over the run',
      summary: `mean and highest RTT of the packets sent in ${per}; highest ${num(max(t.rttMaxMs))} ms. The handbook limit is one-way (${limits.latencyMs} ms), so RTT up to twice that.`,
      xKind: 'offset',
      x: t.offsetS,
      yLabel: 'ms',
      series: [
        { label: 'RTT mean (ms)', values: t.rttMeanMs, color: '#2b59c3' },
        { label: 'RTT max (ms)', values: t.rttMaxMs, color: '#8aa2e0' },
      ],
      limit: { value: 2 * limits.latencyMs, label: `2 × ${limits.latencyMs} ms` },
    },
    {
      id: `${idPrefix}chart-jitter`,
      title: 'Reverse-path jitter over the run',
      summary: `highest RFC 3550 jitter estimate of any call's reverse stream in ${per}; highest ${num(max(t.reverseJitterMs), 3)} ms (limit ${limits.jitterMs} ms). The forward path's jitter is measured by the reflector for the whole run (table above).`,
      xKind: 'offset',
      x: t.offsetS,
      yLabel: 'ms',
      series: [{ label: 'Reverse jitter (ms)', values: t.reverseJitterMs, color: '#7a3fb0' }],
      limit: { value: limits.jitterMs, label: `limit ${limits.jitterMs} ms` },
    },
    {
      id: `${idPrefix}chart-loss`,
      title: 'Round-trip loss over the run',
      summary: `share of the media packets sent in ${per} whose reply never came back (lost either way); highest ${num(max(loss))} % (limit ${limits.lossPct} % per direction).`,
      xKind: 'offset',
      x: t.offsetS,
      yLabel: '%',
      series: [{ label: 'Round-trip loss (%)', values: loss, color: '#c2410c' }],
      limit: { value: limits.lossPct, label: `limit ${limits.lossPct} %` },
    },
  ];
}

/** `--priority-test`: EF and its best-effort twins per phase, and the load that was sent. */
function priorityFigures(p: ProbeResult): Html {
  const pr = p.priority;
  if (!pr) return html``;
  const t = priorityTable(pr);
  return html`<p>Load: ${formatRate(pr.loadSentBps)} sent in the loaded phase (${pr.loadMode}, target ${formatRate(pr.loadTargetBps)}, cap ${formatRate(pr.loadCapBps)})${pr.loadNotSentReason ? `; ${pr.loadNotSentReason}` : ''}. Delays are forward one-way delays above the run's lowest; loss is round trip (the load fills the forward path only).</p>
<div class="table-wrap"><table>
<caption>EF against best effort, unloaded and under load</caption>
<thead><tr>${t.header.map((h, i) => html`<th scope="col"${i > 0 ? html` class="num"` : html``}>${h}</th>`)}</tr></thead>
<tbody>${t.rows.map((r) => html`<tr><th scope="row">${r[0]!}</th>${r.slice(1).map((c) => html`<td class="num">${c}</td>`)}</tr>`)}</tbody>
</table></div>`;
}

/** Everything about one probe run after its checks; `h` is the heading level of its sections. */
export function probeSections(
  p: ProbeResult,
  idPrefix: string,
  h: 2 | 3,
  limits: { latencyMs: number; jitterMs: number; lossPct: number },
): Section {
  const H = (text: string) => (h === 2 ? html`<h2>${text}</h2>` : html`<h3>${text}</h3>`);
  const charts = probeCharts(p, idPrefix, limits);
  const body = html`
${H('The run')}
${facts([
  ['Reflector (peer)', p.peer],
  ['Codec', p.codec],
  ['Concurrent calls', String(p.calls)],
  ['Duration', `${num(p.durationS, 1)} s`],
  ['Started', p.startedAt ?? null],
  [
    'DSCP marking and reading',
    p.privileged ? 'yes (raw sockets)' : 'no: the probe ran without CAP_NET_RAW, so DSCP is unknown',
  ],
])}
${H('Per direction')}
${directionTable(p)}
${H('DSCP picture')}
${dscpTable(p)}
${H('Delay and MOS')}
${delayAndMos(p)}
${H('Codec and bandwidth')}
${sizing(p)}
${p.priority ? H('Priority under load') : html``}
${priorityFigures(p)}
${H('Over the run')}
${charts.length ? charts.map(chartFigure) : html`<p class="muted">This probe document carries no timeline (made by an older version).</p>`}
${H('Calls')}
${streamsTable(p)}`;
  return { body, charts };
}
