// `npm run bench:probe`: the probe's pacing, footprint and jitter accuracy, measured on a real
// site—router—dc namespace topology and printed beside the reference tools (the capture, iperf3,
// tshark). Figures are printed, never asserted. Needs root (namespaces), tshark, iperf3 and GNU time.
//
//   BENCH_SECONDS   footprint run length (default 60, the figure)
//   BENCH_PACING_SECONDS   length of each pacing/accuracy run (default 10)

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Summary, summarize } from '../agent/probe/timing.js';
import {
  cliUnavailableReason,
  type ProbeJson,
  probeJson,
  realtimeWrapper,
  startReflector,
  warmUpReflector,
} from '../tests/helpers/cli.js';
import {
  createTopology,
  DC_ADDR,
  HOST_IFACE,
  netnsUnavailableReason,
  type Topology,
} from '../tests/helpers/netns.js';
import {
  type RtpPacket,
  type RtpStreamRow,
  rtpPackets,
  rtpStreams,
  startCapture,
} from '../tests/helpers/tshark.js';

const MEDIA_PORT = 5004;
const PEER = `${DC_ADDR}:${MEDIA_PORT}`;
const FOOTPRINT_S = Number(process.env.BENCH_SECONDS ?? 60);
const PACING_S = Number(process.env.BENCH_PACING_SECONDS ?? 10);
const PACING_CALLS = [1, 10, 50];
const FOOTPRINT_CALLS = 50;
/**
 * Pacing and accuracy are also measured with probe and reflector at real-time priority (chrt
 * --fifo), as on hosts of their own: this separates the programs from a busy shared machine.
 */
const FIFO_CALLS = [1, 50];
const FIFO = realtimeWrapper();
const PTIME_MS = 20;

/**
 * Send lateness seen on the wire: per stream, capture time minus the packet's place on the 20 ms
 * grid (its sequence number x 20 ms; not its RTP timestamp, which the probe may set to the actual
 * send instant), less the stream's smallest such offset — timers only ever fire late, so the
 * earliest packet is the best estimate of the grid's phase.
 */
function captureLatenessMs(packets: RtpPacket[]): number[] {
  const byStream = new Map<number, RtpPacket[]>();
  for (const p of packets) {
    const list = byStream.get(p.ssrc);
    if (list) list.push(p);
    else byStream.set(p.ssrc, [p]);
  }
  const out: number[] = [];
  for (const list of byStream.values()) {
    const first = list[0]!;
    const offsets = list.map((p) => p.timeMs - ((p.sequence - first.sequence) & 0xffff) * PTIME_MS);
    const min = Math.min(...offsets);
    for (const o of offsets) out.push(o - min);
  }
  return out;
}

const reflectorIn = (topo: Topology, wrapper?: string[]) =>
  startReflector(PEER, { ns: topo.dc, ...(wrapper ? { wrapper } : {}) });

interface PacingRow {
  calls: number;
  /** Scheduling of probe and reflector: as shipped, or SCHED_FIFO (as on hosts of their own). */
  priority: 'normal' | 'fifo';
  probe: ProbeJson['sendTiming'];
  /** Undefined when the capture saw no packets. */
  wire: Summary | undefined;
  forward: Agreement;
  reverse: Agreement;
}

/** How one side's per-stream figures compare with tshark's on the same packets. */
interface Agreement {
  streams: number;
  maxAbsDeltaMaxJitterMs: number;
  meanAbsDeltaMaxJitterMs: number;
  /** tshark found every stream and counted exactly the packets the measuring side received. */
  countsEqual: boolean;
}

type StreamFigures = ProbeJson['forward']['streams'][number];

function compareStreams(
  streams: StreamFigures[],
  rows: RtpStreamRow[],
  same: (s: StreamFigures, r: RtpStreamRow) => boolean,
): Agreement {
  const deltas: number[] = [];
  let countsEqual = rows.length === streams.length;
  for (const s of streams) {
    const row = rows.find((r) => same(s, r));
    if (!row || row.packets !== s.received) countsEqual = false;
    if (row) deltas.push(Math.abs(row.maxJitterMs - s.jitterMaxMs));
  }
  return {
    streams: deltas.length,
    maxAbsDeltaMaxJitterMs: Math.max(...deltas),
    meanAbsDeltaMaxJitterMs: deltas.reduce((a, b) => a + b, 0) / deltas.length,
    countsEqual,
  };
}

