// A reflector listening on the wildcard address of a host with two addresses answers each probe
// from the address the probe was sent to (IP_PKTINFO / IPV6_PKTINFO on the native sockets). The
// data-centre namespace gets a second address; the probe is sent to it; the router's nftables
// counters (the truth) count the replies by their source address. A connected probe socket drops
// replies from any other address, so without this the probe sees 100 % reverse loss — which the
// dgram fallback shows, proving the setup can tell the difference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AS_NOBODY,
  cliUnavailableReason,
  killAllCli,
  probeJson,
  type ReflectorProcess,
  startReflector,
} from '../helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  DC_ADDR6,
  HOST_IFACE,
  netnsUnavailableReason,
  run,
  type Topology,
} from '../helpers/netns.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
/** The data centre's second address on the same interface (the kernel's choice stays DC_ADDR). */
const SECOND = '198.18.2.3';
const SECOND6 = '2001:db8:2::3';
const V4_PORT = 5004;
const V6_PORT = 6004;
const CALLS = 2;

/** Router counters of replies (UDP from the reflector's ports) by source address. */
function replyCounters(port: number) {
  const sport = `udp sport { ${port}, ${port + 1} }`;
  return {
    counters: ['from_second', 'from_primary', 'from_second6', 'from_primary6'],
    forward: [
      `ip saddr ${SECOND} ${sport} counter name "from_second"`,
      `ip saddr ${DC_ADDR} ${sport} counter name "from_primary"`,
      `ip6 saddr ${SECOND6} ${sport} counter name "from_second6"`,
      `ip6 saddr ${DC_ADDR6} ${sport} counter name "from_primary6"`,
    ],
  };
}

describe.skipIf(unavailable !== undefined)(
  `a wildcard reflector answers from the address it was asked on ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology;
    let any4: ReflectorProcess;
    let any6: ReflectorProcess;

    beforeAll(async () => {
      topo = await createTopology();
      await run('ip', ['-n', topo.dc, 'addr', 'add', `${SECOND}/24`, 'dev', HOST_IFACE]);
      await run('ip', ['-n', topo.dc, 'addr', 'add', `${SECOND6}/64`, 'dev', HOST_IFACE, 'nodad']);
      any4 = await startReflector(`0.0.0.0:${V4_PORT}`, { ns: topo.dc, wrapper: AS_NOBODY });
      any6 = await startReflector(`[::]:${V6_PORT}`, { ns: topo.dc, wrapper: AS_NOBODY });
    });
    afterAll(async () => {
      await any4?.stop();
      await any6?.stop();
      await killAllCli();
      await topo?.destroy();
    });

    const probe = (peer: string, wrapper = AS_NOBODY) =>
      probeJson(peer, { ns: topo.site, wrapper, calls: CALLS, durationS: 2 });

    const cases = [
      { name: 'IPv4 to 0.0.0.0', peer: `${SECOND}:${V4_PORT}`, port: V4_PORT, second: 'from_second' },
      { name: 'IPv6 to ::', peer: `[${SECOND6}]:${V6_PORT}`, port: V6_PORT, second: 'from_second6' },
      // A dual-stack :: socket gets IPv4 as IPv4-mapped addresses; the reply's source too.
      {
        name: 'IPv4 to :: (IPv4-mapped)',
        peer: `${SECOND}:${V6_PORT}`,
        port: V6_PORT,
        second: 'from_second',
      },
    ] as const;
    for (const c of cases) {
      it(`${c.name}: every reply leaves from the second address, and the probe takes it`, async () => {
        await topo.impair(replyCounters(c.port));
        const { json } = await probe(c.peer);
        const counters = await topo.counters();
        expect(json.socketPath).toBe('native');
        expect(json.forward.received).toBe(json.forward.sent);
        expect(json.reverse.received).toBe(json.forward.received);
        expect(json.signalling.reverse.received).toBe(json.signalling.forward.received);
        // Replies and summary responses, all from the second address, none from the primary.
        const replies = json.reverse.received + json.signalling.reverse.received;
        expect(counters[c.second]!.packets).toBeGreaterThanOrEqual(replies);
        expect(counters.from_primary!.packets + counters.from_primary6!.packets).toBe(0);
      });
    }

    it('the dgram fallback answers from the kernel’s choice, and the probe loses every reply', async () => {
      const fallback = await startReflector(`0.0.0.0:${V4_PORT + 10}`, {
        ns: topo.dc,
        wrapper: [...AS_NOBODY, 'env', 'VOIPREADY_NATIVE_UDP=0'],
      });
      try {
        await topo.impair(replyCounters(V4_PORT + 10));
        const { json } = await probe(`${SECOND}:${V4_PORT + 10}`);
        const counters = await topo.counters();
        // Every probe was answered (the path loses nothing), from the primary address.
        expect(json.reverse.received).toBe(0);
        expect(counters.from_primary!.packets).toBeGreaterThanOrEqual(json.forward.sent);
        expect(counters.from_second!.packets).toBe(0);
      } finally {
        await fallback.stop();
      }
    });
  },
);
