// Scale-out under faults: a real PostgreSQL cluster, the repository's haproxy configuration in a real
// haproxy, two collector processes (the real CLI) behind it, and four agents — the agent's own
// durable queue, sender and uplink code — each queueing a report every 100 ms and posting through
// haproxy. Mid-run one collector is SIGKILLed and later started again while the other keeps
// serving, and the database is restarted once. Afterwards: every report an agent was told is stored
// is in PostgreSQL exactly once, in that agent's order; nothing else is; the only 5xx any agent saw
// is 503 with Retry-After (haproxy's own, or a collector's while the database was down); every
// queue drained.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DurableQueue } from '../../agent/queue/durable-queue.js';
import { systemClock } from '../../agent/service/clock.js';
import { postReport, type SendOutcome } from '../../agent/uplink/post-report.js';
import { Sender } from '../../agent/uplink/sender.js';
import { sampleReport } from '../../bench/collector-report.js';
import { hashToken } from '../../collector/auth.js';
import { type CollectorProcess, cliUnavailableReason, killAllCli } from '../helpers/cli.js';
import { type CollectorPool, type Haproxy, startCollectorPool } from '../helpers/haproxy.js';
import { type PgCluster, postgresMissing, startPgCluster } from '../helpers/postgres.js';
import { binaryMissing, waitUntil } from '../helpers/service.js';

const unavailable = binaryMissing('haproxy') ?? postgresMissing() ?? cliUnavailableReason();
const dir = mkdtempSync(join(tmpdir(), 'voipready-scaleout-fault-'));
const AGENTS = [
  { name: 'hq-agent-1', site: 'hq' },
  { name: 'hq-agent-2', site: 'hq' },
  { name: 'branch-agent-1', site: 'branch' },
  { name: 'branch-agent-2', site: 'branch' },
].map((a, i) => ({ ...a, token: `agent-token-${i}-${'x'.repeat(24)}` }));
const EVERY_MS = 100;
const VIEWER = 'viewer-token-noc-0123456789abcd';

let cluster: PgCluster;
let url: string;
let lb: Haproxy;
let pool: CollectorPool;
let configFile: string;

interface RunningAgent {
  name: string;
  queue: DurableQueue;
  /** Report ids in the order the agent queued them. */
  produced: string[];
  /** Every answer the agent's uplink got, in order. */
  outcomes: SendOutcome[];
  acked: string[];
  sender?: Sender;
  stopSender: AbortController;
  sending: Promise<void>;
}

async function startAgent(agent: (typeof AGENTS)[number]): Promise<RunningAgent> {
  const queue = await DurableQueue.open(join(dir, `queue-${agent.name}`), {
    maxReports: 100_000,
    maxBytes: 1 << 30,
    events: { dropped: () => {}, corrupt: () => {} },
  });
  const running: RunningAgent = {
    name: agent.name,
    queue,
    produced: [],
    outcomes: [],
    acked: [],
    stopSender: new AbortController(),
    sending: Promise.resolve(),
  };
  const sender = new Sender({
    queue,
    // the agent's own uplink, through haproxy, with its default 10 s timeout
    send: async (body) => {
      const outcome = await postReport({ url: lb.url, token: agent.token, timeoutMs: 10_000 }, body);
      running.outcomes.push(outcome);
      if (outcome.kind === 'acked') running.acked.push((JSON.parse(body) as { reportId: string }).reportId);
      return outcome;
    },
    // short backoff so the run fits its budget; Retry-After is still honoured as a lower bound
    backoff: { initialMs: 200, maxMs: 2000 },
    clock: systemClock,
    log: () => {},
  });
  running.sender = sender;
  running.sending = sender.run(running.stopSender.signal);
  return running;
}

