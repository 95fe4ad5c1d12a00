// `voipready trace` over a real chain of three forwarding routers in network namespaces, IPv4 and
// IPv6: the hop where nftables rewrites the mark is named, a router whose ICMP is dropped shows
// silent while the trace still reaches the peer, a voipready reflector's own report is the last
// hop, unreachable peers and Destination Unreachable end the trace with the reason, floods and
// forged ICMP change nothing, and without CAP_NET_RAW the result is unknown, never a guess.
// Ground truth: the routers' own nft counters and the addresses the chain was built with.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TraceResult } from '../../src/trace-schema.js';
import {
  AS_NOBODY,
  cliUnavailableReason,
  killAllCli,
  REPO_ROOT,
  type ReflectorProcess,
  runCli,
  startReflector,
} from '../helpers/cli.js';
import { netnsUnavailableReason, run as runCmd } from '../helpers/netns.js';
import { type Chain, createChain } from '../helpers/netns-chain.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const DROP_NET_RAW = ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw', '--'];
const TABLE = 'trace_test';
const REFLECTOR_PORT = 5004;

async function traceTo(chain: Chain, peer: string, args: string[], wrapper: string[] = []) {
  const run = await runCli(['trace', '--peer', peer, '--max-hops', '8', '--json', ...args], {
    ns: chain.site,
    wrapper,
    timeoutMs: 50_000,
  });
  expect(run.stderr).toBe('');
  expect(run.timedOut).toBe(false);
  return { code: run.code, json: TraceResult.parse(JSON.parse(run.stdout)) };
}

const trace = (chain: Chain, args: string[], wrapper: string[] = []) =>
  traceTo(chain, chain.dcAddr, args, wrapper);

