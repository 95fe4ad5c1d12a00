// DSCP measured without privilege (issue 14): probe and reflector run as uid 65534 with no
// capabilities at all, in namespaces site — router — dc, and use the native socket layer
// (IP_TOS / IPV6_TCLASS to mark, IP_RECVTOS / IPV6_RECVTCLASS to read). The router's nftables
// rules rewrite marks and count what they rewrote: the counters are the truth the probe must report,
// naming the direction. The fallback (the addon switched off) gives the dgram path's answer and
// says so in the document.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AS_NOBODY,
  cliUnavailableReason,
  killAllCli,
  type ProbeJson,
  probeJson,
  type ReflectorProcess,
  startReflector,
  warmUpReflector,
} from '../helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  DC_ADDR6,
  netnsUnavailableReason,
  SITE_ADDR,
  SITE_ADDR6,
  type Topology,
} from '../helpers/netns.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const DGRAM_ONLY = ['env', 'VOIPREADY_NATIVE_UDP=0'];
const MEDIA_PORT = 5004;
const V6_PORT = 6004;
const CALLS = 2;
const RTP = '@th,64,8 0x80';
const REVERSE_MEDIA = `ip saddr ${DC_ADDR} ip daddr ${SITE_ADDR} udp sport ${MEDIA_PORT} ${RTP}`;
const FORWARD_SIGNALLING = `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${MEDIA_PORT + 1} ${RTP}`;
const REVERSE_MEDIA6 = `ip6 saddr ${DC_ADDR6} ip6 daddr ${SITE_ADDR6} udp sport ${V6_PORT} ${RTP}`;
const FORWARD_SIGNALLING6 = `ip6 saddr ${SITE_ADDR6} ip6 daddr ${DC_ADDR6} udp dport ${V6_PORT + 1} ${RTP}`;

function checkOf(json: ProbeJson, id: string) {
  const check = json.checks.find((c) => c.id === id);
  if (!check) throw new Error(`no ${id} check in ${JSON.stringify(json.checks)}`);
  return check;
}

