// The page shell: one self-contained HTML document (styles, uPlot and the chart script inline, no
// network at view time: it opens from a file and from a case attachment). A Content-Security-Policy
// lets only these exact scripts run (by hash) and loads nothing from anywhere, so even text that
// escaped escaping could not run or fetch.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CHART_SCRIPT, type ChartSpec, chartData } from './charts.js';
import { type Html, html, scriptJson, trusted } from './markup.js';

interface UplotAssets {
  js: string;
  css: string;
}

let uplot: UplotAssets | undefined;

/** uPlot's minified build and stylesheet, read once on first use (not at import). */
function uplotAssets(): UplotAssets {
  if (!uplot) {
    const require = createRequire(import.meta.url);
    const dist = (file: string) => readFileSync(require.resolve(`uplot/dist/${file}`), 'utf8');
    uplot = { js: dist('uPlot.iife.min.js'), css: dist('uPlot.min.css') };
  }
  return uplot;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

const STYLE = `
:root { --fg:#1b1b1f; --muted:#5d5e66; --line:#d0d1d8; --bg:#fff; --pass:#1b6e35; --fail:#b3261e; --warn:#8a5300; --unknown:#4a4f9c; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main, header.page, footer.page, nav.page { max-width: 1180px; margin: 0 auto; padding: 0 20px; }
header.page { padding-top: 18px; }
header.page h1 { font-size: 1.5rem; margin: 0 0 4px; overflow-wrap: anywhere; }
nav.page { padding-top: 8px; font-size: .9rem; }
nav.page a { margin-right: 14px; }
nav.page form { display: inline; }
nav.page button { font: inherit; font-size: .85rem; }
h2 { font-size: 1.2rem; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; overflow-wrap: anywhere; }
h3 { font-size: 1.05rem; margin: 20px 0 8px; overflow-wrap: anywhere; }
p, li, dd, figcaption, caption, h1 { overflow-wrap: anywhere; }
/* Table cells break only words that cannot fit whole (ids, SSRCs keep their column); free text does. */
td, th { overflow-wrap: break-word; }
td.evidence, table.checks td { overflow-wrap: anywhere; }
.muted { color: var(--muted); font-size: .85em; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.verdict { border: 2px solid; border-radius: 8px; padding: 12px 18px; margin: 16px 0; }
.verdict h2 { border: 0; margin: 0 0 6px; font-size: 1.6rem; }
.verdict-ready { border-color: var(--pass); background: #eef7f0; }
.verdict-not-ready { border-color: var(--fail); background: #fcefee; }
.verdict-ready .verdict-word { color: var(--pass); }
.verdict-not-ready .verdict-word { color: var(--fail); }
.verdict-subject { font-weight: normal; font-size: 1.1rem; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; min-width: 0; }
.table-wrap { overflow-x: auto; max-width: 100%; }
/* A 400-call capture lists thousands of rows: let the browser skip laying out tables off screen. */
.table-wrap { content-visibility: auto; contain-intrinsic-size: auto 400px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
thead th { background: #f3f3f6; white-space: nowrap; }
th a.sort { color: inherit; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.evidence { min-width: 16em; max-width: 34em; }
table.checks td:nth-child(5) { max-width: 16em; }
table.checks td:nth-child(7) { min-width: 12em; max-width: 22em; }
table.checks td, table.checks th { min-width: 5em; }
table.checks q { quotes: "\\201C" "\\201D"; font-style: italic; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: .85em; white-space: nowrap; border: 1px solid; }
.status-pass { color: var(--pass); border-color: var(--pass); }
.status-fail { color: #fff; background: var(--fail); border-color: var(--fail); }
.status-warn { color: var(--warn); border-color: var(--warn); }
.status-unknown { color: var(--unknown); border-color: var(--unknown); border-style: dashed; }
.row-fail th[scope=row] { border-left: 4px solid var(--fail); }
.row-unknown th[scope=row] { border-left: 4px dashed var(--unknown); }
.row-pass th[scope=row] { border-left: 4px solid var(--pass); }
.dscp-bar { display: flex; height: 18px; min-width: 160px; border: 1px solid var(--line); border-radius: 3px; overflow: hidden; }
.dscp-bar span { display: block; height: 100%; }
.dscp-ok { background: var(--pass); }
.dscp-bad { background: var(--fail); }
.chart-figure { margin: 12px 0 18px; break-inside: avoid; }
.chart-title { font-weight: 600; }
.chart { min-height: 250px; margin-top: 6px; }
/* A capture's calls and streams: numeric columns by position (no class on each of thousands of cells). */
table.streams td:nth-child(n+5):nth-child(-n+9), table.streams td:nth-child(11) { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.streams td:nth-child(3) { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
table.streams th[scope=rowgroup] { background: #f7f7fa; font-weight: 600; border-top: 2px solid var(--line); }
details.listing > summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
details.fold summary { cursor: pointer; color: var(--muted); font-size: .85em; }
.chart-data summary { cursor: pointer; font-size: .85rem; color: var(--muted); }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
footer.page { color: var(--muted); font-size: .8rem; padding: 24px 20px 30px; }
form.login { max-width: 420px; display: grid; gap: 8px; }
form.login input { font: inherit; padding: 6px; }
form.login button { font: inherit; padding: 6px 12px; justify-self: start; }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  body { font-size: 10.5pt; }
  main, header.page, footer.page { max-width: none; padding: 0; }
  nav.page, .no-print, .chart-data, details.fold { display: none; }
  .table-wrap { overflow: visible; content-visibility: visible; }
  /* A folded listing prints in full (a closed <details> keeps its content in ::details-content). */
  details.listing::details-content { content-visibility: visible; display: block; }
  details.listing > summary { list-style: none; }
  /* Wide tables fit the A4 width: headers may wrap, the streams' many columns in smaller type. */
  table.streams thead th { white-space: normal; }
  table.streams { font-size: 8.5pt; }
  /* The checks by fixed shares of the width: evidence text breaks anywhere, so auto layout starves it. */
  table.checks { table-layout: fixed; }
  table.checks td, table.checks th { min-width: 0; max-width: none; white-space: normal; padding: 4px 5px; }
  table.checks thead th:nth-child(1) { width: 12%; }
  table.checks thead th:nth-child(2) { width: 13%; }
  table.checks thead th:nth-child(3) { width: 10%; }
  table.checks thead th:nth-child(4) { width: 9%; }
  table.checks thead th:nth-child(5) { width: 16%; }
  table.checks thead th:nth-child(6) { width: 24%; }
  table.checks thead th:nth-child(7) { width: 16%; }
  tr, .verdict, .chart-figure { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
  .status-fail { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .dscp-bar, .verdict { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
`;

export interface PageInput {
  title: string;
  /** Under the title: what the page is about (site, file, peer). */
  subtitle?: Html | string;
  /** Links shown above the header (the collector's pages). */
  nav?: Html;
  body: Html;
  charts: ChartSpec[];
  /** The page's footer line (what generated it, when). */
  footer: string;
}

/** The whole document. Charts are drawn only when there are any (the page stays small otherwise). */
export function renderPage(p: PageInput): string {
  const scripts: string[] = [];
  let scriptTags: Html = html``;
  if (p.charts.length > 0) {
    const { js, css } = uplotAssets();
    scripts.push(js, CHART_SCRIPT);
    scriptTags = html`<style>${trusted(css)}</style>
<script type="application/json" id="report-charts">${scriptJson(p.charts.map(chartData))}</script>
<script>${trusted(js)}</script>
<script>${trusted(CHART_SCRIPT)}</script>`;
  }
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src ${
    scripts.length ? scripts.map(sha256).join(' ') : "'none'"
  }; base-uri 'none'; form-action 'self'`;
  return `<!doctype html>
${
  html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="referrer" content="no-referrer">
<title>${p.title}</title>
<style>${trusted(STYLE)}</style>
</head>
<body>
${p.nav ? html`<nav class="page" aria-label="Pages">${p.nav}</nav>` : ''}
<header class="page"><h1>${p.title}</h1>${p.subtitle ? html`<p class="muted">${p.subtitle}</p>` : ''}</header>
<main>
${p.body}
</main>
<footer class="page">${p.footer}</footer>
${scriptTags}
</body>
</html>`.text
}
`;
}
