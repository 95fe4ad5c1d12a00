// `npm run bench:collector`: ingest throughput and latency of the collector, as a separate process
// driven by autocannon in a second process, posting realistic one-probe reports with unique ids:
//   1. embedded store (SQLite, WAL, synchronous=FULL, group commit),
//   2. the same with InfluxDB configured (reports still commit to SQLite first; the points drain from
//      the outbox to a real influxd, and the drain rate is measured too),
//   3. the reference: the same two points per report written straight to influxd's /write.
// Every acknowledged report is counted back from the store, so the rate is of reports stored, not of
// answers. Figures are printed side by side, never asserted. BENCH_SECONDS (default 10) per run,
// BENCH_CONNECTIONS (default 32). With `--store postgres`: the shared PostgreSQL store instead
// (./collector-postgres.ts): one and two collectors, with and without haproxy, beside SQLite and pgbench.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashToken, newToken } from '../collector/auth.js';
import { pointsFromReport } from '../collector/store/influx.js';
import { tableLines } from '../src/report/table.js';
import { CLI_BIN } from '../tests/helpers/cli.js';
import { influxQuery, startInfluxd } from '../tests/helpers/influxd.js';
import type { Service } from '../tests/helpers/service.js';
import { waitUntil } from '../tests/helpers/service.js';
import { sampleReport } from './collector-report.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux
const LOADER = fileURLToPath(new URL('./collector-load.js', import.meta.url));

export interface Load {
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU seconds the load generator itself used (it shares the cores with the server). */
  loadgenCpuS: number;
}

/** Runs the autocannon load generator (./collector-load.ts) as its own process. */
async function autocannon(url: string, headers: Record<string, string>, body: string): Promise<Load> {
  const spec = { url, headers, body, connections: CONNECTIONS, seconds: SECONDS };
  const args = [LOADER, JSON.stringify(spec)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('close', () => children.delete(child));
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`autocannon exited ${code}`);
  const r = JSON.parse(stdout) as {
    requests: { total: number };
    '2xx': number;
    non2xx: number;
    errors: number;
    duration: number;
    latency: { p50: number; p99: number };
    cpuS: number;
  };
  return {
    requests: r.requests.total,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    seconds: r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    loadgenCpuS: r.cpuS,
  };
}

/** Every child this benchmark started, killed on the way out whatever happens. */
const children = new Set<ChildProcess>();

