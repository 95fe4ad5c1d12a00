// `voipready agent --config agent.yaml`: the long-running site agent (see agent/service/agent.ts).
import { readFile } from 'node:fs/promises';
import { readSecretFile } from '../../agent/net/secret-file.js';
import { startAgent } from '../../agent/service/agent.js';
import { systemClock } from '../../agent/service/clock.js';
import { jsonLog, type Level } from '../../agent/service/log.js';
import { postReport } from '../../agent/uplink/post-report.js';
import type { Command } from '../cli.js';
import { formatConfigError, loadConfigFile, parseAgentConfig } from '../config/agent.js';
import { UserError } from '../errors.js';
import { DEFAULT_MAX_HOPS, resolveTraceAddress } from './trace.js';

const USAGE = `Usage: voipready agent --config agent.yaml [--log-level info]

Runs forever: probes each configured peer on its interval, stores every report in the on-disk queue
and sends it to the collector; a report leaves the queue only when the collector acknowledged it.
SIGTERM or SIGINT stops it (a probe in progress finishes and is queued first; a second signal exits
at once). Logs one JSON object per line on stderr.

Options:
  --config FILE       agent configuration (YAML; check it with: voipready config check FILE)
  --log-level LEVEL   debug, info (default), warn or error

Exit codes: 0 stopped by a signal, 2 bad configuration or unreadable file.`;

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** The collector token: the file's text without a trailing newline (as `echo token > file` leaves it). */
async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read token file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.length === 0) throw new UserError(`token file ${file} is empty`);
  return token;
}

export const command: Command = {
  usage: USAGE,
  options: {
    config: { type: 'string', short: 'c' },
    'log-level': { type: 'string' },
  },
  async run(values, _positionals, io) {
    const file = values.config as string | undefined;
    if (!file) throw new UserError('--config FILE is required');
    const level = (values['log-level'] as string | undefined) ?? 'info';
    if (!(LEVELS as readonly string[]).includes(level)) {
      throw new UserError(`--log-level must be one of ${LEVELS.join(', ')}`);
    }
    const parsed = await loadConfigFile(file, parseAgentConfig);
    if (!parsed.ok) {
      for (const e of parsed.errors) io.stderr.write(`${formatConfigError(e)}\n`);
      return 2;
    }
    const config = parsed.config.agent;
    const token = config.collector.tokenFile
      ? await readTokenFile(config.collector.tokenFile)
      : config.collector.token!;
    // The same reading as the reflector's and the probe's --secret-file.
    const secrets = config.probes.map((p) => (p.secretFile ? readSecretFile(p.secretFile) : undefined));
    const { runProbe } = await import('../../agent/probe.js');
    const { runSipPing } = await import('../../agent/sip/ping.js');
    const { persistentHostCollector } = await import('../../agent/host/state.js');
    const { systemHostDeps } = await import('../../agent/host/deps.js');
    const { runTrace } = await import('../../agent/trace/trace.js');
    const log = jsonLog(io.stderr, level as Level);
    const target = { url: config.collector.url, token, timeoutMs: config.collector.timeout };
    let agent: Awaited<ReturnType<typeof startAgent>>;
    try {
      agent = await startAgent(config, {
        probe: (request) => runProbe(request),
        sipPing: (request) => runSipPing(request),
        ...(config.autoTrace.enabled
          ? {
              trace: async ({ host, port, dscp, secret }) =>
                runTrace({
                  peer: `${host.includes(':') ? `[${host}]` : host}:${port}`,
                  address: await resolveTraceAddress(host),
                  port,
                  dscp,
                  maxHops: DEFAULT_MAX_HOPS,
                  ...(secret ? { secret } : {}),
                }),
              traceEveryMs: config.autoTrace.every,
            }
          : {}),
        ...(config.host
          ? {
              host: persistentHostCollector(config.host, config.queue.dir, systemHostDeps(), (err) =>
                log('warn', 'host.state-unsaved', `cannot save the host checks' state: ${err.message}`),
              ),
            }
          : {}),
        send: (body) => postReport(target, body),
        clock: systemClock,
        log,
        secrets,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new UserError(
        e.code === 'EBUSY' ? e.message : `cannot open queue ${config.queue.dir}: ${e.code ?? e.message}`,
      );
    }
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log('warn', 'agent.killed', `second ${signal}: exiting now; queued reports stay on disk`);
        process.exit(130);
      }
      log('info', 'agent.stopping', `${signal}: stopping after the probe in progress`);
      void agent.stop();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    await agent.done;
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    return 0;
  },
};
