// A real call, really captured: sipp places a call (uac_pcap: INVITE/200/ACK, G.711 A-law RTP
// played from the SIPp sample, RFC 2833 DTMF, BYE) from the site namespace through the router to a
// sipp UAS in the data-centre namespace; the router drops ~4 % of the G.711 packets and marks RTP
// EF and SIP CS3 with nftables; dumpcap captures at the data centre. `voipready analyze` on that
// file must agree with the ground truth (nft counters) and with tshark.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeCapture, type CaptureResult } from '../../src/capture/analyze.js';
import { fileSource } from '../../src/capture/reader.js';
import {
  createTopology,
  DC_ADDR,
  netnsUnavailableReason,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';
import { parseRtpStreams, startCapture } from '../helpers/tshark.js';

const execFileP = promisify(execFile);
const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'captures');
const SIPP_DTMF = '/usr/share/sip-tester/dtmf_2833_1.pcap';
const G711_PACKETS = 236; // RTP packets in SIPp's g711a.pcap (tshark: 236, 0 lost)

function unavailable(): string | undefined {
  const netns = netnsUnavailableReason();
  if (netns) return netns;
  try {
    accessSync('/usr/bin/sipp', constants.X_OK);
    accessSync(SIPP_DTMF, constants.R_OK);
  } catch {
    return 'sipp is not installed (Debian package sip-tester)';
  }
  return undefined;
}

const reason = unavailable();

/** Runs a command inside a namespace with a hard timeout; resolves with its exit code. */
function inNs(ns: string, cmd: string[], cwd: string, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { cwd, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe.skipIf(reason !== undefined)(
  `analyze a real sipp call captured in namespaces ${reason ?? ''}`,
  () => {
    let topo: Topology;
    let dir: string;
    let file: string;
    let result: CaptureResult;
    let counters: Record<string, { packets: number }>;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'voipready-analyze-sipp-'));
      // uac_pcap plays pcap/g711a.pcap and pcap/dtmf_2833_1.pcap relative to its working directory.
      mkdirSync(join(dir, 'pcap'));
      copyFileSync(join(FIXTURES, 'SIPp__sipp/g711a.pcap'), join(dir, 'pcap/g711a.pcap'));
      copyFileSync(SIPP_DTMF, join(dir, 'pcap/dtmf_2833_1.pcap'));
      topo = await createTopology();
      // RTP byte 1 (7 bits after the marker) is the payload type: 8 = PCMA. Drops first, then marks.
      await topo.impair({
        counters: ['g711_drop', 'g711_pass', 'sip_cs3'],
        forward: [
          `ip saddr ${SITE_ADDR} udp dport 6000 @th,73,7 8 numgen random mod 100 < 4 counter name "g711_drop" drop`,
          `ip saddr ${SITE_ADDR} udp dport 6000 @th,73,7 8 counter name "g711_pass"`,
          `ip saddr ${SITE_ADDR} udp dport 6000 ip dscp set ef`,
          'udp dport 5060 counter name "sip_cs3" ip dscp set cs3',
          'udp sport 5060 ip dscp set cs3',
        ],
      });
      file = join(dir, 'dc.pcapng');
      const capture = await startCapture({ ns: topo.dc, iface: 'eth0', file, filter: 'udp' });
      try {
        const uas = inNs(
          topo.dc,
          ['sipp', '-sn', 'uas', '-i', DC_ADDR, '-p', '5060', '-m', '1', '-nostdin'],
          dir,
          40_000,
        );
        await new Promise((r) => setTimeout(r, 500));
        const uac = await inNs(
          topo.site,
          [
            'sipp',
            '-sn',
            'uac_pcap',
            `${DC_ADDR}:5060`,
            '-i',
            SITE_ADDR,
            '-p',
            '5060',
            '-m',
            '1',
            '-nostdin',
          ],
          dir,
          40_000,
        );
        expect(uac).toBe(0);
        await uas;
      } finally {
        await capture.stop();
      }
      counters = await topo.counters();
      result = analyzeCapture(fileSource(file), file);
    }, 90_000);

    afterAll(async () => {
      await topo?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('finds the call and its G.711 stream, counted as the router counted it', () => {
      expect(result.calls).toHaveLength(1);
      expect(result.calls[0]).toMatchObject({ codec: 'PCMA', status: 200, messages: 6 });
      const g711 = result.streams.find((s) => s.codec === 'PCMA')!;
      expect(g711).toMatchObject({ src: `${SITE_ADDR}:6000`, dst: `${DC_ADDR}:6000`, foundBy: 'sdp' });
      expect(result.calls[0]!.streams).toContain(g711.id);
      // Ground truth: what the router let through, and what it dropped of the 236 sent.
      expect(counters.g711_pass!.packets + counters.g711_drop!.packets).toBe(G711_PACKETS);
      expect(g711.packets).toBe(counters.g711_pass!.packets);
      // Losses at the very start or end are invisible to sequence accounting; the rest are counted.
      expect(g711.lost).toBeLessThanOrEqual(counters.g711_drop!.packets);
      expect(g711.lost).toBeGreaterThanOrEqual(counters.g711_drop!.packets - 2);
      expect(g711.dscp).toEqual({ '46': g711.packets });
    });

    it('agrees with tshark on the same file', async () => {
      const { stdout } = await execFileP('tshark', ['-r', file, '-q', '-z', 'rtp,streams']);
      const rows = parseRtpStreams(stdout);
      expect(rows.length).toBe(result.streams.length);
      for (const row of rows) {
        const s = result.streams.find((x) => x.ssrc === `0x${row.ssrc.slice(2).toUpperCase()}`)!;
        expect(s, row.ssrc).toBeDefined();
        expect([s.packets, s.lost]).toEqual([row.packets, row.lost]);
        expect(Math.abs(s.maxDeltaMs - row.maxDeltaMs)).toBeLessThanOrEqual(0.01);
        expect(Math.abs((s.jitterMaxMs ?? 0) - row.maxJitterMs)).toBeLessThanOrEqual(0.01);
        expect(Math.abs((s.jitterMeanMs ?? 0) - row.meanJitterMs)).toBeLessThanOrEqual(0.01);
      }
    });

    it('judges the marks where the capture saw them, and the loss the router caused', () => {
      const status = Object.fromEntries(result.checks.map((c) => [c.id, c.status]));
      expect(status['dscp-rtp']).toBe('pass');
      // The capture is at the data centre: SIP from the site arrives re-marked CS3 by the router, but
      // the UAS's own replies are seen leaving unmarked, before any router could mark them.
      const sip = result.checks.find((c) => c.id === 'dscp-sip')!;
      expect(sip.status).toBe('fail');
      expect(sip.evidence).toContain(
        `expected CS3, arrived as CS0 (3 of 3) on SIP ${DC_ADDR} → ${SITE_ADDR}`,
      );
      expect(sip.evidence).toContain(`SIP ${SITE_ADDR} → ${DC_ADDR}: CS3 on arrival (3 packets)`);
      expect(result.sip.dscp).toEqual({ '0': 3, '24': 3 });
      expect(counters.sip_cs3!.packets).toBeGreaterThanOrEqual(3);
      const lossPct = (100 * result.streams.find((s) => s.codec === 'PCMA')!.lost) / G711_PACKETS;
      expect(status.loss).toBe(lossPct > 1 ? 'fail' : 'pass');
      expect(result.ready).toBe(false); // dscp-sip fails, whatever the loss
    });
  },
);