describe.skipIf(unavailable !== undefined)(
  `DSCP as an ordinary user over a routed namespace path ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology;
    let reflector: ReflectorProcess;
    let reflector6: ReflectorProcess;

    beforeAll(async () => {
      topo = await createTopology();
      reflector = await startReflector(`${DC_ADDR}:${MEDIA_PORT}`, { ns: topo.dc, wrapper: AS_NOBODY });
      reflector6 = await startReflector(`[${DC_ADDR6}]:${V6_PORT}`, { ns: topo.dc, wrapper: AS_NOBODY });
      await warmUpReflector(`${DC_ADDR}:${MEDIA_PORT}`, CALLS, { ns: topo.site, wrapper: AS_NOBODY });
    });
    afterAll(async () => {
      await reflector?.stop();
      await reflector6?.stop();
      await killAllCli();
      await topo?.destroy();
    });

    const probe = (peer: string, wrapper = AS_NOBODY) =>
      probeJson(peer, { ns: topo.site, wrapper, calls: CALLS });

    it('the wrapper runs as uid 65534 with no capabilities', () => {
      const status = execFileSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), 'cat', '/proc/self/status'], {
        encoding: 'utf8',
      });
      expect(/^Uid:\s+65534\b/m.test(status), status).toBe(true);
      expect(/^CapEff:\s+0+$/m.test(status), status).toBe(true);
      expect(/^CapBnd:\s+0+$/m.test(status), status).toBe(true);
    });

    it('both ends read DSCP natively, and a clean path passes', async () => {
      expect(reflector.listening).toMatch(/DSCP readable: yes; sockets: native/);
      await topo.impair({ counters: [], forward: [] });
      const { run, json } = await probe(`${DC_ADDR}:${MEDIA_PORT}`);
      expect(json.socketPath).toBe('native');
      expect(json.privileged).toBe(true);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
      expect(json.reverse.dscpReceived).toEqual({ '46': json.reverse.received });
      expect(json.signalling.forward.dscpReceived).toEqual({ '24': json.signalling.forward.received });
      expect(json.signalling.reverse.dscpReceived).toEqual({ '24': json.signalling.reverse.received });
      for (const id of ['dscp-rtp', 'dscp-sip', 'loss']) expect(checkOf(json, id).status, id).toBe('pass');
      expect(run.code, JSON.stringify(json.checks)).toBe(0);
    });

    it('detects a re-mark of the reverse EF and of the forward CS3, naming the direction', async () => {
      await topo.impair({
        counters: ['rev_ef_to_cs0', 'fwd_cs3_to_af11'],
        forward: [
          `${REVERSE_MEDIA} ip dscp ef counter name "rev_ef_to_cs0" ip dscp set cs0`,
          `${FORWARD_SIGNALLING} ip dscp cs3 counter name "fwd_cs3_to_af11" ip dscp set af11`,
        ],
      });
      const { run, json } = await probe(`${DC_ADDR}:${MEDIA_PORT}`);
      const counters = await topo.counters();
      expect(json.socketPath).toBe('native');
      // Forward EF intact; every reply rewritten on the way back, as the router counted.
      expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
      expect(counters.rev_ef_to_cs0!.packets).toBe(json.reverse.received);
      expect(json.reverse.dscpReceived).toEqual({ '0': json.reverse.received });
      const rtp = checkOf(json, 'dscp-rtp');
      expect(rtp.status).toBe('fail');
      expect(rtp.evidence).toMatch(/reverse/);
      expect(rtp.evidence).toMatch(/CS0/);
      // CS3 rewritten forward only (AF11 = 10).
      const sig = json.signalling;
      expect(counters.fwd_cs3_to_af11!.packets).toBe(sig.forward.received + sig.forward.lost);
      expect(sig.forward.dscpReceived).toEqual({ '10': sig.forward.received });
      expect(sig.reverse.dscpReceived).toEqual({ '24': sig.reverse.received });
      const sip = checkOf(json, 'dscp-sip');
      expect(sip.status).toBe('fail');
      expect(sip.evidence).toMatch(/forward/);
      expect(sip.evidence).toMatch(/AF11/);
      expect(json.ready).toBe(false);
      expect(run.code).toBe(1);
    });

    it('over IPv6: passes a clean path and detects the router rewriting the traffic class', async () => {
      expect(reflector6.listening).toMatch(/DSCP readable: yes; sockets: native/);
      await topo.impair({ counters: [], forward: [] });
      const clean = await probe(`[${DC_ADDR6}]:${V6_PORT}`);
      expect(clean.json.reverse.dscpReceived).toEqual({ '46': clean.json.reverse.received });
      for (const id of ['dscp-rtp', 'dscp-sip']) expect(checkOf(clean.json, id).status, id).toBe('pass');

      await topo.impair({
        counters: ['rev6_ef_to_cs0', 'fwd6_cs3_to_cs0'],
        forward: [
          `${REVERSE_MEDIA6} ip6 dscp ef counter name "rev6_ef_to_cs0" ip6 dscp set cs0`,
          `${FORWARD_SIGNALLING6} ip6 dscp cs3 counter name "fwd6_cs3_to_cs0" ip6 dscp set cs0`,
        ],
      });
      const { run, json } = await probe(`[${DC_ADDR6}]:${V6_PORT}`);
      const counters = await topo.counters();
      expect(counters.rev6_ef_to_cs0!.packets).toBeGreaterThan(0);
      expect(counters.rev6_ef_to_cs0!.packets).toBe(json.reverse.received);
      expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
      expect(json.reverse.dscpReceived).toEqual({ '0': json.reverse.received });
      expect(checkOf(json, 'dscp-rtp').status).toBe('fail');
      expect(checkOf(json, 'dscp-rtp').evidence).toMatch(/reverse/);
      expect(counters.fwd6_cs3_to_cs0!.packets).toBe(
        json.signalling.forward.received + json.signalling.forward.lost,
      );
      expect(checkOf(json, 'dscp-sip').status).toBe('fail');
      expect(checkOf(json, 'dscp-sip').evidence).toMatch(/forward/);
      expect(run.code).toBe(1);
    });

    it('with the addon switched off, the probe measures as before (dgram) and says so', async () => {
      await topo.impair({ counters: [], forward: [] });
      const { run, json } = await probe(`${DC_ADDR}:${MEDIA_PORT}`, [...AS_NOBODY, ...DGRAM_ONLY]);
      expect(run.stderr).toMatch(/native UDP sockets not used \(disabled by VOIPREADY_NATIVE_UDP=0\)/);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(json.socketPath).toBe('dgram');
      expect(json.socketPathReason).toBe('disabled by VOIPREADY_NATIVE_UDP=0');
      // Today's unprivileged answer: timing measured, DSCP unknown for want of CAP_NET_RAW.
      expect(json.privileged).toBe(false);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(json.forward.dscpSent).toBeNull();
      expect(json.reverse.dscpUnknownReason).toMatch(/CAP_NET_RAW/);
      for (const id of ['dscp-rtp', 'dscp-sip']) expect(checkOf(json, id).status, id).toBe('unknown');
      expect(checkOf(json, 'loss').status).toBe('pass');
      expect(run.code).toBe(1);
    });
  },
);
