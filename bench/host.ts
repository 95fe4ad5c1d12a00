// `npm run bench:host`: one host collection on a host with 50,000 journal errors since the last run
// and 20 mounts, beside `journalctl` alone on the same journal; then the agent's idle RSS with host
// checks enabled. The journal is made with systemd-journal-remote, the mounts are tmpfs in a private
// mount namespace. Wall time, CPU (user + sys, children included: GNU time) and peak RSS are
// printed with the load average (the machine is shared); nothing is asserted.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { tableLines } from '../src/report/table.js';
import { agentCredentials, startCollectorFor } from '../tests/helpers/agent-setup.js';
import { CLI_BIN, cliUnavailableReason, startCli } from '../tests/helpers/cli.js';
import { writeJournal } from '../tests/helpers/journal.js';
import { startTmpfsNamespace } from '../tests/helpers/mountns.js';

const ERRORS = Number(process.env.BENCH_ERRORS ?? 50_000);
const MOUNTS = 20;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

interface Usage {
  wallS: number;
  cpuS: number;
  maxRssMiB: number;
}

/** GNU time's figures for one command (stdout discarded; a non-zero exit, e.g. not ready, is fine). */
function timed(cmd: string[]): Usage {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', ...cmd], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const last = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return { wallS: last[0]!, cpuS: last[1]! + last[2]!, maxRssMiB: last[3]! / 1024 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const unavailable = cliUnavailableReason();
  if (unavailable) throw new Error(unavailable);
  const work = mkdtempSync(join(tmpdir(), 'voipready-bench-host-'));
  const ns = await startTmpfsNamespace(MOUNTS, 16 * 1024 * 1024);
  try {
    const journalDir = join(work, 'journal');
    const now = Date.now();
    const sinceMs = now - 3_600_000;
    console.log(`writing ${ERRORS} error entries (and as many info entries) with systemd-journal-remote…`);
    await writeJournal(
      journalDir,
      (function* () {
        for (let i = 0; i < ERRORS; i++) {
          const t = sinceMs + 60_000 + i * (3_000_000 / ERRORS);
          yield { priority: 6, identifier: 'cron', message: `job ${i} ran`, timeMs: t };
          yield {
            priority: i % 10 === 0 ? 2 : 3,
            identifier: `svc-${i % 50}`,
            message: `error ${i}: disk I/O failed on sda`,
            timeMs: t + 1,
          };
        }
      })(),
    );
    const config = join(work, 'agent.yaml');
    writeFileSync(
      config,
      `agent:
  name: bench
  site: bench
  collector: { url: "http://127.0.0.1:9", token: t }
  queue: { dir: ${join(work, 'queue')} }
  host:
    disk: { paths: [${ns.paths.join(', ')}] }
    eventlog: { source: journald, directory: ${journalDir}, since: 2h }
`,
    );
    const host: Usage[] = [];
    const journal: Usage[] = [];
    let result: { eventlog: { critical: number; errors: number }; disks: unknown[] } | undefined;
    for (let r = 0; r < RUNS; r++) {
      host.push(timed([process.execPath, CLI_BIN, 'host', '--config', config, '--json']));
      journal.push(
        timed([
          'journalctl',
          '--directory',
          journalDir,
          '-o',
          'json',
          '--no-pager',
          '-q',
          '-p',
          '0..4',
          '--since',
          `@${Math.floor(sinceMs / 1000)}`,
        ]),
      );
    }
    try {
      execFileSync(process.execPath, [CLI_BIN, 'host', '--config', config, '--json'], {
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      });
    } catch (err) {
      result = JSON.parse(String((err as { stdout: string }).stdout));
    }
    const row = (name: string, u: Usage[]) => [
      name,
      median(u.map((x) => x.wallS)).toFixed(2),
      median(u.map((x) => x.cpuS)).toFixed(2),
      median(u.map((x) => x.maxRssMiB)).toFixed(1),
    ];
    console.log(
      `\none host collection: ${result?.eventlog.critical} critical + ${result?.eventlog.errors} errors counted, ${result?.disks.length} disks (median of ${RUNS} runs; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')})`,
    );
    console.log(
      tableLines(
        ['', 'WALL S', 'CPU S', 'MAX RSS MIB'],
        [row('voipready host (incl. journalctl)', host), row('journalctl -o json -p 0..4 alone', journal)],
        { alignRight: [1, 2, 3] },
      ).join('\n'),
    );

    // The agent idle with host checks enabled (interval 1 h): RSS after its first collection.
    const creds = agentCredentials();
    const collector = await startCollectorFor(creds.tokenHash, join(work, 'collector'));
    try {
      writeFileSync(
        config,
        `agent:
  name: agent-1
  site: branch-01
  collector: { url: "${collector.url}", token: "${creds.token}" }
  queue: { dir: ${join(work, 'queue2')} }
  host:
    interval: 1h
    disk: { paths: [${ns.paths.join(', ')}] }
    eventlog: { source: journald, directory: ${journalDir}, since: 2h }
`,
      );
      const agent = startCli(['agent', '--config', config]);
      try {
        await agent.waitForStderr(/report\.delivered|"delivered"/, 120_000).catch(() => undefined);
        await delay(Number(process.env.BENCH_SETTLE_SECONDS ?? 15) * 1000);
        const samples: number[] = [];
        for (let i = 0; i < 10; i++) {
          const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${agent.child.pid}/status`, 'utf8'));
          samples.push(Number(m?.[1]) / 1024);
          await delay(1000);
        }
        console.log(
          `\nagent idle with host checks (after the first collection of ${ERRORS} errors, 20 mounts): RSS mean ${(samples.reduce((a, b) => a + b, 0) / samples.length).toFixed(1)} MiB, max ${Math.max(...samples).toFixed(1)} MiB (load average ${loadavg()
            .map((l) => l.toFixed(2))
            .join(' ')})`,
        );
      } finally {
        await agent.stop();
      }
    } finally {
      await collector.close();
    }
  } finally {
    ns.close();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
