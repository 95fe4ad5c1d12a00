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
import { REPORT_JSON_BOUNDS } from '../../collector/report-input.js';
import { SqliteStore } from '../../collector/store/sqlite.js';
import { CollectorConfig } from '../../src/config/collector.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'voipready-fuzz-'));
const store = new SqliteStore(dir);
const app = buildApp({
  config: CollectorConfig.parse({
    collector: {
      bodyLimitBytes: 64 * 1024,
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
/** Answers stay short whatever arrives: the issue list is truncated. */
const MAX_ANSWER_BYTES = 8 * 1024;
async function postStatus(payload: string | Buffer, contentType = 'application/json'): Promise<number> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/reports',
    headers: { authorization: `Bearer ${AGENT}`, 'content-type': contentType },
    payload,
  });
  statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
  expect(res.body.length).toBeLessThan(MAX_ANSWER_BYTES);
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

  it('refuses deep nesting and long arrays planted anywhere in a valid report with 400', async () => {
    const { maxDepth, maxArrayLength } = REPORT_JSON_BOUNDS;
    const deep = (depth: number, inArray: boolean) => {
      let v: unknown = 1;
      for (let i = 0; i < depth; i++) v = inArray ? [v] : { a: v };
      return v;
    };
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: BASE_PATHS.length - 1 }),
        fc.oneof(
          fc.record({
            kind: fc.constant('deep' as const),
            size: fc.integer({ min: 1, max: 3000 }),
            inArray: fc.boolean(),
          }),
          fc.record({
            kind: fc.constant('long' as const),
            size: fc.integer({ min: 0, max: 7000 }),
            inArray: fc.constant(true),
          }),
        ),
        fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 8, maxLength: 16 }),
        async (which, plant, id) => {
          const doc = structuredClone({ ...BASE, reportId: `rep-plant-${id}` }) as Record<string, unknown>;
          const at = BASE_PATHS[which]!;
          const value = plant.kind === 'deep' ? deep(plant.size, plant.inArray) : Array(plant.size).fill(0);
          const status = await postStatus(JSON.stringify(mutate(doc, at, value, false)));
          expect(status).toBeLessThan(500);
          // the planted value's own depth adds to the depth of the place it is planted at
          const tooDeep = plant.kind === 'deep' && at.length + plant.size > maxDepth;
          const tooLong = plant.kind === 'long' && plant.size > maxArrayLength;
          if (tooDeep || tooLong) expect(status).toBe(400);
        },
      ),
      { numRuns: 150, interruptAfterTimeLimit: 20_000 },
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
