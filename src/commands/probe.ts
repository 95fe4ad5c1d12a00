// `voipready probe`: measures a path to a reflector with call-shaped RTP and a signalling stream.

import { readSecretFile } from '../../agent/net/secret-file.js';
import type { PriorityTestOptions } from '../../agent/probe/priority.js';
import { MAX_CALLS, runProbe } from '../../agent/probe.js';
import { parseDurationMs, parseIntFlag } from '../args.js';
import type { Command, Io, Values } from '../cli.js';
import { CODEC_NAMES, type CodecName } from '../codecs.js';
import { UserError } from '../errors.js';
import { loadPolicy } from '../policy.js';
import { parseRate } from '../priority.js';
import { renderProbeTable } from '../report/probe-table.js';
import type { ProbeResult } from '../schemas.js';

const USAGE = `Usage: voipready probe --peer HOST:PORT [--signalling-port P] [--codec g711u|g711a|g729|g722|opus]
                       [--calls N] [--duration 30s] [--wait 2s] [--json] [--secret-file F] [--policy F]
                       [--priority-test [--load RATE | --max-load RATE]]

Sends N concurrent call-shaped RTP streams (the codec's payload type, size and packetization, marked
EF) and a CS3-marked signalling stream to a voipready reflector, waits for late packets, then judges
latency, jitter, loss, DSCP per direction and bandwidth against the policy.

  --peer HOST:PORT       the reflector's media address (IPv6 as [ADDR]:PORT)
  --signalling-port P    the reflector's signalling port (default PORT+1)
  --codec C              g711u (default), g711a, g729, g722, opus
  --calls N              concurrent calls (default 1)
  --duration D           how long to send (default 30s; e.g. 500ms, 2m)
  --wait D               how long to wait for late packets after the last send (default 2s)
  --json                 print one JSON document (schema voipready.probe/1, docs/probe.md)
  --secret-file F        authenticate probes with the key in F (the reflector's --secret-file)
  --policy F             thresholds from a YAML/JSON policy file (default: the handbook's)
  --priority-test        also send a best-effort (CS0) twin of every call and, in the middle third of
                         the run, a best-effort load to the reflector that fills the path; judge the
                         priority check (is EF queued first?). The reflector must run with
                         --accept-load. This deliberately congests the link: Ctrl-C stops it.
  --load RATE            the load's rate (e.g. 8mbit, 500kbit; at most 1gbit); default: doubled
                         every 0.5 s from 1mbit until best effort queues, up to --max-load
  --max-load RATE        cap of that stepped load (default 100mbit)

Marking and reading DSCP needs CAP_NET_RAW (root, or setcap cap_net_raw+ep on node); without it the
DSCP checks are unknown and delay, jitter and loss are still measured.
Exit codes: 0 ready, 1 not ready, 2 error.`;

export const PROBE_OPTIONS = {
  calls: { type: 'string' },
  duration: { type: 'string' },
  codec: { type: 'string' },
  json: { type: 'boolean' },
  policy: { type: 'string' },
} as const;

/** Options shared by `probe` and `demo`. */
export function commonProbeOptions(values: Values, defaultDurationMs: number) {
  const codec = (typeof values.codec === 'string' ? values.codec : 'g711u').toLowerCase();
  if (!CODEC_NAMES.includes(codec as CodecName)) {
    throw new UserError(`--codec "${values.codec}" is not one of ${CODEC_NAMES.join(', ')}`);
  }
  return {
    codec: codec as CodecName,
    calls: typeof values.calls === 'string' ? parseIntFlag(values.calls, '--calls', 1, MAX_CALLS) : 1,
    durationMs:
      typeof values.duration === 'string'
        ? parseDurationMs(values.duration, '--duration')
        : defaultDurationMs,
    ...(typeof values.policy === 'string' ? { policy: loadPolicy(values.policy) } : {}),
  };
}

/** A progress bar on stderr, only when stdout is a terminal and the output is not JSON. */
export function progressBar(io: Io, json: boolean): { onProgress?: (f: number) => void; end(): void } {
  if (json || !io.stdout.isTTY) return { end() {} };
  const width = 30;
  return {
    onProgress(f) {
      const filled = Math.round(f * width);
      io.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.round(f * 100)}%`);
    },
    end() {
      io.stderr.write('\r\x1b[K');
    },
  };
}

export function printProbeResult(io: Io, result: ProbeResult, json: boolean): number {
  io.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : renderProbeTable(result));
  return result.ready ? 0 : 1;
}

export const command: Command = {
  usage: USAGE,
  options: {
    ...PROBE_OPTIONS,
    peer: { type: 'string' },
    'signalling-port': { type: 'string' },
    wait: { type: 'string' },
    'secret-file': { type: 'string' },
    'priority-test': { type: 'boolean' },
    load: { type: 'string' },
    'max-load': { type: 'string' },
  },
  async run(values, _positionals, io) {
    if (typeof values.peer !== 'string') throw new UserError('--peer HOST:PORT is required');
    const json = values.json === true;
    const priorityTest = priorityTestOptions(values);
    const bar = progressBar(io, json);
    const result = await runProbe({
      peer: values.peer,
      ...commonProbeOptions(values, 30_000),
      ...(typeof values['signalling-port'] === 'string'
        ? { signallingPort: parseIntFlag(values['signalling-port'], '--signalling-port', 1, 65535) }
        : {}),
      ...(typeof values.wait === 'string' ? { waitMs: parseWaitMs(values.wait) } : {}),
      ...(typeof values['secret-file'] === 'string' ? { secret: readSecretFile(values['secret-file']) } : {}),
      ...(bar.onProgress ? { onProgress: bar.onProgress } : {}),
      ...(priorityTest ? { priorityTest } : {}),
    }).finally(() => bar.end());
    return printProbeResult(io, result, json);
  },
};

/**
 * --priority-test [--load RATE | --max-load RATE]; a refusal by the reflector is a one-line error
 * here. Ctrl-C needs no handler: the process ends, and the load with it.
 */
function priorityTestOptions(values: Values): PriorityTestOptions | undefined {
  const load = typeof values.load === 'string' ? parseRate(values.load, '--load') : undefined;
  const maxLoad =
    typeof values['max-load'] === 'string' ? parseRate(values['max-load'], '--max-load') : undefined;
  if (values['priority-test'] !== true) {
    if (load !== undefined || maxLoad !== undefined)
      throw new UserError('--load and --max-load need --priority-test');
    return undefined;
  }
  if (load !== undefined && maxLoad !== undefined) {
    throw new UserError('--load sets a fixed rate and --max-load caps a stepped one: give one of them');
  }
  return {
    refusalIsError: true,
    ...(load !== undefined ? { loadBps: load } : {}),
    ...(maxLoad !== undefined ? { maxLoadBps: maxLoad } : {}),
  };
}

/** --wait accepts 0 (no wait) as well as a duration. */
function parseWaitMs(text: string): number {
  return /^0+(ms|s)?$/.test(text.trim()) ? 0 : parseDurationMs(text, '--wait');
}
