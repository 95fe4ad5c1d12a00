// Reordering and duplication on a real path, each counted as what it is and never as loss.
// This kernel has no netem, so the router reorders with two queues: nft moves 20 of every 100 forward RTP probes
// (`numgen inc`, deterministic bursts) into a slow 80 kbit/s htb class; the packets that follow a
// burst take the fast class and overtake its tail. The truth is read off a capture at the
// reflector's interface: per stream, a packet whose sequence number is below the highest already
// seen arrived out of order. Duplicates come from nft `dup to`, which sends a copy of chosen
// packets on to the reflector and counts them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cliUnavailableReason,
  killAllCli,
  probeJson,
  type ReflectorProcess,
  startReflector,
} from '../helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  HOST_IFACE,
  netnsUnavailableReason,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';
import { type RtpPacket, rtpPackets, startCapture } from '../helpers/tshark.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const MEDIA_PORT = 5004;
const FORWARD_MEDIA = `ip saddr ${SITE_ADDR} ip daddr ${DC_ADDR} udp dport ${MEDIA_PORT} @th,64,8 0x80`;

/** Late arrivals per RFC 3550 A.1 sequence arithmetic: below the highest sequence seen in the stream. */
function lateArrivals(packets: RtpPacket[]): number {
  const highest = new Map<number, number>();
  let late = 0;
  for (const p of packets) {
    const top = highest.get(p.ssrc);
    if (top === undefined) {
      highest.set(p.ssrc, p.sequence);
      continue;
    }
    let delta = p.sequence - (top & 0xffff);
    if (delta > 32767) delta -= 65536;
    else if (delta < -32768) delta += 65536;
    if (delta < 0) late++;
    else highest.set(p.ssrc, top + delta);
  }
  return late;
}

describe.skipIf(unavailable !== undefined)(
  `reordering and duplication on a routed path ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology;
    let reflector: ReflectorProcess;
    let dir: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vr-netns-sequence-'));
      topo = await createTopology();
      reflector = await startReflector(`${DC_ADDR}:${MEDIA_PORT}`, { ns: topo.dc });
    });
    afterAll(async () => {
      await reflector?.stop();
      await killAllCli();
      await topo?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const probe = async () => (await probeJson(`${DC_ADDR}:${MEDIA_PORT}`, { ns: topo.site, calls: 4 })).json;

    it('counts exactly the reorders seen on the wire, and none of them as loss', async () => {
      const slow = await topo.slowLane('forward', 80);
      await topo.impair({
        counters: ['slow_lane'],
        forward: [
          `${FORWARD_MEDIA} numgen inc mod 100 < 20 counter name "slow_lane" meta priority set ${slow}`,
        ],
      });
      const capture = await startCapture({ ns: topo.dc, iface: HOST_IFACE, file: join(dir, 'dc.pcapng') });
      const json = await probe();
      expect((await capture.stop()).dropped).toBe(0);
      expect((await topo.counters()).slow_lane!.packets).toBeGreaterThan(0);
      expect((await topo.shaperStats('forward')).drops).toBe(0);

      const late = lateArrivals(await rtpPackets(capture.file, `udp.dstport == ${MEDIA_PORT}`));
      expect(late).toBeGreaterThan(0);
      expect(json.forward.reordered).toBe(late);
      expect(json.forward.streams.reduce((sum, s) => sum + s.reordered, 0)).toBe(late);
      expect(json.forward.lost).toBe(0);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(json.forward.duplicates).toBe(0);
      expect(json.reverse.reordered).toBe(0);
      expect(json.checks.find((c) => c.id === 'loss')?.status).toBe('pass');
    });

    it('counts exactly the duplicates the router made, and none of them as loss', async () => {
      await topo.impair({
        family: 'ip',
        counters: ['duplicated'],
        forward: [
          `${FORWARD_MEDIA} numgen random mod 100 < 5 counter name "duplicated" dup to ${DC_ADDR} device "eth1"`,
        ],
      });
      const json = await probe();
      const duplicated = (await topo.counters()).duplicated!.packets;
      expect(duplicated).toBeGreaterThan(0);
      expect(json.forward.duplicates).toBe(duplicated);
      expect(json.forward.streams.reduce((sum, s) => sum + s.duplicates, 0)).toBe(duplicated);
      expect(json.forward.received).toBe(json.forward.sent);
      expect(json.forward.lost).toBe(0);
      expect(json.checks.find((c) => c.id === 'loss')?.status).toBe('pass');
    });
  },
);
