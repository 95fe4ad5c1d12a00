// bench:analyze — packets per second and peak RSS of `voipready analyze --json` against
// `tshark -q -z rtp,streams` on the same large generated capture (many SIP calls, G.711 RTP with
// some loss and jitter), at two sizes to show whether memory stays flat. Figures are printed side
// by side, never asserted. A second table shows voipready's peak RSS against the number of RTP
// streams (each call has two). Needs tshark and GNU time (/usr/bin/time, Debian package `time`).
// Usage: npm run bench:analyze [-- --packets 5000000 --calls 400 --streams 1000,5000,10000
//        --stream-packets 2000000 --dir /tmp/voipready-bench-analyze]
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tableLines } from '../src/report/table.js';
import { REPO_ROOT } from '../tests/helpers/cli.js';
import { frameFor, rtpPacket, sipInvite, sipRequest, udpPacket } from '../tests/helpers/pcap-writer.js';
import { parseRtpStreams } from '../tests/helpers/tshark.js';

const { values } = parseArgs({
  options: {
    packets: { type: 'string', default: '5000000' },
    small: { type: 'string', default: '1000000' },
    calls: { type: 'string', default: '400' },
    streams: { type: 'string', default: '1000,5000,10000' },
    'stream-packets': { type: 'string', default: '2000000' },
    dir: { type: 'string', default: join(tmpdir(), 'voipready-bench-analyze') },
  },
});

const T0 = 1_700_000_000;

/**
 * Writes a pcap of `packets` packets: `calls` concurrent G.711 calls (INVITE/200 with SDP, RTP both
 * ways at 20 ms, BYE), one packet in 500 lost and up to 3 ms of jitter. Streams frames straight to
 * disk from per-stream templates, so it is fast and needs no memory for the file.
 */
function generate(file: string, packets: number, calls: number): void {
  if (existsSync(file)) return;
  const tmp = `${file}.part`;
  const fd = openSync(tmp, 'w');
  const out = Buffer.alloc(8 << 20);
  let used = 0;
  const flush = () => {
    writeSync(fd, out, 0, used);
    used = 0;
  };
  const record = (time: number, frame: Uint8Array) => {
    if (used + 16 + frame.length > out.length) flush();
    const sec = Math.floor(time);
    out.writeUInt32LE(sec, used);
    out.writeUInt32LE(Math.round((time - sec) * 1e6) % 1_000_000, used + 4);
    out.writeUInt32LE(frame.length, used + 8);
    out.writeUInt32LE(frame.length, used + 12);
    out.set(frame, used + 16);
    used += 16 + frame.length;
  };
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(1, 20);
  writeSync(fd, head);
  const ipOf = (i: number, side: number) => `10.${side}.${(i >> 8) & 255}.${i & 255}`;
  const streams: Array<{ template: Uint8Array; rtpAt: number }> = [];
  for (let c = 0; c < calls; c++) {
    const a = ipOf(c, 1);
    const b = ipOf(c, 2);
    const callId = `bench-${c}@voipready`;
    const offer = sipInvite({
      callId,
      from: `sip:a${c}@x`,
      to: `sip:b${c}@y`,
      mediaAddress: a,
      mediaPort: 20000,
      payloadTypes: [0],
    });
    const answer = sipInvite({
      callId,
      from: `sip:a${c}@x`,
      to: `sip:b${c}@y`,
      mediaAddress: b,
      mediaPort: 30000,
      payloadTypes: [0],
      response: 200,
    });
    const sip = { srcPort: 5060, dstPort: 5060, dscp: 24 };
    record(T0 + c * 0.0001, frameFor(1, udpPacket({ src: a, dst: b, ...sip }, offer)));
    record(T0 + c * 0.0001 + 0.00005, frameFor(1, udpPacket({ src: b, dst: a, ...sip }, answer)));
    for (const [src, dst, sp, dp] of [
      [a, b, 20000, 30000],
      [b, a, 30000, 20000],
    ] as const) {
      const frame = frameFor(
        1,
        udpPacket(
          { src, dst, srcPort: sp, dstPort: dp, dscp: 46 },
          rtpPacket({ ssrc: 0x1000 + streams.length, payloadType: 0, timestampStep: 160 }, 0),
        ),
      );
      streams.push({ template: frame, rtpAt: frame.length - 172 });
    }
  }
  const perStream = Math.ceil((packets - 3 * calls) / streams.length);
  const frame = Buffer.alloc(streams[0]!.template.length);
  let written = 2 * calls;
  let jitterState = 12345;
  for (let n = 0; n < perStream && written < packets - calls; n++) {
    for (let s = 0; s < streams.length && written < packets - calls; s++) {
      if ((n + s) % 500 === 499) continue; // lost
      const st = streams[s]!;
      frame.set(st.template);
      const seq = (1000 + n) & 0xffff;
      frame.writeUInt16BE(seq, st.rtpAt + 2);
      frame.writeUInt32BE((50_000 + n * 160) >>> 0, st.rtpAt + 4);
      jitterState = (Math.imul(jitterState, 1103515245) + 12345) >>> 0;
      const jitter = ((jitterState >>> 16) % 3000) / 1e6;
      record(T0 + 0.1 + n * 0.02 + s * 0.00001 + jitter, frame);
      written++;
    }
  }
  for (let c = 0; c < calls && written < packets; c++, written++)
    record(
      T0 + 0.2 + perStream * 0.02 + c * 0.0001,
      frameFor(
        1,
        udpPacket(
          { src: ipOf(c, 1), dst: ipOf(c, 2), srcPort: 5060, dstPort: 5060, dscp: 24 },
          sipRequest('BYE', `bench-${c}@voipready`),
        ),
      ),
    );
  flush();
  closeSync(fd);
  renameSync(tmp, file);
}

