// The real collector rate-limits the agent (429 with Retry-After): the agent, restarted with a
// backlog in its queue, must honour Retry-After, lose nothing and keep the order.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DurableQueue } from '../../agent/queue/durable-queue.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import { sampleReport } from '../../bench/collector-report.js';
import type { RunningCollector } from '../../collector/server.js';
import { SQLITE_FILE } from '../../collector/store/sqlite.js';
import {
  AGENT_NAME,
  AGENT_SITE,
  agentCredentials,
  agentLog,
  agentYaml,
  startCollectorFor,
} from '../helpers/agent-setup.js';
import { cliUnavailableReason, killAllCli, startCli } from '../helpers/cli.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECRET = 'probe-secret-0123456789';

describe.skipIf(cliUnavailableReason())('agent against a rate-limiting collector (real 429s)', () => {
  let dir: string;
  let reflector: Reflector;
  let collector: RunningCollector;
  const { token, tokenHash } = agentCredentials();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-ratelimit-'));
    // Probes are authenticated: the agent's secretFile must be read exactly as the reflector's.
    await writeFile(join(dir, 'probe.secret'), `${SECRET}\n`);
    reflector = await startReflector({ host: '127.0.0.1', port: 0, secret: Buffer.from(SECRET) });
    // One report every 4 s, no burst beyond one. The agent sends its backlog back to back; at one
    // per second, a machine slow enough to spend a second between two POSTs (fsyncs under load)
    // would never be refused and the test would see no 429 at all.
    collector = await startCollectorFor(
      tokenHash,
      join(dir, 'collector'),
      '  rateLimit: { perSecond: 0.25, burst: 1 }\n',
    );
  });
  afterAll(async () => {
    await killAllCli();
    await collector?.close();
    await reflector?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('honours Retry-After and delivers a backlog in order, each report once', async () => {
    const queueDir = join(dir, 'queue');
    // A backlog left by an earlier run: four reports already queued.
    const backlog = ['a', 'b', 'c', 'd'].map((x) => `${AGENT_NAME}-backlog-${x}`);
    const queue = await DurableQueue.open(queueDir, {
      maxReports: 100,
      maxBytes: 1e7,
      events: { dropped: () => undefined, corrupt: () => undefined },
    });
    for (const reportId of backlog) {
      await queue.enqueue(
        reportId,
        JSON.stringify(sampleReport({ reportId, site: AGENT_SITE, agent: AGENT_NAME })),
      );
    }
    await writeFile(
      join(dir, 'agent.yaml'),
      agentYaml({
        collectorUrl: collector.url,
        collectorAuth: `token: "${token}"`,
        queueDir,
        reflector,
        duration: '1s',
        interval: '1h',
        extra: '  retry: { initial: 100ms, max: 2s }\n',
        secretFile: join(dir, 'probe.secret'),
      }),
    );
    const agent = startCli(['agent', '--config', join(dir, 'agent.yaml')], { timeoutMs: 110_000 });
    const lines = () => agentLog(agent.stderr());
    const delivered = () => lines().filter((l) => l.event === 'report.delivered');
    const deadline = Date.now() + 90_000;
    while (delivered().length < backlog.length + 1) {
      if (Date.now() > deadline) throw new Error(`backlog not delivered: ${agent.stderr()}`);
      await sleep(100);
    }
    expect((await agent.stop(15_000)).code).toBe(0);

    const own = lines().find((l) => l.event === 'probe.done')!.reportId!;
    const retries = lines().filter((l) => l.event === 'report.retry') as unknown as {
      status: number;
      delayMs: number;
    }[];
    expect(retries.length).toBeGreaterThan(0);
    for (const r of retries) {
      expect(r.status).toBe(429);
      // Retry-After is whole seconds (at least 1): never retried sooner than asked.
      expect(r.delayMs).toBeGreaterThanOrEqual(1000);
    }
    expect((await readdir(queueDir)).filter((n) => n.endsWith('.json'))).toEqual([]);
    const db = new Database(join(dir, 'collector', SQLITE_FILE), { readonly: true });
    try {
      const stored = db.prepare('SELECT report_id FROM reports ORDER BY rowid').pluck().all();
      expect(stored).toEqual([...backlog, own]);
      // The reflector answered the authenticated probe: packets came back in both directions.
      const body = db.prepare('SELECT body FROM reports WHERE report_id = ?').pluck().get(own) as string;
      const probe = JSON.parse(body).probes[0];
      expect(probe.forward.received).toBeGreaterThan(0);
      expect(probe.reverse.received).toBeGreaterThan(0);
    } finally {
      db.close();
    }
  }, 120_000);
});
