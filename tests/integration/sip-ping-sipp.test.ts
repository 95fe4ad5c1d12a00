// SIP OPTIONS probing against a real SIP server: sipp (sip-tester) as a UAS on loopback, answering
// normally, slowly, with 503, never, after ignoring two transmissions, or with bad responses first;
// over UDP, TCP and TLS. Retransmission schedules are checked against the wire (dumpcap on lo, read
// by tshark); response times against the wire in sip-ping-timing.test.ts.
import { execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeUdp, NATIVE_UDP_ENV } from '../../agent/net/native-udp.js';
import { runSipPing, type SipPingConfig, systemSipDeps } from '../../agent/sip/ping.js';
import { SipResult } from '../../src/sip/schema.js';
import { cliUnavailableReason, runCli } from '../helpers/cli.js';
import { binaryMissing, waitUntil } from '../helpers/service.js';
import {
  captureLo,
  freePort,
  killAllSipp,
  sippUnavailableReason,
  startSipp,
  wireSip,
} from '../helpers/sipp.js';

const execFileP = promisify(execFile);
const reason = sippUnavailableReason();
const privileged = process.getuid?.() === 0;

/** Runs the probe and checks the document against its schema first. */
async function ping(
  config: Omit<SipPingConfig, 'intervalMs'> & { intervalMs?: number },
  deps = systemSipDeps,
): Promise<SipResult> {
  const result = await runSipPing({ intervalMs: 50, ...config }, deps);
  return SipResult.parse(JSON.parse(JSON.stringify(result)));
}

const tlsUnavailable = binaryMissing('haproxy') ?? binaryMissing('openssl');

