// The probe and reflector over a real routed path: site (probe) — router (nftables) — dc
// (reflector), all in namespaces this file creates and removes. The router impairs the path and
// counts what it did; those counters and a tshark analysis of a capture at the reflector's
// interface are the ground truth the probe's figures must equal.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cliUnavailableReason,
  killAllCli,
  type ProbeJson,
  probeJson,
  type ReflectorProcess,
  realtimeWrapper,
  startReflector,
  warmUpReflector,
} from '../helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  DC_ADDR6,
  HOST_IFACE,
  netnsUnavailableReason,
  SITE_ADDR,
  SITE_ADDR6,
  type Topology,
} from '../helpers/netns.js';
import { rtpStreams, startCapture } from '../helpers/tshark.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const MEDIA_PORT = 5004;
const SIGNALLING_PORT = MEDIA_PORT + 1;
const CALLS = 4;
const DURATION_S = 3;
const WAIT_S = 1;
/** First UDP payload byte 0x80: an RTP v2 probe or reply (the wire's control messages start with 0). */
/**
 * Max-jitter agreement with tshark on the same packets, per stream, both directions. Arrival times
 * are the kernel's receive stamps (SO_TIMESTAMPNS through the native socket layer), so the
 * scheduling delay of a loaded machine no longer reads as jitter: forward against a capture on the
 * reflector's interface, reverse against one on the site's. Seen: |Δ| ≤ 0.001 ms at load 20 on two
 * cores (docs/probe.md); 0.05 ms is the issue's goal.
 */
const JITTER_VS_TSHARK_MS = 0.05;
const RTP = '@th,64,8 0x80';
/** The fallback socket layer (Node's dgram + raw socket), as on a host where the addon is missing. */
const DGRAM_ONLY = ['env', 'VOIPREADY_NATIVE_UDP=0'];
const FORWARD_MEDIA = `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${MEDIA_PORT} ${RTP}`;
const REVERSE_MEDIA = `ip saddr ${DC_ADDR} ip daddr ${SITE_ADDR} udp sport ${MEDIA_PORT} ${RTP}`;
const FORWARD_SIGNALLING = `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${SIGNALLING_PORT} ${RTP}`;
/**
 * The reflector runs SCHED_FIFO where allowed, as a reflector on its own data-centre host
 * effectively does. Here it shares two cores with the probe, dumpcap and other test files; at
 * normal priority its arrival timestamps (taken in JS: Node has no kernel receive timestamps) then
 * lag the wire by up to ~20 ms under that load and its max jitter drifts >1 ms from tshark's.
 * See docs/probe-testing.md.
 */
const REFLECTOR_PRIORITY = realtimeWrapper() ?? [];

function checkOf(json: ProbeJson, id: string) {
  const check = json.checks.find((c) => c.id === id);
  if (!check) throw new Error(`no ${id} check in ${JSON.stringify(json.checks)}`);
  return check;
}

