// The real CLI over loopback: `voipready reflector` and `voipready probe` / `demo` as child
// processes. Ground truth is what the test knows independently: how many packets a run of N calls
// for D seconds must send, how many junk datagrams it sent itself, and the reflector's own counters.
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeResult } from '../../src/schemas.js';
import { decodeMessage } from '../../src/wire.js';
import {
  type CliProcess,
  cliUnavailableReason,
  killAllCli,
  parseProbeJson,
  runCli,
  startCli,
} from '../helpers/cli.js';

const unavailable = cliUnavailableReason();
const isRoot = process.getuid?.() === 0;
const DROP_TO_NOBODY = [
  'setpriv',
  '--reuid=nobody',
  '--regid=nogroup',
  '--clear-groups',
  '--inh-caps=-all',
  '--bounding-set=-net_raw',
  '--',
];

interface Running {
  proc: CliProcess;
  port: number;
  signallingPort: number;
}

async function startReflector(extra: string[] = []): Promise<Running> {
  const proc = startCli(['reflector', '--listen', '127.0.0.1:0', ...extra]);
  const line = await proc.waitForStderr(/^reflector listening on/, 10_000);
  const m = /127\.0\.0\.1:(\d+) \(media\), 127\.0\.0\.1:(\d+) \(signalling\)/.exec(line)!;
  return { proc, port: Number(m[1]), signallingPort: Number(m[2]) };
}

/** Stops a reflector and returns the counters from its last stderr line. */
async function stopReflector(r: Running): Promise<{ code: number | null; counters: Record<string, number> }> {
  const result = await r.proc.stop();
  const line = result.stderr.split('\n').find((l) => l.startsWith('reflector stopped:')) ?? '';
  const counters: Record<string, number> = {};
  for (const [, n, k] of line.matchAll(/(\d+) (received|replied|summaries)/g)) counters[k!] = Number(n);
  for (const [, k, n] of line.matchAll(
    /(short|not-probe|version|bad-auth|unauthenticated|capacity|unexpected) (\d+)/g,
  ))
    counters[k!] = Number(n);
  return { code: result.code, counters };
}

function probeArgs(r: Running, extra: string[]): string[] {
  return ['probe', '--peer', `127.0.0.1:${r.port}`, '--signalling-port', String(r.signallingPort), ...extra];
}

