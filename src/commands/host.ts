// `voipready host`: one host-health collection now (as `telegraf --once`), judged against the policy.
import { collectHost, newHostState } from '../../agent/host/collect.js';
import { systemHostDeps } from '../../agent/host/deps.js';
import { readEventsFile } from '../../agent/host/eventlog.js';
import type { Command } from '../cli.js';
import { formatConfigError, loadConfigFile, parseAgentConfig } from '../config/agent.js';
import { BackupConfig, DEFAULT_HOST_CONFIG, type HostConfig } from '../config/host.js';
import { UserError } from '../errors.js';
import { describeIssues, loadPolicy } from '../policy.js';
import { renderHostTable } from '../report/host-table.js';

const USAGE = `Usage: voipready host [--config agent.yaml] [--json] [--policy F]
                      [--path P]... [--backup GLOB]... [--events FILE]

Collects host health once: free disk per path (with a days-to-full forecast where there is history),
critical and error events in the system event log since the configured window, the age of the newest
backup, CPU, memory, swap and load; judges them against the policy's disk, eventlog, backup (and
system) rules.

  --config FILE    the agent's configuration; its host: section says what to collect
  --path P         a path whose filesystem to measure (repeatable; replaces the configured paths;
                   default: every local mounted filesystem)
  --backup GLOB    an absolute glob whose newest file is the last backup (repeatable; added to the
                   configured backups)
  --events FILE    judge an exported event log instead of this host's: \`wevtutil qe LOG /f:xml\` or
                   /f:RenderedXml output, or \`journalctl -o json\` lines (told apart by content)
  --json           print one JSON document (schema voipready.host/1, docs/host.md)
  --policy F       thresholds from a YAML/JSON policy file (default: the handbook's)

Exit codes: 0 ready, 1 not ready, 2 error.`;

async function hostConfig(
  file: string | undefined,
  io: Parameters<Command['run']>[2],
): Promise<HostConfig | number> {
  if (!file) return structuredClone(DEFAULT_HOST_CONFIG);
  const parsed = await loadConfigFile(file, parseAgentConfig);
  if (!parsed.ok) {
    for (const e of parsed.errors) io.stderr.write(`${formatConfigError(e)}\n`);
    return 2;
  }
  return parsed.config.agent.host ?? structuredClone(DEFAULT_HOST_CONFIG);
}

const list = (v: unknown): string[] =>
  Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];

export const command: Command = {
  usage: USAGE,
  options: {
    config: { type: 'string', short: 'c' },
    json: { type: 'boolean' },
    policy: { type: 'string' },
    path: { type: 'string', multiple: true },
    backup: { type: 'string', multiple: true },
    events: { type: 'string' },
  },
  async run(values, _positionals, io) {
    const config = await hostConfig(values.config as string | undefined, io);
    if (typeof config === 'number') return config;
    const paths = list(values.path);
    if (paths.length > 0) config.disk.paths = paths;
    for (const glob of list(values.backup)) {
      const b = BackupConfig.safeParse({ glob });
      if (!b.success)
        throw new UserError(`--backup ${glob}: ${describeIssues(b.error).replace(/^glob: /, '')}`);
      config.backups.push(b.data);
    }
    const policy = typeof values.policy === 'string' ? loadPolicy(values.policy) : undefined;
    const deps = systemHostDeps();
    const eventlog =
      typeof values.events === 'string'
        ? await readEventsFile(values.events, config.eventlog, deps)
        : undefined;
    if (eventlog?.warning) io.stderr.write(`voipready host: warning: ${eventlog.warning}\n`);
    const result = await collectHost(
      { config, ...(policy ? { policy } : {}), ...(eventlog ? { eventlog } : {}) },
      deps,
      newHostState(),
    );
    io.stdout.write(values.json === true ? `${JSON.stringify(result, null, 2)}\n` : renderHostTable(result));
    return result.ready ? 0 : 1;
  },
};
