// Issue 7, collector, the smaller ones: the rate limiter on a monotonic clock, a report's `agent`
// bound to its token, report ids namespaced per site (and a schema-1 store migrated), a cap on open
// connections, a client trickling a body after a 401 cut off. inject() where the HTTP layer does
// not matter, a real listening collector and raw sockets where it does.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { SQLITE_FILE, SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig, parseCollectorConfig } from '../../src/config/collector.js';

const HQ = 'agent-token-hq-0123456789abcdef';
const BRANCH = 'agent-token-branch-0123456789ab';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const T0 = Date.parse('2026-11-26T01:00:00Z');

/** The store's tables as schema 1 made them (reports keyed by report_id alone). */
const SCHEMA_1 = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  INSERT INTO meta VALUES ('schema', '1');
  CREATE TABLE reports (report_id TEXT PRIMARY KEY, site TEXT NOT NULL, agent TEXT NOT NULL,
    created_at TEXT NOT NULL, received_at_ms INTEGER NOT NULL, body_sha256 TEXT NOT NULL, body TEXT NOT NULL);
  CREATE TABLE assessments (assessment_id TEXT PRIMARY KEY,
    report_id TEXT NOT NULL UNIQUE REFERENCES reports(report_id), site TEXT NOT NULL,
    measured_at_ms INTEGER NOT NULL, doc TEXT NOT NULL);
  CREATE INDEX assessments_site_time ON assessments(site, measured_at_ms);
  CREATE TABLE sites (site TEXT PRIMARY KEY, assessment_id TEXT NOT NULL REFERENCES assessments(assessment_id),
    measured_at_ms INTEGER NOT NULL);
  CREATE TABLE influx_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, n_points INTEGER NOT NULL, points TEXT NOT NULL);`;

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      // keep cleaning up the rest
    }
  }
});

function config(over: Record<string, unknown> = {}) {
  return CollectorConfig.parse({
    collector: {
      rateLimit: { perSecond: 1, burst: 3 },
      agents: [
        { name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(HQ) },
        { name: 'branch-agent', site: 'branch', tokenHash: hashToken(BRANCH) },
      ],
      viewers: [{ name: 'noc', tokenHash: hashToken(VIEWER) }],
      ...over,
    },
  }).collector;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'voipready-clients-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openApp(clock: { now: number }, dir = tempDir(), over: Record<string, unknown> = {}) {
  const store = new SqliteStore(dir);
  const app = buildApp({ config: config(over), store, now: () => clock.now });
  app.addHook('onClose', () => store.close());
  cleanups.push(() => app.close());
  return { app, store };
}

const post = (app: FastifyInstance, body: unknown, token = HQ) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/reports',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });

const hqReport = (id: string, clock: { now: number }) =>
  sampleReport({ reportId: id, createdAt: new Date(clock.now - 60_000).toISOString() });
const branchReport = (id: string, clock: { now: number }) =>
  sampleReport({
    reportId: id,
    site: 'branch',
    agent: 'branch-agent',
    createdAt: new Date(clock.now - 60_000).toISOString(),
  });

describe('rate limiter and tokens', () => {
  it('keeps limiting by elapsed time when the wall clock steps back an hour (no 429 for an hour)', async () => {
    const clock = { now: T0 };
    const { app } = openApp(clock);
    expect((await post(app, hqReport('rep-clock-0001', clock))).statusCode).toBe(202);
    expect((await post(app, hqReport('rep-clock-0002', clock))).statusCode).toBe(202);
    clock.now -= 3_600_000;
    expect((await post(app, hqReport('rep-clock-0003', clock))).statusCode).toBe(202);
  });

  it("refuses a report whose agent is not the token's (403 naming both)", async () => {
    const clock = { now: T0 };
    const { app, store } = openApp(clock);
    const r = { ...hqReport('rep-agent-0001', clock), agent: 'someone-else' };
    const res = await post(app, r);
    expect(res.statusCode).toBe(403);
    expect(res.json().message).toMatch(/agent "hq-agent-1".*"someone-else"/);
    expect(await store.countReports()).toBe(0);
  });

  it('refuses a config where two agents share a name (they would share a rate-limit bucket)', () => {
    const yaml = `collector:
  agents:
    - { name: a1, site: hq, tokenHash: "${hashToken(HQ)}" }
    - { name: a1, site: branch, tokenHash: "${hashToken(BRANCH)}" }
