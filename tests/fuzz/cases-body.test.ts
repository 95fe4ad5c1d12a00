// Property: whatever a support engineer or customer posts to the case and cutover routes — random
// JSON, valid requests with a field replaced or dropped, deep nesting, path ids of any shape — the
// answer is below 500, a refusal stores nothing, and an accepted case is readable back.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CaseCtx,
  call,
  openCaseApp,
  postReport,
  removeDir,
  siteReport,
  TOKENS,
  VOICE_CASE,
} from '../helpers/cases.js';

let ctx: CaseCtx;
let caseId = '';
beforeAll(async () => {
  ctx = openCaseApp();
  await postReport(ctx, siteReport('rep-fuzz-hq', ctx.clock.now, 'hq', true));
  caseId = (await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.support, VOICE_CASE)).json.caseId as string;
});
afterAll(async () => {
  await ctx.close();
  removeDir(ctx.dir);
});

const FIELDS = Object.keys(VOICE_CASE);
const anyValue = fc.oneof(fc.jsonValue(), fc.string({ maxLength: 300 }), fc.constant(undefined));

async function count(): Promise<number> {
  return ((await call(ctx.app, 'GET', '/api/v1/cases?limit=1000', TOKENS.support)).json.cases as unknown[])
    .length;
}

describe('case routes under random input', () => {
  it('POST /api/v1/cases: mutated and random bodies never get a 5xx; a refusal stores nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc
            .record({ field: fc.constantFrom(...FIELDS), value: anyValue })
            .map(({ field, value }) => ({ ...VOICE_CASE, [field]: value })),
          fc.jsonValue(),
        ),
        fc.constantFrom(TOKENS.support, TOKENS.acme, TOKENS.globex),
        async (body, token) => {
          const before = await count();
          const res = await call(ctx.app, 'POST', '/api/v1/cases', token, JSON.stringify(body));
          expect(res.status).toBeLessThan(500);
          if (res.status === 201) {
            const shown = await call(ctx.app, 'GET', `/api/v1/cases/${res.json.caseId}`, TOKENS.support);
            expect(shown.status).toBe(200);
            expect(await count()).toBe(before + 1);
          } else {
            expect(typeof res.json.message).toBe('string');
            expect(await count()).toBe(before);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('updates, escalations and cutovers with random bodies and ids never get a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('updates', 'escalations', 'cutovers'),
        fc.oneof(fc.constant(caseId), fc.string({ maxLength: 40 })),
        fc.oneof(
          fc.record(
            {
              text: fc.string(),
              status: fc.constantFrom('Open', 'Closed', 'Awaiting Info', 'Solution Proposed', 'Nope'),
              subStatus: fc.constantFrom('New', 'Resolved', 'Replied', 'Customer requested to re-open', 'x'),
              priority: fc.constantFrom('1-Prod Down', '4-Low', 'urgent'),
              reason: fc.constantFrom('impact', 'rca', 'anger'),
            },
            { requiredKeys: [] },
          ),
          fc.jsonValue(),
        ),
        fc.constantFrom(TOKENS.support, TOKENS.acme, TOKENS.globex),
        async (route, id, body, token) => {
          const url =
            route === 'cutovers' ? '/api/v1/cutovers' : `/api/v1/cases/${encodeURIComponent(id)}/${route}`;
          const res = await call(ctx.app, 'POST', url, token, JSON.stringify(body));
          expect(res.status).toBeLessThan(500);
          const get = await call(ctx.app, 'GET', `/api/v1/cases/${encodeURIComponent(id)}`, token);
          expect(get.status).toBeLessThan(500);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('deeply nested and oversized bodies inside the size limit are refused with 400', async () => {
    const deep = `${'['.repeat(5000)}"x"${']'.repeat(5000)}`;
    const body = JSON.stringify({ ...VOICE_CASE, description: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', deep);
    const nested = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.support, body);
    expect(nested.status).toBe(400);
    const wide = await call(ctx.app, 'POST', '/api/v1/cases', TOKENS.support, {
      ...VOICE_CASE,
      subject: 'x'.repeat(200_000),
    });
    expect(wide.status).toBe(400);
    expect(wide.json.message).toMatch(/subject: longer than 255/);
  });
});