interface Run {
  wallS: number;
  /** User + system CPU seconds: less sensitive than wall time to other load on the machine. */
  cpuS: number;
  maxRssMb: number;
  stdout: string;
}

/** Runs a command under GNU time -v; returns wall time, peak RSS and stdout. */
function timed(cmd: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-v', ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(stderr);
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      const user = /User time \(seconds\): ([\d.]+)/.exec(stderr);
      const system = /System time \(seconds\): ([\d.]+)/.exec(stderr);
      if (!wall || !rss) {
        reject(new Error(`${cmd[0]} failed: ${stderr.split('\n').slice(-5).join(' ')}`));
        return;
      }
      resolve({
        wallS: Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]),
        maxRssMb: Number(rss[1]) / 1024,
        cpuS: Number(user?.[1] ?? 0) + Number(system?.[1] ?? 0),
        stdout: Buffer.concat(chunks).toString(),
      });
    });
  });
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A cached generated capture of `packets` packets and `calls` calls, named by both. */
function capture(packets: number, calls: number): string {
  const file = join(values.dir!, `calls-${calls}-${packets}.pcap`);
  const t = Date.now();
  const reused = existsSync(file);
  generate(file, packets, calls);
  const mb = statSync(file).size / 2 ** 20;
  console.log(
    `capture: ${file} (${fmt(packets)} packets, ${calls} calls, ${fmt(mb)} MiB; ${reused ? 'reused' : `written in ${fmt((Date.now() - t) / 1000, 1)} s`})`,
  );
  return file;
}

const analyze = (file: string) =>
  timed([process.execPath, join(REPO_ROOT, 'bin', 'voipready.js'), 'analyze', '--json', file]);

/** Figures right-aligned, the first and last columns left. */
function printTable(header: string[], rows: string[][]): void {
  const alignRight = header.map((_, i) => i).slice(1, -1);
  console.log(['', ...tableLines(header, rows, { rule: true, alignRight })].join('\n'));
}

async function main(): Promise<void> {
  const big = Number(values.packets);
  const small = Number(values.small);
  const calls = Number(values.calls);
  mkdirSync(values.dir!, { recursive: true });
  const rows: string[][] = [];
  let ratio = 0;
  let cpuRatio = 0;
  for (const packets of [small, big]) {
    const file = capture(packets, calls);
    const ours = await analyze(file);
    const theirs = await timed(['tshark', '-r', file, '-q', '-z', 'rtp,streams']);
    const doc = JSON.parse(ours.stdout) as { packets: number; streams: Array<{ lost: number }> };
    const ref = parseRtpStreams(theirs.stdout);
    const agree =
      doc.streams.length === ref.length &&
      doc.streams.reduce((n, s) => n + s.lost, 0) === ref.reduce((n, s) => n + s.lost, 0);
    rows.push(
      [
        'voipready analyze --json',
        fmt(packets),
        fmt(ours.wallS, 2),
        fmt(packets / ours.wallS),
        fmt(packets / ours.cpuS),
        fmt(ours.maxRssMb),
        `${doc.streams.length} streams`,
      ],
      [
        'tshark -q -z rtp,streams',
        fmt(packets),
        fmt(theirs.wallS, 2),
        fmt(packets / theirs.wallS),
        fmt(packets / theirs.cpuS),
        fmt(theirs.maxRssMb),
        `${ref.length} streams${agree ? ', same total loss' : ', DISAGREES'}`,
      ],
    );
    ratio = theirs.wallS / ours.wallS;
    cpuRatio = theirs.cpuS / ours.cpuS;
  }
  printTable(['tool', 'packets', 'wall s', 'packets/s', 'packets/CPU-s', 'peak RSS MiB', 'result'], rows);
  console.log(
    `\nat ${fmt(big)} packets voipready has ${fmt(ratio, 2)}x tshark's throughput by wall time, ${fmt(cpuRatio, 2)}x by CPU time (target ≥ 5x); peak RSS target < 150 MiB at any size`,
  );
  // Memory against the number of streams: what each stream costs (the analyzer bounds them at 10,000).
  const streamPackets = Number(values['stream-packets']);
  const streamRows: string[][] = [];
  for (const streams of values.streams!.split(',').map(Number)) {
    const file = capture(streamPackets, Math.ceil(streams / 2));
    const ours = await analyze(file);
    const doc = JSON.parse(ours.stdout) as { streams: unknown[] };
    streamRows.push([
      'voipready analyze --json',
      fmt(streamPackets),
      fmt(doc.streams.length),
      fmt(ours.wallS, 2),
      fmt(streamPackets / ours.cpuS),
      fmt(ours.maxRssMb),
    ]);
  }
  printTable(['tool', 'packets', 'streams', 'wall s', 'packets/CPU-s', 'peak RSS MiB'], streamRows);
}

main().catch((err) => {
  console.error(`bench:analyze: ${(err as Error).message}`);
  process.exit(2);
});
