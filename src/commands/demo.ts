// `voipready demo`: a reflector and a short probe over loopback, in one process, with the embedded
// defaults: shows what the tool measures and the readiness table without any setup.
import { runProbe } from '../../agent/probe.js';
import { startReflector } from '../../agent/reflector.js';
import type { Command } from '../cli.js';
import { commonProbeOptions, PROBE_OPTIONS, printProbeResult, progressBar } from './probe.js';

const USAGE = `Usage: voipready demo [--duration 5s] [--calls N] [--codec C] [--json] [--policy F]

Starts a reflector on 127.0.0.1 (a free port), probes it over loopback with the handbook's
thresholds and prints the readiness table. As an ordinary user the DSCP rows say unknown and why
(marking and reading DSCP needs CAP_NET_RAW).
Exit codes: 0 ready, 1 not ready, 2 error.`;

export const command: Command = {
  usage: USAGE,
  options: PROBE_OPTIONS,
  async run(values, _positionals, io) {
    const json = values.json === true;
    const options = commonProbeOptions(values, 5_000);
    const reflector = await startReflector({ host: '127.0.0.1', port: 0 });
    const bar = progressBar(io, json);
    try {
      const result = await runProbe({
        peer: `127.0.0.1:${reflector.port}`,
        signallingPort: reflector.signallingPort,
        waitMs: 500,
        ...options,
        ...(bar.onProgress ? { onProgress: bar.onProgress } : {}),
      });
      bar.end();
      return printProbeResult(io, result, json);
    } finally {
      await reflector.close();
    }
  },
};
