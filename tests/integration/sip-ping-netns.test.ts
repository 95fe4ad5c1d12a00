// CS3 on the way to and from a real SIP server, in network namespaces: site (the probe, through the
// real CLI) — router (nftables rewriting CS3 → CS0 in one direction at a time, counting each rewrite)
// — dc (sipp as the UAS; nftables there marks its responses CS3, as an SBC configured for the
// handbook would). The probe's dscp-sip result must name the rewritten direction where it can see
// it (the responses), and say plainly that it cannot see the other (the requests' marks on arrival).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeUdp } from '../../agent/net/native-udp.js';
import { SipResult } from '../../src/sip/schema.js';
import { cliUnavailableReason, runCli } from '../helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  HOST_IFACE,
  netnsUnavailableReason,
  SITE_ADDR,
  type Topology,
} from '../helpers/netns.js';
import { killAllSipp, type SippServer, sippUnavailableReason, startSipp } from '../helpers/sipp.js';
import { startCapture } from '../helpers/tshark.js';

const reason = netnsUnavailableReason() ?? sippUnavailableReason() ?? cliUnavailableReason();
const SIP_PORT = 5060;

describe.skipIf(reason !== undefined)(`sip-ping DSCP through a re-marking router ${reason ?? ''}`, () => {
  let topo: Topology;
  let sipp: SippServer;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'voipready-sip-netns-'));
    topo = await createTopology();
    // The SIP server marks its responses CS3 (sipp cannot set the TOS byte itself).
    const ruleset = [
      'table ip sbc {',
      '  chain out {',
      '    type filter hook output priority 0; policy accept;',
      `    udp sport ${SIP_PORT} ip dscp set cs3`,
      '  }',
      '}',
      '',
    ].join('\n');
    await new Promise<void>((resolve, reject) => {
      const child = execFile('ip', ['netns', 'exec', topo.dc, 'nft', '-f', '-'], (err) =>
        err ? reject(err) : resolve(),
      );
      child.stdin!.end(ruleset);
    });
    sipp = await startSipp({ scenario: 'options-200.xml', ns: topo.dc, host: DC_ADDR, port: SIP_PORT });
  }, 60_000);

  afterAll(async () => {
    await sipp?.stop();
    killAllSipp();
    await topo?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  async function sipPing(): Promise<SipResult> {
    const r = await runCli(
      ['sip-ping', '--target', `sip:${DC_ADDR}:${SIP_PORT}`, '--count', '4', '--interval', '100ms', '--json'],
      { ns: topo.site, timeoutMs: 60_000 },
    );
    expect(r.stderr).toBe('');
    return SipResult.parse(JSON.parse(r.stdout));
  }

  const rewrite = (direction: 'forward' | 'reverse') => {
    const match =
      direction === 'forward'
        ? `ip saddr ${SITE_ADDR} udp dport ${SIP_PORT}`
        : `ip saddr ${DC_ADDR} udp sport ${SIP_PORT}`;
    return topo.impair({
      counters: ['rewritten'],
      forward: [`${match} ip dscp cs3 counter name "rewritten" ip dscp set cs0`],
    });
  };

  it('no rewrite: requests marked CS3, responses arrive CS3, dscp-sip passes on what it saw', async () => {
    await topo.impair({ counters: [], forward: [] });
    const r = await sipPing();
    expect(r).toMatchObject({ sent: 4, answered: 4, privileged: true });
    // The native layer when built (socket options, no privilege), else the raw socket (root here).
    expect(r.socketPath?.path).toBe(typeof loadNativeUdp() === 'string' ? 'dgram' : 'native');
    expect(r.dscp.forward.dscpSent).toBe(24);
    expect(r.dscp.reverse.dscpReceived).toEqual({ '24': 4 });
    const dscp = r.checks.find((c) => c.id === 'dscp-sip')!;
    expect(dscp.status).toBe('pass');
    expect(dscp.evidence).toMatch(/forward path .* not seen/);
  });

  it('the router rewrites the responses: the reverse path is named as rewritten', async () => {
    await rewrite('reverse');
    const r = await sipPing();
    const { rewritten } = await topo.counters();
    expect(rewritten!.packets).toBe(4); // ground truth: every response was re-marked
    expect(r.dscp.reverse.dscpReceived).toEqual({ '0': 4 });
    const dscp = r.checks.find((c) => c.id === 'dscp-sip')!;
    expect(dscp.status).toBe('fail');
    expect(dscp.evidence).toMatch(
      /arrived as CS0 \(4 of 4\) on reverse path \(responses from sip:198\.18\.2\.2:5060\)/,
    );
    expect(r.ready).toBe(false);
  });

  it('the router rewrites the requests: not visible from the agent, and said so; a capture point at the server sees it', async () => {
    await rewrite('forward');
    const capture = await startCapture({
      ns: topo.dc,
      iface: HOST_IFACE,
      file: join(dir, 'dc.pcapng'),
      filter: `udp port ${SIP_PORT}`,
    });
    await new Promise((resolve) => setTimeout(resolve, 500)); // dumpcap's filter attaches just after
    let r: SipResult;
    try {
      r = await sipPing();
    } finally {
      await capture.stop();
    }
    const { rewritten } = await topo.counters();
    expect(rewritten!.packets).toBe(4); // the requests did lose CS3 on the way
    expect(r.dscp.forward).toMatchObject({ dscpSent: 24, dscpReceived: {} });
    expect(r.dscp.forward.dscpUnknownReason).toMatch(/does not report the DSCP its requests arrive with/);
    const dscp = r.checks.find((c) => c.id === 'dscp-sip')!;
    expect(dscp.evidence).toMatch(/forward path \(requests to sip:198\.18\.2\.2:5060\): not seen/);
    // The sip check itself is unaffected: the server answered.
    expect(r.checks.find((c) => c.id === 'sip')!.status).toBe('pass');
    // Where the forward marks can be seen — a capture at the SIP server — `voipready analyze` names
    // the rewritten direction: requests site → dc arrived CS0, the server's own answers left CS3.
    const analyzed = await runCli(['analyze', capture.file, '--json'], { timeoutMs: 60_000 });
    const checks = JSON.parse(analyzed.stdout).checks as { id: string; status: string; evidence: string }[];
    const atServer = checks.find((c) => c.id === 'dscp-sip')!;
    expect(atServer.status).toBe('fail');
    // Every request the capture holds arrived CS0 (n of n); the server's answers left it CS3.
    const esc = (a: string) => a.replaceAll('.', '\\.');
    expect(atServer.evidence).toMatch(
      new RegExp(`arrived as CS0 \\((\\d+) of \\1\\) on SIP ${esc(SITE_ADDR)} → ${esc(DC_ADDR)}(;|$)`),
    );
    expect(atServer.evidence).toMatch(new RegExp(`SIP ${esc(DC_ADDR)} → ${esc(SITE_ADDR)}: CS3 on arrival`));
  });
});
