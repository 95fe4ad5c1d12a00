// Without CAP_NET_RAW the native socket layer marks and reads DSCP all the same (socket options,
// no raw socket). The dgram fallback (the addon switched off) still measures delay, jitter and
// loss, and says plainly that DSCP could not be checked: `unknown` with the reason and the fix,
// never `pass`, and not ready. As root the children run under setpriv with CAP_NET_RAW removed
// from every capability set; as an ordinary user they simply lack it. Loopback only; the same as
// uid 65534 over a routed path: tests/integration/netns-native-dscp.test.ts.

import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cliUnavailableReason,
  killAllCli,
  type ProbeJson,
  probeJson,
  startReflector,
} from '../helpers/cli.js';

const CAP_NET_RAW_BIT = 13n;
const isRoot = process.getuid?.() === 0;
/** Drops CAP_NET_RAW from the bounding and inheritable sets: after exec, root keeps every other capability. */
const DROP_NET_RAW = isRoot ? ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw', '--'] : [];
/** The fallback: Node's dgram, with marks only through a raw socket. */
const DGRAM_ONLY = ['env', 'VOIPREADY_NATIVE_UDP=0'];
const DROP_NET_RAW_DGRAM = [...DROP_NET_RAW, ...DGRAM_ONLY];
const unavailable = cliUnavailableReason();

function effectiveCaps(wrapper: string[]): bigint {
  const cmd = [...wrapper, 'cat', '/proc/self/status'];
  const status = execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  return BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]}`);
}

function bind(port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => resolve(undefined));
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

/** An even loopback UDP port whose successor is also free (media + signalling). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = await bind(0);
    const port = probe!.address().port & ~1;
    probe!.close();
    const a = await bind(port);
    const b = await bind(port + 1);
    a?.close();
    b?.close();
    if (a && b) return port;
  }
  throw new Error('no free UDP port pair on 127.0.0.1');
}

function dscpChecks(json: ProbeJson) {
  return ['dscp-rtp', 'dscp-sip'].map((id) => json.checks.find((c) => c.id === id)!);
}

describe.skipIf(unavailable !== undefined)(
  `probe and reflector without CAP_NET_RAW ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    afterAll(async () => {
      await killAllCli();
    });

    it('the wrapper really removes CAP_NET_RAW', () => {
      expect(effectiveCaps(DROP_NET_RAW) & (1n << CAP_NET_RAW_BIT)).toBe(0n);
    });

    async function run(opts: { probeWrapper: string[]; reflectorWrapper: string[] }) {
      const port = await freePortPair();
      const reflector = await startReflector(`127.0.0.1:${port}`, { wrapper: opts.reflectorWrapper });
      try {
        const { run: probe, json } = await probeJson(`127.0.0.1:${port}`, {
          wrapper: opts.probeWrapper,
          calls: 2,
        });
        return { listening: reflector.listening, probe, json };
      } finally {
        await reflector.stop();
      }
    }

    function expectTimingStillMeasured(json: ProbeJson) {
      expect(json.forward.sent).toBeGreaterThan(0);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(json.reverse.received).toBe(json.forward.received);
      expect(json.rttMs).not.toBeNull();
      expect(json.rttMs!.max).toBeGreaterThan(0);
      for (const id of ['latency', 'jitter', 'loss']) {
        expect(json.checks.find((c) => c.id === id)?.status, id).toBe('pass');
      }
    }

    it('without CAP_NET_RAW the native layer marks and reads DSCP at both ends', async () => {
      const { listening, probe, json } = await run({
        probeWrapper: DROP_NET_RAW,
        reflectorWrapper: DROP_NET_RAW,
      });
      expect(listening).toMatch(/DSCP readable: yes; sockets: native/);
      expect(json.socketPath).toBe('native');
      expect(json.privileged).toBe(true);
      expectTimingStillMeasured(json);
      expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
      expect(json.reverse.dscpReceived).toEqual({ '46': json.reverse.received });
      for (const check of dscpChecks(json)) expect(check.status, check.id).toBe('pass');
      expect(probe.code).toBe(0);
    });

    it('an unprivileged dgram probe measures delay, jitter and loss; DSCP is unknown with the reason', async () => {
      const { probe, json } = await run({ probeWrapper: DROP_NET_RAW_DGRAM, reflectorWrapper: [] });
      expect(json.socketPath).toBe('dgram');
      expect(json.privileged).toBe(false);
      expectTimingStillMeasured(json);
      expect(json.forward.dscpSent).toBeNull();
      expect(json.reverse.dscpReceived).toEqual({});
      expect(json.reverse.dscpUnknownReason).toMatch(/CAP_NET_RAW/);
      for (const check of dscpChecks(json)) {
        expect(check.status, check.id).toBe('unknown');
        expect(check.evidence, check.id).toMatch(/CAP_NET_RAW/);
        expect(check.evidence, check.id).toMatch(/root|setcap/);
      }
      expect(json.ready).toBe(false);
      expect(probe.code).toBe(1);
    });

    it('an unprivileged dgram reflector says it cannot read DSCP, and the probe reports unknown, not pass', async () => {
      const { listening, probe, json } = await run({
        probeWrapper: [],
        reflectorWrapper: DROP_NET_RAW_DGRAM,
      });
      expect(listening).toMatch(/DSCP readable: no \(.+\); sockets: dgram/);
      expectTimingStillMeasured(json);
      expect(json.forward.dscpReceived).toEqual({});
      // Unmeasured, not blamed on the network: neither pass nor fail.
      for (const check of dscpChecks(json)) expect(check.status, check.id).toBe('unknown');
      expect(json.ready).toBe(false);
      expect(probe.code).toBe(1);
    });
  },
);
