// Reading a posted report: bounds on the document's shape first (cheap, iterative), then the schema
// one probe result at a time, stopping at the first probe with problems, then the evidence's
// internal consistency. The work and the answer stay small whatever arrives within the body limit:
// a 1 MB body of 340,000 empty objects or 4,000 levels of nesting is refused before zod sees it.
import { z } from 'zod';
import { type Inconsistency, reportInconsistencies } from '../src/evidence-consistency.js';
import { type JsonBounds, jsonBoundsProblem } from '../src/json-bounds.js';
import { AgentReport, MAX_REPORT_PROBES, ProbeResult } from '../src/schemas.js';

/** Generous for any report (streams ≤ 500 per direction); applies to pass-through keys too. */
export const REPORT_JSON_BOUNDS: JsonBounds = { maxDepth: 32, maxArrayLength: 4096, maxObjectKeys: 1024 };

/** Issues listed in a 400 answer; the answer says how many more there were. */
export const MAX_ISSUES_SHOWN = 20;

export interface InputIssue {
  path: string;
  message: string;
  /** For inconsistent evidence: every field that disagrees. */
  fields?: string[];
}

export type ReportInput =
  | { ok: true; report: AgentReport }
  | { ok: false; error: 'invalid report' | 'inconsistent report'; message: string; issues: InputIssue[] };

/** The report's own keys, its probes not yet looked into. */
const Envelope = AgentReport.extend({ probes: z.array(z.unknown()).max(MAX_REPORT_PROBES) });

const zodIssues = (issues: z.core.$ZodIssue[], prefix: (string | number)[] = []): InputIssue[] =>
  issues.map((i) => ({ path: [...prefix, ...i.path].join('.'), message: i.message }));

const INVALID = 'the body is not a valid voipready.report/1 document';

export function readReport(body: unknown): ReportInput {
  const shape = jsonBoundsProblem(body, REPORT_JSON_BOUNDS);
  if (shape) return { ok: false, error: 'invalid report', message: INVALID, issues: [shape] };
  const envelope = Envelope.safeParse(body);
  const issues = envelope.success ? [] : zodIssues(envelope.error.issues);
  // The probes are checked even when the envelope is not, if they are a list of the allowed length.
  const raw = envelope.success ? envelope.data.probes : (body as { probes?: unknown } | null)?.probes;
  const rawProbes = Array.isArray(raw) && raw.length <= MAX_REPORT_PROBES ? raw : [];
  const probes: ProbeResult[] = [];
  let message = INVALID;
  for (const [i, item] of rawProbes.entries()) {
    const probe = ProbeResult.safeParse(item);
    if (!probe.success) {
      issues.push(...zodIssues(probe.error.issues, ['probes', i]));
      const more = rawProbes.length - i - 1;
      if (more > 0) message = `${INVALID} (the ${more} probe results after probes.${i} were not checked)`;
      break;
    }
    probes.push(probe.data);
  }
  if (!envelope.success || issues.length > 0) {
    return { ok: false, error: 'invalid report', message, issues };
  }
  const report: AgentReport = { ...envelope.data, probes };
  const inconsistent = reportInconsistencies(report);
  if (inconsistent.length > 0) {
    const first = inconsistent[0]!;
    return {
      ok: false,
      error: 'inconsistent report',
      message: `the report's evidence contradicts itself: ${first.fields.join(', ')}: ${first.message}`,
      issues: inconsistent.map((i: Inconsistency) => ({
        path: i.fields[0]!,
        message: i.message,
        fields: i.fields,
      })),
    };
  }
  return { ok: true, report };
}

/** A 400 answer's body: at most MAX_ISSUES_SHOWN issues, and how many there were. */
export function issuesAnswer(issues: InputIssue[]): { issues: InputIssue[]; issueCount: number } {
  return { issues: issues.slice(0, MAX_ISSUES_SHOWN), issueCount: issues.length };
}
