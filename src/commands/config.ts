// `voipready config check FILE...`: validates agent and collector configuration files (told apart by
// their top-level `agent:` / `collector:` key) and prints every problem as `FILE: key.path: problem`.
import { accessSync, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { Command } from '../cli.js';
import { type ConfigError, formatConfigError, parseAgentConfig } from '../config/agent.js';
import { parseCollectorConfig } from '../config/collector.js';
import { UserError } from '../errors.js';

const USAGE = `Usage: voipready config check FILE...

Validates agent and collector configuration files (YAML). Agent files have a top-level "agent:" key,
collector files a top-level "collector:" key. Every problem is printed as one line,
"FILE: key.path: problem" (YAML syntax errors as "FILE: line:col: problem"); unknown keys are errors.

Exit codes: 0 every file is valid, 2 a file is invalid or unreadable.`;

/** Checks one file's text; returns the summary line when valid, or the errors. */
export function checkConfigText(text: string, file: string): { summary: string } | { errors: ConfigError[] } {
  let top: unknown;
  try {
    top = parseYaml(text, { logLevel: 'silent' });
  } catch {
    // A syntax error: let the parser report it with line and column.
    const r = parseAgentConfig(text, file);
    return r.ok ? { summary: `${file}: ok` } : { errors: r.errors };
  }
  const keys = top !== null && typeof top === 'object' && !Array.isArray(top) ? Object.keys(top) : [];
  if (keys.includes('collector') && !keys.includes('agent')) {
    const r = parseCollectorConfig(text, file);
    if (!r.ok) return { errors: r.errors };
    return {
      summary: `${file}: ok (collector config, ${r.config.agents.length} agent(s), ${r.config.viewers.length} viewer(s))`,
    };
  }
  if (keys.includes('agent')) {
    const r = parseAgentConfig(text, file);
    if (!r.ok) return { errors: r.errors };
    const { collector, probes } = r.config.agent;
    // The agent reads these at start: say now, with the key, if it could not.
    const referenced: [string, string | undefined][] = [
      ['agent.collector.tokenFile', collector.tokenFile],
      ...probes.map((p, i): [string, string | undefined] => [`agent.probes.${i}.secretFile`, p.secretFile]),
    ];
    const errors = referenced.flatMap(([path, target]) => {
      if (target === undefined) return [];
      try {
        accessSync(target, constants.R_OK);
        return [];
      } catch (err) {
        return [{ file, path, message: `cannot read ${target}: ${(err as NodeJS.ErrnoException).code}` }];
      }
    });
    if (errors.length > 0) return { errors };
    return { summary: `${file}: ok (agent config, ${probes.length} probe(s))` };
  }
  return {
    errors: [{ file, path: '(root)', message: 'expected a top-level "agent:" or "collector:" key' }],
  };
}

export const command: Command = {
  usage: USAGE,
  options: {},
  positionals: true,
  async run(_values, positionals, io) {
    const [action, ...files] = positionals;
    if (action !== 'check') {
      throw new UserError(
        action ? `unknown action "${action}" (use: config check FILE...)` : 'usage: config check FILE...',
      );
    }
    if (files.length === 0) throw new UserError('config check needs a FILE');
    let exit = 0;
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        io.stderr.write(
          `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
        );
        exit = 2;
        continue;
      }
      const result = checkConfigText(text, file);
      if ('summary' in result) {
        io.stdout.write(`${result.summary}\n`);
      } else {
        for (const e of result.errors) io.stderr.write(`${formatConfigError(e)}\n`);
        exit = 2;
      }
    }
    return exit;
  },
};
