// Charts: each is a <figure> with a text alternative (its caption and a data table that reads
// without JavaScript), and a uPlot chart drawn into it by the page's one script from the data in a
// JSON block. uPlot is bundled into the page (./page.ts), so the page needs no network.
import { type Html, html } from './markup.js';

export interface ChartSeries {
  label: string;
  /** One value per x; null is a gap. */
  values: (number | null)[];
  color: string;
  /** Draw as points instead of a line (for sparse history). */
  points?: boolean;
}

export interface ChartSpec {
  id: string;
  title: string;
  /** Text alternative: what the chart shows and its headline figures. */
  summary: string;
  /** 'time': x is seconds since the epoch; 'offset': x is seconds since the start of the run. */
  xKind: 'time' | 'offset';
  x: number[];
  yLabel: string;
  series: ChartSeries[];
  /** A horizontal limit line (the handbook's), drawn dashed. */
  limit?: { value: number; label: string };
  /** Where the chart's figures already stand in a table of the page (then none is repeated). */
  dataIn?: string;
}

const cell = (v: number | null) => (v === null ? '—' : String(v));

function xText(kind: ChartSpec['xKind'], x: number): string {
  return kind === 'time' ? new Date(x * 1000).toISOString().replace('.000Z', 'Z') : `${x} s`;
}

function dataTable(c: ChartSpec): Html {
  return html`<details class="chart-data"><summary>Data of this chart (${c.x.length} points)</summary>
<div class="table-wrap"><table><caption class="sr-only">${c.title}</caption>
<thead><tr><th scope="col">${c.xKind === 'time' ? 'Time (UTC)' : 'Offset'}</th>${c.series.map((s) => html`<th scope="col">${s.label}</th>`)}</tr></thead>
<tbody>${c.x.map((x, i) => html`<tr><th scope="row">${xText(c.xKind, x)}</th>${c.series.map((s) => html`<td class="num">${cell(s.values[i] ?? null)}</td>`)}</tr>`)}</tbody>
</table></div></details>`;
}

/** The chart's figure: container for the drawing, caption, and the data as a table. */
export function chartFigure(c: ChartSpec): Html {
  return html`<figure class="chart-figure" aria-labelledby="${c.id}-title">
<figcaption><span id="${c.id}-title" class="chart-title">${c.title}</span> <span class="muted">${c.summary}</span></figcaption>
<div class="chart" id="${c.id}" role="img" aria-label="${c.title}: ${c.summary}"></div>
${c.dataIn ? html`<p class="muted">The figures are in ${c.dataIn}.</p>` : dataTable(c)}
</figure>`;
}

/** What the page script needs to draw a chart. */
export function chartData(c: ChartSpec) {
  return {
    id: c.id,
    time: c.xKind === 'time',
    yLabel: c.yLabel,
    x: c.x,
    series: c.series.map((s) => ({
      label: s.label,
      color: s.color,
      points: s.points ?? false,
      values: s.values,
    })),
    limit: c.limit ?? null,
  };
}

/**
 * The page's script (runs once, after the bundled uPlot): draws every chart listed in the JSON block
 * #report-charts, sized to its container, and marks each drawn container with data-drawn.
 */
export const CHART_SCRIPT = `(function () {
  var el = document.getElementById('report-charts');
  if (!el || typeof uPlot === 'undefined') return;
  var charts = JSON.parse(el.textContent);
  charts.forEach(function (c) {
    var box = document.getElementById(c.id);
    if (!box) return;
    var width = Math.max(320, Math.min(960, box.clientWidth || 720));
    var series = [{ label: c.time ? 'Time' : 'Offset (s)' }];
    var data = [c.x];
    c.series.forEach(function (s) {
      series.push({
        label: s.label,
        stroke: s.color,
        width: 2,
        spanGaps: false,
        points: s.points ? { show: true, size: 7, fill: s.color } : { show: false },
        paths: s.points ? function () { return null; } : undefined,
      });
      data.push(s.values);
    });
    if (c.limit) {
      series.push({ label: c.limit.label, stroke: '#b3261e', width: 1, dash: [6, 4], points: { show: false } });
      data.push(c.x.map(function () { return c.limit.value; }));
    }
    new uPlot({
      width: width,
      height: 240,
      scales: { x: { time: c.time } },
      axes: [{ label: c.time ? '' : 'seconds into the run' }, { label: c.yLabel, size: 60 }],
      series: series,
      legend: { live: false },
    }, data, box);
    box.setAttribute('data-drawn', 'true');
  });
})();`;
