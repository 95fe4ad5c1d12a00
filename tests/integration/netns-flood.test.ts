// A reflector under a garbage flood still answers genuine probes promptly: a second process on the
// site floods the reflector's media port with junk (random bytes of random length, short packets,
// RTP that is not a probe, control messages of a future version, oversized datagrams) at over ten
// times the probe's own packet rate (about 15,000 packets/s here) while a probe runs. The router
// counts the junk it forwarded.
import { spawn } from 'node:child_process';
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
  netnsUnavailableReason,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';

const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
const MEDIA_PORT = 5004;
const FLOOD_PORT = 40000;
const FLOOD_PER_MS = 20;

// Sends FLOOD_PER_MS junk datagrams every millisecond from FLOOD_PORT until killed.
const FLOODER = `
const dgram = require('node:dgram');
const crypto = require('node:crypto');
const [host, port, perMs, srcPort] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const sock = dgram.createSocket('udp4');
const kinds = [
  () => crypto.randomBytes(1 + crypto.randomInt(1400)),
  () => crypto.randomBytes(crypto.randomInt(1, 31)),
  () => { const b = crypto.randomBytes(172); b[0] = 0x80; return b; },
  () => { const b = Buffer.alloc(172); b[0] = 0x80; b[12] = 0x56; b[13] = 0xf1; return b; },
  () => { const b = Buffer.alloc(128); b[1] = 0x56; b[2] = 0xf3; return b; },
  () => crypto.randomBytes(1600),
];
sock.bind(srcPort, () => {
  let n = 0;
  setInterval(() => {
    for (let i = 0; i < perMs; i++) sock.send(kinds[n++ % kinds.length](), port, host);
  }, 1);
});
`;

describe.skipIf(unavailable !== undefined)(
  `reflector under a garbage flood ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let topo: Topology;
    let reflector: ReflectorProcess;

    beforeAll(async () => {
      topo = await createTopology();
      reflector = await startReflector(`${DC_ADDR}:${MEDIA_PORT}`, { ns: topo.dc });
    });
    afterAll(async () => {
      await reflector?.stop();
      await killAllCli();
      await topo?.destroy();
    });

    it('keeps answering 10 calls without loss while over ten times as much junk arrives', async () => {
      await topo.impair({
        counters: ['junk'],
        forward: [
          `ip saddr ${SITE_ADDR} udp sport ${FLOOD_PORT} udp dport ${MEDIA_PORT} counter name "junk"`,
        ],
      });
      const flooder = spawn(
        'ip',
        [
          'netns',
          'exec',
          topo.site,
          process.execPath,
          '-e',
          FLOODER,
          DC_ADDR,
          `${MEDIA_PORT}`,
          `${FLOOD_PER_MS}`,
          `${FLOOD_PORT}`,
        ],
        { stdio: 'ignore' },
      );
      try {
        await new Promise((r) => setTimeout(r, 500));
        const { json } = await probeJson(`${DC_ADDR}:${MEDIA_PORT}`, { ns: topo.site, calls: 10 });
        const junk = (await topo.counters()).junk!.packets;
        // The flood really ran: more than ten junk datagrams for every genuine probe.
        expect(junk).toBeGreaterThan(10 * json.forward.sent);
        expect(json.forward.lost).toBe(0);
        expect(json.reverse.lost).toBe(0);
        expect(json.checks.find((c) => c.id === 'jitter')?.status).toBe('pass');
        expect(json.checks.find((c) => c.id === 'loss')?.status).toBe('pass');
      } finally {
        flooder.kill('SIGKILL');
      }
      const stopped = await reflector.stop();
      expect(stopped.code).toBe(0);
      expect(stopped.stderr).toMatch(/reflector stopped: \d+ received/);
    });
  },
);
