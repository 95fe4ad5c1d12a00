// renderReportHtml(doc): the self-contained HTML assessment report of any document voipready makes
// — a probe result, a capture analysis, an agent report, a collector assessment — or of any
// document that carries handbook checks (host health). Pure: document in, HTML string out. The CLI
// (`voipready report`), the collector's pages and cases all render through it.
import { z } from 'zod';
import { UserError } from '../../errors.js';
import { HOST_SCHEMA, HostResult } from '../../host-schema.js';
import { DEFAULT_POLICY, describeIssues, isReady } from '../../policy.js';
import {
  AgentReport,
  CAPTURE_SCHEMA,
  CaptureResult,
  Check,
  PROBE_SCHEMA,
  ProbeResult,
  REPORT_SCHEMA,
} from '../../schemas.js';
import {
  AssessmentDocument,
  assessmentSections,
  type HistoryPoint,
  historyCharts,
  historyTable,
  type Limits,
} from './assessment.js';
import { captureSections } from './capture.js';
import type { ChartSpec } from './charts.js';
import { chartFigure } from './charts.js';
import { checksTable, verdictBlock } from './checks.js';
import { hostSections } from './host.js';
import { type Html, html } from './markup.js';
import { renderPage } from './page.js';
import { probeSections } from './probe.js';

export type { HistoryPoint } from './assessment.js';
export { historyPoint } from './assessment.js';

export interface ReportOptions {
  /** The site's past assessments (the collector's site page): drawn as history charts. */
  history?: HistoryPoint[];
  /** Link for a past assessment in the history table. */
  historyLink?: (assessmentId: string) => string;
  /**
   * The readiness now, when it differs from the document's own (stale evidence: the collector
   * passes readinessAt's checks, all unknown with the reason).
   */
  current?: { ready: boolean; checks: Check[]; note?: string };
  /** Navigation links (the collector's pages). */
  nav?: Html;
  /** Says what made the page; default "voipready". */
  generator?: string;
  /** ISO time the page was made; default now. */
  generatedAt?: string;
}

/** Any other document with handbook checks (host health): its checks and its verdict. */
const ChecksDocument = z.looseObject({
  schema: z.string().max(100).optional(),
  checks: z.array(Check).min(1),
  ready: z.boolean().optional(),
});

/** The limits the charts draw, from the document's own checks (its policy), else the handbook's. */
function limitsOf(checks: Check[]): Limits {
  const lim = (id: string, fallback: number) => {
    const c = checks.find((k) => k.id === id);
    return c && typeof c.limit === 'number' ? c.limit : fallback;
  };
  return {
    latencyMs: lim('latency', DEFAULT_POLICY.latency.maxMs),
    jitterMs: lim('jitter', DEFAULT_POLICY.jitter.maxMs),
    lossPct: lim('loss', DEFAULT_POLICY.loss.maxPct),
  };
}

interface Rendered {
  title: string;
  subtitle: string;
  subject: string;
  ready: boolean;
  checks: Check[];
  /** One anchor per check when check ids repeat (an agent report's peers). */
  anchors?: string[];
  note?: string;
  readyWord?: string;
  body: Html;
  charts: ChartSpec[];
}

type Kind = 'probe' | 'capture' | 'report' | 'assessment' | 'host' | 'checks';

/** Which kind of document this is, or why it is none voipready reports on. */
export function reportKind(doc: unknown): Kind {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UserError('not a JSON object');
  const o = doc as Record<string, unknown>;
  if (o.schema === PROBE_SCHEMA) return 'probe';
  if (o.schema === CAPTURE_SCHEMA) return 'capture';
  if (o.schema === REPORT_SCHEMA) return 'report';
  if (o.schema === HOST_SCHEMA) return 'host';
  if ('assessmentId' in o && 'measurements' in o) return 'assessment';
  if (Array.isArray(o.checks)) return 'checks';
  throw new UserError(
    `not a voipready document: expected a probe (${PROBE_SCHEMA}), capture (${CAPTURE_SCHEMA}), agent report (${REPORT_SCHEMA}), assessment (GET /api/v1/assessments/:id) or a document with checks`,
  );
}

function parse<T>(schema: z.ZodType<T>, doc: unknown, what: string): T {
  const parsed = schema.safeParse(doc);
  if (!parsed.success) throw new UserError(`invalid ${what}: ${describeIssues(parsed.error).slice(0, 300)}`);
  return parsed.data;
}

function renderProbe(doc: unknown): Rendered {
  const p = parse(ProbeResult, doc, 'probe result');
  const s = probeSections(p, '', 2, limitsOf(p.checks));
  return {
    title: `VoIP readiness: path to ${p.peer}`,
    subtitle: `voipready probe, ${p.calls} × ${p.codec} for ${p.durationS} s${p.startedAt ? `, ${p.startedAt}` : ''}`,
    subject: `path to ${p.peer}`,
    ready: p.ready,
    checks: p.checks,
    ...s,
  };
}