export interface Collector {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

function startCollectorProcess(configFile: string): Promise<Collector> {
  const child = spawn(process.execPath, [CLI_BIN, 'collector', '--config', configFile, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  void exited.then(() => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('collector did not start')), 15_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening on (http:\/\/\S+) /.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          child,
          url: m[1]!,
          async stop() {
            child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    void exited.then(() => reject(new Error(`collector exited: ${out}`)));
  });
}

async function storedCount(url: string, token: string): Promise<number> {
  let total = 0;
  for (let offset = 0; ; offset += 10_000) {
    const res = await fetch(`${url}/api/v1/reports?limit=10000&offset=${offset}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const n = ((await res.json()) as { reports: unknown[] }).reports.length;
    total += n;
    if (n < 10_000) return total;
  }
}

/** CPU time (user + system, all threads) a process has used, seconds: proc(5) stat fields 14, 15. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [utime, stime] = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .slice(11, 13)
    .map(Number);
  return (utime! + stime!) / CLOCK_TICKS;
}

export interface Row {
  name: string;
  load: Load;
  stored?: number;
  note: string;
  /** Server CPU seconds spent during the load. */
  cpuS: number;
}

/** Per request: made now, by a probe that started now (its evidence time is then its arrival). */
function bodyTemplate(): string {
  const report = sampleReport({ reportId: 'rep-bench-[<id>]' });
  report.createdAt = '[<time>]';
  report.probes[0]!.startedAt = '[<time>]';
  return JSON.stringify(report);
}
const BODY_TEMPLATE = bodyTemplate();

async function benchCollector(
  dir: string,
  synchronous: 'full' | 'normal',
  influx: Service | undefined,
): Promise<Row> {
  const agentToken = newToken();
  const viewerToken = newToken();
  const name = `${influx ? 'influx' : 'sqlite'}-${synchronous}`;
  const dataDir = join(dir, `data-${name}`);
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(
    configFile,
    `collector:
  dataDir: ${dataDir}
  synchronous: ${synchronous}
  rateLimit: { perSecond: 1000000, burst: 1000000 }
  agents: [{ name: hq-agent-1, site: hq, tokenHash: "${hashToken(agentToken)}" }]
  viewers: [{ name: bench, tokenHash: "${hashToken(viewerToken)}" }]
${influx ? `  influxdb: { url: "${influx.url}", database: bench_${synchronous} }\n` : ''}`,
  );
  const collector = await startCollectorProcess(configFile);
  try {
    const headers = { authorization: `Bearer ${agentToken}`, 'content-type': 'application/json' };
    const cpuBefore = cpuSeconds(collector.child.pid!);
    const load = await autocannon(`${collector.url}/api/v1/reports`, headers, BODY_TEMPLATE);
    const cpuS = cpuSeconds(collector.child.pid!) - cpuBefore;
    const stored = await storedCount(collector.url, viewerToken);
    let note = `${load.non2xx} non-2xx, ${load.errors} errors`;
    if (influx) {
      // how long until every point of the run is in InfluxDB
      const started = performance.now();
      const q = 'SELECT COUNT("jitterMs") FROM "voipready_rtp"';
      let points = 0;
      await waitUntil(
        'the outbox to drain into InfluxDB',
        async () => {
          points = Number((await influxQuery(influx.url, `bench_${synchronous}`, q))[0]?.values[0]?.[1] ?? 0);
          return points >= 2 * stored;
        },
        120_000,
      );
      const drainS = (performance.now() - started) / 1000;
      note += `; ${points} points in InfluxDB ${drainS.toFixed(1)} s after the run`;
    }
    const store = `SQLite synchronous=${synchronous}${influx ? ' + InfluxDB' : ''}`;
    return { name: `collector, ${store}`, load, stored, note, cpuS };
  } finally {
    await collector.stop();
  }
}

async function benchInfluxWrite(influx: Service): Promise<Row> {
  await fetch(`${influx.url}/query?q=${encodeURIComponent('CREATE DATABASE bench_direct')}`, {
    method: 'POST',
  });
  const report = sampleReport({ reportId: 'rep-bench-direct' });
  const assessment = { peers: [{ ready: true }], measuredAt: report.createdAt } as Parameters<
    typeof pointsFromReport
  >[1];
  // the same two points the collector writes for one report, as line protocol; the id makes each
  // request's points distinct (a field, like the collector's reportId)
  const lines = pointsFromReport(report, assessment).map((p) => {
    const esc = (s: string) => s.replace(/[ ,=]/g, (c) => `\\${c}`);
    const tags = Object.entries(p.tags)
      .map(([k, v]) => `${k}=${esc(v)}`)
      .join(',');
    const fields = Object.entries(p.fields)
      .map(([k, v]) =>
        typeof v === 'string' ? `${k}="rep-bench-[<id>]"` : `${k}=${typeof v === 'boolean' ? v : Number(v)}`,
      )
      .join(',');
    return `${p.measurement},${tags} ${fields} [<ms>]`;
  });
  const cpuBefore = cpuSeconds(influx.pid);
  const load = await autocannon(
    `${influx.url}/write?db=bench_direct&precision=ms`,
    { 'content-type': 'text/plain' },
    lines.join('\n'),
  );
  return {
    name: 'reference: influxd /write',
    load,
    cpuS: cpuSeconds(influx.pid) - cpuBefore,
    note: `${load.non2xx} non-2xx, ${load.errors} errors; 2 points per request`,
  };
}

function table(rows: Row[]): string {
  const header = [
    'run',
    'reports/s',
    'p50 ms',
    'p99 ms',
    'server CPU µs/report',
    'autocannon CPU µs/report',
    'stored',
    'notes',
  ];
  const lines = rows.map((r) => [
    r.name,
    ((r.stored ?? r.load.ok) / r.load.seconds).toFixed(0),
    r.load.p50Ms.toFixed(1),
    r.load.p99Ms.toFixed(1),
    ((1e6 * r.cpuS) / (r.stored ?? r.load.ok)).toFixed(0),
    ((1e6 * r.load.loadgenCpuS) / (r.stored ?? r.load.ok)).toFixed(0),
    r.stored === undefined ? '-' : `${r.stored}/${r.load.ok}`,
    r.note,
  ]);
  return tableLines(header, lines, { rule: true, alignRight: [1, 2, 3, 4, 5] }).join('\n');
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'voipready-bench-collector-'));
  let influx: Service | undefined;
  const cleanup = async () => {
    for (const child of children) child.kill('SIGKILL');
    await influx?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void cleanup().then(() => process.exit(130));
    });
  }
  try {
    process.stdout.write(
      `collector ingest benchmark: ${SECONDS} s per run, ${CONNECTIONS} connections, one probe result per report; ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(1)} at the start\n`,
    );
    if (process.argv.includes('--store')) {
      const store = process.argv[process.argv.indexOf('--store') + 1];
      if (store !== 'postgres')
        throw new Error(`--store ${store}: only postgres (SQLite is the default run)`);
      const { benchPostgres } = await import('./collector-postgres.js');
      const rows = await benchPostgres(dir, {
        seconds: SECONDS,
        connections: CONNECTIONS,
        bodyTemplate: BODY_TEMPLATE,
        autocannon,
        startCollectorProcess,
        storedCount,
        cpuSeconds,
        sqliteRow: () => benchCollector(dir, 'full', undefined),
      });
      process.stdout.write(`${table(rows)}\n`);
      const reference = rows[rows.length - 1]!;
      const rate = (r: Row) => (r.stored ?? r.load.ok) / r.load.seconds;
      for (const r of rows.slice(0, -1))
        process.stdout.write(`${r.name}: ${(rate(r) / rate(reference)).toFixed(2)} × pgbench's rate\n`);
      process.stdout.write(
        `load average ${loadavg()[0]!.toFixed(1)} at the end (a busy machine understates every row; compare the load generators' CPU µs/report across rows)\n`,
      );
      return;
    }
    const rows: Row[] = [];
    rows.push(await benchCollector(dir, 'full', undefined));
    rows.push(await benchCollector(dir, 'normal', undefined));
    influx = await startInfluxd();
    rows.push(await benchCollector(dir, 'full', influx));
    rows.push(await benchCollector(dir, 'normal', influx));
    const direct = await benchInfluxWrite(influx);
    rows.push(direct);
    process.stdout.write(`${table(rows)}\n`);
    const rate = (r: Row) => (r.stored ?? r.load.ok) / r.load.seconds;
    for (const r of rows.slice(0, 4)) {
      const reports = r.stored ?? r.load.ok;
      const cpuPerReport = r.cpuS / reports;
      // What two cores could carry if nothing else ran: the server's and autocannon's CPU per report.
      const bothPerReport = cpuPerReport + r.load.loadgenCpuS / reports;
      process.stdout.write(
        `${r.name}: ${(rate(r) / rate(direct)).toFixed(2)} × influxd /write in reports/s; ` +
          `one core of its CPU time per report carries ${(1 / cpuPerReport).toFixed(0)} reports/s; ` +
          `two idle cores shared with autocannon at most ${(2 / bothPerReport).toFixed(0)} reports/s\n`,
      );
    }
    const best = rows
      .slice(0, 2)
      .map((r) => `${r.name}: ${rate(r) >= 5000 && r.load.p99Ms < 50 ? 'met' : 'NOT met'}`);
    process.stdout.write(
      `load average ${loadavg()[0]!.toFixed(1)} at the end (figures from a busy machine understate the collector, CPU µs/report included: compare it with autocannon's CPU µs/report, a yardstick of how fast the machine was during the run)\n`,
    );
    process.stdout.write(`target ≥ 5000 reports/s and p99 < 50 ms with SQLite: ${best.join('; ')}\n`);
  } finally {
    await cleanup();
  }
}

await main();
