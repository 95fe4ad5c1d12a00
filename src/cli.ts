// The `voipready` command line: a table of commands, each in src/commands/<name>.ts and loaded only
// when used (so `analyze` does not pay for the collector's imports). Exit codes: 0 ready/ok,
// 1 not ready, 2 usage or runtime error (one line; stack only with --debug).
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { errorMessage, UserError } from './errors.js';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  /** Full help text shown by `voipready <command> --help`. */
  usage: string;
  options: Options;
  /** Whether positional arguments are accepted. */
  positionals?: boolean;
  run(values: Values, positionals: string[], io: Io): Promise<number>;
}

interface Entry {
  name: string;
  summary: string;
  load: () => Promise<{ command: Command }>;
}

// Each command module exports `command`; a template path keeps startup to the one module used.
const loadCommand = (name: string) => import(`./commands/${name}.js`) as Promise<{ command: Command }>;

const COMMANDS: Entry[] = [
  {
    name: 'demo',
    summary: 'start a reflector and probe it over loopback; print the readiness table',
    load: () => loadCommand('demo'),
  },
  {
    name: 'reflector',
    summary: 'answer probe packets at the data centre end of a path',
    load: () => loadCommand('reflector'),
  },
  {
    name: 'probe',
    summary: 'measure a path to a reflector with call-shaped RTP and signalling traffic',
    load: () => loadCommand('probe'),
  },
  {
    name: 'sip-ping',
    summary: 'ask a SIP server with OPTIONS: does it answer, how fast, are the marks kept',
    load: () => loadCommand('sip-ping'),
  },
  {
    name: 'trace',
    summary: 'find the hop where a DSCP mark changes: marked UDP probes with rising TTL',
    load: () => loadCommand('trace'),
  },
  {
    name: 'analyze',
    summary: 'judge a pcap/pcapng capture of calls against the policy',
    load: () => loadCommand('analyze'),
  },
  {
    name: 'report',
    summary: 'write the HTML assessment report of a probe, analyze, assessment or host JSON document',
    load: () => loadCommand('report'),
  },
  {
    name: 'host',
    summary: 'check this server once: disk headroom, event log, backups, system performance',
    load: () => loadCommand('host'),
  },
  {
    name: 'agent',
    summary: 'run probes on a schedule and send reports to the collector',
    load: () => loadCommand('agent'),
  },
  {
    name: 'collector',
    summary: 'receive reports, judge them, store them and export metrics',
    load: () => loadCommand('collector'),
  },
  {
    name: 'case',
    summary: 'open, show, list, update and escalate support cases on a collector',
    load: () => loadCommand('case'),
  },
  {
    name: 'cutover',
    summary: 'notify support of a cutover (checklist, 5 business days ahead); list upcoming ones',
    load: () => loadCommand('cutover'),
  },
  {
    name: 'config',
    summary: 'validate an agent or collector configuration file',
    load: () => loadCommand('config'),
  },
];

const GLOBAL_HELP = `voipready — is this site's network VoIP-ready? Measures it, judges it against the support handbook.

Usage: voipready <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

Global options:
  -h, --help     show help (also: voipready <command> --help)
  --version      print the version
  --debug        show stack traces for internal errors

Exit codes: 0 ready / ok, 1 not ready, 2 usage or runtime error.`;

const GLOBAL_OPTIONS: Options = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
};

function parseCommandArgs(cmd: Command, argv: string[]): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...GLOBAL_OPTIONS, ...cmd.options },
      allowPositionals: true,
      strict: true,
    });
    if (!cmd.positionals && positionals.length > 0 && !values.help) {
      throw new UserError(`unexpected argument "${positionals[0]}"`);
    }
    return { values: values as Values, positionals };
  } catch (err) {
    if (err instanceof UserError) throw err;
    // node:util parseArgs errors are usage errors; keep their first line only.
    throw new UserError(
      errorMessage(err)
        .split('\n')[0]!
        .replace(/\. To specify a positional.*$/, ''),
    );
  }
}

export async function main(argv: string[], io: Io = process): Promise<number> {
  const debug = argv.includes('--debug');
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    io.stdout.write(`${GLOBAL_HELP}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    io.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.stderr.write(`voipready: unknown command "${name}" (see voipready --help)\n`);
    return 2;
  }
  try {
    const { command } = await entry.load();
    const { values, positionals } = parseCommandArgs(command, rest);
    if (values.help) {
      io.stdout.write(`${command.usage.trim()}\n`);
      return 0;
    }
    return await command.run(values, positionals, io);
  } catch (err) {
    if (err instanceof UserError || !debug) {
      const msg = errorMessage(err).split('\n')[0];
      io.stderr.write(
        `voipready ${name}: ${msg}${err instanceof UserError ? '' : ' (internal error; rerun with --debug)'}\n`,
      );
    } else {
      io.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    }
    return 2;
  }
}
