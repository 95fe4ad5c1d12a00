// `npm run bench:collector -- --store postgres`: ingest on the shared PostgreSQL store — one collector,
// one behind haproxy, two behind haproxy (the repository's configuration) — beside one collector on
// SQLite, and PostgreSQL's own rate for the same rows as the reference: pgbench running the
// collector's own insert statement (report, assessment, the site's latest) with the same row
// contents, over as many connections. The cluster runs with fsync on (the tests' clusters do not).
// Server CPU per report counts every process that serves the run: collectors, PostgreSQL (the
// postmaster and its backends) and haproxy.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assessReport } from '../collector/assessment.js';
import { hashToken, newToken } from '../collector/auth.js';
import { encodeAssessment } from '../collector/store/encoding.js';
import { PostgresStore } from '../collector/store/postgres.js';
import { parseCollectorConfig } from '../src/config/collector.js';
import { DEFAULT_POLICY } from '../src/policy.js';
import { type Haproxy, startHaproxy } from '../tests/helpers/haproxy.js';
import { type PgCluster, startPgCluster } from '../tests/helpers/postgres.js';
import type { Collector, Load, Row } from './collector.js';
import { sampleReport } from './collector-report.js';

export interface BenchTools {
  seconds: number;
  connections: number;
  bodyTemplate: string;
  autocannon(url: string, headers: Record<string, string>, body: string): Promise<Load>;
  startCollectorProcess(configFile: string): Promise<Collector>;
  storedCount(url: string, token: string): Promise<number>;
  cpuSeconds(pid: number): number;
  /** One collector on SQLite (synchronous=full), for comparison. */
  sqliteRow(): Promise<Row>;
}

/** proc(5) stat fields after the command name: [utime, stime, cutime, cstime] in seconds. */
function procTimes(pid: number): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .slice(11, 15)
    .map((ticks) => Number(ticks) / 100);
}

/**
 * CPU seconds the cluster has used: the postmaster's own and its reaped backends' (cutime, cstime:
 * pgbench's connections end before the run is over), plus every live backend's. The difference of
 * two readings is what the cluster spent in between.
 */
function clusterCpu(cluster: PgCluster): number {
  const postmaster = Number(readFileSync(join(cluster.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  let total = procTimes(postmaster).reduce((a, b) => a + b, 0);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === postmaster) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== postmaster) continue;
      const [utime, stime] = procTimes(Number(entry));
      total += utime! + stime!;
    } catch {
      // the backend ended while we looked (its time is now in the postmaster's cutime)
    }
  }
  return total;
}

async function runCollectors(
  tools: BenchTools,
  cluster: PgCluster,
  dir: string,
  name: string,
  count: number,
  viaHaproxy: boolean,
): Promise<Row> {
  const url = await cluster.createDatabase(`bench_${name}`);
  const agentToken = newToken();
  const viewerToken = newToken();
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(
    configFile,
    `collector:
  store: { kind: postgres, url: "${url}", poolSize: 16 }
  rateLimit: { perSecond: 1000000, burst: 1000000 }
  connections: { perAddress: 1024 }
  agents: [{ name: hq-agent-1, site: hq, tokenHash: "${hashToken(agentToken)}" }]
  viewers: [{ name: bench, tokenHash: "${hashToken(viewerToken)}" }]
`,
  );
  const collectors: Collector[] = [];
  let lb: Haproxy | undefined;
  try {
    for (let i = 0; i < count; i++) collectors.push(await tools.startCollectorProcess(configFile));
    if (viaHaproxy) {
      lb = await startHaproxy(
        collectors.map((c, i) => {
          const u = new URL(c.url);
          return { name: `collector${i + 1}`, host: u.hostname, port: Number(u.port) };
        }),
      );
      for (let i = 0; i < count; i++) await lb.waitForServer(`collector${i + 1}`, 'UP');
    }
    const target = lb?.url ?? collectors[0]!.url;
    const pids = [...collectors.map((c) => c.child.pid!), ...(lb ? [lb.pid] : [])];
    const headers = { authorization: `Bearer ${agentToken}`, 'content-type': 'application/json' };
    const before = pids.map(tools.cpuSeconds);
    const pgBefore = clusterCpu(cluster);
    const load = await tools.autocannon(`${target}/api/v1/reports`, headers, tools.bodyTemplate);
    const pgCpu = clusterCpu(cluster) - pgBefore;
    const ownCpu = pids.reduce((s, pid, i) => s + tools.cpuSeconds(pid) - before[i]!, 0);
    const stored = await tools.storedCount(target, viewerToken);
    return {
      name: `${count} collector${count > 1 ? 's' : ''}, PostgreSQL${lb ? ', through haproxy' : ''}`,
      load,
      stored,
      cpuS: ownCpu + pgCpu,
      note: `${load.non2xx} non-2xx, ${load.errors} errors; CPU: collectors ${(ownCpu * 1000).toFixed(0)} ms${lb ? ' (with haproxy)' : ''} + PostgreSQL ${(pgCpu * 1000).toFixed(0)} ms`,
    };
  } finally {
    await lb?.stop();
    for (const c of collectors) await c.stop();
  }
}

