// `npm run bench:probe`: the probe's pacing, footprint and jitter accuracy, measured on a real
// site—router—dc namespace topology and printed beside the reference tools (the capture, iperf3,
// tshark). Figures are printed, never asserted. Needs root (namespaces), tshark, iperf3 and GNU time.
// Every figure is measured for both socket layers in the same run: the native addon (kernel
// receive times, socket-option marks, batched I/O) and today's fallback (Node's dgram + a raw
// socket), with the load average beside it (the machine may be shared).
//
//   BENCH_SECONDS   footprint run length (default 60, the issue's figure)
//   BENCH_PACING_SECONDS   length of each pacing/accuracy run (default 10)

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Summary, summarize } from '../agent/probe/timing.js';
import {
  AS_NOBODY,
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
import { startCyclictest } from './cyclictest.js';
import { timedIperf } from './iperf.js';
import { printLoadSection } from './priority-load.js';
import { reflectorMessageCost } from './reflector-cost.js';
import { childOf, exitOf, load1, readUsage, timeWrapper, type Usage } from './usage.js';

const MEDIA_PORT = 5004;
const PEER = `${DC_ADDR}:${MEDIA_PORT}`;
const FOOTPRINT_S = Number(process.env.BENCH_SECONDS ?? 60);
const PACING_S = Number(process.env.BENCH_PACING_SECONDS ?? 10);
/** BENCH_PACING_CALLS=50 (comma-separated) narrows the pacing runs, e.g. with BENCH_ONLY=pacing. */
const PACING_CALLS = (process.env.BENCH_PACING_CALLS ?? '1,10,50').split(',').map(Number);
const FOOTPRINT_CALLS = 50;
/** BENCH_ROUNDS: footprint rounds (each layer with iperf3 beside it), default 2. */
const FOOTPRINT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
/**
 * Pacing and accuracy are also measured with probe and reflector at real-time priority (chrt
 * --fifo), as on hosts of their own: this separates the programs from a busy shared machine.
 */
const FIFO_CALLS = [50];
/**
 * And as an ordinary user (uid 65534, no capabilities), as most engineers run the probe: the
 * native sender thread then cannot take its real-time priority.
 */
const NOBODY_CALLS = [50];
/** Socket layers compared: the native addon, and the dgram fallback (VOIPREADY_NATIVE_UDP=0). */
type Layer = 'native' | 'dgram';
/** BENCH_LAYERS=native narrows the comparison to one layer. */
const LAYERS = (process.env.BENCH_LAYERS ?? 'native,dgram').split(',') as Layer[];
const layerWrapper = (layer: Layer) => (layer === 'dgram' ? ['env', 'VOIPREADY_NATIVE_UDP=0'] : []);
/** The 1-minute load average, printed beside each figure. */
const FIFO = realtimeWrapper();
const PTIME_MS = 20;
/** The probe's pacing grid: slots at least this far apart (agent/probe.ts MIN_SLOT_MS). */
const MIN_SLOT_MS = 4;

/**
 * The SCHED_FIFO priority of what paces the sends (undefined: an ordinary thread): the native
 * sender thread takes 1 as root and one above a chrt process's own; the JS timer is the process's.
 */
function pacerPriority(layer: Layer, priority: PacingRow['priority']): number | undefined {
  if (priority === 'nobody') return undefined;
  if (priority === 'fifo') return layer === 'native' ? Number(FIFO?.at(-1)) + 1 : Number(FIFO?.at(-1));
  return layer === 'native' ? 1 : undefined;
}

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

const reflectorIn = (topo: Topology, layer: Layer, wrapper: string[] = []) =>
  startReflector(PEER, { ns: topo.dc, wrapper: [...wrapper, ...layerWrapper(layer)] });

interface PacingRow {
  layer: Layer;
  /** 1-minute load average at the end of the run. */
  load: number;
  calls: number;
  /** Probe and reflector: as shipped (root), SCHED_FIFO (as on hosts of their own), or as nobody. */
  priority: 'normal' | 'fifo' | 'nobody';
  probe: ProbeJson['sendTiming'];
  /** What paced the sends (the probe's sendPacing). */
  pacing: string;
  /** Undefined when the capture saw no packets. */
  wire: Summary | undefined;
  /** cyclictest's wake-up lateness in the same run, same interval and scheduling as what paced the sends. */
  platform: { lateness?: Summary; error?: string };
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
  layer: Layer,
  calls: number,
  priority: PacingRow['priority'],
): Promise<PacingRow> {
  const scheduling = priority === 'fifo' ? FIFO : priority === 'nobody' ? AS_NOBODY : undefined;
  const wrapper = [...(scheduling ?? []), ...layerWrapper(layer)];
  const reflector = await reflectorIn(topo, layer, scheduling);
  try {
    await warmUpReflector(PEER, calls, { ns: topo.site });
    const siteCap = await startCapture({
      ns: topo.site,
      iface: HOST_IFACE,
      file: join(dir, `site-${layer}-${calls}-${priority}.pcapng`),
    });
    const dcCap = await startCapture({
      ns: topo.dc,
      iface: HOST_IFACE,
      file: join(dir, `dc-${layer}-${calls}-${priority}.pcapng`),
    });
    const stepMs = PTIME_MS / Math.min(calls, PTIME_MS / MIN_SLOT_MS);
    const platform = startCyclictest(
      topo.site,
      join(dir, `cyclictest-${layer}-${calls}-${priority}.json`),
      stepMs,
      Math.round((PACING_S * 1000) / stepMs),
      pacerPriority(layer, priority),
    );
    const { json: result } = await probeJson(PEER, { ns: topo.site, wrapper, calls, durationS: PACING_S });
    if (result.socketPath !== layer)
      throw new Error(`asked for ${layer}, the probe measured with ${result.socketPath}`);
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
      layer,
      load: load1(),
      calls,
      priority,
      probe: result.sendTiming,
      pacing: pacingName(result.sendPacing),
      wire: summarize(captureLatenessMs(sent)),
      platform: await platform.done,
      forward,
      reverse,
    };
  } finally {
    await reflector.stop();
  }
}