async function pacingRun(
  topo: Topology,
  dir: string,
  calls: number,
  priority: PacingRow['priority'],
): Promise<PacingRow> {
  const wrapper = priority === 'fifo' ? FIFO : undefined;
  const reflector = await reflectorIn(topo, wrapper);
  try {
    await warmUpReflector(PEER, calls, { ns: topo.site });
    const siteCap = await startCapture({
      ns: topo.site,
      iface: HOST_IFACE,
      file: join(dir, `site-${calls}-${priority}.pcapng`),
    });
    const dcCap = await startCapture({
      ns: topo.dc,
      iface: HOST_IFACE,
      file: join(dir, `dc-${calls}-${priority}.pcapng`),
    });
    const { json: result } = await probeJson(PEER, {
      ns: topo.site,
      ...(wrapper ? { wrapper } : {}),
      calls,
      durationS: PACING_S,
    });
    await new Promise((r) => setTimeout(r, 300));
    await siteCap.stop();
    await dcCap.stop();
    const sent = await rtpPackets(siteCap.file, `udp.dstport == ${MEDIA_PORT}`);
    // Forward: the reflector's figures against tshark at the reflector's interface (by SSRC);
    // reverse: the probe's own against tshark at the site's interface (by the call's port).
    const forward = compareStreams(
      result.forward.streams,
      (await rtpStreams(dcCap.file)).filter((r) => r.dstPort === MEDIA_PORT),
      (s, r) => r.ssrc.toLowerCase() === s.ssrc.toLowerCase(),
    );
    const reverse = compareStreams(
      result.reverse.streams,
      (await rtpStreams(siteCap.file)).filter((r) => r.srcPort === MEDIA_PORT),
      (s, r) => r.dstPort === s.dstPort,
    );
    return {
      calls,
      priority,
      probe: result.sendTiming,
      wire: summarize(captureLatenessMs(sent)),
      forward,
      reverse,
    };
  } finally {
    await reflector.stop();
  }
}

interface Usage {
  cpuS: number;
  rssMb: number;
}

/** GNU time's `-f "%U %S %M"` output: user s, system s, peak RSS KiB. */
function readUsage(file: string): Usage {
  const [user, sys, rssKb] = readFileSync(file, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { cpuS: user! + sys!, rssMb: rssKb! / 1024 };
}

const timeWrapper = (file: string) => ['/usr/bin/time', '-o', file, '-f', '%U %S %M'];

/** The process GNU time started (time itself ignores SIGINT while it waits). */
function childOf(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
  if (!kids[0]) throw new Error(`process ${pid} has no child`);
  return kids[0];
}

function exitOf(cmd: string, args: string[]): Promise<number | null> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('close', resolve));
}

async function footprint(topo: Topology, dir: string) {
  const reflectorTime = join(dir, 'reflector.time');
  const probeTime = join(dir, 'probe.time');
  const reflector = await reflectorIn(topo, timeWrapper(reflectorTime));
  const { json: probeResult } = await probeJson(PEER, {
    ns: topo.site,
    wrapper: timeWrapper(probeTime),
    calls: FOOTPRINT_CALLS,
    durationS: FOOTPRINT_S,
  });
  process.kill(childOf(reflector.child.pid!), 'SIGTERM');
  await reflector.done;

  // The reference: iperf3 carrying the same packets both ways — 172-byte UDP payloads (12-byte RTP
  // header + 160 bytes of G.711) at 50 calls x 50 packets/s = 2,500 packets/s = 3.44 Mbit/s each way.
  const serverTime = join(dir, 'iperf3-server.time');
  const clientTime = join(dir, 'iperf3-client.time');
  const server = spawn(
    'ip',
    ['netns', 'exec', topo.dc, ...timeWrapper(serverTime), 'iperf3', '-s', '-1', '-B', DC_ADDR],
    {
      stdio: 'ignore',
    },
  );
  const serverDone = new Promise((resolve) => server.on('close', resolve));
  await new Promise((r) => setTimeout(r, 500));
  const clientCode = await exitOf('ip', [
    'netns',
    'exec',
    topo.site,
    ...timeWrapper(clientTime),
    'iperf3',
    '-c',
    DC_ADDR,
    '-u',
    '-l',
    '172',
    '-b',
    '3.44M',
    '--bidir',
    '-t',
    `${FOOTPRINT_S}`,
  ]);
  await serverDone;
  if (clientCode !== 0) throw new Error(`iperf3 client exited ${clientCode}`);
  return {
    probe: readUsage(probeTime),
    reflector: readUsage(reflectorTime),
    iperfClient: readUsage(clientTime),
    iperfServer: readUsage(serverTime),
    forwardLost: probeResult.forward.lost,
  };
}

const schedulingName = (r: PacingRow) =>
  r.priority === 'fifo' ? 'SCHED_FIFO (chrt)' : 'normal (as shipped)';

const f = (n: number | undefined, digits = 3) =>
  n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(digits);