/** A SQL string literal. */
const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** The collector's insert statement (collector/store/postgres.ts save) with one report's rows. */
function referenceScript(): string {
  const report = sampleReport({ reportId: 'rep-bench-reference', createdAt: new Date().toISOString() });
  const body = JSON.stringify(report);
  const receivedAtMs = Date.now();
  const assessment = assessReport({
    report,
    policy: DEFAULT_POLICY,
    assessmentId: 'bench',
    receivedAtMs,
    validForMs: 86_400_000,
  });
  const sha = createHash('sha256').update(body).digest('hex');
  const measured = Date.parse(assessment.measuredAt);
  return `WITH report AS (
  INSERT INTO reports (site, report_id, agent, created_at, received_at_ms, body_sha256, body)
  VALUES ('hq', 'rep-bench-' || nextval('bench_ids'), 'hq-agent-1', ${literal(report.createdAt)}, ${receivedAtMs}, ${literal(sha)}, ${literal(body)})
  ON CONFLICT (site, report_id) DO NOTHING RETURNING site, report_id),
assessment AS (
  INSERT INTO assessments (assessment_id, report_id, site, measured_at_ms, doc)
  SELECT 'a-' || report_id, report_id, site, ${measured}, ${literal(encodeAssessment(assessment))} FROM report
  RETURNING assessment_id, site),
site AS (
  INSERT INTO sites (site, assessment_id, measured_at_ms) SELECT site, assessment_id, ${measured} FROM assessment
  ON CONFLICT (site) DO UPDATE SET assessment_id = excluded.assessment_id, measured_at_ms = excluded.measured_at_ms
  WHERE excluded.measured_at_ms >= sites.measured_at_ms)
SELECT COUNT(*) FROM report;
`;
}

const percentile = (sorted: number[], q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

async function runPgbench(tools: BenchTools, cluster: PgCluster, dir: string): Promise<Row> {
  const url = await cluster.createDatabase('bench_reference');
  // the collectors' own migrations make the same tables
  const config = parseCollectorConfig(
    `collector:\n  store: { kind: postgres, url: "${url}" }\n`,
    join(dir, 'x.yaml'),
  );
  if (!config.ok || config.config.store.kind !== 'postgres') throw new Error('reference config');
  await (await PostgresStore.open(config.config.store)).close();
  const script = join(dir, 'reference.sql');
  writeFileSync(script, referenceScript());
  const u = new URL(url);
  const server = ['-h', u.hostname, '-p', u.port, '-U', 'postgres'];
  const setup = spawn('psql', ['-q', ...server, '-d', 'bench_reference', '-c', 'CREATE SEQUENCE bench_ids'], {
    stdio: 'ignore',
  });
  await new Promise((resolve) => setup.once('close', resolve));
  const pgBefore = clusterCpu(cluster);
  // `time` reports pgbench's own CPU (it shares the two cores with the server, as autocannon does)
  const args = [
    '-f',
    '%U %S',
    'pgbench',
    '-n',
    ...server,
    '-c',
    String(tools.connections),
    '-j',
    '2',
    '-T',
    String(tools.seconds),
    '-f',
    script,
    '-l',
    `--log-prefix=${join(dir, 'pgbench')}`,
    'bench_reference',
  ];
  const child = spawn('/usr/bin/time', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`pgbench exited ${code}: ${err}`);
  const pgCpu = clusterCpu(cluster) - pgBefore;
  const [user, system] = err.trim().split('\n').slice(-1)[0]!.split(' ').map(Number);
  const processed = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  // per-transaction log lines: client_id transaction_no latency_us script_no epoch_s epoch_us
  const latencies = readdirSync(dir)
    .filter((f) => f.startsWith('pgbench.'))
    .flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => Number(l.split(' ')[2]) / 1000),
    )
    .sort((a, b) => a - b);
  const load: Load = {
    requests: processed + failed,
    ok: processed,
    non2xx: 0,
    errors: failed,
    seconds: tools.seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    loadgenCpuS: (user ?? 0) + (system ?? 0),
  };
  return {
    name: 'reference: pgbench, the same insert',
    load,
    cpuS: pgCpu,
    note: `${failed} failed; the collector's statement with the same rows, ${tools.connections} connections; CPU: PostgreSQL only`,
  };
}

export async function benchPostgres(dir: string, tools: BenchTools): Promise<Row[]> {
  const rows: Row[] = [await tools.sqliteRow()];
  // fsync on, as a production database; room for 16-connection pools of two collectors and pgbench
  const cluster = await startPgCluster(['fsync=on', 'shared_buffers=128MB', 'max_connections=100']);
  try {
    rows.push(await runCollectors(tools, cluster, dir, 'pg1', 1, false));
    rows.push(await runCollectors(tools, cluster, dir, 'pg1_haproxy', 1, true));
    rows.push(await runCollectors(tools, cluster, dir, 'pg2_haproxy', 2, true));
    rows.push(await runPgbench(tools, cluster, dir));
  } finally {
    await cluster.destroy();
  }
  return rows;
}
