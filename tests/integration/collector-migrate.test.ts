// `voipready collector migrate --from-sqlite FILE` (the real CLI) from an embedded store filled
// through the collector's own API — reports of two sites and a host, the InfluxDB outbox (InfluxDB
// unreachable) and points set aside, withheld and open cases with updates, attachments, clocks,
// notifications and a webhook outbox, a cutover — into a real PostgreSQL cluster: every row of every
// table is there afterwards in the same order, a second run copies nothing and changes nothing, a
// collector on PostgreSQL answers the API as the SQLite one did and numbers new cases after the
// migrated ones; a missing, corrupt or newer-schema file is refused in one line.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { PostgresCaseStore } from '../../collector/cases/postgres.js';
import { SqliteCaseStore } from '../../collector/cases/sqlite.js';
import { InfluxOutboxWriter } from '../../collector/store/influx.js';
import { PostgresStore } from '../../collector/store/postgres.js';
import { SQLITE_FILE, SqliteStore } from '../../collector/store/sqlite.js';
import type { ReportStore } from '../../collector/store/store.js';
import { type CollectorConfig, parseCollectorConfig } from '../../src/config/collector.js';
import { call, cutoverChecklist, siteReport, TOKENS, VOICE_CASE } from '../helpers/cases.js';
import { cliUnavailableReason, runCli } from '../helpers/cli.js';
import { type PgCluster, postgresMissing, startPgCluster } from '../helpers/postgres.js';

const unavailable = postgresMissing() ?? cliUnavailableReason();
const dir = mkdtempSync(join(tmpdir(), 'voipready-migrate-'));
const sqliteFile = join(dir, 'data', SQLITE_FILE);
const NOW = Date.parse('2026-11-27T15:00:00Z');
let cluster: PgCluster;
let url: string;

function config(store: string): { file: string; config: CollectorConfig } {
  writeFileSync(join(dir, 'tracker.secret'), 'webhook-secret-0123456789abcdef\n');
  const yaml = `collector:
  dataDir: data
  rateLimit: { perSecond: 1000, burst: 1000 }
  ${store}
  agents:
    - { name: hq-agent-1, site: hq, tokenHash: "${hashToken(TOKENS.hqAgent)}" }
    - { name: branch-agent, site: branch, tokenHash: "${hashToken(TOKENS.branchAgent)}" }
  viewers: [{ name: noc, tokenHash: "${hashToken(TOKENS.viewer)}" }]
  support: [{ name: care, tokenHash: "${hashToken(TOKENS.support)}" }]
  customers: [{ name: Acme, sites: [hq], tokenHash: "${hashToken(TOKENS.acme)}" }]
  influxdb: { url: "http://127.0.0.1:9", database: voipready }
  cases:
    webhooks: [{ name: tracker, url: "http://127.0.0.1:9/hook", secretFile: tracker.secret }]
`;
  const file = join(dir, `collector-${store ? 'pg' : 'sqlite'}.yaml`);
  writeFileSync(file, yaml);
  const parsed = parseCollectorConfig(yaml, file);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return { file, config: parsed.config };
}

/** The collector's app on a store, InfluxDB configured but never reached (points stay queued). */
function app(config: CollectorConfig, store: ReportStore, caseStore: SqliteCaseStore | PostgresCaseStore) {
  const influx = new InfluxOutboxWriter({
    store,
    config: config.influxdb!,
    events: { onWrite: () => {}, onFailure: () => {}, onRejected: () => {} },
  });
  const built = buildApp({ config, store, caseStore, influx, now: () => NOW });
  built.addHook('onClose', async () => {
    await caseStore.close();
    await store.close();
  });
  return built;
}

/** Reads of the API a migration must not change. */
async function apiView(a: FastifyInstance, caseIds: string[]) {
  const get = async (path: string, token: string) => (await call(a, 'GET', path, token)).json;
  return {
    reports: await get('/api/v1/reports?limit=1000', TOKENS.viewer),
    sites: await get('/api/v1/sites', TOKENS.viewer),
    cases: await Promise.all(caseIds.map((id) => get(`/api/v1/cases/${id}`, TOKENS.support))),
    cutovers: await get('/api/v1/cutovers', TOKENS.support),
  };
}

