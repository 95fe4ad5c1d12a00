// Plain-text tables for a terminal, shared by the probe, analyze and benchmark reports: columns two
// spaces apart, each as wide as its widest cell (header included), trailing blanks trimmed so the
// last column is never padded.

export interface TableOptions {
  /** Draw a rule of dashes under the header. */
  rule?: boolean;
  /** Indexes of columns aligned right (figures); the others are aligned left. */
  alignRight?: readonly number[];
}

/** The table's lines: the header, the optional rule, then one line per row. */
export function tableLines(
  header: readonly string[],
  rows: readonly string[][],
  options: TableOptions = {},
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const right = new Set(options.alignRight);
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const lines = [line(header)];
  if (options.rule) lines.push(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) lines.push(line(r));
  return lines;
}