`;
    const parsed = parseCollectorConfig(yaml, 'collector.yaml');
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.errors).toEqual([
        expect.objectContaining({
          path: 'collector.agents.1.name',
          message: expect.stringMatching(/same name/),
        }),
      ]);
    }
  });
});

describe('report ids per site', () => {
  it("stores another site's report id as its own: no 409, nothing learnt about the other site", async () => {
    const clock = { now: T0 };
    const { app, store } = openApp(clock);
    expect((await post(app, hqReport('rep-shared-0001', clock))).statusCode).toBe(202);
    const other = await post(app, branchReport('rep-shared-0001', clock), BRANCH);
    expect(other.statusCode).toBe(202);
    // a repeat is still a duplicate within its own site
    expect((await post(app, branchReport('rep-shared-0001', clock), BRANCH)).statusCode).toBe(200);
    expect(await store.countReports()).toBe(2);
    expect(await store.listReports({ site: 'branch', offset: 0, limit: 10 })).toEqual([
      expect.objectContaining({ reportId: 'rep-shared-0001', site: 'branch' }),
    ]);
    const assessment = await app.inject({
      url: `/api/v1/assessments/${other.json().assessmentId}`,
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(assessment.json()).toMatchObject({ site: 'branch', reportId: 'rep-shared-0001' });
  });

  it('migrates a schema-1 store: every report kept, in order, ids then per site', async () => {
    // a schema-2 store filled through the app, then copied into schema 1's layout
    const dir = tempDir();
    const clock = { now: T0 };
    {
      const store = new SqliteStore(dir);
      const app = buildApp({ config: config(), store, now: () => clock.now });
      for (const id of ['rep-mig-0002', 'rep-mig-0001']) {
        expect((await post(app, hqReport(id, clock))).statusCode).toBe(202);
      }
      await app.close();
      await store.close();
    }
    const db = new Database(join(dir, SQLITE_FILE));
    expect(db.prepare(`SELECT value FROM meta WHERE key = 'schema'`).pluck().get()).toBe('2');
    db.close();

    const v1Dir = tempDir();
    const old = new Database(join(v1Dir, SQLITE_FILE));
    old.exec(`ATTACH '${join(dir, SQLITE_FILE)}' AS filled;
      ${SCHEMA_1}
      INSERT INTO reports SELECT report_id, site, agent, created_at, received_at_ms, body_sha256, body FROM filled.reports ORDER BY rowid;
      INSERT INTO assessments SELECT assessment_id, report_id, site, measured_at_ms, doc FROM filled.assessments ORDER BY rowid;
      INSERT INTO sites SELECT * FROM filled.sites;
      DETACH filled;`);
    old.close();

    const { app, store } = openApp(clock, v1Dir);
    expect((await store.listReports({ offset: 0, limit: 10 })).map((r) => r.reportId)).toEqual([
      'rep-mig-0002',
      'rep-mig-0001',
    ]);
    const readiness = await app.inject({
      url: '/api/v1/sites/hq/readiness',
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(readiness.json()).toMatchObject({ ready: true, reportId: 'rep-mig-0001' });
    expect((await post(app, hqReport('rep-mig-0001', clock))).statusCode).toBe(200);
    expect((await post(app, branchReport('rep-mig-0001', clock), BRANCH)).statusCode).toBe(202);
  });
});

describe('retention', () => {
  it("prunes reports and assessments older than retention (default 90 days), keeping each site's latest", async () => {
    const clock = { now: T0 };
    const { app, store } = openApp(clock, tempDir(), { rateLimit: { perSecond: 100, burst: 100 } });
    await app.ready();
    for (const id of ['rep-old-0001', 'rep-old-0002', 'rep-old-0003']) {
      expect((await post(app, hqReport(id, clock))).statusCode).toBe(202);
    }
    expect((await post(app, branchReport('rep-old-0004', clock), BRANCH)).statusCode).toBe(202);
    clock.now += 89 * 86_400_000;
    app.collector.pruneOld();
    expect((await post(app, hqReport('rep-new-0001', clock))).statusCode).toBe(202);
    expect(await store.countReports()).toBe(5);
    clock.now += 2 * 86_400_000;
    app.collector.pruneOld();
    await waitFor(async () => (await store.countReports()) === 2);
    expect((await store.listReports({ offset: 0, limit: 10 })).map((r) => r.reportId)).toEqual([
      'rep-old-0004',
      'rep-new-0001',
    ]);
    // the branch's only evidence is stale, but still says what was measured
    const branch = await app.inject({
      url: '/api/v1/sites/branch/readiness',
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(branch.json()).toMatchObject({ reportId: 'rep-old-0004', stale: true });
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('connections (a real listening collector)', () => {
  let running: RunningCollector;

  async function start(): Promise<RunningCollector> {
    running ??= await startCollector({
      config: config({ connections: { perAddress: 4, idleTimeout: '3s' } }),
      dataDir: tempDir(),
      host: '127.0.0.1',
      port: 0,
    });
    cleanups.push(() => running.close());
    return running;
  }

  function open(localAddress = '127.0.0.1'): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: running.port, localAddress });
      cleanups.push(() => {
        socket.destroy();
      });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  }

  /** Resolves with ms until the server closed the socket, or undefined if it stayed open `withinMs`. */
  function closedWithin(socket: Socket, withinMs: number): Promise<number | undefined> {
    const start = Date.now();
    return new Promise((resolve) => {
      if (socket.destroyed || socket.readableEnded) return resolve(0);
      const timer = setTimeout(() => resolve(undefined), withinMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - start);
      });
      socket.resume();
    });
  }

  it('closes connections beyond the per-address cap; agents from other addresses still get in', async () => {
    await start();
    const idle = await Promise.all(Array.from({ length: 4 }, () => open()));
    const fifth = await open();
    expect(await closedWithin(fifth, 2000)).toBeDefined();
    // the first four are not the ones cut
    for (const s of idle) expect(s.destroyed).toBe(false);
    // an agent on another address posts normally
    const res = await new Promise<number>((resolve, reject) => {
      const body = JSON.stringify(hqReport('rep-conn-0001', { now: Date.now() }));
      import('node:http').then(({ request }) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: running.port,
            localAddress: '127.0.0.2',
            method: 'POST',
            path: '/api/v1/reports',
            headers: { authorization: `Bearer ${HQ}`, 'content-type': 'application/json' },
          },
          (r) => {
            r.resume();
            resolve(r.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(body);
      }, reject);
    });
    expect(res).toBe(202);
    for (const s of idle) s.destroy();
  });

  it('closes a connection that sends nothing for the idle timeout', async () => {
    await start();
    const idle = await open('127.0.0.3');
    const ms = await closedWithin(idle, 15_000);
    expect(ms).toBeDefined();
    expect(ms!).toBeGreaterThanOrEqual(2500);
  });

  it('cuts off a client that keeps trickling a body after its 401', async () => {
    await start();
    const socket = await open('127.0.0.4');
    let answer = '';
    socket.on('data', (d) => {
      answer += d.toString();
    });
    socket.write(
      'POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer wrong-token\r\nContent-Length: 1000000\r\n\r\n{',
    );
    // one byte every 200 ms: never idle long enough for the idle timeout
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write(' ');
    }, 200);
    try {
      const ms = await closedWithin(socket, 10_000);
      expect(answer).toMatch(/^HTTP\/1\.1 401/);
      expect(ms).toBeDefined();
    } finally {
      clearInterval(trickle);
    }
  });
});
