// `voipready sip-ping`: does a SIP server answer OPTIONS, how fast, and are the marks kept?
import { runSipPing } from '../../agent/sip/ping.js';
import { parseDurationMs, parseIntFlag } from '../args.js';
import type { Command } from '../cli.js';
import { UserError } from '../errors.js';
import { loadPolicy } from '../policy.js';
import { renderSipTable } from '../report/sip-table.js';
import { DEFAULT_T1_MS, DEFAULT_T2_MS } from '../sip/message.js';
import { MAX_SIP_REQUESTS } from '../sip/schema.js';
import { parseSipTarget } from '../sip/target.js';

const USAGE = `Usage: voipready sip-ping --target sip:HOST[:PORT][;transport=udp|tcp|tls] [--count N] [--interval 1s]
                          [--json] [--policy F] [--t1 500ms] [--t2 4s] [--tls-insecure]

Sends SIP OPTIONS requests (RFC 3261 §11) to a SIP server — an IC server, an SBC, a carrier's proxy —
and reports per request the response code and reason, the time to the response and the
retransmissions needed; over the run the answered share, min/median/p95/max response time and the
codes seen. Requests are marked CS3 over UDP when the agent has CAP_NET_RAW, and the marks the
responses arrive with are read.

  --target URI       sip:HOST[:PORT][;transport=udp|tcp|tls], or sips:HOST[:PORT] (TLS, port 5061)
  --count N          requests to send (default 5, at most ${MAX_SIP_REQUESTS})
  --interval D       time between the starts of two requests (default 1s)
  --json             print one JSON document (schema voipready.sip/1, docs/sip.md)
  --policy F         thresholds from a YAML/JSON policy file (sip.accept, sip.maxResponseMs)
  --t1 D, --t2 D     RFC 3261 timers (default ${DEFAULT_T1_MS}ms and ${DEFAULT_T2_MS / 1000}s): UDP retransmits after
                     T1, 2·T1, … up to T2 apart and gives a request up after Timer F = 64·T1
  --tls-insecure     do not verify the TLS server's certificate (self-signed SBCs)

Exit codes: 0 ready, 1 not ready (no or unaccepted answer, too slow, marks rewritten or unknown), 2 error.`;

export const command: Command = {
  usage: USAGE,
  options: {
    target: { type: 'string' },
    count: { type: 'string' },
    interval: { type: 'string' },
    json: { type: 'boolean' },
    policy: { type: 'string' },
    t1: { type: 'string' },
    t2: { type: 'string' },
    'tls-insecure': { type: 'boolean' },
  },
  async run(values, _positionals, io) {
    if (typeof values.target !== 'string') throw new UserError('--target sip:HOST[:PORT] is required');
    const target = parseSipTarget(values.target).uri;
    const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
    const t1 = str('t1');
    const t2 = str('t2');
    const result = await runSipPing({
      target,
      count: str('count') !== undefined ? parseIntFlag(str('count')!, '--count', 1, MAX_SIP_REQUESTS) : 5,
      intervalMs: str('interval') !== undefined ? parseDurationMs(str('interval')!, '--interval') : 1000,
      ...(t1 !== undefined ? { t1Ms: parseDurationMs(t1, '--t1') } : {}),
      ...(t2 !== undefined ? { t2Ms: parseDurationMs(t2, '--t2') } : {}),
      tlsVerify: values['tls-insecure'] !== true,
      ...(str('policy') !== undefined ? { policy: loadPolicy(str('policy')!) } : {}),
    });
    const json = values.json === true;
    io.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : renderSipTable(result));
    return result.ready ? 0 : 1;
  },
};
