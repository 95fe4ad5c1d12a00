// A full disk under the store: the collector answers 503 with Retry-After (the agent keeps the
// report and retries), never 500, stores nothing it did not acknowledge, keeps serving reads, and
// /readyz says not ready until there is room again.
// The data directory is a real 2 MiB tmpfs, so SQLite meets a real ENOSPC.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const isRoot = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'voipready-diskfull-'));
let mounted = false;

afterAll(() => {
  if (mounted) spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!isRoot)(
  `collector on a full disk${isRoot ? '' : ' (skipped: mounting a tmpfs needs root)'}`,
  () => {
    it('answers 503 with Retry-After, stores exactly what it acknowledged, keeps reading', async () => {
      const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { encoding: 'utf8' });
      expect(mount.status, mount.stderr).toBe(0);
      mounted = true;
      // 1 MiB taken by another file, freed later: room comes back
      const filler = join(dir, 'filler');
      writeFileSync(filler, Buffer.alloc(1024 * 1024));
      const store = new SqliteStore(dir, { headroomBytes: 256 * 1024 });
      const app = buildApp({
        config: CollectorConfig.parse({
          collector: {
            reads: 'open',
            rateLimit: { perSecond: 1e6, burst: 1e6 },
            agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) }],
          },
        }).collector,
        store,
      });
      try {
        const statuses: number[] = [];
        let retryAfter: string | undefined;
        // ~64 KiB per report: the 2 MiB disk fills after a few dozen
        for (let i = 0; i < 200 && !statuses.includes(503); i++) {
          const report = sampleReport({ reportId: `rep-full-${String(i).padStart(4, '0')}` });
          (report.probes[0]!.forward as Record<string, unknown>).padding = 'x'.repeat(64 * 1024);
          const res = await app.inject({
            method: 'POST',
            url: '/api/v1/reports',
            headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
            payload: report,
          });
          statuses.push(res.statusCode);
          if (res.statusCode === 503) retryAfter = res.headers['retry-after'] as string;
        }
        expect(statuses).toContain(503);
        expect(statuses.every((s) => s === 202 || s === 503)).toBe(true);
        expect(retryAfter).toBe('5');
        const acknowledged = statuses.filter((s) => s === 202).length;
        expect(acknowledged).toBeGreaterThan(0);
        expect(await store.countReports()).toBe(acknowledged);
        const readiness = await app.inject({ url: '/api/v1/sites/hq/readiness' });
        expect(readiness.statusCode).toBe(200);
        expect(readiness.json().reportId).toBe(`rep-full-${String(acknowledged - 1).padStart(4, '0')}`);

        // not ready while posts get 503, ready again once there is room
        const full = await app.inject({ url: '/readyz' });
        expect(full.statusCode).toBe(503);
        expect(full.json()).toMatchObject({
          ready: false,
          store: expect.stringMatching(/^cannot store reports: SQLITE_FULL/),
        });
        rmSync(filler);
        await new Promise((r) => setTimeout(r, 2100)); // the store looks again at most every 2 s
        const room = await app.inject({ url: '/readyz' });
        expect(room.json()).toMatchObject({ ready: true, store: 'ok' });
        expect(room.statusCode).toBe(200);
      } finally {
        await app.close();
        await store.close();
      }
    });
  },
);
