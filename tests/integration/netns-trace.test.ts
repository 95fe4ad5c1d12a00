// `voipready trace` over a real chain of three forwarding routers in network namespaces: the hop
// where nftables rewrites the mark is named, a router whose ICMP is dropped shows silent while the
// trace still reaches the peer, and without CAP_NET_RAW the result is unknown, never a guess.
// Ground truth: the routers' own nft counters and the addresses the chain was built with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TraceResult } from '../../src/trace-schema.js';
import { cliUnavailableReason, killAllCli, runCli } from '../helpers/cli.js';
import { netnsUnavailableReason } from '../helpers/netns.js';
import { type Chain, createChain } from '../helpers/netns-chain.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const DROP_NET_RAW = ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw', '--'];
const TABLE = 'trace_test';

async function trace(chain: Chain, args: string[], wrapper: string[] = []) {
  const run = await runCli(['trace', '--peer', chain.dcAddr, '--max-hops', '8', '--json', ...args], {
    ns: chain.site,
    wrapper,
    timeoutMs: 50_000,
  });
  expect(run.stderr).toBe('');
  return { code: run.code, json: TraceResult.parse(JSON.parse(run.stdout)) };
}

describe.skipIf(unavailable !== undefined)(
  `voipready trace through three routers ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let chain: Chain;
    beforeAll(async () => {
      chain = await createChain(3);
    });
    afterAll(async () => {
      await killAllCli();
      await chain?.destroy();
    });
    const clear = async () => {
      for (const r of [1, 2, 3]) await chain.nft(r, `table ip ${TABLE} {}\ndelete table ip ${TABLE}\n`);
    };

    it('without a rewrite every hop sees EF and firstChangeAtTtl is null', async () => {
      await clear();
      const { code, json } = await trace(chain, ['--dscp', 'EF']);
      expect(json.schema).toBe('voipready.trace/1');
      expect(json.dscpSent).toBe(46);
      expect(json.hops.map((h) => h.address)).toEqual([...chain.routerAddrs, chain.dcAddr]);
      expect(json.hops.map((h) => h.dscpSeen)).toEqual([46, 46, 46, 46]);
      expect(json.hops.map((h) => h.reply)).toEqual([
        'time-exceeded',
        'time-exceeded',
        'time-exceeded',
        'port-unreachable',
      ]);
      for (const h of json.hops) expect(h.rttMs).toBeGreaterThanOrEqual(0);
      expect(json.firstChangeAtTtl).toBeNull();
      expect(json.reached).toBe(true);
      expect(json.outcome).toBe('kept');
      expect(code).toBe(0);
    });

    it('router 2 rewriting EF to CS0 is named: the change is first seen at TTL 3', async () => {
      await clear();
      await chain.nft(
        2,
        `table ip ${TABLE} {\n counter rewritten {}\n chain forward { type filter hook forward priority 0; policy accept;\n  ip dscp ef counter name "rewritten" ip dscp set cs0\n }\n}\n`,
      );
      const { code, json } = await trace(chain, ['--dscp', 'EF']);
      // Router 2 quotes the probe as it arrived (the TTL expires before its forward hook); router 3 and the peer see CS0.
      expect(json.hops.map((h) => h.dscpSeen)).toEqual([46, 46, 0, 0]);
      expect(json.hops.map((h) => h.changed)).toEqual([false, false, true, false]);
      expect(json.firstChangeAtTtl).toBe(3);
      expect(json.outcome).toBe('changed');
      // Ground truth: the rewrite rule really touched the probes that went past router 2 (TTL ≥ 3).
      expect(await chain.counter(2, TABLE, 'rewritten')).toBeGreaterThanOrEqual(2);
      expect(code).toBe(1);
    });

    it('CS3 on the signalling port, rewritten to AF11 by router 3: first seen at the peer (TTL 4)', async () => {
      await clear();
      await chain.nft(
        3,
        `table ip ${TABLE} {\n chain forward { type filter hook forward priority 0; policy accept;\n  udp dport 5060 ip dscp cs3 ip dscp set af11\n }\n}\n`,
      );
      const run = await runCli(['trace', '--peer', `${chain.dcAddr}:5060`, '--dscp', 'CS3', '--json'], {
        ns: chain.site,
        timeoutMs: 50_000,
      });
      const json = TraceResult.parse(JSON.parse(run.stdout));
      expect(json.dscpSent).toBe(24);
      expect(json.hops.map((h) => h.dscpSeen)).toEqual([24, 24, 24, 10]);
      expect(json.firstChangeAtTtl).toBe(4);
      expect(run.code).toBe(1);
    });

    it('a router that drops its ICMP shows silent and the trace still reaches the peer', async () => {
      await clear();
      await chain.nft(
        2,
        `table ip ${TABLE} {\n counter dropped {}\n chain output { type filter hook output priority 0; policy accept;\n  icmp type time-exceeded counter name "dropped" drop\n }\n}\n`,
      );
      const { code, json } = await trace(chain, ['--dscp', 'EF']);
      expect(json.hops).toHaveLength(4);
      const silent = json.hops[1]!;
      expect(silent).toMatchObject({ ttl: 2, address: null, rttMs: null, dscpSeen: null, changed: false });
      expect(silent.attempts).toBe(2);
      // Both attempts at TTL 2 were answered by router 2, and both answers dropped.
      expect(await chain.counter(2, TABLE, 'dropped')).toBe(2);
      expect(json.hops[3]!.address).toBe(chain.dcAddr);
      expect(json.reached).toBe(true);
      expect(json.firstChangeAtTtl).toBeNull();
      expect(code).toBe(0);
    });

    it('without CAP_NET_RAW the trace is unknown with the reason, not a guess', async () => {
      await clear();
      const { code, json } = await trace(chain, ['--dscp', 'EF'], DROP_NET_RAW);
      expect(json.outcome).toBe('unknown');
      expect(json.unknownReason).toMatch(/CAP_NET_RAW/);
      expect(json.hops).toEqual([]);
      expect(json.reached).toBe(false);
      expect(code).toBe(1);
    });
  },
);

describe.skipIf(cliUnavailableReason() !== undefined)('voipready trace input', () => {
  it('an IPv6 peer is unknown with the reason', async () => {
    const run = await runCli(['trace', '--peer', '[::1]:33434', '--json'], { timeoutMs: 30_000 });
    const json = TraceResult.parse(JSON.parse(run.stdout));
    expect(json.outcome).toBe('unknown');
    expect(json.unknownReason).toMatch(/IPv6/);
    expect(run.code).toBe(1);
  });

  it.each([
    [['trace'], /--peer HOST\[:PORT\] is required/],
    [['trace', '--peer', '127.0.0.1', '--dscp', 'XX'], /--dscp: unknown DSCP name "XX"/],
    [['trace', '--peer', '127.0.0.1', '--max-hops', '0'], /--max-hops must be between 1 and 255/],
    [['trace', '--peer', '127.0.0.1:70000'], /--peer port must be 1\.\.65535/],
    [['trace', '--peer', 'no-such-host.invalid'], /cannot resolve "no-such-host.invalid"/],
  ])('%j is a one-line error, exit 2', async (args, message) => {
    const run = await runCli(args, { timeoutMs: 30_000 });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});
