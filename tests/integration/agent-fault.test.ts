// The cross-process fault test: a real collector process, a real agent process and a real reflector
// on loopback. The collector is SIGKILLed mid-stream and restarted twice, the agent is SIGKILLed and
// restarted once; afterwards every report the agent produced is stored in the collector's SQLite
// file exactly once, in the order produced (or, at most the last one, still in the agent's queue).
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import { SQLITE_FILE } from '../../collector/store/sqlite.js';
import {
  type AgentLogLine,
  agentCredentials,
  agentLog,
  agentYaml,
  collectorAgentsYaml,
} from '../helpers/agent-setup.js';
import { type CliProcess, cliUnavailableReason, killAllCli, startCli } from '../helpers/cli.js';

const skipReason = cliUnavailableReason();

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const events = (p: CliProcess): AgentLogLine[] => agentLog(p.stderr());

describe.skipIf(skipReason)('agent ⇄ collector across crashes (separate processes)', () => {
  let dir: string;
  let reflector: Reflector;
  const agentRuns: CliProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-fault-'));
    reflector = await startReflector({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await killAllCli();
    await reflector?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores every produced report exactly once, in order', async () => {
    const port = await freePort();
    const { token, tokenHash } = agentCredentials();
    const dataDir = join(dir, 'collector-data');
    const queueDir = join(dir, 'queue');
    await writeFile(
      join(dir, 'collector.yaml'),
      `collector:
  listen: { host: 127.0.0.1, port: ${port} }
  reads: open
  rateLimit: { perSecond: 1000, burst: 1000 }
${collectorAgentsYaml(tokenHash)}`,
    );
    await writeFile(join(dir, 'token'), `${token}\n`);
    await writeFile(
      join(dir, 'agent.yaml'),
      agentYaml({
        collectorUrl: `http://127.0.0.1:${port}`,
        collectorAuth: 'tokenFile: token, timeout: 2s',
        queueDir,
        reflector,
        duration: '1s',
        interval: '4500ms',
        extra: '  retry: { initial: 200ms, max: 1s }\n',
      }),
    );

    const startCollector = async () => {
      const p = startCli(['collector', '--config', join(dir, 'collector.yaml'), '--data-dir', dataDir], {
        timeoutMs: 220_000,
      });
      await until(
        'collector /healthz',
        async () => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) {
            throw new Error(`collector exited ${p.child.exitCode ?? p.child.signalCode}: ${p.stderr()}`);
          }
          return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok === true;
        },
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; collector stderr: ${p.stderr()}`);
      });
      return p;
    };
    const startAgent = () => {
      const p = startCli(['agent', '--config', join(dir, 'agent.yaml')], { timeoutMs: 220_000 });
      agentRuns.push(p);
      return p;
    };
    const all = (event: string) => agentRuns.flatMap((p) => events(p).filter((e) => e.event === event));
    const count = (event: string) => all(event).length;
    /** SIGKILL the collector just after the agent queued a new report: its POST is about to fly. */
    const killCollectorMidStream = async (collector: CliProcess) => {
      const queued = count('report.queued');
      await until('a new report', () => count('report.queued') > queued, 20_000);
      collector.child.kill('SIGKILL');
      await collector.done;
    };

    let collector = await startCollector();
    let agent = startAgent();
    await until('2 deliveries', () => count('report.delivered') >= 2, 20_000);

    // Collector crash 1: the agent keeps probing and queueing while it is gone.
    await killCollectorMidStream(collector);
    const queuedAtCrash1 = count('report.queued');
    await until(
      '2 reports queued while the collector is down',
      () => count('report.queued') >= queuedAtCrash1 + 2,
      20_000,
    );
    expect(count('report.retry')).toBeGreaterThan(0);
    collector = await startCollector();
    let delivered = count('report.delivered');
    await until('catch-up after restart 1', () => count('report.delivered') >= delivered + 3, 20_000);

    // Agent crash: SIGKILL, whatever it was doing; the restarted agent resends from its queue.
    agent.child.kill('SIGKILL');
    await agent.done;
    agent = startAgent();
    delivered = count('report.delivered');
    await until(
      'deliveries by the restarted agent',
      () => count('report.delivered') >= delivered + 2,
      20_000,
    );

    // Collector crash 2.
    await killCollectorMidStream(collector);
    await sleep(2000);
    collector = await startCollector();
    delivered = count('report.delivered');
    await until('catch-up after restart 2', () => count('report.delivered') >= delivered + 2, 20_000);

    // Enough reports for the checks below: how many were queued by now depends on how fast the
    // machine ran the probes, so wait for the count instead of assuming it.
    await until('10 reports queued in all', () => count('report.queued') >= 10, 30_000);
    // Stop when the queue is momentarily empty (between probes), then stop the collector cleanly.
    await until(
      'an empty queue',
      async () => (await readdir(queueDir)).filter((n) => n.endsWith('.json')).length === 0,
      20_000,
    );
    const agentExit = await agent.stop(15_000);
    expect(agentExit.code).toBe(0);
    const collectorExit = await collector.stop(10_000);
    expect(collectorExit.code).toBe(0);

    // probe.done is logged before the report is written to the queue, report.queued after: so every
    // report that may have reached the queue has a probe.done line, every queued one a report.queued.
    const produced = all('probe.done').map((e) => e.reportId!);
    const queued = all('report.queued').map((e) => e.reportId!);
    const leftInQueue = await Promise.all(
      (await readdir(queueDir))
        .filter((n) => n.endsWith('.json'))
        .sort()
        .map(async (n) => JSON.parse(await readFile(join(queueDir, n), 'utf8')).reportId as string),
    );
    const db = new Database(join(dataDir, SQLITE_FILE), { readonly: true });
    try {
      const stored = db.prepare('SELECT report_id FROM reports ORDER BY rowid').pluck().all() as string[];
      const assessed = db.prepare('SELECT COUNT(*) FROM assessments').pluck().get() as number;
      expect(queued.length).toBeGreaterThanOrEqual(10);
      // Nothing stored twice, nothing stored that the agent did not produce, one assessment each.
      expect(new Set(stored).size).toBe(stored.length);
      expect(stored.filter((id) => !produced.includes(id))).toEqual([]);
      expect(assessed).toBe(stored.length);
      // Nothing lost: every queued report is stored, except at most the probe that finished during
      // the SIGTERM, which stays in the queue for the next start.
      expect(leftInQueue.length).toBeLessThanOrEqual(1);
      expect(queued.filter((id) => !stored.includes(id) && !leftInQueue.includes(id))).toEqual([]);
      // Order kept: stored in the order produced.
      expect(stored).toEqual(produced.filter((id) => stored.includes(id)));
    } finally {
      db.close();
    }
    // The crashes really happened where intended: retries were needed and the agent recovered its queue.
    expect(count('report.retry')).toBeGreaterThan(0);
    expect(count('report.rejected')).toBe(0);
  }, 240_000);
});
