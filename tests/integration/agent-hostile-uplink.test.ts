// The agent against a collector (or a proxy in front of it) that answers what an agent should not
// take at its word, and against its own queue directory in bad shape. A real agent process probes a
// real reflector and sends to a small fake collector — a real HTTP server in this test — that
// answers 302 (to a page whose GET gives 200) or 404 before it starts storing; a real full disk
// (a tmpfs filled to the last page) under dead-lettering; a kill -9 of the lock holder.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DurableQueue, lockQueueDir } from '../../agent/queue/durable-queue.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import { postReport } from '../../agent/uplink/post-report.js';
import { Sender } from '../../agent/uplink/sender.js';
import { agentLog, agentYaml } from '../helpers/agent-setup.js';
import { cliUnavailableReason, killAllCli, startCli } from '../helpers/cli.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()`; throws naming `what` (and the agent's log) after `ms`. */
async function waitFor(done: () => boolean, what: string, log: () => string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${ms} ms; agent log:\n${log()}`);
    await sleep(50);
  }
}

/** A fake collector: POSTs to the reports path get `answer()`'s status until `storing`, then 202. */
interface FakeCollector {
  url: string;
  requests: { method: string; url: string; reportId?: string }[];
  answer: { status: number; location?: string } | 'store';
  stored: string[];
  close(): Promise<void>;
}

async function startFakeCollector(): Promise<FakeCollector> {
  const fake: Omit<FakeCollector, 'url' | 'close'> = { requests: [], answer: 'store', stored: [] };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const reportId = body ? (JSON.parse(body) as { reportId?: string }).reportId : undefined;
      fake.requests.push({ method: req.method!, url: req.url!, reportId });
      // The page a redirect points at: a GET there "succeeds", which a following client takes as done.
      if (req.url === '/login') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>sign in</html>');
        return;
      }
      const answer = fake.answer;
      if (answer === 'store') {
        if (reportId && !fake.stored.includes(reportId)) fake.stored.push(reportId);
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"stored":true}');
        return;
      }
      res.writeHead(answer.status, answer.location ? { location: answer.location } : {}).end('not here');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(fake, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  });
}

const cliSkip = cliUnavailableReason();

describe('agent against a collector answering 3xx / 404 (real agent process, fake collector)', () => {
  let dir: string;
  let reflector: Reflector;
  let fake: FakeCollector;

  beforeAll(async () => {
    reflector = await startReflector({ host: '127.0.0.1', port: 0 });
    fake = await startFakeCollector();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-hostile-uplink-'));
    fake.requests.length = 0;
    fake.stored.length = 0;
  });
  afterEach(async () => {
    await killAllCli();
    await rm(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    await fake?.close();
    await reflector?.close();
  });

  /** Starts the agent with a queue holding `backlog` reports already (a restart after an outage). */
  async function startAgentWith(backlog: string[]) {
    const queueDir = join(dir, 'queue');
    const events = { dropped: () => undefined, corrupt: () => undefined };
    const q = await DurableQueue.open(queueDir, { maxReports: 100, maxBytes: 1e6, events });
    for (const id of backlog) await q.enqueue(id, JSON.stringify({ reportId: id }));
    await writeFile(
      join(dir, 'agent.yaml'),
      agentYaml({
        collectorUrl: fake.url,
        collectorAuth: 'token: "t0k"',
        queueDir,
        reflector,
        duration: '1s',
        interval: '1h',
        extra: '  retry: { initial: 100ms, max: 300ms }\n',
      }),
    );
    const agent = startCli(['agent', '--config', join(dir, 'agent.yaml')], { timeoutMs: 60_000 });
    return { agent, queueDir, lines: () => agentLog(agent.stderr()) };
  }

  it.skipIf(cliSkip)(
    'does not follow a 302: holds every report, says so, and delivers them all once fixed',
    async () => {
      fake.answer = { status: 302, location: '/login' };
      const backlog = ['old-1', 'old-2'];
      const { agent, queueDir, lines } = await startAgentWith(backlog);
      const probed = (await agent.waitForStderr(/"event":"report.queued"/, 20_000)).match(
        /"reportId":"([^"]+)"/,
      )![1]!;
      // Several held rounds: the head report retried, the redirect target never fetched.
      await waitFor(
        () => lines().filter((l) => l.event === 'collector.redirect').length >= 3,
        '3 × collector.redirect',
        agent.stderr,
      );
      const line = agent
        .stderr()
        .split('\n')
        .find((l) => l.includes('collector.redirect'))!;
      expect(JSON.parse(line)).toMatchObject({ level: 'error', status: 302 });
      expect(line).toContain('HTTP 302 redirect to /login');
      expect(line).toContain('agent.collector.url');
      expect(fake.requests.every((r) => r.method === 'POST' && r.url === '/api/v1/reports')).toBe(true);
      expect(fake.requests.every((r) => r.reportId === 'old-1')).toBe(true);
      expect((await readdir(queueDir)).filter((n) => n.endsWith('.json'))).toHaveLength(3);

      fake.answer = 'store';
      await waitFor(() => fake.stored.length >= 3, 'all 3 reports stored', agent.stderr);
      expect(fake.stored).toEqual([...backlog, probed]);
      expect(await readdir(join(queueDir, 'dead'))).toEqual([]);
      expect((await agent.stop(15_000)).code).toBe(0);
    },
    60_000,
  );

  it.skipIf(cliSkip)(
    'holds the backlog on 404 (a wrong base path) instead of dead-lettering it',
    async () => {
      fake.answer = { status: 404 };
      const backlog = ['old-1', 'old-2', 'old-3', 'old-4', 'old-5'];
      const { agent, queueDir, lines } = await startAgentWith(backlog);
      await waitFor(
        () => lines().filter((l) => l.event === 'collector.endpoint').length >= 3,
        '3 × collector.endpoint',
        agent.stderr,
      );
      expect(lines().filter((l) => l.event === 'report.rejected')).toEqual([]);
      expect(await readdir(join(queueDir, 'dead'))).toEqual([]);
      fake.answer = 'store';
      await waitFor(
        () => fake.stored.length >= backlog.length + 1,
        'the backlog and the new report stored',
        agent.stderr,
      );
      expect(fake.stored.slice(0, backlog.length)).toEqual(backlog);
      expect((await agent.stop(15_000)).code).toBe(0);
    },
    60_000,
  );

  it.skipIf(cliSkip)(
    'holds the queue lock in the kernel: busy while the agent lives, free the moment it is killed -9',
    async () => {
      fake.answer = 'store';
      const queueDir = join(dir, 'queue');
      await mkdir(queueDir, { recursive: true });
      // A lock file naming a live process that holds no lock (pid 1: what a reused pid looks like).
      await writeFile(join(queueDir, 'agent.lock'), '1\n');
      const { agent } = await startAgentWith([]);
      await agent.waitForStderr(/"event":"agent.started"/, 20_000);
      const pid = agent.child.pid!;
      expect(await readFile(join(queueDir, 'agent.lock'), 'utf8')).toBe(`${pid}\n`);
      await expect(lockQueueDir(queueDir)).rejects.toMatchObject({
        code: 'EBUSY',
        message: `queue ${queueDir} is in use by process ${pid}`,
      });
      // A second agent on the same queue refuses to start, with one line naming the holder.
      const second = await startCli(['agent', '--config', join(dir, 'agent.yaml')], { timeoutMs: 20_000 })
        .done;
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`is in use by process ${pid}`);

      agent.child.kill('SIGKILL');
      await agent.done;
      const release = await lockQueueDir(queueDir);
      await release();
    },
    60_000,
  );
});

const rootSkip =
  process.getuid?.() === 0 ? undefined : 'needs root to mount a small tmpfs (a real full disk)';

describe.skipIf(rootSkip)('dead-lettering on a real full disk (tmpfs)', () => {
  let dir: string;
  let mnt: string;
  let mounted = false;
  let fake: FakeCollector;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-deadletter-full-'));
    mnt = join(dir, 'small-disk');
    await mkdir(mnt);
    await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
    mounted = true;
    fake = await startFakeCollector();
  });
  afterAll(async () => {
    await fake?.close();
    if (mounted) await execFileP('umount', [mnt]);
    await rm(dir, { recursive: true, force: true });
  });

  it('moves the rejected report to dead/ and goes on: nothing left in the queue unsent', async () => {
    const queueDir = join(mnt, 'queue');
    const events = { dropped: () => undefined, corrupt: () => undefined };
    const queue = await DurableQueue.open(queueDir, { maxReports: 100, maxBytes: 1e6, events });
    for (const id of ['r-1', 'r-2']) await queue.enqueue(id, JSON.stringify({ reportId: id }));
    // Fill the file system: the filler takes every remaining page.
    await writeFile(join(mnt, 'filler'), Buffer.alloc(64 * 1024)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOSPC') throw err;
    });
    await expect(writeFile(join(mnt, 'probe-space'), 'x')).rejects.toMatchObject({ code: 'ENOSPC' });

    fake.answer = { status: 400 };
    const logs: { event: string; fields?: Record<string, unknown> }[] = [];
    const sender = new Sender({
      queue,
      send: async (body) => {
        const outcome = await postReport({ url: fake.url, token: 't', timeoutMs: 5000 }, body);
        fake.answer = 'store'; // only the first report is refused
        return outcome;
      },
      backoff: { initialMs: 10, maxMs: 50 },
      clock: { now: Date.now, sleep: async (ms) => void (await sleep(ms)) },
      log: (_level, event, _msg, fields) => logs.push({ event, fields }),
    });
    const controller = new AbortController();
    const running = sender.run(controller.signal);
    const deadline = Date.now() + 10_000;
    while (queue.length > 0 && Date.now() < deadline) await sleep(20);
    controller.abort();
    await running;
    expect(queue.length).toBe(0);
    expect(fake.stored).toEqual(['r-2']);
    // r-1 is in dead/ (no room for its reason file: the log line carries the reason), not stranded
    // in the queue directory where only a restart would find it again.
    expect(await readdir(join(queueDir, 'dead'))).toEqual(['0000000000000001.json']);
    expect((await readdir(queueDir)).filter((n) => n.endsWith('.json'))).toEqual([]);
    expect(logs.find((l) => l.event === 'report.rejected')?.fields).toMatchObject({
      reportId: 'r-1',
      status: 400,
      reasonKept: false,
    });
  }, 30_000);
});
