// `npm run bench:trace`: `voipready trace` beside Debian's `traceroute` on the same chain of network
// namespaces (site — r1 — r2 — r3 — dc): time to complete and hops found, on a clean path and with
// r2 dropping its ICMP (a silent hop), and whether each tool says where EF became CS0 (r2 rewriting
// it). traceroute sends EF too (`-t 184`), UDP to rising ports, numeric output; once with one probe
// per hop (`-q 1`, as voipready's first attempt) and once with its default three. Both are timed
// as whole commands; voipready's includes starting Node, printed alone beside it (a usage error).
// Figures are printed, never asserted.
// Needs root (namespaces, raw sockets) and traceroute (scripts/install-test-deps.sh).
//
//   BENCH_RUNS   runs per tool and path (default 5); the median is printed

import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { promisify } from 'node:util';
import { TraceResult } from '../src/trace-schema.js';
import { CLI_BIN, cliUnavailableReason } from '../tests/helpers/cli.js';
import { netnsUnavailableReason } from '../tests/helpers/netns.js';
import { type Chain, createChain } from '../tests/helpers/netns-chain.js';

const execFileP = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MAX_HOPS = 8;
const TABLE = 'bench_trace';
/** Linux routers answer about one ICMP error a second per destination after a burst of six: rest between runs. */
const REST_MS = 3000;

interface Run {
  ms: number;
  /** Hops that answered (the peer included). */
  hops: number;
  reached: boolean;
  /** What the tool said about the mark, if anything. */
  mark: string;
}

interface Tool {
  name: string;
  run(chain: Chain): Promise<Run>;
}

async function timed(ns: string, argv: string[]): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const { stdout } = await execFileP('ip', ['netns', 'exec', ns, ...argv], { maxBuffer: 1 << 20 }).catch(
    (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
  );
  return { ms: performance.now() - started, stdout };
}

const voipready: Tool = {
  name: 'voipready trace --dscp EF',
  async run(chain) {
    const argv = [process.execPath, CLI_BIN, 'trace', '--peer', chain.dcAddr];
    const { ms, stdout } = await timed(chain.site, [...argv, '--max-hops', String(MAX_HOPS), '--json']);
    const r = TraceResult.parse(JSON.parse(stdout));
    const mark =
      r.outcome === 'changed'
        ? `changed at hop ${r.firstChangeAtTtl}`
        : r.outcome === 'kept'
          ? 'EF kept at every hop'
          : 'unknown';
    return { ms, hops: r.hops.filter((h) => h.address !== null).length, reached: r.reached, mark };
  },
};

/** What starting the CLI costs on this machine now: `voipready trace` without --peer (a usage error). */
const startup: Tool = {
  name: 'voipready start-up alone',
  async run(chain) {
    const { ms } = await timed(chain.site, [process.execPath, CLI_BIN, 'trace']);
    return { ms, hops: 0, reached: false, mark: '-' };
  },
};

function traceroute(queries: number): Tool {
  return {
    name: `traceroute -n -t 184 -q ${queries}`,
    async run(chain) {
      const argv = ['traceroute', '-n', '-t', '184', '-q', String(queries), '-m', String(MAX_HOPS)];
      const { ms, stdout } = await timed(chain.site, [...argv, chain.dcAddr]);
      // One line per TTL after the header: "TTL  ADDR  RTT ms ..." or "TTL  * * *".
      const lines = stdout.split('\n').filter((l) => /^\s*\d+\s/.test(l));
      const answered = lines.filter((l) => /\d+\.\d+\.\d+\.\d+/.test(l));
      const reached = lines.some((l) => l.includes(chain.dcAddr));
      return { ms, hops: answered.length, reached, mark: 'not reported' };
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function scenario(chain: Chain, title: string, ruleset: string | undefined, tools: Tool[]) {
  await chain.nft(2, `table ip ${TABLE} {}\ndelete table ip ${TABLE}\n`);
  if (ruleset) await chain.nft(2, ruleset);
  process.stdout.write(`\n${title}\n`);
  process.stdout.write(
    `${'tool'.padEnd(32)} ${'median s'.padStart(9)} ${'min s'.padStart(7)} ${'max s'.padStart(7)}  hops found  reached  DSCP\n`,
  );
  for (const tool of tools) {
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      await new Promise((r) => setTimeout(r, REST_MS));
      runs.push(await tool.run(chain));
    }
    const ms = runs.map((r) => r.ms);
    const hops = [...new Set(runs.map((r) => r.hops))].join('/');
    const reached = `${runs.filter((r) => r.reached).length}/${runs.length}`;
    const marks = [...new Set(runs.map((r) => r.mark))].join('; ');
    process.stdout.write(
      `${tool.name.padEnd(32)} ${(median(ms) / 1000).toFixed(2).padStart(9)} ${(Math.min(...ms) / 1000).toFixed(2).padStart(7)} ${(Math.max(...ms) / 1000).toFixed(2).padStart(7)}  ${hops.padStart(10)}  ${reached.padStart(7)}  ${marks}\n`,
    );
  }
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason() ?? cliUnavailableReason();
  if (why) throw new Error(`bench:trace needs ${why}`);
  await execFileP('traceroute', ['--version']).catch(() => {
    throw new Error('traceroute is not installed (scripts/install-test-deps.sh)');
  });
  const chain = await createChain(3);
  try {
    const tools = [voipready, startup, traceroute(1), traceroute(3)];
    process.stdout.write(
      `DSCP path trace vs traceroute: site — r1 — r2 — r3 — dc (4 hops), ${RUNS} runs each, ${REST_MS / 1000} s apart; load average ${loadavg()[0]!.toFixed(1)} at the start\n`,
    );
    await scenario(chain, 'clean path', undefined, tools);
    await scenario(
      chain,
      'r2 drops its Time Exceeded (a silent hop)',
      `table ip ${TABLE} {\n chain output { type filter hook output priority 0; policy accept;\n  icmp type time-exceeded drop\n }\n}\n`,
      tools,
    );
    await scenario(
      chain,
      'r2 rewrites EF to CS0 on forward',
      `table ip ${TABLE} {\n chain forward { type filter hook forward priority 0; policy accept;\n  ip dscp ef ip dscp set cs0\n }\n}\n`,
      tools,
    );
    process.stdout.write(`\nload average ${loadavg()[0]!.toFixed(1)} at the end\n`);
  } finally {
    await chain.destroy();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench:trace: ${err.message}\n`);
  process.exitCode = 1;
});
