// Escaping by construction: the html`` template escapes every interpolated value unless it is
// already markup (an Html made by html`` itself), so text from a document (peer names, evidence,
// SIP URIs from a customer's capture) can only ever become text in the page.
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text → HTML text or attribute value (quotes escaped too, so it is safe in either). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function piece(v: Value): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(piece).join('');
  if (v === null || v === undefined || v === false) return '';
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += piece(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Markup this module made itself (never text from a document). */
export const trusted = (text: string): Html => new Html(text);

/**
 * JSON for a `<script type="application/json">` block: `<` is written as \u003c so no string in
 * the data can close the script element or open a comment.
 */
export function scriptJson(data: unknown): Html {
  return new Html(JSON.stringify(data).replace(/</g, '\\u003c'));
}

/** An id-safe slug for anchors. */
export const slug = (text: string): string => text.toLowerCase().replace(/[^a-z0-9]+/g, '-');
