// `voipready report FILE [-o report.html]`: the self-contained HTML report of a probe, analyze,
// agent-report, assessment or host JSON document.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from '../cli.js';
import { UserError } from '../errors.js';
import { renderReportHtml } from '../report/html/index.js';

const USAGE = `Usage: voipready report FILE|- [-o report.html]

Writes the HTML assessment report of a voipready JSON document: the output of \`probe --json\`,
\`analyze --json\`, an agent report, an assessment from the collector (GET /api/v1/assessments/:id)
or any document with handbook checks (host health). One self-contained page: the verdict first,
one row per handbook check with the evidence and what to do, per-direction tables, the DSCP
picture, MOS, codec sizing and charts. It opens from a file, needs no network, and prints to PDF.

Options:
  -o, --output FILE   where to write the page (default: standard output)

Exit codes: 0 written, 2 unreadable or unknown document.`;

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

export const command: Command = {
  usage: USAGE,
  options: { output: { type: 'string', short: 'o' } },
  positionals: true,
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UserError('needs exactly one FILE (or - for stdin)');
    const file = positionals[0]!;
    let doc: unknown;
    try {
      doc = JSON.parse(readInput(file));
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError(`${file} is not JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    const page = renderReportHtml(doc, { generator: 'voipready report' });
    const out = values.output;
    if (typeof out === 'string') {
      try {
        writeFileSync(out, page);
      } catch (err) {
        throw new UserError(`cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
      io.stderr.write(`report written to ${out} (${Buffer.byteLength(page)} bytes)\n`);
    } else io.stdout.write(page);
    return 0;
  },
};
