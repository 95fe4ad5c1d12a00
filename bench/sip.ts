// `npm run bench:sip`: voipready sip-ping beside sipp as the reference SIP client, both asking the
// same sipp UAS (answering OPTIONS after a fixed pause) on loopback: response time min / median /
// p95 / max and CPU per request, plus the response parser's cost per message. Figures are printed,
// never asserted. BENCH_REQUESTS (default 200), BENCH_PAUSE_MS (default 50).
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { summarize } from '../agent/probe/timing.js';
import { runSipPing } from '../agent/sip/ping.js';
import { parseSipMessage } from '../src/capture/sip.js';
import { tableLines } from '../src/report/table.js';
import { SIPP_SCENARIOS, sippUnavailableReason, startSipp } from '../tests/helpers/sipp.js';

const execFileP = promisify(execFile);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const PAUSE_MS = Number(process.env.BENCH_PAUSE_MS ?? 50);
const INTERVAL_MS = 20;

interface Row {
  min: number;
  p50: number;
  p95: number;
  max: number;
  answered: number;
  cpuUsPerRequest: number;
}

async function voipready(port: number): Promise<Row> {
  const cpu = process.cpuUsage();
  const r = await runSipPing({ target: `sip:127.0.0.1:${port}`, count: REQUESTS, intervalMs: INTERVAL_MS });
  const used = process.cpuUsage(cpu);
  return {
    min: r.responseMs.min ?? Number.NaN,
    p50: r.responseMs.p50 ?? Number.NaN,
    p95: r.responseMs.p95 ?? Number.NaN,
    max: r.responseMs.max ?? Number.NaN,
    answered: r.answered,
    cpuUsPerRequest: (used.user + used.system) / REQUESTS,
  };
}

/** sipp as the client: one OPTIONS per call at the same rate, RTDs from its -trace_rtt file. */
async function sipp(port: number, dir: string): Promise<Row> {
  const rate = 1000 / INTERVAL_MS;
  const { stderr } = await execFileP(
    '/usr/bin/time',
    [
      '-f',
      'cpu %U %S',
      'sipp',
      `127.0.0.1:${port}`,
      '-sf',
      join(SIPP_SCENARIOS, 'options-uac.xml'),
      '-i',
      '127.0.0.1',
      '-m',
      String(REQUESTS),
      '-r',
      String(rate),
      '-rp',
      '1000',
      '-trace_rtt',
      '-rtt_freq',
      '1',
      '-nostdin',
      '-timeout',
      '120s',
    ],
    { cwd: dir, maxBuffer: 64 * 1024 * 1024 },
  ).catch((err: { stderr?: string }) => ({ stderr: err.stderr ?? '' }));
  const cpu = /cpu ([\d.]+) ([\d.]+)/.exec(stderr);
  const file = readdirSync(dir).find((f) => f.endsWith('_rtt.csv'));
  const rtts = file
    ? readFileSync(join(dir, file), 'utf8')
        .split('\n')
        .slice(1)
        .map((l) => Number(l.split(';')[1]))
        .filter((v) => Number.isFinite(v) && v > 0)
    : [];
  const s = summarize(rtts);
  return {
    min: s?.min ?? Number.NaN,
    p50: s?.p50 ?? Number.NaN,
    p95: s?.p95 ?? Number.NaN,
    max: s?.max ?? Number.NaN,
    answered: rtts.length,
    cpuUsPerRequest: cpu ? ((Number(cpu[1]) + Number(cpu[2])) * 1e6) / REQUESTS : Number.NaN,
  };
}

function parserUsPerMessage(): number {
  const msg =
    'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070\r\n' +
    'From: <sip:probe@x>;tag=123\r\nTo: <sip:a@b>;tag=99\r\nCall-ID: c1@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';
  for (let i = 0; i < 20_000; i++) parseSipMessage(msg);
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) parseSipMessage(msg);
  return ((performance.now() - t0) * 1000) / n;
}

async function main(): Promise<void> {
  const missing = sippUnavailableReason();
  if (missing) {
    process.stdout.write(`bench:sip needs sipp: ${missing}\n`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'voipready-bench-sip-'));
  const uas = await startSipp({ scenario: 'options-200.xml', pauseMs: PAUSE_MS });
  try {
    const load = loadavg()[0]!.toFixed(1);
    const ours = await voipready(uas.port);
    const ref = await sipp(uas.port, dir);
    const f = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
    process.stdout.write(
      `SIP OPTIONS to a sipp UAS answering after ${PAUSE_MS} ms, ${REQUESTS} requests every ${INTERVAL_MS} ms, loopback; load average ${load}\n\n`,
    );
    process.stdout.write(
      `${tableLines(
        ['client', 'answered', 'min ms', 'p50 ms', 'p95 ms', 'max ms', 'CPU µs/request'],
        [
          [
            'voipready sip-ping',
            String(ours.answered),
            f(ours.min),
            f(ours.p50),
            f(ours.p95),
            f(ours.max),
            f(ours.cpuUsPerRequest),
          ],
          [
            'sipp -sf options-uac.xml (RTD)',
            String(ref.answered),
            f(ref.min),
            f(ref.p50),
            f(ref.p95),
            f(ref.max),
            f(ref.cpuUsPerRequest),
          ],
        ],
        { rule: true, alignRight: [1, 2, 3, 4, 5, 6] },
      ).join('\n')}\n\n`,
    );
    process.stdout.write(
      `response parser (src/capture/sip.ts): ${parserUsPerMessage().toFixed(2)} µs per 200 OK\n`,
    );
  } finally {
    await uas.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
