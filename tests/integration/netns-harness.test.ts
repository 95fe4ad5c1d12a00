// The harness the probe tests stand on, checked on its own: the namespace topology forwards, the
// router's nft drop counter is exact, and dumpcap + `tshark -z rtp,streams` see exactly the packets
// that got through. The sender is a plain dgram loop with known SSRCs and sequence numbers, so
// the truth is known without the probe.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTopology,
  DC_ADDR,
  HOST_IFACE,
  netnsUnavailableReason,
  removeStaleNamespaces,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';
import { parseRtpStreams, rtpStreams, startCapture } from '../helpers/tshark.js';

describe('tshark rtp,streams parser', () => {
  it('reads rows from both ends, with spaced payload names and the problem flag', () => {
    const text = [
      '========================= RTP Streams ========================',
      '   Start time      End time     Src IP addr  Port    Dest IP addr  Port       SSRC          Payload  Pkts         Lost   Min Delta(ms)  Mean Delta(ms)   Max Delta(ms)  Min Jitter(ms) Mean Jitter(ms)  Max Jitter(ms) Problems?',
      '     0.000000     50.459694   192.168.0.201  8090   192.168.0.201  8070 0x00DD5028            g711U  2524     0 (0.0%)           0.073          20.000          89.248           0.016           0.800          11.493 ',
      '     0.100000      4.000000      198.18.1.2 16384      198.18.2.2  5004 0xDEADBEEF   RTPType-111  190     8 (4.0%)           0.013          20.100          60.001           0.001           0.150           1.250 X',
      '==============================================================',
    ].join('\n');
    expect(parseRtpStreams(text)).toEqual([
      {
        srcIp: '192.168.0.201',
        srcPort: 8090,
        dstIp: '192.168.0.201',
        dstPort: 8070,
        ssrc: '0x00DD5028',
        payload: 'g711U',
        packets: 2524,
        lost: 0,
        maxDeltaMs: 89.248,
        meanJitterMs: 0.8,
        maxJitterMs: 11.493,
        problem: false,
      },
      {
        srcIp: '198.18.1.2',
        srcPort: 16384,
        dstIp: '198.18.2.2',
        dstPort: 5004,
        ssrc: '0xDEADBEEF',
        payload: 'RTPType-111',
        packets: 190,
        lost: 8,
        maxDeltaMs: 60.001,
        meanJitterMs: 0.15,
        maxJitterMs: 1.25,
        problem: true,
      },
    ]);
  });
});

const unavailable = netnsUnavailableReason();

// Three RTP streams (PCMU, 20 ms, 172-byte packets) from distinct ports; sequence starts at 65500
// so the capture also crosses the 16-bit wrap.
const SENDER = `
const dgram = require('node:dgram');
const [host, port, streams, packets] = process.argv.slice(1);
const socks = [];
for (let s = 0; s < Number(streams); s++) socks.push(dgram.createSocket('udp4'));
let i = 0;
const t = setInterval(() => {
  socks.forEach((sock, s) => {
    const b = Buffer.alloc(172);
    b[0] = 0x80;
    b.writeUInt16BE((65500 + i) & 0xffff, 2);
    b.writeUInt32BE(i * 160, 4);
    b.writeUInt32BE(0x5eed0000 + s, 8);
    sock.send(b, Number(port), host);
  });
  if (++i >= Number(packets)) {
    clearInterval(t);
    setTimeout(() => socks.forEach((sock) => sock.close()), 200);
  }
}, 20);
`;

describe.skipIf(unavailable !== undefined)(
  `netns harness ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology | undefined;
    let dir: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vr-harness-'));
      topo = await createTopology();
    });
    afterAll(async () => {
      await topo?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('nft drop counter and tshark packet counts account for every packet sent', async () => {
      const t = topo!;
      await t.impair({
        counters: ['rtp_drop'],
        forward: [
          `ip saddr ${SITE_ADDR} udp dport 5004 numgen random mod 100 < 5 counter name "rtp_drop" drop`,
        ],
      });
      const capture = await startCapture({ ns: t.dc, iface: HOST_IFACE, file: join(dir, 'dc.pcapng') });
      const streams = 3;
      const packets = 150;
      const sender = spawn(
        'ip',
        [
          'netns',
          'exec',
          t.site,
          process.execPath,
          '-e',
          SENDER,
          DC_ADDR,
          '5004',
          `${streams}`,
          `${packets}`,
        ],
        {
          stdio: 'ignore',
        },
      );
      const code = await new Promise<number | null>((resolve) => sender.on('close', resolve));
      expect(code).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      const summary = await capture.stop();
      expect(summary.dropped).toBe(0);

      const dropped = (await t.counters()).rtp_drop!.packets;
      expect(dropped).toBeGreaterThan(0);
      const rows = (await rtpStreams(capture.file)).filter((r) => r.dstPort === 5004);
      expect(rows.map((r) => r.ssrc).sort()).toEqual(['0x5EED0000', '0x5EED0001', '0x5EED0002']);
      const received = rows.reduce((sum, r) => sum + r.packets, 0);
      expect(received).toBe(streams * packets - dropped);
      for (const r of rows) {
        expect(r.srcIp).toBe(SITE_ADDR);
        expect(r.payload).toBe('g711U');
        // tshark sees losses inside the sequence range only; a drop of a stream's last packets is invisible to it.
        expect(r.lost).toBeLessThanOrEqual(packets - r.packets);
      }
    });

    it('removes namespaces of dead runs only', async () => {
      const dead = spawnSync('true').pid;
      const mine = `vr-${process.pid}-999-site`;
      const stale = `vr-${dead}-0-site`;
      execFileSync('ip', ['netns', 'add', stale]);
      execFileSync('ip', ['netns', 'add', mine]);
      try {
        const removed = await removeStaleNamespaces();
        expect(removed).toContain(stale);
        const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
        expect(left).not.toContain(stale);
        expect(left).toContain(mine);
      } finally {
        spawnSync('ip', ['netns', 'delete', mine]);
        spawnSync('ip', ['netns', 'delete', stale]);
      }
    });
  },
);
