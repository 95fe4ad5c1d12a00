// `voipready collector`: the Fastify service that receives agents' reports, judges them, stores them
// and exports metrics. With no config it runs on the embedded store in the default data directory.
import { parseIntFlag } from '../args.js';
import type { Command, Io } from '../cli.js';
import { formatConfigError, loadConfigFile } from '../config/agent.js';
import {
  type CollectorConfig,
  DEFAULT_COLLECTOR_HOST,
  DEFAULT_COLLECTOR_PORT,
  defaultDataDir,
  parseCollectorConfig,
} from '../config/collector.js';
import { UserError } from '../errors.js';

const USAGE = `Usage: voipready collector [--config FILE] [--host ADDR] [--port N] [--data-dir DIR]
       voipready collector --hash-token < token-file
       voipready collector --new-token
       voipready collector migrate --from-sqlite FILE --config FILE

Receives agents' reports (POST /api/v1/reports), judges each with its site's policy, stores reports
and assessments in SQLite (and measurements in InfluxDB when configured), serves readiness
(GET /api/v1/sites, /api/v1/sites/SITE/readiness, /api/v1/assessments/ID) and Prometheus /metrics.

Options:
  --config FILE    collector.yaml (top-level "collector:" key; see docs/collector.md).
                   Without it: DATA-DIR/collector.yaml, written on the first start with an agent
                   "agent-1" for site "site-1" and a viewer, tokens in files beside it.
  --host ADDR      listen address (default: config, else ${DEFAULT_COLLECTOR_HOST})
  --port N         listen port (default: config, else ${DEFAULT_COLLECTOR_PORT}; 0 picks a free one)
  --data-dir DIR   where the SQLite store lives (default: config, else /var/lib/voipready as root,
                   else $XDG_DATA_HOME/voipready or ~/.local/share/voipready)
  --hash-token     read a token on stdin, print the "sha256:..." hash to put in the config
  --new-token      print a new random token and its hash

migrate --from-sqlite FILE   copy an embedded store (FILE is DATA-DIR/voipready.sqlite; stop its
                   collector first) into the PostgreSQL store --config names: reports, assessments,
                   the InfluxDB outbox, cases and cutovers; prints a count per table. Running it
                   again copies nothing twice. Exit 1 when a report id is in PostgreSQL with other
                   content (PostgreSQL's row kept).

Stops gracefully on SIGTERM/SIGINT: stops accepting, finishes in-flight requests, closes the store.
Exit codes: 0 stopped cleanly, 2 error (bad config, port in use, unusable data directory).`;

async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

async function loadConfig(file: string): Promise<CollectorConfig> {
  const result = await loadConfigFile(file, parseCollectorConfig);
  if (!result.ok) {
    const more =
      result.errors.length > 1 ? ` (and ${result.errors.length - 1} more; see voipready config check)` : '';
    throw new UserError(`${formatConfigError(result.errors[0]!)}${more}`);
  }
  return result.config;
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export const command: Command = {
  usage: USAGE,
  options: {
    config: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'data-dir': { type: 'string' },
    'hash-token': { type: 'boolean' },
    'new-token': { type: 'boolean' },
    'from-sqlite': { type: 'string' },
  },
  positionals: true,
  async run(values, positionals, io: Io) {
    if (positionals.length > 0) {
      if (positionals[0] !== 'migrate' || positionals.length > 1)
        throw new UserError(`unexpected argument "${positionals[positionals[0] === 'migrate' ? 1 : 0]}"`);
      const { runMigrate } = await import('./collector-migrate.js');
      return runMigrate(
        values['from-sqlite'] as string | undefined,
        values.config as string | undefined,
        loadConfig,
        io,
      );
    }
    if (values['from-sqlite'] !== undefined)
      throw new UserError('--from-sqlite belongs to collector migrate');
    const { hashToken, newToken } = await import('../../collector/auth.js');
    if (values['new-token']) {
      const token = newToken();
      io.stdout.write(`token: ${token}\ntokenHash: ${hashToken(token)}\n`);
      return 0;
    }
    if (values['hash-token']) {
      const token = (await readStdin(process.stdin)).trim();
      if (token.length < 16)
        throw new UserError('the token on stdin is shorter than 16 characters; use --new-token');
      io.stdout.write(`${hashToken(token)}\n`);
      return 0;
    }
    const configFile = values.config as string | undefined;
    const isRoot = process.getuid?.() === 0;
    let config: CollectorConfig;
    let dataDir: string;
    if (configFile !== undefined) {
      config = await loadConfig(configFile);
      dataDir =
        (values['data-dir'] as string | undefined) ?? config.dataDir ?? defaultDataDir(io.env, isRoot);
    } else {
      // No --config: the configuration lives in the data directory, written on the first start.
      dataDir = (values['data-dir'] as string | undefined) ?? defaultDataDir(io.env, isRoot);
      const { ensureDataDirConfig } = await import('../../collector/first-start.js');
      let first: ReturnType<typeof ensureDataDirConfig>;
      try {
        first = ensureDataDirConfig(dataDir);
      } catch (err) {
        throw new UserError(`cannot set up ${dataDir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
      if (first.created) {
        io.stdout.write(
          `first start: wrote ${first.file} with agent "agent-1" for site "site-1" (token in ${first.created.agentTokenFile}) a viewer (token in ${first.created.viewerTokenFile}) and a support engineer (token in ${first.created.supportTokenFile})\n`,
        );
      }
      config = await loadConfig(first.file);
    }
    const host = (values.host as string | undefined) ?? config.listen.host;
    const port =
      values.port !== undefined
        ? parseIntFlag(values.port as string, '--port', 0, 65535)
        : config.listen.port;
    const logLevel = io.env.VOIPREADY_LOG_LEVEL ?? 'warn';
    const { isLogLevel, lineLogger } = await import('../../collector/log.js');
    if (!isLogLevel(logLevel)) {
      throw new UserError(
        `VOIPREADY_LOG_LEVEL "${logLevel}" is not one of trace, debug, info, warn, error, fatal, silent`,
      );
    }
    const { redactUrl, startCollector } = await import('../../collector/server.js');
    // Handlers first: a SIGTERM right after the "listening" line must still shut down gracefully.
    const signalled = waitForSignal();
    const running = await startCollector({
      config,
      dataDir,
      host,
      port,
      logger: lineLogger(logLevel, io.stdout),
    });
    const storeName =
      config.store.kind === 'postgres' ? `PostgreSQL ${redactUrl(config.store.url)}` : 'SQLite';
    const sinks = config.influxdb
      ? `${storeName} + InfluxDB ${config.influxdb.url}/${config.influxdb.database}`
      : storeName;
    io.stdout.write(
      `voipready collector listening on ${running.url} (data ${dataDir}, ${sinks}, ${config.agents.length} agent(s), reads ${config.reads === 'open' ? 'open' : 'need a viewer token'})\n`,
    );
    if (config.agents.length === 0) {
      io.stdout.write('no agents configured: every report will get 401 (see docs/collector.md to add one)\n');
    }
    const signal = await signalled;
    io.stdout.write(`${signal}: finishing in-flight requests and closing\n`);
    await running.close();
    return 0;
  },
};