describe.skipIf(unavailable)(
  `two collectors on PostgreSQL behind haproxy, under faults${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    beforeAll(async () => {
      cluster = await startPgCluster();
      url = await cluster.createDatabase('voipready_fault');
      configFile = join(dir, 'collector.yaml');
      writeFileSync(
        configFile,
        `collector:
  store: { kind: postgres, url: "${url}", poolSize: 5, timeout: 3s }
  rateLimit: { perSecond: 1000, burst: 1000 }
  viewers: [{ name: noc, tokenHash: "${hashToken(VIEWER)}" }]
  agents:
${AGENTS.map((a) => `    - { name: ${a.name}, site: ${a.site}, tokenHash: "${hashToken(a.token)}" }`).join('\n')}
`,
      );
      pool = await startCollectorPool(configFile, 2);
      lb = pool.lb;
    }, 90_000);

    afterAll(async () => {
      await pool?.stop();
      await killAllCli();
      await cluster?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    it('every acknowledged report stored once, in each agent’s order; only 503 + Retry-After; queues drain', async () => {
      const agents = await Promise.all(AGENTS.map(startAgent));
      const started = Date.now();
      const at = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, started + ms - Date.now())));
      let producing = true;
      const producers = agents.map(async (agent, i) => {
        const { site, name } = AGENTS[i]!;
        for (let n = 0; producing; n++) {
          const reportId = `${name}-${String(n).padStart(5, '0')}`;
          const body = JSON.stringify(
            sampleReport({ reportId, site, agent: name, createdAt: new Date().toISOString() }),
          );
          await agent.queue.enqueue(reportId, body);
          agent.produced.push(reportId);
          agent.sender!.notify();
          await new Promise((r) => setTimeout(r, EVERY_MS));
        }
      });
      const timeline: string[] = [];
      const mark = (what: string) => timeline.push(`${((Date.now() - started) / 1000).toFixed(1)} s ${what}`);

      await at(4000);
      pool.process('collector2').child.kill('SIGKILL');
      mark('collector2 SIGKILLed');
      await at(7000);
      await pool.start('collector2');
      mark('collector2 started again');
      await at(10_000);
      await cluster.stop();
      mark('PostgreSQL stopped');
      await at(12_000);
      await cluster.start();
      mark('PostgreSQL started again');
      await at(15_000);
      producing = false;
      await Promise.all(producers);
      mark('agents stopped queueing');

      // the queues drain once the database and both collectors are back
      await waitUntil(
        `every agent's queue to drain (${timeline.join('; ')})`,
        async () => agents.every((a) => a.queue.length === 0),
        40_000,
      );
      mark('queues drained');
      for (const a of agents) {
        a.stopSender.abort();
        await a.sending;
      }

      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const rows = (
        await client.query<{ agent: string; report_id: string }>(
          'SELECT agent, report_id FROM reports ORDER BY arrival',
        )
      ).rows;
      await client.end();

      for (const agent of agents) {
        // the agent was told each of its reports was stored: acknowledged in its own order, once each
        expect(agent.acked, agent.name).toEqual(agent.produced);
        // and PostgreSQL holds exactly those, in that order (arrival order of the rows)
        expect(
          rows.filter((r) => r.agent === agent.name).map((r) => r.report_id),
          agent.name,
        ).toEqual(agent.produced);
      }
      expect(rows).toHaveLength(agents.reduce((n, a) => n + a.produced.length, 0));

      // what agents were told: 202 or 200 duplicate, or 503 with Retry-After — nothing else
      const outcomes = agents.flatMap((a) => a.outcomes);
      const other = outcomes.filter(
        (o) =>
          !(o.kind === 'acked' && (o.status === 202 || o.status === 200)) &&
          !(o.kind === 'retry' && o.status === 503 && o.retryAfterMs !== undefined),
      );
      expect(other, timeline.join('; ')).toEqual([]);
      // haproxy's record of every answer it gave
      const statuses = new Set(lb.requests().map((r) => r.status));
      for (const s of statuses) expect([200, 202, 503]).toContain(s);
      // the faults were felt: some posts were answered 503 (database down) and some sent again
      // by haproxy to the other collector (collector2 killed)
      expect(outcomes.some((o) => o.status === 503)).toBe(true);
      expect(lb.requests().some((r) => r.redispatched && r.status < 300)).toBe(true);
      // both collectors export the same site and path figures from the shared store, whichever
      // of them stored each report (each re-reads the sites' latest evidence before a scrape)
      const figures = async (c: CollectorProcess) =>
        (await (await fetch(`${c.url}/metrics`, { headers: { authorization: `Bearer ${VIEWER}` } })).text())
          .split('\n')
          .filter((l) => /^voipready_(path_[a-z_]+|site_ready)\{/.test(l))
          .sort();
      let views: string[][] = [];
      await waitUntil(
        'both collectors to export the same site figures',
        async () => {
          views = await Promise.all([pool.process('collector1'), pool.process('collector2')].map(figures));
          return views[0]!.length > 0 && views[0]!.join('\n') === views[1]!.join('\n');
        },
        10_000,
      ).catch(() => expect(views[1]).toEqual(views[0]));
      expect(views[0]!.filter((l) => l.startsWith('voipready_site_ready{')).length).toBe(2);
      const summary = {
        reports: rows.length,
        duplicates: outcomes.filter((o) => o.status === 200).length,
        unavailable: outcomes.filter((o) => o.status === 503).length,
        redispatched: lb.requests().filter((r) => r.redispatched).length,
        timeline,
      };
      console.log(`scale-out fault run: ${JSON.stringify(summary)}`);
    }, 120_000);
  },
);
