// What the priority test's load costs (issue 11): the CPU the probe spends generating a best-effort
// load at a fixed rate, and the reflector discarding it, against iperf3 sending and receiving the
// same datagrams (-u -l 1200 at the same rate for as long). The probe's share is isolated as the
// difference between two otherwise identical runs: --load RATE and --load 1kbit (so the twins and
// the calls cost the same in both). Over the unshaped namespace path, native socket layer.
import { join } from 'node:path';
import { type ProbeJson, parseProbeJson, runCli, startCli } from '../tests/helpers/cli.js';
import { DC_ADDR, type Topology } from '../tests/helpers/netns.js';
import { timedIperf } from './iperf.js';
import { childOf, load1, readUsage, timeWrapper, type Usage } from './usage.js';

const MEDIA_PORT = 5004;
const PEER = `${DC_ADDR}:${MEDIA_PORT}`;
/** Seconds of load per run: the loaded phase, a third of the probe's run. */
export const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 10);
export const LOAD_RATES_BPS = [20_000_000, 100_000_000];

export interface LoadCost {
  rateBps: number;
  load: number;
  /** What the probe reports it sent in the loaded phase, bit/s (IP + UDP). */
  sentBps: number;
  /** Load datagrams the probe sent. */
  sentPackets: number;
  probeCpuS: number;
  reflectorCpuS: number;
  iperfClient: Usage;
  iperfServer: Usage;
}

async function priorityRun(topo: Topology, dir: string, name: string, load: string) {
  const reflectorTime = join(dir, `reflector-${name}.time`);
  const probeTime = join(dir, `probe-${name}.time`);
  const reflector = startCli(['reflector', '--listen', PEER, '--accept-load'], {
    ns: topo.dc,
    wrapper: timeWrapper(reflectorTime),
  });
  await reflector.waitForStderr(/accepting load/, 10_000);
  const out = await runCli(
    [
      'probe',
      '--peer',
      PEER,
      '--duration',
      `${3 * LOAD_SECONDS}s`,
      '--wait',
      '0',
      '--json',
      '--priority-test',
      '--load',
      load,
    ],
    { ns: topo.site, wrapper: timeWrapper(probeTime), timeoutMs: (3 * LOAD_SECONDS + 30) * 1000 },
  );
  process.kill(childOf(reflector.child.pid!), 'SIGTERM');
  await reflector.done;
  if (out.code !== 0 && out.code !== 1) throw new Error(`probe exited ${out.code}: ${out.stderr.trim()}`);
  const json: ProbeJson = parseProbeJson(out.stdout);
  return { json, probe: readUsage(probeTime), reflector: readUsage(reflectorTime) };
}

function iperf(topo: Topology, dir: string, rateBps: number) {
  // -b counts UDP payload; ours counts IP + UDP headers too (1200 + 28 bytes): the same datagrams.
  const payloadRate = Math.round((rateBps * 1200) / 1228);
  return timedIperf(topo, dir, `load-${rateBps}`, [
    '-u',
    '-l',
    '1200',
    '-b',
    `${payloadRate}`,
    '-t',
    `${LOAD_SECONDS}`,
  ]);
}

export async function loadGeneratorCost(topo: Topology, dir: string, rateBps: number): Promise<LoadCost> {
  const loaded = await priorityRun(topo, dir, `load-${rateBps}`, `${rateBps / 1000}kbit`);
  const idle = await priorityRun(topo, dir, `noload-${rateBps}`, '1kbit');
  const ref = await iperf(topo, dir, rateBps);
  return {
    rateBps,
    load: load1(),
    sentBps: loaded.json.priority?.loadSentBps ?? 0,
    sentPackets: loaded.json.priority?.loadSentPackets ?? 0,
    probeCpuS: loaded.probe.cpuS - idle.probe.cpuS,
    reflectorCpuS: loaded.reflector.cpuS - idle.reflector.cpuS,
    iperfClient: ref.client,
    iperfServer: ref.server,
  };
}

const f = (n: number, digits: number) => n.toFixed(digits);

/** Section 6 of bench:probe: runs the load costs and prints them beside iperf3's. */
export async function printLoadSection(topo: Topology, dir: string, number: number): Promise<void> {
  const rows: LoadCost[] = [];
  for (const rate of LOAD_RATES_BPS) rows.push(await loadGeneratorCost(topo, dir, rate));
  process.stdout.write(
    `\n${number}. The priority test's load (--priority-test --load RATE, ${LOAD_SECONDS} s loaded phase; CPU beyond the same run at --load 1kbit) vs iperf3 -u -l 1200 at the same rate for ${LOAD_SECONDS} s\n` +
      '   rate       | load | sent (probe)   datagrams | probe CPU s | reflector CPU s | iperf3 client CPU s | iperf3 server CPU s | ratio ours / iperf3\n',
  );
  for (const r of rows) {
    const ours = r.probeCpuS + r.reflectorCpuS;
    const ref = r.iperfClient.cpuS + r.iperfServer.cpuS;
    process.stdout.write(
      `   ${`${r.rateBps / 1e6} Mbit/s`.padEnd(10)} | ${f(r.load, 1).padStart(4)} | ${`${f(r.sentBps / 1e6, 1)} Mbit/s`.padStart(13)} ${String(r.sentPackets).padStart(10)} | ${f(r.probeCpuS, 2).padStart(11)} | ${f(r.reflectorCpuS, 2).padStart(15)} | ${f(r.iperfClient.cpuS, 2).padStart(19)} | ${f(r.iperfServer.cpuS, 2).padStart(19)} | ${f(ours / ref, 2)}x\n`,
    );
  }
}