async function main(): Promise<number> {
  const unavailable = netnsUnavailableReason() ?? cliUnavailableReason();
  if (unavailable) {
    process.stderr.write(`bench:probe cannot run: ${unavailable}\n`);
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vr-bench-probe-'));
  const topo = await createTopology();
  const cleanUp = async () => {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  // Interrupted (Ctrl-C, kill): still remove the namespaces, their processes and the captures.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void cleanUp().finally(() => process.exit(130));
    });
  }
  try {
    process.stdout.write(
      `voipready probe benchmark — namespaces site—router—dc, G.711 (20 ms), pacing runs ${PACING_S} s, footprint ${FOOTPRINT_S} s\n\n`,
    );
    const pacing: PacingRow[] = [];
    for (const calls of PACING_CALLS) pacing.push(await pacingRun(topo, dir, calls, 'normal'));
    if (FIFO) for (const calls of FIFO_CALLS) pacing.push(await pacingRun(topo, dir, calls, 'fifo'));
    else process.stdout.write('(chrt --fifo is refused here: no SCHED_FIFO rows)\n\n');
    const fp = await footprint(topo, dir);

    process.stdout.write(
      '1. Pacing: send-time error vs the 20 ms grid, ms (target: p99 within 1 ms at 50 calls)\n',
    );
    process.stdout.write(
      '   scheduling           | calls | probe sendTiming p50    p99    max  samples | on the wire (site capture) p50    p99    max  packets\n',
    );
    for (const r of pacing) {
      process.stdout.write(
        `   ${schedulingName(r).padEnd(20)} | ${String(r.calls).padStart(5)} | ${f(r.probe?.p50Ms).padStart(20)} ${f(r.probe?.p99Ms).padStart(6)} ${f(r.probe?.maxMs).padStart(6)} ${String(r.probe?.samples ?? 'n/a').padStart(8)} | ${f(r.wire?.p50).padStart(30)} ${f(r.wire?.p99).padStart(6)} ${f(r.wire?.max).padStart(6)} ${String(r.wire?.samples ?? 0).padStart(8)}\n`,
      );
    }

    const ours = { cpuS: fp.probe.cpuS + fp.reflector.cpuS, rssMb: fp.probe.rssMb + fp.reflector.rssMb };
    const ref = {
      cpuS: fp.iperfClient.cpuS + fp.iperfServer.cpuS,
      rssMb: fp.iperfClient.rssMb + fp.iperfServer.rssMb,
    };
    const line = (name: string, u: Usage) =>
      `   ${name.padEnd(22)} ${f(u.cpuS, 2).padStart(10)} ${f(u.rssMb, 1).padStart(12)}\n`;
    process.stdout.write(
      `\n2. Footprint: ${FOOTPRINT_CALLS} G.711 calls for ${FOOTPRINT_S} s (2,500 packets/s each way; targets: CPU ≤ 2x iperf3, RSS < 80 MB)\n`,
    );
    process.stdout.write(
      `   ${'process'.padEnd(22)} ${'CPU s'.padStart(10)} ${'peak RSS MB'.padStart(12)}\n`,
    );
    process.stdout.write(line('voipready probe', fp.probe));
    process.stdout.write(line('voipready reflector', fp.reflector));
    process.stdout.write(line('probe + reflector', ours));
    process.stdout.write(line('iperf3 client', fp.iperfClient));
    process.stdout.write(line('iperf3 server', fp.iperfServer));
    process.stdout.write(line('iperf3 client + server', ref));
    process.stdout.write(
      `   CPU ratio voipready / iperf3: ${f(ours.cpuS / ref.cpuS, 2)}x; largest voipready RSS ${f(Math.max(fp.probe.rssMb, fp.reflector.rssMb), 1)} MB; probe forward lost: ${fp.forwardLost}\n`,
    );
    process.stdout.write(
      '\n3. Accuracy: max RFC 3550 jitter per stream vs tshark -z rtp,streams on the same packets\n' +
        "   forward: the reflector's figures vs a capture on the reflector's interface; reverse: the probe's vs one on the site's\n",
    );
    process.stdout.write(
      '   scheduling           | calls | direction | streams | |Δ max jitter| ms: mean    max | packet counts equal\n',
    );
    for (const r of pacing) {
      for (const [direction, a] of [
        ['forward', r.forward],
        ['reverse', r.reverse],
      ] as const) {
        process.stdout.write(
          `   ${schedulingName(r).padEnd(20)} | ${String(r.calls).padStart(5)} | ${direction.padEnd(9)} | ${String(a.streams).padStart(7)} | ${f(a.meanAbsDeltaMaxJitterMs).padStart(23)} ${f(a.maxAbsDeltaMaxJitterMs).padStart(6)} | ${a.countsEqual ? 'yes' : 'NO'}\n`,
        );
      }
    }
    return 0;
  } finally {
    await cleanUp();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench:probe failed: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