async function footprint(topo: Topology, dir: string, layer: Layer, round: number) {
  const reflectorTime = join(dir, `reflector-${layer}-${round}.time`);
  const probeTime = join(dir, `probe-${layer}-${round}.time`);
  const reflector = await reflectorIn(topo, layer, timeWrapper(reflectorTime));
  const { json: probeResult } = await probeJson(PEER, {
    ns: topo.site,
    wrapper: [...timeWrapper(probeTime), ...layerWrapper(layer)],
    calls: FOOTPRINT_CALLS,
    durationS: FOOTPRINT_S,
  });
  process.kill(childOf(reflector.child.pid!), 'SIGTERM');
  await reflector.done;
  return {
    layer,
    load: load1(),
    probe: readUsage(probeTime),
    reflector: readUsage(reflectorTime),
    forwardLost: probeResult.forward.lost,
    queueDrops: probeResult.receiveQueueDrops as
      | { agent: number | null; reflector: number | null }
      | undefined,
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (USER_HZ = 100). */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Issue 7's "every datagram on the host": the reflector's CPU while FLOOD_PPS datagrams a second
 * go to an unrelated UDP port of its host (nothing listens there), against the same time idle.
 */
const FLOOD_S = 10;
const FLOOD_PPS = 20_000;
async function floodCost(topo: Topology, layer: Layer) {
  const reflector = await reflectorIn(topo, layer);
  try {
    const pid = reflector.child.pid!;
    const idle0 = cpuSecondsOf(pid);
    await new Promise((r) => setTimeout(r, FLOOD_S * 1000));
    const idle = cpuSecondsOf(pid) - idle0;
    const script = `const s=require('dgram').createSocket('udp4');const b=Buffer.alloc(100);let n=0;const end=Date.now()+${FLOOD_S * 1000};const t=setInterval(()=>{if(Date.now()>end){clearInterval(t);s.close();return;}for(let i=0;i<${FLOOD_PPS / 100};i++){s.send(b,9,'${DC_ADDR}');n++;}},10);`;
    const flood0 = cpuSecondsOf(pid);
    const code = await exitOf('ip', ['netns', 'exec', topo.site, process.execPath, '-e', script]);
    if (code !== 0) throw new Error(`flood generator exited ${code}`);
    const flooded = cpuSecondsOf(pid) - flood0;
    return { layer, load: load1(), idleCpuS: idle, floodCpuS: flooded };
  } finally {
    await reflector.stop();
  }
}

async function iperfFootprint(topo: Topology, dir: string, tag: string) {
  // The reference: iperf3 carrying the same packets both ways — 172-byte UDP payloads (12-byte RTP
  // header + 160 bytes of G.711) at 50 calls x 50 packets/s = 2,500 packets/s = 3.44 Mbit/s each way.
  const usage = await timedIperf(topo, dir, tag, [
    '-u',
    '-l',
    '172',
    '-b',
    '3.44M',
    '--bidir',
    '-t',
    `${FOOTPRINT_S}`,
  ]);
  return { load: load1(), ...usage };
}

/** One layer's footprint run and iperf3 running over the same seconds beside it. */
interface FootprintPair {
  ours: Awaited<ReturnType<typeof footprint>>;
  iperf: Awaited<ReturnType<typeof iperfFootprint>>;
}

/**
 * Section 2. CPU seconds on this VM include whatever the host stole while a process ran (it reports
 * no steal time): iperf3 alone measured 5.7 to 9.9 s for the same 60 s minutes apart. So iperf3
 * runs beside each footprint run, over the same seconds (they use a core's fraction each on two),
 * and the ratio is given per run and over all rounds.
 */
function printFootprint(rounds: FootprintPair[][]) {
  const line = (name: string, u: Usage, load: number) =>
    `   ${name.padEnd(30)} ${f(u.cpuS, 2).padStart(10)} ${f(u.rssMb, 1).padStart(12)} ${f(load, 1).padStart(6)}\n`;
  const ours = (p: FootprintPair) => ({
    cpuS: p.ours.probe.cpuS + p.ours.reflector.cpuS,
    rssMb: p.ours.probe.rssMb + p.ours.reflector.rssMb,
  });
  const reference = (p: FootprintPair) => ({
    cpuS: p.iperf.client.cpuS + p.iperf.server.cpuS,
    rssMb: p.iperf.client.rssMb + p.iperf.server.rssMb,
  });
  process.stdout.write(
    `\n2. Footprint: ${FOOTPRINT_CALLS} G.711 calls for ${FOOTPRINT_S} s (2,500 packets/s each way; target: probe + reflector CPU ≤ 1.0x iperf3), ${rounds.length} round(s), iperf3 beside each run\n`,
  );
  process.stdout.write(
    `   ${'process'.padEnd(30)} ${'CPU s'.padStart(10)} ${'peak RSS MB'.padStart(12)} ${'load'.padStart(6)}\n`,
  );
  rounds.forEach((pairs, i) => {
    process.stdout.write(`   round ${i + 1}\n`);
    for (const p of pairs) {
      const { layer, probe, reflector, load, forwardLost, queueDrops } = p.ours;
      process.stdout.write(line(`${layer}: probe`, probe, load));
      process.stdout.write(line(`${layer}: reflector`, reflector, load));
      process.stdout.write(line(`${layer}: probe + reflector`, ours(p), load));
      process.stdout.write(line(`${layer}: beside it iperf3 client`, p.iperf.client, p.iperf.load));
      process.stdout.write(line(`${layer}: beside it iperf3 server`, p.iperf.server, p.iperf.load));
      process.stdout.write(line(`${layer}: beside it iperf3 both`, reference(p), p.iperf.load));
      process.stdout.write(
        `   ${layer}: CPU ratio voipready / iperf3 ${f(ours(p).cpuS / reference(p).cpuS, 2)}x; probe forward lost: ${forwardLost}; receive-queue drops (SO_RXQ_OVFL) reflector ${queueDrops?.reflector ?? 'n/a'}, probe ${queueDrops?.agent ?? 'n/a'}\n`,
      );
    }
  });
  for (const [k, first] of rounds[0]!.entries()) {
    const oursS = rounds.reduce((sum, pairs) => sum + ours(pairs[k]!).cpuS, 0);
    const referenceS = rounds.reduce((sum, pairs) => sum + reference(pairs[k]!).cpuS, 0);
    process.stdout.write(
      `   ${first.ours.layer}: all rounds, CPU ratio voipready / iperf3 ${f(oursS / referenceS, 2)}x (${f(oursS, 2)} s / ${f(referenceS, 2)} s)\n`,
    );
  }
}

async function footprintRounds(topo: Topology, dir: string): Promise<FootprintPair[][]> {
  const rounds: FootprintPair[][] = [];
  for (let round = 1; round <= FOOTPRINT_ROUNDS; round++) {
    const pairs: FootprintPair[] = [];
    for (const layer of LAYERS) {
      const [ours, iperf] = await Promise.all([
        footprint(topo, dir, layer, round),
        iperfFootprint(topo, dir, `${layer}-${round}`),
      ]);
      pairs.push({ ours, iperf });
    }
    rounds.push(pairs);
  }
  return rounds;
}

const schedulingName = (r: PacingRow) =>
  r.priority === 'fifo'
    ? 'SCHED_FIFO (chrt)'
    : r.priority === 'nobody'
      ? 'uid 65534, no caps'
      : 'root (as shipped)';

function pacingName(pacing: ProbeJson['sendPacing']): string {
  if (!pacing) return 'n/a';
  const scheduling = pacing.realtime ? ' (FIFO)' : pacing.shortSlice ? ' (0.1 ms slice)' : '';
  return `${pacing.by === 'native-thread' ? 'thread' : 'JS timer'}${scheduling}`;
}

const f = (n: number | undefined, digits = 3) =>
  n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(digits);

/** Section 1: send-time error against the grid, as the probe saw it and on the wire. */
function printPacing(pacing: PacingRow[]) {
  process.stdout.write(
    '1. Pacing: send-time error vs the 20 ms grid, ms (target: p99 ≤ 0.5 ms at 50 calls)\n',
  );
  process.stdout.write(
    '   layer  | scheduling           | paced by             | calls | load | probe sendTiming p50    p99    max  samples | on the wire (site capture) p50    p99    max  packets | cyclictest p50    p99    max\n',
  );
  for (const r of pacing) {
    process.stdout.write(
      `   ${r.layer.padEnd(6)} | ${schedulingName(r).padEnd(20)} | ${r.pacing.padEnd(20)} | ${String(r.calls).padStart(5)} | ${f(r.load, 1).padStart(4)} | ${f(r.probe?.p50Ms).padStart(20)} ${f(r.probe?.p99Ms).padStart(6)} ${f(r.probe?.maxMs).padStart(6)} ${String(r.probe?.samples ?? 'n/a').padStart(8)} | ${f(r.wire?.p50).padStart(30)} ${f(r.wire?.p99).padStart(6)} ${f(r.wire?.max).padStart(6)} ${String(r.wire?.samples ?? 0).padStart(8)} | ${r.platform.lateness ? `${f(r.platform.lateness.p50).padStart(14)} ${f(r.platform.lateness.p99).padStart(6)} ${f(r.platform.lateness.max).padStart(6)}` : r.platform.error}\n`,
    );
  }
  process.stdout.write(
    "   cyclictest: the host's timer floor in the same run — a thread at the pacer's interval and policy (SCHED_FIFO at its priority, or SCHED_OTHER with the default slice) that only sleeps and wakes\n",
  );
}

/** Section 3: each measuring side's per-stream max jitter against tshark's. */
function printAccuracy(pacing: PacingRow[]) {
  process.stdout.write(
    '\n3. Accuracy: max RFC 3550 jitter per stream vs tshark -z rtp,streams on the same packets (target: |Δ| ≤ 0.05 ms)\n' +
      "   forward: the reflector's figures vs a capture on the reflector's interface; reverse: the probe's vs one on the site's\n",
  );
  process.stdout.write(
    '   layer  | scheduling           | calls | load | direction | streams | |Δ max jitter| ms: mean    max | packet counts equal\n',
  );
  for (const r of pacing) {
    for (const [direction, a] of [
      ['forward', r.forward],
      ['reverse', r.reverse],
    ] as const) {
      process.stdout.write(
        `   ${r.layer.padEnd(6)} | ${schedulingName(r).padEnd(20)} | ${String(r.calls).padStart(5)} | ${f(r.load, 1).padStart(4)} | ${direction.padEnd(9)} | ${String(a.streams).padStart(7)} | ${f(a.meanAbsDeltaMaxJitterMs).padStart(23)} ${f(a.maxAbsDeltaMaxJitterMs).padStart(6)} | ${a.countsEqual ? 'yes' : 'NO'}\n`,
      );
    }
  }
}

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
    // BENCH_ONLY=footprint: only section 2, the CPU and memory of 50 calls beside iperf3.
    if (process.env.BENCH_ONLY === 'footprint') {
      printFootprint(await footprintRounds(topo, dir));
      return 0;
    }
    // BENCH_ONLY=priority: only the priority test's load (section 6).
    if (process.env.BENCH_ONLY === 'priority') {
      await printLoadSection(topo, dir, 6);
      return 0;
    }
    const pacing: PacingRow[] = [];
    for (const layer of LAYERS) {
      for (const calls of PACING_CALLS) pacing.push(await pacingRun(topo, dir, layer, calls, 'normal'));
      if (FIFO) for (const calls of FIFO_CALLS) pacing.push(await pacingRun(topo, dir, layer, calls, 'fifo'));
      if (layer === 'native')
        for (const calls of NOBODY_CALLS) pacing.push(await pacingRun(topo, dir, layer, calls, 'nobody'));
    }
    if (!FIFO) process.stdout.write('(chrt --fifo is refused here: no SCHED_FIFO rows)\n\n');
    // BENCH_ONLY=pacing: only sections 1 and 3 (pacing and accuracy), about a minute at 50 calls.
    if (process.env.BENCH_ONLY === 'pacing') {
      printPacing(pacing);
      printAccuracy(pacing);
      return 0;
    }
    const rounds = await footprintRounds(topo, dir);
    const floods = [];
    for (const layer of LAYERS) floods.push(await floodCost(topo, layer));
    const cost = reflectorMessageCost();

    printPacing(pacing);

    printFootprint(rounds);
    printAccuracy(pacing);
    process.stdout.write(
      `\n4. A flood to an unrelated port (${FLOOD_PPS.toLocaleString('en')} datagrams/s of 100 B to UDP port 9 of the reflector's host for ${FLOOD_S} s): the reflector's CPU\n`,
    );
    process.stdout.write(`   layer  | idle ${FLOOD_S} s CPU s | flooded ${FLOOD_S} s CPU s | load\n`);
    for (const fl of floods) {
      process.stdout.write(
        `   ${fl.layer.padEnd(6)} | ${f(fl.idleCpuS, 2).padStart(16)} | ${f(fl.floodCpuS, 2).padStart(19)} | ${f(fl.load, 1).padStart(4)}\n`,
      );
    }
    process.stdout.write(
      '\n5. Reflector CPU per message, in-process (its stream state, no sockets), µs (CPU time, mean of 20,000 after as many to warm up)\n' +
        `   probe ${f(cost.probeUs, 2)} | summary ${f(cost.summaryUs, 2)} | a gap-filling probe + summary of a 2^18-span stream ${f(cost.hostilePairUs, 2)} | summary over the source's budget ${f(cost.refusedSummaryUs, 2)}\n`,
    );
    await printLoadSection(topo, dir, 6);
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