// Floods the site from a router with ICMP until killed: echo requests, and Time Exceeded / Port
// Unreachable quoting the site's UDP to the peer with the mark cleared — over every ephemeral
// source port, the probes' sizes and random checksums — or quoting flows to other addresses.
const FORGER = `
const raw = require(process.argv[1]);
const crypto = require('node:crypto');
const [site, dc, dport] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const sock = raw.createSocket({ protocol: raw.Protocol.ICMP });
sock.pauseRecv();
const ip = (a) => Buffer.from(a.split('.').map(Number));
let n = 0;
function forged() {
  const kind = n % 4;
  if (kind === 3) {
    const echo = Buffer.alloc(16); echo[0] = 8; echo.writeUInt16BE(n & 0xffff, 6);
    echo.writeUInt16BE(raw.createChecksum(echo), 2);
    return { msg: echo, to: site };
  }
  const q = Buffer.alloc(20 + 8 + 8);
  q[0] = 0x45; q[1] = 0; q.writeUInt16BE(q.length, 2); q[8] = 1; q[9] = 17;
  ip(site).copy(q, 12); ip(kind === 2 ? '198.18.99.' + (n % 250) : dc).copy(q, 16);
  q.writeUInt16BE(32768 + (n % 28232), 20);
  q.writeUInt16BE(kind === 2 ? 1024 + (n % 60000) : dport, 22);
  q.writeUInt16BE(40 + (n % 16), 24);
  q.writeUInt16BE(crypto.randomInt(65536), 26);
  crypto.randomBytes(8).copy(q, 28);
  const icmp = Buffer.concat([Buffer.from(kind === 1 ? [3, 3, 0, 0, 0, 0, 0, 0] : [11, 0, 0, 0, 0, 0, 0, 0]), q]);
  icmp.writeUInt16BE(raw.createChecksum(icmp), 2);
  return { msg: icmp, to: site };
}
setInterval(() => {
  for (let i = 0; i < 20; i++, n++) {
    const f = forged();
    try { sock.send(f.msg, 0, f.msg.length, f.to, () => {}); } catch {}
  }
}, 1);
`;

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
    const route = (router: number, ...args: string[]) =>
      runCmd('ip', ['-n', chain.routers[router - 1]!, 'route', 'replace', ...args]);
    const clear = async () => {
      for (const r of [1, 2, 3])
        for (const family of ['ip', 'ip6'])
          await chain.nft(r, `table ${family} ${TABLE} {}\ndelete table ${family} ${TABLE}\n`);
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
      // The table for people names the same link in one line.
      const text = await runCli(['trace', '--peer', chain.dcAddr, '--max-hops', '8'], {
        ns: chain.site,
        timeoutMs: 50_000,
      });
      expect(text.stdout).toContain(
        `mark first changed at hop 3 (${chain.routerAddrs[2]}): EF → CS0, on the link after ${chain.routerAddrs[1]}\n`,
      );
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

    it.each([
      ['without CAP_NET_RAW', DROP_NET_RAW],
      ['as nobody without any capability', AS_NOBODY],
    ])('%s the trace is unknown with the reason, not a guess', async (_name, wrapper) => {
      await clear();
      const { code, json } = await trace(chain, ['--dscp', 'EF'], wrapper);
      expect(json.outcome).toBe('unknown');
      expect(json.unknownReason).toMatch(/CAP_NET_RAW/);
      expect(json.hops).toEqual([]);
      expect(json.reached).toBe(false);
      expect(code).toBe(1);
    });

    it('IPv6: Hop Limit rising, every hop quotes the traffic class; no rewrite → null', async () => {
      await clear();
      const { code, json } = await traceTo(chain, `[${chain.dcAddr6}]:33434`, ['--dscp', 'EF']);
      expect(json.address).toBe(chain.dcAddr6);
      expect(json.hops.map((h) => h.address)).toEqual([...chain.routerAddrs6, chain.dcAddr6]);
      expect(json.hops.map((h) => h.dscpSeen)).toEqual([46, 46, 46, 46]);
      expect(json.hops.at(-1)!.reply).toBe('port-unreachable');
      expect(json.firstChangeAtTtl).toBeNull();
      expect(json.outcome).toBe('kept');
      expect(code).toBe(0);
    });

    it('IPv6: router 2 rewriting the traffic class EF to CS0 is named at Hop Limit 3', async () => {
      await clear();
      await chain.nft(
        2,
        `table ip6 ${TABLE} {\n counter rewritten {}\n chain forward { type filter hook forward priority 0; policy accept;\n  ip6 dscp ef counter name "rewritten" ip6 dscp set cs0\n }\n}\n`,
      );
      const { code, json } = await traceTo(chain, `[${chain.dcAddr6}]`, ['--dscp', 'EF']);
      expect(json.hops.map((h) => h.dscpSeen)).toEqual([46, 46, 0, 0]);
      expect(json.firstChangeAtTtl).toBe(3);
      expect(json.outcome).toBe('changed');
      expect(await chain.counter(2, TABLE, 'rewritten', 'ip6')).toBeGreaterThanOrEqual(2);
      expect(code).toBe(1);
    });

    it('an unreachable peer ends after five silent hops with the reason, in bounded time', async () => {
      await clear();
      // r1 routes 198.18.99.0/24 on to r2, whose route onwards its firewall drops: no ICMP from r2 on.
      await route(1, '198.18.99.0/24', 'via', '198.18.21.2');
      await route(2, '198.18.99.0/24', 'via', '198.18.22.2');
      await chain.nft(
        2,
        `table ip ${TABLE} {\n counter blackholed {}\n chain forward { type filter hook forward priority 0; policy accept;\n  ip daddr 198.18.99.0/24 counter name "blackholed" drop\n }\n chain input { type filter hook input priority 0; policy accept;\n  ip daddr 198.18.99.0/24 drop\n }\n chain output { type filter hook output priority 0; policy accept;\n  icmp type time-exceeded drop\n }\n}\n`,
      );
      const { code, json } = await traceTo(chain, '198.18.99.1', []);
      // Hop 1 answers; hops 2..6 are silent (each probed twice), then the trace stops: 6 hops of --max-hops 8.
      expect(json.hops.map((h) => h.address)).toEqual([chain.routerAddrs[0], null, null, null, null, null]);
      expect(json.reached).toBe(false);
      expect(json.outcome).toBe('unknown');
      expect(json.unknownReason).toMatch(/no answer from TTL 2 to 6: the peer is unreachable/);
      expect(await chain.counter(2, TABLE, 'blackholed')).toBeGreaterThanOrEqual(4);
      expect(code).toBe(1);
    });

    it('a mid-path router answering Destination Unreachable ends the trace there, named', async () => {
      await clear();
      await route(1, '198.18.98.0/24', 'via', '198.18.21.2');
      await route(2, 'unreachable', '198.18.98.0/24');
      const { code, json } = await traceTo(chain, '198.18.98.1', []);
      expect(json.hops.map((h) => [h.address, h.reply])).toEqual([
        [chain.routerAddrs[0], 'time-exceeded'],
        [chain.routerAddrs[1], 'unreachable'],
      ]);
      expect(json.outcome).toBe('unknown');
      expect(json.unknownReason).toBe(`${chain.routerAddrs[1]} answered Destination Unreachable at TTL 2`);
      expect(code).toBe(1);
    });

    it('an ICMP flood with forged errors quoting other flows leaves the result unchanged', async () => {
      await clear();
      await chain.nft(
        1,
        `table ip ${TABLE} {\n counter forged {}\n chain output { type filter hook output priority 0; policy accept;\n  ip daddr ${chain.siteAddr} icmp type { echo-request, time-exceeded, destination-unreachable } counter name "forged"\n }\n}\n`,
      );
      const forger = spawn(
        'ip',
        [
          'netns',
          'exec',
          chain.routers[0]!,
          process.execPath,
          '-e',
          FORGER,
          join(REPO_ROOT, 'node_modules', 'raw-socket'),
          chain.siteAddr,
          chain.dcAddr,
          '33434',
        ],
        { stdio: 'ignore' },
      );
      try {
        const started = Date.now();
        while ((await chain.counter(1, TABLE, 'forged')) < 2000 && Date.now() - started < 20_000)
          await new Promise((r) => setTimeout(r, 100));
        const before = await chain.counter(1, TABLE, 'forged');
        const { code, json } = await trace(chain, ['--dscp', 'EF']);
        const during = (await chain.counter(1, TABLE, 'forged')) - before;
        expect(before).toBeGreaterThanOrEqual(2000);
        // The flood went on through the whole trace.
        expect(during).toBeGreaterThan(500);
        expect(json.hops.map((h) => h.address)).toEqual([...chain.routerAddrs, chain.dcAddr]);
        expect(json.hops.map((h) => h.dscpSeen)).toEqual([46, 46, 46, 46]);
        expect(json.firstChangeAtTtl).toBeNull();
        expect(json.outcome).toBe('kept');
        expect(code).toBe(0);
      } finally {
        forger.kill('SIGKILL');
      }
    });

    describe('to a voipready reflector', () => {
      let reflector: ReflectorProcess;
      beforeAll(async () => {
        reflector = await startReflector(`${chain.dcAddr}:${REFLECTOR_PORT}`, { ns: chain.dc });
      });
      afterAll(async () => {
        await reflector?.stop();
      });

      it("the last hop is the reflector's own report of the mark on arrival", async () => {
        await clear();
        const { code, json } = await traceTo(chain, `${chain.dcAddr}:${REFLECTOR_PORT}`, ['--dscp', 'EF']);
        const last = json.hops.at(-1)!;
        expect(last).toMatchObject({ ttl: 4, address: chain.dcAddr, reply: 'reflector-reply', dscpSeen: 46 });
        expect(json.outcome).toBe('kept');
        expect(code).toBe(0);
      });

      it('over IPv6 too: the reflector reports the traffic class the probe arrived with', async () => {
        await clear();
        const reflector6 = await startReflector(`[${chain.dcAddr6}]:${REFLECTOR_PORT + 2}`, { ns: chain.dc });
        try {
          // IPv6 arrival marks come from the native socket layer (IPV6_RECVTCLASS; npm ci builds it).
          expect(reflector6.listening).toMatch(/DSCP readable: yes/);
          await chain.nft(
            2,
            `table ip6 ${TABLE} {\n chain forward { type filter hook forward priority 0; policy accept;\n  ip6 dscp ef ip6 dscp set af41\n }\n}\n`,
          );
          const { json } = await traceTo(chain, `[${chain.dcAddr6}]:${REFLECTOR_PORT + 2}`, ['--dscp', 'EF']);
          expect(json.hops.map((h) => h.dscpSeen)).toEqual([46, 46, 34, 34]);
          expect(json.hops.at(-1)).toMatchObject({ address: chain.dcAddr6, reply: 'reflector-reply' });
          expect(json.firstChangeAtTtl).toBe(3);
        } finally {
          await reflector6.stop();
        }
      });

      it('CS3 on the signalling port rewritten by router 3: named at the reflector (TTL 4)', async () => {
        await clear();
        await chain.nft(
          3,
          `table ip ${TABLE} {\n counter rewritten {}\n chain forward { type filter hook forward priority 0; policy accept;\n  udp dport ${REFLECTOR_PORT + 1} ip dscp cs3 counter name "rewritten" ip dscp set cs0\n }\n}\n`,
        );
        const { code, json } = await traceTo(chain, `${chain.dcAddr}:${REFLECTOR_PORT + 1}`, [
          '--dscp',
          'CS3',
        ]);
        expect(json.hops.map((h) => h.dscpSeen)).toEqual([24, 24, 24, 0]);
        expect(json.hops.at(-1)!.reply).toBe('reflector-reply');
        expect(json.firstChangeAtTtl).toBe(4);
        expect(await chain.counter(3, TABLE, 'rewritten')).toBeGreaterThanOrEqual(1);
        expect(code).toBe(1);
      });
    });
  },
);

describe.skipIf(cliUnavailableReason() !== undefined)('voipready trace input', () => {
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
