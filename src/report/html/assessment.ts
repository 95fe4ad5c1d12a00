// The sections of a collector assessment (GET /api/v1/assessments/:id: the site's checks, the worst
// over its peers, with each probe result it judged), and the site's history as charts.
import { z } from 'zod';
import { Check, ProbeResult } from '../../schemas.js';
import type { ChartSpec } from './charts.js';
import { checksTable } from './checks.js';
import { facts, num } from './format.js';
import { type Html, html } from './markup.js';
import { probeSections, type Section } from './probe.js';

/** The shape of GET /api/v1/assessments/:id (collector/routes/assessments.ts). */
export const AssessmentDocument = z.looseObject({
  assessmentId: z.string(),
  site: z.string(),
  agent: z.string(),
  reportId: z.string(),
  measuredAt: z.string(),
  assessedAt: z.string(),
  validUntil: z.string(),
  ready: z.boolean(),
  checks: z.array(Check),
  peers: z.array(
    z.looseObject({
      peer: z.string(),
      codec: z.string(),
      calls: z.number(),
      ready: z.boolean(),
      checks: z.array(Check),
    }),
  ),
  measurements: z.array(ProbeResult),
});
export type AssessmentDocument = z.infer<typeof AssessmentDocument>;

/** One past assessment of a site, as its history chart plots it. */
export interface HistoryPoint {
  measuredAt: string;
  ready: boolean;
  /** Worst one-way latency, jitter and loss the assessment judged; null when not measured. */
  latencyMs: number | null;
  jitterMs: number | null;
  lossPct: number | null;
  assessmentId: string;
}

/** The history point of an assessment's checks. */
export function historyPoint(a: {
  assessmentId: string;
  measuredAt: string;
  ready: boolean;
  checks: Check[];
}): HistoryPoint {
  const value = (id: string) => {
    const c = a.checks.find((k) => k.id === id);
    return c && typeof c.value === 'number' ? c.value : null;
  };
  return {
    assessmentId: a.assessmentId,
    measuredAt: a.measuredAt,
    ready: a.ready,
    latencyMs: value('latency'),
    jitterMs: value('jitter'),
    lossPct: value('loss'),
  };
}

export interface Limits {
  latencyMs: number;
  jitterMs: number;
  lossPct: number;
}

export function historyCharts(history: HistoryPoint[], limits: Limits): ChartSpec[] {
  if (history.length === 0) return [];
  const sorted = [...history].sort((a, b) => Date.parse(a.measuredAt) - Date.parse(b.measuredAt));
  const x = sorted.map((p) => Math.round(Date.parse(p.measuredAt) / 1000));
  const readyCount = sorted.filter((p) => p.ready).length;
  const span = `${sorted.length} assessments from ${sorted[0]!.measuredAt} to ${sorted.at(-1)!.measuredAt}`;
  const points = sorted.length < 3;
  return [
    {
      id: 'history-latency',
      title: "Latency over the site's history",
      summary: `worst one-way latency of each assessment; ${span}; ${readyCount} of them ready.`,
      xKind: 'time',
      x,
      yLabel: 'ms',
      series: [{ label: 'Latency (ms)', values: sorted.map((p) => p.latencyMs), color: '#2b59c3', points }],
      limit: { value: limits.latencyMs, label: `limit ${limits.latencyMs} ms` },
    },
    {
      id: 'history-jitter',
      title: "Jitter over the site's history",
      summary: `worst RFC 3550 jitter of each assessment; ${span}.`,
      xKind: 'time',
      x,
      yLabel: 'ms',
      series: [{ label: 'Jitter (ms)', values: sorted.map((p) => p.jitterMs), color: '#7a3fb0', points }],
      limit: { value: limits.jitterMs, label: `limit ${limits.jitterMs} ms` },
    },
    {
      id: 'history-loss',
      title: "Loss over the site's history",
      summary: `worst per-stream loss of each assessment; ${span}.`,
      xKind: 'time',
      x,
      yLabel: '%',
      series: [{ label: 'Loss (%)', values: sorted.map((p) => p.lossPct), color: '#c2410c', points }],
      limit: { value: limits.lossPct, label: `limit ${limits.lossPct} %` },
    },
  ];
}

export function historyTable(history: HistoryPoint[], link?: (id: string) => string): Html {
  const sorted = [...history].sort((a, b) => Date.parse(b.measuredAt) - Date.parse(a.measuredAt));
  return html`<div class="table-wrap"><table>
<caption>Assessments, newest first (${sorted.length})</caption>
<thead><tr><th scope="col">Measured at</th><th scope="col">Readiness</th><th scope="col" class="num">Latency ms</th><th scope="col" class="num">Jitter ms</th><th scope="col" class="num">Loss %</th></tr></thead>
<tbody>${sorted.map(
    (p) =>
      html`<tr><th scope="row">${link ? html`<a href="${link(p.assessmentId)}">${p.measuredAt}</a>` : p.measuredAt}</th><td>${p.ready ? 'ready' : 'not ready'}</td><td class="num">${num(p.latencyMs)}</td><td class="num">${num(p.jitterMs, 3)}</td><td class="num">${num(p.lossPct, 3)}</td></tr>`,
  )}</tbody></table></div>`;
}

export function assessmentSections(a: AssessmentDocument, limits: Limits): Section {
  const probes = a.measurements.map((p, i) => ({ p, s: probeSections(p, `peer${i}-`, 3, limits) }));
  const body = html`
<h2>The assessment</h2>
${facts([
  ['Site', a.site],
  ['Agent', a.agent],
  ['Measured at', a.measuredAt],
  ['Assessed at', a.assessedAt],
  ['Valid until', a.validUntil],
  ['Assessment', a.assessmentId],
  ['Report', a.reportId],
])}
<h2>Peers probed</h2>
<div class="table-wrap"><table>
<caption>Each path the agent probed; the site's checks are the worst over these</caption>
<thead><tr><th scope="col">Peer</th><th scope="col">Codec</th><th scope="col" class="num">Calls</th><th scope="col">Readiness</th><th scope="col">Checks not passing</th></tr></thead>
<tbody>${a.peers.map(
    (p) =>
      html`<tr><th scope="row"><a href="#peer${a.peers.indexOf(p)}">${p.peer}</a></th><td>${p.codec}</td><td class="num">${p.calls}</td><td>${p.ready ? 'ready' : 'not ready'}</td><td>${
        p.checks
          .filter((c) => c.status !== 'pass')
          .map((c) => `${c.id} (${c.status})`)
          .join(', ') || '—'
      }</td></tr>`,
  )}</tbody></table></div>
${probes.map(
  ({ p, s }, i) => html`<section aria-labelledby="peer${i}" class="peer">
<h2 id="peer${i}">Path to ${p.peer}</h2>
${checksTable(a.peers[i]?.checks ?? p.checks, `Checks of the path to ${p.peer}`, `peer${i}-check-`)}
${s.body}
</section>`,
)}`;
  return { body, charts: probes.flatMap(({ s }) => s.charts) };
}