function renderCapture(doc: unknown): Rendered {
  const r = parse(CaptureResult, doc, 'capture analysis');
  const s = captureSections(r, limitsOf(r.checks));
  return {
    title: `VoIP readiness: capture ${r.file}`,
    subtitle: `voipready analyze: ${r.calls.length} call(s), ${r.streams.length} RTP stream(s), ${r.packets} packets`,
    subject: `capture ${r.file}`,
    ready: r.ready,
    checks: r.checks,
    ...(r.ready || r.streams.length > 0
      ? {}
      : { note: 'No audio stream was found: nothing proves the network carries calls.' }),
    ...s,
  };
}

function renderAgentReport(doc: unknown): Rendered {
  const r = parse(AgentReport, doc, 'agent report');
  const parts = r.probes.map((p, i) => ({ p, s: probeSections(p, `peer${i}-`, 3, limitsOf(p.checks)) }));
  // The probes' own checks, worst first: this page shows what the agent judged, not the collector.
  const checks = r.probes.flatMap((p) =>
    p.checks.map((c) => ({ ...c, evidence: `${p.peer}: ${c.evidence}` })),
  );
  const anchors = r.probes.flatMap((p, i) => p.checks.map((c) => `check-peer${i}-${c.id}`));
  return {
    title: `VoIP readiness: site ${r.site}`,
    subtitle: `agent report ${r.reportId} from ${r.agent}, ${r.createdAt} (as the agent judged it)`,
    subject: `site ${r.site}`,
    ready: r.probes.every((p) => p.ready),
    checks,
    anchors,
    body: html`${parts.map(
      ({ p, s }, i) =>
        html`<section aria-labelledby="peer${i}"><h2 id="peer${i}">Path to ${p.peer}</h2>${s.body}</section>`,
    )}`,
    charts: parts.flatMap(({ s }) => s.charts),
  };
}

function renderAssessment(doc: unknown, o: ReportOptions): Rendered {
  const a = parse(AssessmentDocument, doc, 'assessment');
  const limits = limitsOf(a.checks);
  const s = assessmentSections(a, limits);
  const history = o.history ?? [];
  const hCharts = historyCharts(history, limits);
  const historyBody = history.length
    ? html`<h2>History of the site</h2>${hCharts.map(chartFigure)}${historyTable(history, o.historyLink)}`
    : html``;
  return {
    title: `VoIP readiness: site ${a.site}`,
    subtitle: `assessment of ${a.measuredAt} by the collector, agent ${a.agent}`,
    subject: `site ${a.site}`,
    ready: o.current?.ready ?? a.ready,
    checks: o.current?.checks ?? a.checks,
    ...(o.current?.note ? { note: o.current.note } : {}),
    body: html`${historyBody}${s.body}`,
    charts: [...hCharts, ...s.charts],
  };
}

function renderHost(doc: unknown): Rendered {
  const h = parse(HostResult, doc, 'host result');
  return {
    title: `Host health: ${h.host}`,
    subtitle: `voipready host, ${h.collectedAt}`,
    subject: `host ${h.host}`,
    ready: h.ready,
    readyWord: 'healthy',
    checks: h.checks,
    ...hostSections(h),
  };
}

function renderChecks(doc: unknown): Rendered {
  const d = parse(ChecksDocument, doc, 'document');
  const host = typeof d.host === 'string' ? d.host : typeof d.agent === 'string' ? d.agent : null;
  return {
    title: `voipready: ${host ?? d.schema ?? 'checks'}`,
    subtitle: d.schema ? `document ${d.schema}` : 'document with handbook checks',
    subject: host ?? 'these checks',
    ready: d.ready ?? isReady(d.checks),
    readyWord: 'passing',
    checks: d.checks,
    body: html``,
    charts: [],
  };
}

/** The report page of a document; UserError when it is not one voipready reports on. */
export function renderReportHtml(doc: unknown, options: ReportOptions = {}): string {
  const kind = reportKind(doc);
  const r =
    kind === 'probe'
      ? renderProbe(doc)
      : kind === 'capture'
        ? renderCapture(doc)
        : kind === 'report'
          ? renderAgentReport(doc)
          : kind === 'assessment'
            ? renderAssessment(doc, options)
            : kind === 'host'
              ? renderHost(doc)
              : renderChecks(doc);
  const body = html`${verdictBlock({
    ready: r.ready,
    checks: r.checks,
    subject: r.subject,
    ...(r.note ? { note: r.note } : {}),
    anchorPrefix: 'check-',
    ...(r.anchors ? { anchors: r.anchors } : {}),
    ...(r.readyWord ? { readyWord: r.readyWord } : {}),
  })}
<section aria-labelledby="checks-heading"><h2 id="checks-heading">Handbook checks</h2>
${checksTable(r.checks, 'One row per rule of the support handbook: status, measured value, limit, the sentence it enforces, the evidence and what to do', 'check-', r.anchors)}
</section>
${r.body}`;
  return renderPage({
    title: r.title,
    subtitle: r.subtitle,
    ...(options.nav ? { nav: options.nav } : {}),
    body,
    charts: r.charts,
    footer: `Made by ${options.generator ?? 'voipready'} at ${options.generatedAt ?? new Date().toISOString()}. Status words: pass; FAIL; warning (relaxed by policy); not measured (unknown is not a pass).`,
  });
}