/** haproxy terminating TLS (a self-signed certificate made here) and passing the stream to sipp. */
async function startTlsFront(
  dir: string,
  backendPort: number,
): Promise<{ port: number; stop(): Promise<void> }> {
  const pem = join(dir, 'server.pem');
  await execFileP('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  writeFileSync(
    pem,
    readFileSync(join(dir, 'cert.pem'), 'utf8') + readFileSync(join(dir, 'key.pem'), 'utf8'),
  );
  const port = await freePort();
  const cfg = join(dir, `haproxy-${port}.cfg`);
  writeFileSync(
    cfg,
    [
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend sip_tls',
      `  bind 127.0.0.1:${port} ssl crt ${pem}`,
      '  default_backend sipp',
      'backend sipp',
      `  server sipp 127.0.0.1:${backendPort}`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  await waitUntil(
    `haproxy on 127.0.0.1:${port} (${stderr.trim()})`,
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
  ).catch(async (err) => {
    await stop();
    throw err;
  });
  return { port, stop };
}

describe.skipIf(reason !== undefined)(`sip-ping against sipp ${reason ?? ''}`, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'voipready-sip-'));
  });
  afterAll(() => {
    killAllSipp();
    rmSync(dir, { recursive: true, force: true });
  });

  it('UDP: answered 200, matched per request, CS3 on the requests, the responses’ marks read', async () => {
    const sipp = await startSipp({ scenario: 'options-200.xml' });
    try {
      const r = await ping({ target: `sip:127.0.0.1:${sipp.port}`, count: 4 });
      expect(r).toMatchObject({ schema: 'voipready.sip/1', transport: 'udp', sent: 4, answered: 4 });
      expect(r.codes).toEqual({ '200': 4 });
      expect(r.requests.map((q) => [q.cseq, q.code, q.reason, q.retransmissions])).toEqual([
        [1, 200, 'OK', 0],
        [2, 200, 'OK', 0],
        [3, 200, 'OK', 0],
        [4, 200, 'OK', 0],
      ]);
      expect(r.responseMs.min).not.toBeNull();
      expect(r.responseMs.min!).toBeLessThanOrEqual(r.responseMs.p50!);
      expect(r.responseMs.p95!).toBeLessThanOrEqual(r.responseMs.max!);
      expect(r).toMatchObject({ strays: 0, malformed: 0, retransmissions: 0, succeeded: true });
      expect(r.checks.find((c) => c.id === 'sip')).toMatchObject({ status: 'pass' });
      if (privileged) {
        expect(r.dscp.forward.dscpSent).toBe(24);
        // sipp does not mark: its responses arrive CS0, and the check says so.
        expect(r.dscp.reverse.dscpReceived).toEqual({ '0': 4 });
        const dscp = r.checks.find((c) => c.id === 'dscp-sip')!;
        expect(dscp.status).toBe('fail');
        expect(dscp.evidence).toMatch(/arrived as CS0 \(4 of 4\) on reverse path/);
      }
    } finally {
      await sipp.stop();
    }
  });

  it('UDP: 503 is an answer, but fails the sip check', async () => {
    const sipp = await startSipp({ scenario: 'options-503.xml' });
    try {
      const r = await ping({ target: `sip:127.0.0.1:${sipp.port}`, count: 2 });
      expect(r).toMatchObject({ sent: 2, answered: 2, codes: { '503': 2 } });
      expect(r.requests[0]).toMatchObject({ code: 503, reason: 'Service Unavailable' });
      const sip = r.checks.find((c) => c.id === 'sip')!;
      expect(sip).toMatchObject({ status: 'fail', value: '503' });
      expect(r.ready).toBe(false);
    } finally {
      await sipp.stop();
    }
  });

  it('UDP: no answer — Timer E doubles from T1 to T2 on the wire, Timer F gives up at 64·T1', async () => {
    const t1Ms = 50;
    const t2Ms = 200;
    const sipp = await startSipp({ scenario: 'options-200.xml', pauseMs: 3_600_000 });
    const cap = await captureLo(dir, sipp.port);
    const started = performance.now();
    let r: SipResult;
    try {
      r = await ping({ target: `sip:127.0.0.1:${sipp.port}`, count: 1, t1Ms, t2Ms });
    } finally {
      await sipp.stop();
    }
    const elapsed = performance.now() - started;
    const wire = (await wireSip(await cap.stop(), sipp.port)).filter((w) => w.status === null);
    expect(r).toMatchObject({ sent: 1, answered: 0, codes: {} });
    expect(r.requests[0]!.code).toBeNull();
    expect(r.requests[0]!.error).toMatch(/Timer F \(3200 ms\)/);
    expect(elapsed).toBeGreaterThanOrEqual(64 * t1Ms);
    // Ground truth: every transmission the probe counted is on the wire, and no other.
    expect(wire.length).toBe(1 + r.requests[0]!.retransmissions);
    expect(r.retransmissions).toBeGreaterThanOrEqual(10);
    const gaps = wire.slice(1).map((w, i) => w.timeMs - wire[i]!.timeMs);
    // Timers never fire early (1 ms for the capture's own stamping); the first three double.
    expect(gaps[0]!).toBeGreaterThanOrEqual(t1Ms - 1);
    expect(gaps[1]!).toBeGreaterThanOrEqual(2 * t1Ms - 1);
    expect(gaps[2]!).toBeGreaterThanOrEqual(t2Ms - 1);
    for (const g of gaps.slice(2)) expect(g).toBeGreaterThanOrEqual(t2Ms - 1);
    // ...and are capped at T2: on a loaded machine late, but not by another doubling.
    for (const g of gaps.slice(3)) expect(g).toBeLessThan(2 * t2Ms);
    expect(r.checks.find((c) => c.id === 'sip')).toMatchObject({ status: 'fail', value: 'no answer' });
  });

  it('UDP: a server ignoring the first two transmissions answers the second retransmission', async () => {
    const t1Ms = 100;
    const sipp = await startSipp({ scenario: 'options-ignore-two.xml', args: ['-nr'] });
    try {
      const r = await ping({ target: `sip:127.0.0.1:${sipp.port}`, count: 1, t1Ms });
      expect(r).toMatchObject({ sent: 1, answered: 1, retransmissions: 2, codes: { '200': 1 } });
      expect(r.requests[0]!.retransmissions).toBe(2);
      // Sent at 0, T1 and 3·T1: the answer came after the third transmission.
      expect(r.requests[0]!.responseMs!).toBeGreaterThanOrEqual(3 * t1Ms);
    } finally {
      await sipp.stop();
    }
  });

  it('TCP: answered, no retransmissions, marking stated as not possible', async () => {
    const sipp = await startSipp({ scenario: 'options-200.xml', transport: 'tcp', pauseMs: 100 });
    let r: SipResult;
    try {
      r = await ping({ target: `sip:127.0.0.1:${sipp.port};transport=tcp`, count: 3 });
    } finally {
      await sipp.stop();
    }
    expect(r).toMatchObject({ transport: 'tcp', sent: 3, answered: 3, retransmissions: 0 });
    expect(r.codes).toEqual({ '200': 3 });
    for (const q of r.requests) expect(q.responseMs!).toBeGreaterThanOrEqual(100);
    expect(r.dscp.forward).toMatchObject({ dscpSent: null });
    expect(r.dscp.forward.dscpUnknownReason).toMatch(/IP_TOS/);
    expect(r.checks.find((c) => c.id === 'dscp-sip')!.status).toBe('unknown');
  });

  it('TCP: no answer — one transmission, Timer F', async () => {
    const sipp = await startSipp({ scenario: 'options-200.xml', transport: 'tcp', pauseMs: 3_600_000 });
    try {
      const r = await ping({ target: `sip:127.0.0.1:${sipp.port};transport=tcp`, count: 2, t1Ms: 20 });
      expect(r).toMatchObject({ sent: 2, answered: 0, retransmissions: 0 });
      expect(r.requests.every((q) => /Timer F \(1280 ms\)/.test(q.error ?? ''))).toBe(true);
    } finally {
      await sipp.stop();
    }
  });

  it.skipIf(tlsUnavailable !== undefined)(
    `TLS (haproxy terminating TLS in front of sipp's TCP): answered; an unverifiable certificate is a failed run ${tlsUnavailable ?? ''}`,
    async () => {
      const sipp = await startSipp({ scenario: 'options-200.xml', transport: 'tcp', pauseMs: 20 });
      const front = await startTlsFront(dir, sipp.port);
      try {
        const r = await ping({ target: `sips:127.0.0.1:${front.port}`, count: 3, tlsVerify: false });
        expect(r).toMatchObject({ transport: 'tls', sent: 3, answered: 3, retransmissions: 0 });
        expect(r.codes).toEqual({ '200': 3 });
        expect(r.dscp.forward.dscpUnknownReason).toMatch(/IP_TOS/);
        // The self-signed certificate is refused when verified (the default).
        const strict = await ping({ target: `sip:127.0.0.1:${front.port};transport=tls`, count: 1 });
        expect(strict).toMatchObject({ succeeded: false, failedAt: 'tls', sent: 0 });
        expect(strict.reason).toMatch(/TLS handshake failed: .*(self[- ]signed|certificate)/i);
        expect(strict.checks.find((c) => c.id === 'sip')).toMatchObject({ status: 'fail' });
      } finally {
        await front.stop();
        await sipp.stop();
      }
    },
  );

  it('TCP: nothing listening — failure as data, not an exception', async () => {
    const port = await freePort();
    const r = await ping({ target: `sip:127.0.0.1:${port};transport=tcp`, count: 1 });
    expect(r).toMatchObject({ succeeded: false, failedAt: 'connect', sent: 0, answered: 0, ready: false });
    expect(r.reason).toMatch(/ECONNREFUSED/);
    expect(r.checks.find((c) => c.id === 'sip')).toMatchObject({ status: 'fail', value: 'no answer' });
  });

  it('an unresolvable name is a failed run naming the cause', async () => {
    const r = await ping({ target: 'sip:sbc.example.invalid', count: 1 });
    expect(r).toMatchObject({ succeeded: false, failedAt: 'resolve', ready: false });
    expect(r.reason).toMatch(/cannot resolve sbc\.example\.invalid: ENOTFOUND/);
  });

  it('wrong-branch, wrong-method and malformed responses are ignored and counted', async () => {
    const sipp = await startSipp({ scenario: 'options-bad-then-ok.xml' });
    try {
      const r = await ping({ target: `sip:127.0.0.1:${sipp.port}`, count: 2 });
      expect(r).toMatchObject({ sent: 2, answered: 2, codes: { '200': 2 } });
      expect(r.strays).toBe(4); // per request: the wrong branch and the INVITE response
      expect(r.malformed).toBe(2); // per request: "SIP/2.0 2OO"
    } finally {
      await sipp.stop();
    }
  });

  it('a flood of unsolicited datagrams is counted and does not disturb the measurement', async () => {
    const sipp = await startSipp({ scenario: 'options-200.xml', pauseMs: 200 });
    const flood = dgram.createSocket('udp4');
    let flooded = 0;
    try {
      const deps = {
        ...systemSipDeps,
        // The dgram path: a native socket is connected to the server, so the kernel drops datagrams
        // from anywhere else before they could be counted.
        nativeUdp: () => 'switched off: this test counts unsolicited datagrams',
        open: async (o: Parameters<typeof systemSipDeps.open>[0]) => {
          const conn = await systemSipDeps.open(o);
          if (!('failedAt' in conn)) {
            // From another port: junk, SIP-looking responses with branches of no request, requests.
            const junk = [
              Buffer.from([0xff, 0x00, 0x13, 0x37]),
              Buffer.from(
                'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKflood\r\nCSeq: 1 OPTIONS\r\n\r\n',
              ),
              Buffer.from(
                'OPTIONS sip:probe SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKq\r\nCSeq: 9 OPTIONS\r\n\r\n',
              ),
            ];
            const burst = () => {
              for (let i = 0; i < 100; i++) {
                flood.send(junk[i % 3]!, conn.localPort, '127.0.0.1');
                flooded++;
              }
            };
            burst();
            const t = setInterval(burst, 20);
            setTimeout(() => clearInterval(t), 500);
          }
          return conn;
        },
      };
      const r = await ping({ target: `sip:127.0.0.1:${sipp.port}`, count: 3, intervalMs: 100 }, deps);
      await new Promise((resolve) => setTimeout(resolve, 600)); // the flood has ended
      expect(r).toMatchObject({ sent: 3, answered: 3, codes: { '200': 3 } });
      for (const q of r.requests) expect(q.responseMs!).toBeGreaterThanOrEqual(200);
      // What arrived was counted (the kernel may drop some of a burst: at most what was sent).
      expect(r.strays + r.malformed).toBeGreaterThan(0);
      expect(r.strays + r.malformed).toBeLessThanOrEqual(flooded);
    } finally {
      flood.close();
      await sipp.stop();
    }
  });

  it.skipIf(cliUnavailableReason() !== undefined || !privileged)(
    'without CAP_NET_RAW: native socket options mark and read CS3; on the dgram fallback the marks are unknown with the reason',
    async () => {
      const sipp = await startSipp({ scenario: 'options-200.xml' });
      // setpriv drops CAP_NET_RAW from the bounding and inheritable sets: root keeps the rest.
      const dropRaw = ['setpriv', '--inh-caps=-net_raw', '--bounding-set=-net_raw', '--'];
      const sipPing = async (wrapper: string[]) => {
        const run = await runCli(
          [
            'sip-ping',
            '--target',
            `sip:127.0.0.1:${sipp.port}`,
            '--count',
            '2',
            '--interval',
            '50ms',
            '--json',
          ],
          { wrapper, timeoutMs: 30_000 },
        );
        expect(run.code).toBe(1);
        return SipResult.parse(JSON.parse(run.stdout));
      };
      try {
        if (typeof loadNativeUdp() !== 'string') {
          const r = await sipPing(dropRaw);
          expect(r).toMatchObject({ answered: 2, privileged: true, socketPath: { path: 'native' } });
          expect(r.dscp.forward.dscpSent).toBe(24);
          expect(r.dscp.reverse.dscpReceived).toEqual({ '0': 2 }); // sipp does not mark
          expect(r.checks.find((c) => c.id === 'dscp-sip')!.status).toBe('fail');
        }
        const r = await sipPing(['env', `${NATIVE_UDP_ENV}=0`, ...dropRaw]);
        expect(r).toMatchObject({ answered: 2, privileged: false, codes: { '200': 2 } });
        expect(r.socketPath).toMatchObject({ path: 'dgram', reason: `disabled by ${NATIVE_UDP_ENV}=0` });
        expect(r.dscp.forward).toMatchObject({ dscpSent: null });
        expect(r.dscp.forward.dscpUnknownReason).toMatch(/CAP_NET_RAW/);
        expect(r.dscp.reverse.dscpUnknownReason).toMatch(/CAP_NET_RAW/);
        expect(r.checks.find((c) => c.id === 'dscp-sip')!.status).toBe('unknown');
        expect(r.checks.find((c) => c.id === 'sip')!.status).toBe('pass');
        expect(r.ready).toBe(false);
      } finally {
        await sipp.stop();
      }
    },
  );

  it.skipIf(cliUnavailableReason() !== undefined)('bad targets are one-line errors, exit 2', async () => {
    for (const target of [
      'http://sbc.example.net',
      'sip:',
      'sip:sbc.example.net:99999',
      'sip:sbc.example.net;transport=sctp',
      'sips:sbc.example.net;transport=udp',
      'sbc.example.net:5060',
      `sip:${'a'.repeat(600)}`,
    ]) {
      const { code, stdout, stderr } = await runCli(['sip-ping', '--target', target], { timeoutMs: 20_000 });
      expect(code, target).toBe(2);
      expect(stdout).toBe('');
      expect(stderr.trim().split('\n'), target).toHaveLength(1);
      expect(stderr).toMatch(/^voipready sip-ping: /);
      expect(stderr).not.toMatch(/internal error|at .*\.js/);
    }
  });
});