/** Every table, in stored order, without the columns only one store has (serials, claims). */
const TABLES: [table: string, columns: string, sqliteOrder: string, pgOrder: string][] = [
  ['reports', 'site, report_id, agent, created_at, received_at_ms, body_sha256, body', 'rowid', 'arrival'],
  ['assessments', 'assessment_id, report_id, site, measured_at_ms, doc', 'assessment_id', 'assessment_id'],
  ['sites', 'site, assessment_id, measured_at_ms', 'site', 'site'],
  ['site_hosts', 'site, host, assessment_id, measured_at_ms', 'site, host', 'site, host'],
  ['influx_outbox', 'n_points, points', 'seq', 'seq'],
  ['influx_rejected', 'rejected_at_ms, error, point', 'id', 'id'],
  [
    'cases',
    'case_id, site, status, priority, withheld, revision, created_at_ms, doc, clocks',
    'case_id',
    'case_id',
  ],
  ['case_updates', 'case_id, doc', 'seq', 'seq'],
  [
    'case_attachments',
    'attachment_id, case_id, kind, assessment_id, content_type, created_at_ms, purged_at_ms, body',
    'attachment_id',
    'attachment_id',
  ],
  ['case_timers', 'case_id, kind, due_at_ms', 'case_id, kind', 'case_id, kind'],
  ['notifications', 'event_id, case_id, type, at_ms, doc', 'seq', 'seq'],
  [
    'webhook_outbox',
    'target, event_id, body, attempts, next_attempt_ms, delivered_at_ms, last_error',
    'seq',
    'seq',
  ],
  ['cutovers', 'cutover_id, site, cutover_at_ms, submitted_at_ms, doc', 'cutover_id', 'cutover_id'],
];

function sqliteRows(): Record<string, unknown[]> {
  const db = new Database(sqliteFile, { readonly: true });
  try {
    return Object.fromEntries(
      TABLES.map(([t, cols, order]) => [
        t,
        db
          .prepare(`SELECT ${cols} FROM ${t} ORDER BY ${order}`)
          .all()
          .map((r) =>
            t === 'cases' ? { ...(r as object), withheld: (r as { withheld: number }).withheld === 1 } : r,
          ),
      ]),
    );
  } finally {
    db.close();
  }
}

async function pgRows(): Promise<Record<string, unknown[]>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, unknown[]> = {};
    for (const [t, cols, , order] of TABLES)
      out[t] = (await client.query(`SELECT ${cols} FROM ${t} ORDER BY ${order}`)).rows;
    return out;
  } finally {
    await client.end();
  }
}