describe.skipIf(unavailable !== undefined)(
  `probe over a routed namespace path ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology;
    let reflector: ReflectorProcess;
    let dir: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vr-netns-probe-'));
      topo = await createTopology();
      reflector = await startReflector(`${DC_ADDR}:${MEDIA_PORT}`, {
        ns: topo.dc,
        wrapper: REFLECTOR_PRIORITY,
      });
      expect(reflector.listening).toMatch(/DSCP readable: yes/);
      await warmUpReflector(`${DC_ADDR}:${MEDIA_PORT}`, CALLS, { ns: topo.site });
    });
    afterAll(async () => {
      await reflector?.stop();
      await killAllCli();
      await topo?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const probe = (peer = `${DC_ADDR}:${MEDIA_PORT}`) =>
      probeJson(peer, { ns: topo.site, calls: CALLS, durationS: DURATION_S, waitS: WAIT_S });

    /**
     * An unreachable peer: 100 % loss, a failing verdict and exit 1, in bounded time. The bound is
     * duration + wait + 20 s: the point is that the run ends, and at load 20 on two cores Node's
     * start-up alone took 2 s and whole runs 9.5-14.6 s against an earlier 9 s bound.
     */
    async function expectTotalLossInTime(port: number) {
      const { run, json } = await probe(`${DC_ADDR}:${port}`);
      expect(run.elapsedMs).toBeLessThan((DURATION_S + WAIT_S + 20) * 1000);
      expect(json.forward.sent).toBeGreaterThan(0);
      expect(json.forward.lossPct).toBe(100);
      expect(checkOf(json, 'loss').status).toBe('fail');
      expect(json.ready).toBe(false);
      expect(run.code).toBe(1);
    }

    it('counts forward drops exactly, names the path that rewrote EF and CS3, and agrees with tshark', async () => {
      await topo.impair({
        counters: ['fwd_rtp_drop', 'rev_ef_to_cs0', 'fwd_cs3_to_cs0'],
        forward: [
          `${FORWARD_MEDIA} numgen random mod 100 < 5 counter name "fwd_rtp_drop" drop`,
          `${REVERSE_MEDIA} ip dscp ef counter name "rev_ef_to_cs0" ip dscp set cs0`,
          `${FORWARD_SIGNALLING} ip dscp cs3 counter name "fwd_cs3_to_cs0" ip dscp set cs0`,
        ],
      });
      const capture = await startCapture({ ns: topo.dc, iface: HOST_IFACE, file: join(dir, 'dc.pcapng') });
      const siteCapture = await startCapture({
        ns: topo.site,
        iface: HOST_IFACE,
        file: join(dir, 'site.pcapng'),
      });
      const { run, json } = await probe();
      const summary = await capture.stop();
      const siteSummary = await siteCapture.stop();
      const counters = await topo.counters();

      expect(run.code).toBe(1);
      expect(json.ready).toBe(false);
      expect(json.privileged).toBe(true);
      expect(json.forward.streams).toHaveLength(CALLS);

      // Loss: the router's drop counter is the truth, to the packet.
      const dropped = counters.fwd_rtp_drop!.packets;
      expect(dropped).toBeGreaterThan(0);
      expect(json.forward.lost).toBe(dropped);
      expect(json.forward.received).toBe(json.forward.sent - dropped);
      expect(json.reverse.lost).toBe(0);
      expect(json.reverse.received).toBe(json.forward.received);
      expect(checkOf(json, 'loss').status).toBe('fail');

      // DSCP per direction: EF intact forward, rewritten to CS0 on every reply on the way back.
      expect(json.forward.dscpSent).toBe(46);
      expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
      expect(counters.rev_ef_to_cs0!.packets).toBe(json.reverse.received);
      expect(json.reverse.dscpReceived).toEqual({ '0': json.reverse.received });
      const dscpRtp = checkOf(json, 'dscp-rtp');
      expect(dscpRtp.status).toBe('fail');
      expect(dscpRtp.evidence).toMatch(/reverse/i);
      expect(dscpRtp.evidence).toMatch(/CS0/);

      // Signalling: CS3 rewritten forward only.
      const sig = json.signalling;
      expect(sig.forward.received).toBeGreaterThan(0);
      expect(counters.fwd_cs3_to_cs0!.packets).toBe(sig.forward.received + sig.forward.lost);
      expect(sig.forward.dscpReceived).toEqual({ '0': sig.forward.received });
      expect(sig.reverse.dscpReceived).toEqual({ '24': sig.reverse.received });
      const dscpSip = checkOf(json, 'dscp-sip');
      expect(dscpSip.status).toBe('fail');
      expect(dscpSip.evidence).toMatch(/forward/i);
      expect(dscpSip.evidence).toMatch(/CS0/);

      // tshark on the reflector's interface: same packets, same loss, same jitter (within
      // JITTER_VS_TSHARK_MS).
      expect(summary.dropped).toBe(0);
      const rows = (await rtpStreams(capture.file)).filter(
        (r) => r.dstIp === DC_ADDR && r.dstPort === MEDIA_PORT,
      );
      expect(rows, JSON.stringify(rows)).toHaveLength(CALLS);
      for (const stream of json.forward.streams) {
        const row = rows.find((r) => r.ssrc.toLowerCase() === stream.ssrc.toLowerCase());
        expect(row, `tshark has no stream ${stream.ssrc}`).toBeDefined();
        expect(row!.srcPort).toBe(stream.srcPort);
        expect(stream.dstPort).toBe(MEDIA_PORT);
        expect(row!.packets).toBe(stream.received);
        expect(stream.lost).toBe(stream.sent - row!.packets);
        // tshark counts gaps inside the sequence range; drops of a stream's last packets it cannot see.
        expect(row!.lost).toBeLessThanOrEqual(stream.lost);
        expect(Math.abs(row!.maxJitterMs - stream.jitterMaxMs)).toBeLessThanOrEqual(JITTER_VS_TSHARK_MS);
      }
      expect(json.forward.streams.reduce((sum, s) => sum + s.lost, 0)).toBe(dropped);
      // Replies, captured at the site's interface, measured by the probe as they arrive.
      expect(siteSummary.dropped).toBe(0);
      const replies = (await rtpStreams(siteCapture.file)).filter(
        (r) => r.srcIp === DC_ADDR && r.srcPort === MEDIA_PORT && r.dstIp === SITE_ADDR,
      );
      expect(replies, JSON.stringify(replies)).toHaveLength(CALLS);
      for (const stream of json.reverse.streams) {
        const row = replies.find((r) => r.ssrc.toLowerCase() === stream.ssrc.toLowerCase());
        expect(row, `tshark has no reply stream ${stream.ssrc}`).toBeDefined();
        expect(row!.packets).toBe(stream.received);
        expect(Math.abs(row!.maxJitterMs - stream.jitterMaxMs)).toBeLessThanOrEqual(JITTER_VS_TSHARK_MS);
      }
    });

    it('passes a clean path, with latency estimated from RTT when clocks are not known to be synchronised', async () => {
      await topo.impair({ counters: [], forward: [] });
      const { run, json } = await probe();
      expect(json.forward.lost).toBe(0);
      expect(json.reverse.lost).toBe(0);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(json.forward.sent).toBeGreaterThanOrEqual(CALLS * DURATION_S * 50 * 0.95);
      expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
      expect(json.reverse.dscpReceived).toEqual({ '46': json.reverse.received });
      expect(json.signalling.forward.dscpReceived).toEqual({ '24': json.signalling.forward.received });
      expect(json.signalling.reverse.dscpReceived).toEqual({ '24': json.signalling.reverse.received });
      const synced = json.clockSync.local.synchronised && json.clockSync.peer?.synchronised === true;
      expect(json.oneWayMs.estimated).toBe(!synced);
      if (!synced) expect(checkOf(json, 'latency').evidence).toMatch(/RTT|round.trip|estimat/i);
      for (const check of json.checks) expect([check.id, check.status]).toEqual([check.id, 'pass']);
      expect(json.ready).toBe(true);
      expect(run.code).toBe(0);
    });

    it('counts reverse drops exactly and leaves the forward direction clean', async () => {
      await topo.impair({
        counters: ['rev_rtp_drop'],
        forward: [`${REVERSE_MEDIA} numgen random mod 100 < 5 counter name "rev_rtp_drop" drop`],
      });
      const { run, json } = await probe();
      const dropped = (await topo.counters()).rev_rtp_drop!.packets;
      expect(dropped).toBeGreaterThan(0);
      expect(json.reverse.lost).toBe(dropped);
      expect(json.reverse.streams.reduce((sum, s) => sum + s.lost, 0)).toBe(dropped);
      expect(json.forward.lost).toBe(0);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(checkOf(json, 'loss').status).toBe('fail');
      expect(checkOf(json, 'loss').evidence).toMatch(/reverse/i);
      expect(checkOf(json, 'dscp-rtp').status).toBe('pass');
      expect(run.code).toBe(1);
    });

    it('reports 100 % loss, not a hang, when the router drops everything to the reflector', async () => {
      await topo.impair({
        counters: ['blackhole'],
        forward: [`ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} counter name "blackhole" drop`],
      });
      await expectTotalLossInTime(MEDIA_PORT);
      expect((await topo.counters()).blackhole!.packets).toBeGreaterThan(0);
    });

    it('reports 100 % loss, not a crash, when no reflector listens (ICMP port unreachable)', async () => {
      await topo.impair({ counters: [], forward: [] });
      await expectTotalLossInTime(MEDIA_PORT + 1000);
    });

    it('over IPv6: counts forward drops exactly and reads the traffic class at both ends', async () => {
      const v6Port = MEDIA_PORT + 2000;
      const v6 = await startReflector(`[${DC_ADDR6}]:${v6Port}`, { ns: topo.dc });
      try {
        expect(v6.listening).toMatch(/DSCP readable: yes; sockets: native/);
        await topo.impair({
          counters: ['fwd_rtp6_drop'],
          forward: [
            `ip6 saddr ${SITE_ADDR6} ip6 daddr ${DC_ADDR6} udp dport ${v6Port} ${RTP} numgen random mod 100 < 5 counter name "fwd_rtp6_drop" drop`,
          ],
        });
        const { run, json } = await probe(`[${DC_ADDR6}]:${v6Port}`);
        const dropped = (await topo.counters()).fwd_rtp6_drop!.packets;
        expect(dropped).toBeGreaterThan(0);
        expect(json.forward.lost).toBe(dropped);
        expect(json.reverse.lost).toBe(0);
        expect(json.forward.dscpReceived).toEqual({ '46': json.forward.received });
        expect(json.reverse.dscpReceived).toEqual({ '46': json.reverse.received });
        for (const id of ['dscp-rtp', 'dscp-sip']) expect(checkOf(json, id).status, id).toBe('pass');
        expect(checkOf(json, 'loss').status).toBe('fail');
        expect(run.code).toBe(1);
      } finally {
        await v6.stop();
      }
    });

    it('over IPv6 with the dgram fallback: DSCP is unknown with the reason, never pass', async () => {
      const v6Port = MEDIA_PORT + 2100;
      const v6 = await startReflector(`[${DC_ADDR6}]:${v6Port}`, { ns: topo.dc, wrapper: DGRAM_ONLY });
      try {
        expect(v6.listening).toMatch(/DSCP readable: no \(.*IPv6.*\); sockets: dgram/);
        await topo.impair({ counters: [], forward: [] });
        const { run, json } = await probeJson(`[${DC_ADDR6}]:${v6Port}`, {
          ns: topo.site,
          wrapper: DGRAM_ONLY,
          calls: CALLS,
          durationS: DURATION_S,
          waitS: WAIT_S,
        });
        expect(json.socketPath).toBe('dgram');
        expect(json.forward.lost).toBe(0);
        for (const id of ['dscp-rtp', 'dscp-sip']) {
          expect(checkOf(json, id).status, id).toBe('unknown');
          expect(checkOf(json, id).evidence, id).toMatch(/IPv6/);
        }
        expect(run.code).toBe(1);
      } finally {
        await v6.stop();
      }
    });
  },
);
