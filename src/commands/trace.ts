// `voipready trace`: where on the path does the DSCP mark change?
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { readSecretFile } from '../../agent/net/secret-file.js';
import { canonicalIp6 } from '../../agent/trace/icmp.js';
import { runTrace } from '../../agent/trace/trace.js';
import { parseHostPort, parseIntFlag } from '../args.js';
import type { Command } from '../cli.js';
import { parseDscp } from '../dscp.js';
import { UserError } from '../errors.js';
import { renderTraceTable } from '../report/trace-table.js';
import { DEFAULT_TRACE_PORT, MAX_TRACE_HOPS } from '../trace-schema.js';

export const DEFAULT_MAX_HOPS = 30;

const USAGE = `Usage: voipready trace --peer HOST[:PORT] [--dscp EF|CS3|AF41|<n>] [--max-hops 30] [--json]
                       [--secret-file F]

Sends UDP probes marked with the DSCP to the peer with rising TTL (IPv6: Hop Limit). Each router's
ICMP Time Exceeded and the peer's Port Unreachable quote the IP header as that hop received it (a
voipready reflector on the port reports the mark on arrival instead): the trace shows, hop by hop,
the address, the round-trip time and the mark the hop saw, and names the first hop that saw a
changed mark. Silent hops are shown; each hop gets a retry, probes are paced for ICMP rate limits.
Needs CAP_NET_RAW (root or setcap); without it the result is unknown.

  --peer HOST[:PORT]  the far end ([v6]:PORT); PORT defaults to ${DEFAULT_TRACE_PORT}, where nothing
                      should listen, or give a voipready reflector's media or signalling port
  --dscp D            the mark to send: a name (EF, CS3, AF41, ...) or 0..63 (default EF)
  --max-hops N        highest TTL to try (default ${DEFAULT_MAX_HOPS}, at most ${MAX_TRACE_HOPS})
  --json              print one JSON document (schema voipready.trace/1, docs/trace.md)
  --secret-file F     the reflector's shared secret (its --secret-file), when tracing to one that has it

Exit codes: 0 mark kept to the peer, 1 mark changed or not measured (unknown), 2 error.`;

/** The peer's address; IPv6 in canonical text, so ICMP senders compare equal to it. */
export async function resolveTraceAddress(host: string): Promise<string> {
  let address = host;
  if (!isIP(host)) {
    const found = await lookup(host).catch(() => undefined);
    if (!found) throw new UserError(`--peer: cannot resolve "${host}"`);
    address = found.address;
  }
  if (isIP(address) !== 6) return address;
  if (address.includes('%'))
    throw new UserError(`--peer: link-local addresses with a zone (${address}) are not traced`);
  return canonicalIp6(address);
}

export const command: Command = {
  usage: USAGE,
  options: {
    peer: { type: 'string' },
    dscp: { type: 'string' },
    'max-hops': { type: 'string' },
    json: { type: 'boolean' },
    'secret-file': { type: 'string' },
  },
  async run(values, _positionals, io) {
    if (typeof values.peer !== 'string') throw new UserError('--peer HOST[:PORT] is required');
    const { host, port } = parseHostPort(values.peer, '--peer', DEFAULT_TRACE_PORT);
    let dscp = 46;
    if (typeof values.dscp === 'string') {
      try {
        dscp = parseDscp(values.dscp);
      } catch (err) {
        throw new UserError(`--dscp: ${(err as Error).message}`);
      }
    }
    const maxHopsText = values['max-hops'];
    const maxHops =
      typeof maxHopsText === 'string'
        ? parseIntFlag(maxHopsText, '--max-hops', 1, MAX_TRACE_HOPS)
        : DEFAULT_MAX_HOPS;
    const address = await resolveTraceAddress(host);
    const secretFile = values['secret-file'];
    const secret = typeof secretFile === 'string' ? readSecretFile(secretFile) : undefined;
    const result = await runTrace({
      peer: values.peer,
      address,
      port,
      dscp,
      maxHops,
      ...(secret ? { secret } : {}),
    });
    io.stdout.write(values.json === true ? `${JSON.stringify(result, null, 2)}\n` : renderTraceTable(result));
    return result.outcome === 'kept' ? 0 : 1;
  },
};