describe.skipIf(unavailable)(
  `collector migrate --from-sqlite${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    let before: Awaited<ReturnType<typeof apiView>>;
    const caseIds: string[] = [];

    beforeAll(async () => {
      cluster = await startPgCluster();
      url = await cluster.createDatabase('voipready_migrate');
      // Fill the embedded store through the collector's API.
      const { config: sqliteConfig } = config('');
      const dataDir = join(dir, 'data');
      const store = new SqliteStore(dataDir);
      const a = app(sqliteConfig, store, new SqliteCaseStore(dataDir, ['tracker']));
      const post = async (body: unknown, token: string) => {
        const res = await call(a, 'POST', '/api/v1/reports', token, body);
        if (res.status !== 202) throw new Error(`${res.status} ${res.body}`);
      };
      for (let i = 0; i < 6; i++)
        await post(siteReport(`rep-hq-${i}`, NOW - (6 - i) * 60_000, 'hq'), TOKENS.hqAgent);
      for (let i = 0; i < 4; i++)
        await post(siteReport(`rep-branch-${i}`, NOW - (4 - i) * 60_000, 'branch', true), TOKENS.branchAgent);
      // a late, older report: stored, not the site's latest
      await post(siteReport('rep-hq-late', NOW - 3_600_000, 'hq'), TOKENS.hqAgent);
      // a host result, from the real `voipready host`
      const host = await runCli(['host', '--json', '--path', dir]);
      expect(host.code, host.stderr).not.toBe(2);
      await post(
        {
          schema: 'voipready.report/1',
          reportId: 'rep-hq-host-0',
          site: 'hq',
          agent: 'hq-agent-1',
          createdAt: new Date(NOW - 30_000).toISOString(),
          probes: [],
          host: JSON.parse(host.stdout),
        },
        TOKENS.hqAgent,
      );
      // InfluxDB refused one batch's first point: set aside
      const batch = (await store.outboxPeek(10))!;
      await store.outboxAck(batch, [
        { point: batch.points[0]!, error: 'partial write: field type conflict' },
      ]);
      // cases: open (hq passes), withheld (branch EF rewritten), updated, escalated; a cutover
      for (const [token, body] of [
        [TOKENS.acme, VOICE_CASE],
        [TOKENS.support, { ...VOICE_CASE, site: 'branch', subject: 'Choppy audio at the branch' }],
        [TOKENS.support, { ...VOICE_CASE, voice: false, subject: 'Licence question' }],
      ] as const) {
        const opened = await call(a, 'POST', '/api/v1/cases', token, body);
        expect(opened.status, opened.body).toBe(201);
        caseIds.push(opened.json.caseId as string);
      }
      const update = await call(a, 'POST', `/api/v1/cases/${caseIds[0]}/updates`, TOKENS.support, {
        text: 'Captured a call; looking at the trunk.',
      });
      expect(update.status, update.body).toBeLessThan(300);
      const cutover = await call(
        a,
        'POST',
        '/api/v1/cutovers',
        TOKENS.support,
        cutoverChecklist(NOW + 10 * 86_400_000),
      );
      expect(cutover.status, cutover.body).toBe(201);
      before = await apiView(a, caseIds);
      await a.close();
    }, 120_000);

    afterAll(async () => {
      await cluster?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    it('the filled store has a row in every table', () => {
      for (const [t, rows] of Object.entries(sqliteRows())) expect(rows.length, t).toBeGreaterThan(0);
    });

    it('copies every row of every table, in order; a second run copies nothing and changes nothing', async () => {
      const pgConfig = config(`store: { kind: postgres, url: "${url}" }`).file;
      const first = await runCli(
        ['collector', 'migrate', '--from-sqlite', sqliteFile, '--config', pgConfig],
        {
          timeoutMs: 60_000,
        },
      );
      expect(first.code, first.stderr).toBe(0);
      const expected = sqliteRows();
      expect(await pgRows()).toEqual(expected);
      const reportsLine = first.stdout.split('\n').find((l) => l.trim().startsWith('reports '));
      expect(reportsLine).toMatch(new RegExp(`\\b${expected.reports!.length} copied +0 already there`));
      expect(first.stdout).toMatch(/^done: \d+ rows copied, 0 already in PostgreSQL$/m);

      const again = await runCli(
        ['collector', 'migrate', '--from-sqlite', sqliteFile, '--config', pgConfig],
        {
          timeoutMs: 60_000,
        },
      );
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/^done: 0 rows copied, \d+ already in PostgreSQL$/m);
      expect(await pgRows()).toEqual(expected);
    }, 120_000);

    it('a collector on PostgreSQL answers as the SQLite one did; new cases are numbered after the migrated ones', async () => {
      const { config: pgConfig } = config(`store: { kind: postgres, url: "${url}" }`);
      const store = await PostgresStore.open(
        pgConfig.store as Extract<CollectorConfig['store'], { kind: 'postgres' }>,
      );
      const caseStore = await PostgresCaseStore.open(
        pgConfig.store as Extract<CollectorConfig['store'], { kind: 'postgres' }>,
        ['tracker'],
      );
      const a = app(pgConfig, store, caseStore);
      try {
        await a.ready();
        expect(await apiView(a, caseIds)).toEqual(before);
        const opened = await call(a, 'POST', '/api/v1/cases', TOKENS.support, {
          ...VOICE_CASE,
          voice: false,
        });
        expect(opened.status, opened.body).toBe(201);
        expect(Number(opened.json.caseId)).toBe(Math.max(...caseIds.map(Number)) + 1);
      } finally {
        await a.close();
      }
    }, 60_000);

    it('refuses a missing, corrupt or newer-schema file, and a configuration without PostgreSQL, in one line', async () => {
      const pgConfig = config(`store: { kind: postgres, url: "${url}" }`).file;
      const garbage = join(dir, 'garbage.sqlite');
      writeFileSync(garbage, Buffer.alloc(8192, 7));
      const newer = join(dir, 'newer.sqlite');
      copyFileSync(sqliteFile, newer);
      const db = new Database(newer);
      db.prepare(`UPDATE meta SET value = '3' WHERE key = 'schema'`).run();
      db.close();
      const cases: [string[], RegExp][] = [
        [['--from-sqlite', join(dir, 'nope.sqlite'), '--config', pgConfig], /nope\.sqlite: no such file/],
        [
          ['--from-sqlite', garbage, '--config', pgConfig],
          /garbage\.sqlite: not a readable SQLite store|garbage\.sqlite: the SQLite file is damaged/,
        ],
        [
          ['--from-sqlite', newer, '--config', pgConfig],
          /newer\.sqlite: store schema 3 is newer than this voipready reads \(2\)/,
        ],
        [['--from-sqlite', sqliteFile, '--config', config('').file], /store\.kind is sqlite/],
        [['--from-sqlite', sqliteFile], /needs --config FILE/],
      ];
      const held = await pgRows();
      for (const [args, message] of cases) {
        const run = await runCli(['collector', 'migrate', ...args], { timeoutMs: 30_000 });
        expect(run.code, run.stderr).toBe(2);
        expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
        expect(run.stderr).toMatch(message);
      }
      // the refused runs changed nothing
      expect(await pgRows()).toEqual(held);
    }, 120_000);
  },
);
