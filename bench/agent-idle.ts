// `npm run build && node dist/bench/agent-idle.js`: what the long-running agent costs the site host
// while it waits between probes. A real agent process (probe interval 1 h) against a real reflector
// and collector on loopback runs its first probe and delivers the report; then its RSS and CPU time
// are sampled from /proc for BENCH_SECONDS (default 60, after BENCH_SETTLE_SECONDS, default 15) and
// printed beside a bare `node` process idling the same way (the runtime's own floor). Figures are
// printed, never asserted.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startReflector } from '../agent/reflector.js';
import { agentCredentials, agentYaml, startCollectorFor } from '../tests/helpers/agent-setup.js';
import { cliUnavailableReason, startCli } from '../tests/helpers/cli.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE_SECONDS ?? 15);
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, seconds (proc(5): fields 14 and 15 of /proc/PID/stat). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

interface Footprint {
  rssStartMiB: number;
  rssMeanMiB: number;
  rssMaxMiB: number;
  cpuSeconds: number;
}

async function sample(pid: number, seconds: number): Promise<Footprint> {
  const cpu0 = cpuSeconds(pid);
  const rss: number[] = [rssMiB(pid)];
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    rss.push(rssMiB(pid));
  }
  return {
    rssStartMiB: rss[0]!,
    rssMeanMiB: rss.reduce((a, b) => a + b, 0) / rss.length,
    rssMaxMiB: Math.max(...rss),
    cpuSeconds: cpuSeconds(pid) - cpu0,
  };
}

async function main(): Promise<void> {
  const unavailable = cliUnavailableReason();
  if (unavailable) throw new Error(unavailable);
  const dir = mkdtempSync(join(tmpdir(), 'voipready-bench-agent-'));
  const reflector = await startReflector({ host: '127.0.0.1', port: 0 });
  const { token, tokenHash } = agentCredentials();
  const collector = await startCollectorFor(tokenHash, join(dir, 'collector'));
  writeFileSync(
    join(dir, 'agent.yaml'),
    agentYaml({
      collectorUrl: collector.url,
      collectorAuth: `token: "${token}"`,
      queueDir: join(dir, 'queue'),
      reflector,
      duration: '2s',
      interval: '1h',
    }),
  );
  const agent = startCli(['agent', '--config', join(dir, 'agent.yaml')]);
  let reference: ChildProcess | undefined;
  try {
    await agent.waitForStderr(/"event":"report.delivered"/, 30_000);
    // V8's memory reducer collects the probe's garbage some seconds after activity stops; the idle
    // state is what follows (BENCH_SETTLE_SECONDS=0 to include it).
    await new Promise((r) => setTimeout(r, SETTLE_SECONDS * 1000));
    reference = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1000));
    process.stdout.write(
      `sampling ${SECONDS} s of idle (agent pid ${agent.child.pid}, reference pid ${reference.pid})…\n`,
    );
    const [a, b] = await Promise.all([sample(agent.child.pid!, SECONDS), sample(reference.pid!, SECONDS)]);
    const row = (label: string, f: (x: Footprint) => string) =>
      `${label.padEnd(30)} ${f(a).padStart(16)} ${f(b).padStart(22)}\n`;
    process.stdout.write(
      `\nagent idle between probes, ${SECONDS} s from ${SETTLE_SECONDS} s after the first report (Node ${process.version}, ${process.arch})\n` +
        `${''.padEnd(30)} ${'voipready agent'.padStart(16)} ${'bare node (reference)'.padStart(22)}\n` +
        row('RSS at start (MiB)', (x) => x.rssStartMiB.toFixed(1)) +
        row('RSS mean / max (MiB)', (x) => `${x.rssMeanMiB.toFixed(1)} / ${x.rssMaxMiB.toFixed(1)}`) +
        row('CPU time, user+sys (s)', (x) => x.cpuSeconds.toFixed(2)) +
        row('CPU (% of one core)', (x) => ((100 * x.cpuSeconds) / SECONDS).toFixed(3)),
    );
  } finally {
    reference?.kill('SIGKILL');
    await agent.stop(10_000);
    await collector.close();
    await reflector.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench agent-idle: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
