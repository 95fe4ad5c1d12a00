// Small formatting helpers shared by the report's sections.
import { dscpName } from '../../dscp.js';
import type { DscpCounts } from '../../schemas.js';
import { type Html, html } from './markup.js';

/** A number with at most `digits` decimals, or a dash. */
export function num(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return String(Math.round(v * 10 ** digits) / 10 ** digits);
}

export const withUnit = (v: number | null | undefined, unit: string, digits = 2): string =>
  v === null || v === undefined ? '—' : `${num(v, digits)} ${unit}`;

/** "EF×480 CS0×20", most frequent first. */
export function marksText(counts: DscpCounts | Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? '—' : entries.map(([d, n]) => `${dscpName(Number(d))}×${n}`).join(' ');
}

/** A definition list of facts; rows with no value are left out. */
export function facts(rows: [string, string | Html | null | undefined][]): Html {
  const kept = rows.filter(([, v]) => v !== null && v !== undefined && v !== '');
  return html`<dl class="facts">${kept.map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === 'string' ? foldText(v) : (v ?? '')}</dd>`)}</dl>`;
}

/** Age as "3 min", "2 h 5 min", "4 d". */
export function ageText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} d`;
}

/** Text past this many characters is folded: the page stays readable, nothing is dropped. */
const FOLD_CHARS = 600;

/** Long text (evidence, a capture's SIP URIs) shows its start, the whole on demand. */
export function foldText(text: string): Html | string {
  if (text.length <= FOLD_CHARS) return text;
  return html`${text.slice(0, FOLD_CHARS)}… <details class="fold"><summary>all ${text.length} characters</summary>${text}</details>`;
}