describe.skipIf(unavailable !== undefined)(
  `reflector and probe over loopback ${unavailable ? `(skipped: ${unavailable})` : ''}`,
  () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'voipready-loopback-'));
    });
    afterAll(async () => {
      await killAllCli();
      rmSync(dir, { recursive: true, force: true });
    });

    it('a 2-call probe sends exactly the packets it should, loses none, and (as root) sees EF/CS3 both ways', async () => {
      const r = await startReflector();
      const out = await runCli(
        probeArgs(r, ['--calls', '2', '--duration', '2s', '--wait', '300ms', '--json']),
        {
          timeoutMs: 20_000,
        },
      );
      const stopped = await stopReflector(r);
      expect(out.code, out.stderr).toBe(isRoot ? 0 : 1);
      const json = parseProbeJson(out.stdout);
      // 2 calls × 2 s / 20 ms; signalling every 100 ms for 2 s.
      expect(json.forward).toMatchObject({ sent: 200, received: 200, lost: 0, duplicates: 0 });
      expect(json.reverse).toMatchObject({ sent: 200, received: 200, lost: 0 });
      expect(json.signalling.forward).toMatchObject({ sent: 20, received: 20, lost: 0 });
      expect(json.forward.streams.map((s) => s.sent)).toEqual([100, 100]);
      for (const s of json.forward.streams) {
        expect(s.srcPort % 2).toBe(0);
        expect(s.dstPort).toBe(r.port);
      }
      // The reflector's own counters: every probe answered, plus one summary per stream.
      expect(stopped.code).toBe(0);
      expect(stopped.counters.replied).toBe(220);
      expect(stopped.counters.summaries).toBeGreaterThanOrEqual(3);
      expect(json.rttMs!.min).toBeGreaterThan(0);
      expect(json.oneWayMs.estimated).toBe(true); // no time daemon here: never assumed
      const status = Object.fromEntries(json.checks.map((c) => [c.id, c.status]));
      if (isRoot) {
        expect(json.privileged).toBe(true);
        expect(json.forward.dscpReceived).toEqual({ '46': 200 });
        expect(json.reverse.dscpReceived).toEqual({ '46': 200 });
        expect(json.signalling.reverse.dscpReceived).toEqual({ '24': 20 });
        expect(status).toEqual({
          latency: 'pass',
          jitter: 'pass',
          loss: 'pass',
          'dscp-rtp': 'pass',
          'dscp-sip': 'pass',
          bandwidth: 'pass',
        });
        expect(json.ready).toBe(true);
      } else {
        expect(status['dscp-rtp']).toBe('unknown');
      }
    });

    it('survives a junk flood while a probe runs: the probe loses nothing, the junk is counted', async () => {
      const r = await startReflector();
      const probe = startCli(probeArgs(r, ['--duration', '2s', '--wait', '300ms', '--json']), {
        timeoutMs: 20_000,
      });
      const junk = createSocket('udp4');
      let junkSent = 0;
      // Junk that the wire decoder accepts (a well-formed probe of either wire version) passes the
      // reflector's cheap tests without a secret; whether a stream then answers it (fresh stream) or
      // not (a replayed sequence) is the stream table's business, so it is bounded, not counted.
      let wellFormedProbes = 0;
      const sendJunk = (buf: Buffer) =>
        new Promise<void>((resolve) => {
          junk.send(buf, r.port, '127.0.0.1', () => resolve());
          junkSent++;
        });
      try {
        await new Promise((res) => setTimeout(res, 300));
        for (let i = 0; i < 3000; i++) {
          const len = i % 3 === 0 ? i % 40 : 32 + (i % 1400);
          const buf = Buffer.alloc(len);
          for (let j = 0; j < len; j++) buf[j] = (i * 7919 + j * 104729) & 0xff;
          // A third look like RTP with our magic, to reach the later (version, HMAC) checks.
          if (i % 3 === 1 && len >= 14) {
            buf[0] = 0x80;
            buf[12] = 0x56;
          }
          if (typeof decodeMessage(buf) !== 'string') wellFormedProbes++;
          await sendJunk(buf);
        }
      } finally {
        junk.close();
      }
      const out = await probe.done;
      const stopped = await stopReflector(r);
      expect(out.code, out.stderr).toBe(isRoot ? 0 : 1);
      const json = parseProbeJson(out.stdout);
      expect(json.forward).toMatchObject({ sent: 100, received: 100, lost: 0 });
      expect(json.reverse.lost).toBe(0);
      // Rejected by the wire decoder: exactly the junk the decoder refuses (the rest reaches the
      // stream table, which refuses replays and sequence jumps by its own counters).
      const rejected = ['short', 'not-probe', 'version'].reduce(
        (sum, k) => sum + (stopped.counters[k] ?? 0),
        0,
      );
      expect(junkSent).toBe(3000);
      expect(wellFormedProbes).toBeGreaterThan(0);
      expect(rejected).toBe(3000 - wellFormedProbes);
      expect(stopped.counters.replied).toBeGreaterThanOrEqual(100 + 20);
      expect(stopped.counters.replied).toBeLessThanOrEqual(100 + 20 + wellFormedProbes);
    });

    it('with a secret: the right key is answered; a wrong key gets no replies, 100 % loss, counted as bad-auth', async () => {
      const good = join(dir, 'good.key');
      const bad = join(dir, 'bad.key');
      writeFileSync(good, 'the reflector secret\n');
      writeFileSync(bad, 'somebody else entirely\n');
      const r = await startReflector(['--secret-file', good]);
      const ok = await runCli(
        probeArgs(r, ['--duration', '1s', '--wait', '200ms', '--json', '--secret-file', good]),
        { timeoutMs: 20_000 },
      );
      const wrong = await runCli(
        probeArgs(r, ['--duration', '1s', '--wait', '200ms', '--json', '--secret-file', bad]),
        { timeoutMs: 20_000 },
      );
      const stopped = await stopReflector(r);
      expect(parseProbeJson(ok.stdout).forward).toMatchObject({ sent: 50, received: 50, lost: 0 });
      expect(wrong.code).toBe(1);
      const w = parseProbeJson(wrong.stdout);
      expect(w.forward).toMatchObject({ sent: 50, received: 0, lost: 50, lossPct: 100 });
      expect(w.reverse.received).toBe(0);
      expect(w.ready).toBe(false);
      // 50 media + 10 signalling probes, and the summary requests (retried), all with the wrong key.
      expect(stopped.counters['bad-auth']).toBeGreaterThanOrEqual(60);
      expect(stopped.counters.replied).toBe(60);
    });

    it('over IPv6 (::1): measures delay, jitter and loss, and the traffic class (native sockets)', async () => {
      const proc = startCli(['reflector', '--listen', '[::1]:0']);
      const line = await proc.waitForStderr(/^reflector listening on/, 10_000);
      const m =
        /\[::1\]:(\d+) \(media\), \[::1\]:(\d+) \(signalling\); DSCP readable: yes; sockets: native/.exec(
          line,
        )!;
      expect(m, line).not.toBeNull();
      const out = await runCli(
        [
          'probe',
          '--peer',
          `[::1]:${m[1]}`,
          '--signalling-port',
          m[2]!,
          '--duration',
          '1s',
          '--wait',
          '200ms',
          '--json',
        ],
        { timeoutMs: 20_000 },
      );
      await proc.stop();
      const json = parseProbeJson(out.stdout);
      expect(json.forward).toMatchObject({ sent: 50, received: 50, lost: 0, dscpSent: 46 });
      expect(json.reverse).toMatchObject({ sent: 50, received: 50, lost: 0 });
      expect(json.forward.dscpReceived).toEqual({ '46': 50 });
      expect(json.reverse.dscpReceived).toEqual({ '46': 50 });
      // The fallback's IPv6 answer (DSCP unknown, with the reason): netns-probe.test.ts.
      expect(json.checks.find((c) => c.id === 'dscp-rtp')!.status).toBe('pass');
      expect(json.checks.find((c) => c.id === 'loss')!.status).toBe('pass');
    });

    it('judges against a policy file: a 1 µs latency limit fails a loopback path', async () => {
      const policy = join(dir, 'strict.yaml');
      writeFileSync(policy, 'latency:\n  maxMs: 0.001\njitter:\n  severity: warn\n');
      const r = await startReflector();
      const out = await runCli(
        probeArgs(r, ['--duration', '500ms', '--wait', '100ms', '--json', '--policy', policy]),
        {
          timeoutMs: 20_000,
        },
      );
      await stopReflector(r);
      expect(out.code, out.stderr).toBe(1);
      const latency = parseProbeJson(out.stdout).checks.find((c) => c.id === 'latency')!;
      expect(latency).toMatchObject({ status: 'fail', limit: 0.001 });
      const bad = await runCli(['probe', '--peer', '127.0.0.1:5004', '--policy', join(dir, 'missing.yaml')], {
        timeoutMs: 10_000,
      });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^voipready probe: cannot read policy file .*missing\.yaml: ENOENT\n$/);
    });

    it('port in use and bad addresses: one line, exit 2', async () => {
      const holder: Socket = createSocket('udp4');
      await new Promise<void>((res) => holder.bind(0, '127.0.0.1', () => res()));
      const port = holder.address().port;
      try {
        const inUse = await runCli(['reflector', '--listen', `127.0.0.1:${port}`], { timeoutMs: 10_000 });
        expect(inUse.code).toBe(2);
        expect(inUse.stderr).toBe(
          `voipready reflector: cannot listen on 127.0.0.1:${port}: port already in use\n`,
        );
      } finally {
        holder.close();
      }
      const notIp = await runCli(['reflector', '--listen', 'not-an-address:5004'], { timeoutMs: 10_000 });
      expect(notIp.code).toBe(2);
      expect(notIp.stderr).toMatch(
        /^voipready reflector: listen address "not-an-address" is not an IPv4 or IPv6 address\n$/,
      );
      // 192.0.2.1 (TEST-NET-1) is not an address of this host: bind fails, nothing is sent.
      const foreign = await runCli(['reflector', '--listen', '192.0.2.1:5004'], { timeoutMs: 10_000 });
      expect(foreign.code).toBe(2);
      expect(foreign.stderr).toBe(
        'voipready reflector: cannot listen on 192.0.2.1:5004: not an address of this host\n',
      );
      const noPort = await runCli(['probe', '--peer', '127.0.0.1'], { timeoutMs: 10_000 });
      expect(noPort.code).toBe(2);
      expect(noPort.stderr.trim().split('\n')).toHaveLength(1);
      const badCodec = await runCli(['probe', '--peer', '127.0.0.1:5004', '--codec', 'speex'], {
        timeoutMs: 10_000,
      });
      expect(badCodec.code).toBe(2);
      expect(badCodec.stderr).toMatch(
        /^voipready probe: --codec "speex" is not one of g711u, g711a, g729, g722, opus\n$/,
      );
    });

    it('an unreachable peer (nothing listening) gives 100 % loss and exit 1 within duration + wait + slack', async () => {
      const s = createSocket('udp4');
      await new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()));
      const port = s.address().port;
      s.close(); // now nothing listens there: the kernel answers with ICMP port unreachable
      const out = await runCli(
        ['probe', '--peer', `127.0.0.1:${port}`, '--duration', '1s', '--wait', '500ms', '--json'],
        {
          timeoutMs: 20_000,
        },
      );
      const exitedAtMs = Date.now();
      expect(out.code, out.stderr).toBe(1);
      expect(out.stderr).toBe('');
      const json = parseProbeJson(out.stdout);
      expect(json.forward).toMatchObject({ sent: 50, received: 0, lost: 50, lossPct: 100 });
      expect(json.checks.find((c) => c.id === 'loss')!.status).toBe('fail');
      expect(json.ready).toBe(false);
      // 1 s sending + 0.5 s wait + at most 1.5 s of summary retries, plus slack for exiting; counted
      // from the probe's own start, since node's start-up took seconds on a loaded machine.
      expect(exitedAtMs - Date.parse(json.startedAt!)).toBeLessThan(5000);
    });

    it('a peer name that does not resolve: the document says why, exit 1, not 2; rows say "1 call"/"4 calls"', async () => {
      // RFC 6761: .invalid never resolves and is answered locally, so no DNS query leaves the host.
      const peer = 'no-such-host.invalid:5004';
      const out = await runCli(['probe', '--peer', peer, '--duration', '1s', '--json'], {
        timeoutMs: 20_000,
      });
      expect(out.code, out.stderr).toBe(1);
      expect(out.stderr).toBe('');
      // The contract, not the run-timing extras: nothing was sent, so nothing was timed.
      const json = ProbeResult.parse(JSON.parse(out.stdout));
      expect(json.sendTiming).toEqual({ p50Ms: null, p99Ms: null, maxMs: null, samples: 0 });
      const reason = 'cannot resolve no-such-host.invalid: ENOTFOUND';
      for (const d of [json.forward, json.reverse]) {
        expect(d).toMatchObject({ sent: 50, received: 0, lost: 50, lossPct: 100, dscpUnknownReason: reason });
      }
      expect(json.checks.find((c) => c.id === 'latency')!.evidence).toBe(`not measured: ${reason}`);
      expect(json.ready).toBe(false);
      for (const [calls, unit] of [
        ['1', 'call'],
        ['4', 'calls'],
      ] as const) {
        const human = await runCli(['probe', '--peer', peer, '--duration', '1s', '--calls', calls], {
          timeoutMs: 20_000,
        });
        expect(human.code, human.stderr).toBe(1);
        const row = human.stdout.split('\n').find((l) => l.startsWith('bandwidth '));
        expect(row).toMatch(
          new RegExp(`^bandwidth +FAIL +${calls} ${unit} +${calls} ${unit} +${calls} × g711u`),
        );
      }
    });

    it.skipIf(!isRoot)(
      'no route at all (a fresh namespace with no interface up): 100 % loss, exit 1, no crash',
      async () => {
        const ns = `vr-lb-noroute-${process.pid}`;
        execFileSync('ip', ['netns', 'add', ns]);
        try {
          // 192.0.2.1 (TEST-NET-1): nothing can leave this namespace, so nothing is sent anywhere.
          const out = await runCli(
            ['probe', '--peer', '192.0.2.1:5004', '--duration', '500ms', '--wait', '0', '--json'],
            {
              ns,
              timeoutMs: 20_000,
            },
          );
          expect(out.code, out.stderr).toBe(1);
          const json = parseProbeJson(out.stdout);
          expect(json.forward).toMatchObject({
            sent: 25,
            received: 0,
            lost: 25,
            lossPct: 100,
            maxBurstLoss: 25,
          });
          expect(json.rttMs).toBeNull();
          expect(json.checks.find((c) => c.id === 'latency')!.status).toBe('unknown');
        } finally {
          execFileSync('ip', ['netns', 'del', ns]);
        }
      },
    );

    it.skipIf(!isRoot)(
      'demo as an ordinary user (setpriv to nobody): native sockets mark and read DSCP',
      async () => {
        const out = await runCli(['demo', '--duration', '1s'], {
          wrapper: DROP_TO_NOBODY,
          timeoutMs: 20_000,
        });
        expect(out.code, out.stdout + out.stderr).toBe(0);
        const rows = out.stdout.split('\n');
        for (const id of ['dscp-rtp', 'dscp-sip'])
          expect(rows.find((l) => l.startsWith(`${id} `))).toMatch(/PASS/);
      },
    );

    it.skipIf(!isRoot)(
      'demo as an ordinary user with the dgram fallback works and says why DSCP is unknown',
      async () => {
        const out = await runCli(['demo', '--duration', '1s'], {
          wrapper: [...DROP_TO_NOBODY, 'env', 'VOIPREADY_NATIVE_UDP=0'],
          timeoutMs: 20_000,
        });
        expect(out.code, out.stderr).toBe(1);
        const rows = out.stdout.split('\n');
        for (const id of ['dscp-rtp', 'dscp-sip']) {
          const row = rows.find((l) => l.startsWith(`${id} `))!;
          expect(row).toMatch(/UNKNOWN/);
          expect(row).toContain('needs CAP_NET_RAW: run as root or `setcap cap_net_raw+ep');
        }
        expect(rows.find((l) => l.startsWith('loss '))).toMatch(/PASS/);
      },
    );

    it.skipIf(!isRoot)('demo as root: every row passes on loopback', async () => {
      const out = await runCli(['demo', '--duration', '1s', '--json'], { timeoutMs: 20_000 });
      expect(out.code, out.stderr).toBe(0);
      const json = parseProbeJson(out.stdout);
      expect(json.checks.map((c) => c.status)).toEqual(['pass', 'pass', 'pass', 'pass', 'pass', 'pass']);
      expect(json.forward.dscpReceived).toEqual({ '46': 50 });
    });
  },
);
