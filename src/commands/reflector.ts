// `voipready reflector`: answers probe packets until SIGINT/SIGTERM.

import { readSecretFile } from '../../agent/net/secret-file.js';
import { startReflector } from '../../agent/reflector.js';
import { parseDurationMs, parseHostPort, parseIntFlag } from '../args.js';
import type { Command } from '../cli.js';
import { UserError } from '../errors.js';

const USAGE = `Usage: voipready reflector --listen ADDR:PORT [--signalling-port P] [--secret-file F]
                          [--freshness D] [--accept-load] [--json-log]

Answers voipready probe packets (docs/probe.md): for each it records the arrival time, the sender's
sequence and the DSCP on arrival, and replies with a packet of the same size carrying those facts,
marked with the class the sender asked for. Runs until SIGINT or SIGTERM.

  --listen ADDR:PORT     address and media port to listen on (0.0.0.0, ::, or an address of this host;
                         IPv6 as [ADDR]:PORT)
  --signalling-port P    signalling port (default PORT+1)
  --secret-file F        answer only probes authenticated with the key in F (HMAC-SHA256)
  --freshness D          with a secret: refuse probes sent more than D from this host's clock
                         (default 5m; agents' and this host's clocks must agree that closely)
  --accept-load          accept the best-effort load of \`voipready probe --priority-test\`: count it
                         and discard it unanswered (with --secret-file: authenticated load only);
                         without this flag load requests are refused
  --json-log             log events as JSON lines on stderr

Reading and setting DSCP needs CAP_NET_RAW (root, or setcap cap_net_raw+ep on node).
Exit codes: 0 stopped by a signal, 2 error (port in use, bad address).`;

export const command: Command = {
  usage: USAGE,
  options: {
    listen: { type: 'string' },
    'signalling-port': { type: 'string' },
    'secret-file': { type: 'string' },
    freshness: { type: 'string' },
    'accept-load': { type: 'boolean' },
    'json-log': { type: 'boolean' },
  },
  async run(values, _positionals, io) {
    if (typeof values.listen !== 'string') throw new UserError('--listen ADDR:PORT is required');
    const { host, port } = parseHostPort(values.listen, '--listen', undefined, true);
    const signallingPort =
      typeof values['signalling-port'] === 'string'
        ? parseIntFlag(values['signalling-port'], '--signalling-port', 1, 65535)
        : undefined;
    const secret =
      typeof values['secret-file'] === 'string' ? readSecretFile(values['secret-file']) : undefined;
    const freshnessMs =
      typeof values.freshness === 'string' ? parseDurationMs(values.freshness, '--freshness') : undefined;
    if (freshnessMs !== undefined && !(freshnessMs >= 1000 && freshnessMs <= 86_400_000)) {
      throw new UserError('--freshness must be between 1s and 24h');
    }
    const jsonLog = values['json-log'] === true;
    const reflector = await startReflector({
      host,
      port,
      ...(signallingPort !== undefined ? { signallingPort } : {}),
      ...(secret ? { secret } : {}),
      freshnessMs,
      acceptLoad: values['accept-load'] === true,
      ...(jsonLog
        ? {
            log: (e: Record<string, unknown>) =>
              io.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`),
          }
        : {}),
    });
    const fmt = (h: string, p: number) => `${h.includes(':') ? `[${h}]` : h}:${p}`;
    io.stderr.write(
      `reflector listening on ${fmt(host, reflector.port)} (media), ${fmt(host, reflector.signallingPort)} (signalling); ` +
        `DSCP readable: ${reflector.dscpReadable ? 'yes' : `no (${reflector.dscpUnknownReason})`}; ` +
        `sockets: ${reflector.socketPath === 'native' ? 'native (kernel receive times)' : 'dgram'}` +
        `${values['accept-load'] === true ? '; accepting load (--priority-test)' : ''}\n`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await reflector.close();
    const s = reflector.stats();
    if (!jsonLog) {
      io.stderr.write(
        `reflector stopped: ${s.received} received, ${s.replied} replied, ${s.summaries} summaries, ` +
          `${s.evicted} streams evicted, ` +
          (s.load.requests > 0
            ? `load ${s.load.packets} datagrams (${s.load.bytes} bytes) discarded, `
            : '') +
          `rejected ${
            Object.entries(s.rejected)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${k} ${n}`)
              .join(', ') || 'none'
          }\n`,
      );
    }
    return 0;
  },
};
