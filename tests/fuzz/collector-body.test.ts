// Property: whatever an authenticated agent posts — random JSON, valid reports with values mutated
// or keys dropped, random bytes — the collector answers with a status below 500.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { buildApp } from '../../collector/app.js';
import { hashToken } from '../../collector/auth.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'voipready-fuzz-'));
const store = new SqliteStore(dir);
const app = buildApp({
  config: CollectorConfig.parse({
    collector: {
      bodyLimitBytes: 16 * 1024,
      rateLimit: { perSecond: 1e9, burst: 1e9 },
      agents: [{ name: 'hq-agent-1', site: 'hq', tokenHash: hashToken(AGENT) }],
    },
  }).collector,
  store,
});

beforeAll(() => app.ready());
afterAll(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const statuses = new Map<number, number>();
async function postStatus(payload: string | Buffer, contentType = 'application/json'): Promise<number> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/reports',
    headers: { authorization: `Bearer ${AGENT}`, 'content-type': contentType },
    payload,
  });
  statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
  return res.statusCode;
}

/** Paths to every value inside a JSON document. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [prefix];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return [prefix, ...entries.flatMap(([k, v]) => paths(v, [...prefix, k]))];
}

function mutate(
  doc: Record<string, unknown>,
  path: (string | number)[],
  replacement: unknown,
  drop: boolean,
) {
  if (path.length === 0) return replacement;
  let node = doc as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (drop) delete node[last];
  else node[last] = replacement;
  return doc;
}

const BASE = sampleReport({ reportId: 'rep-fuzz-base', createdAt: '2026-11-26T01:00:00Z' });
const BASE_PATHS = paths(BASE);
const RUN = { numRuns: 300, interruptAfterTimeLimit: 20_000 };

describe('collector ingest fuzz', () => {
  it('never answers 5xx to random JSON values', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => {
        expect(await postStatus(JSON.stringify(value) ?? 'null')).toBeLessThan(500);
      }),
      RUN,
    );
  });

  it('never answers 5xx to valid reports with one value replaced or dropped', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: BASE_PATHS.length - 1 }),
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.double(), fc.string(), fc.constant(null)),
        fc.boolean(),
        fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 8, maxLength: 16 }),
        async (which, replacement, drop, id) => {
          const doc = structuredClone({ ...BASE, reportId: `rep-fuzz-${id}` }) as Record<string, unknown>;
          const mutated = mutate(doc, BASE_PATHS[which]!, replacement, drop);
          expect(await postStatus(JSON.stringify(mutated) ?? '')).toBeLessThan(500);
        },
      ),
      RUN,
    );
  });

  it('never answers 5xx to random bytes, truncated documents or odd content types', async () => {
    const text = JSON.stringify(BASE);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
          fc.nat({ max: text.length }).map((n) => text.slice(0, n)),
          fc.string({ unit: 'binary', maxLength: 256 }),
        ),
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'text/plain',
          'application/x-www-form-urlencoded',
        ),
        async (payload, contentType) => {
          expect(await postStatus(payload, contentType)).toBeLessThan(500);
        },
      ),
      RUN,
    );
  });

  it('exercised both acceptance and each kind of rejection', () => {
    for (const status of [202, 400, 415]) expect(statuses.get(status) ?? 0).toBeGreaterThan(0);
  });
});
