// Properties of the agent's parsers: whatever the config file holds (random text, random YAML
// values, a valid config with keys mutated or dropped), `config check` answers with a summary or
// with errors that each name the file, a key path and a problem — never an exception. The same for
// the queue reading back whatever files it finds, and for Retry-After headers.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { DurableQueue, encodeQueueFile } from '../../agent/queue/durable-queue.js';
import { parseRetryAfterMs } from '../../agent/uplink/backoff.js';
import { checkConfigText } from '../../src/commands/config.js';

const VALID = {
  agent: {
    name: 'agent-1',
    site: 'branch-01',
    collector: { url: 'http://127.0.0.1:8470', token: 't' },
    queue: { dir: 'queue', maxReports: 100 },
    probes: [{ peer: '127.0.0.1:5004', codec: 'g711u', calls: 1, duration: '5s', interval: '1m' }],
  },
};

function expectWellFormed(text: string): void {
  const r = checkConfigText(text, 'fuzz.yaml');
  if ('summary' in r) {
    expect(r.summary).toMatch(/^fuzz\.yaml: ok/);
    return;
  }
  expect(r.errors.length).toBeGreaterThan(0);
  for (const e of r.errors) {
    expect(e.file).toBe('fuzz.yaml');
    expect(e.path.length).toBeGreaterThan(0);
    expect(e.message.length).toBeGreaterThan(0);
    expect(e.message).not.toContain('\n');
  }
}

/** Sets (or deletes, when value is undefined) a nested key of a deep copy. */
function mutate(doc: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== 'object') return copy;
    node = node[key] as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

const PATHS: (string | number)[][] = [
  ['agent'],
  ['agent', 'name'],
  ['agent', 'site'],
  ['agent', 'collector'],
  ['agent', 'collector', 'url'],
  ['agent', 'collector', 'token'],
  ['agent', 'queue', 'maxReports'],
  ['agent', 'probes'],
  ['agent', 'probes', 0],
  ['agent', 'probes', 0, 'peer'],
  ['agent', 'probes', 0, 'duration'],
  ['agent', 'probes', 0, 'interval'],
  ['agent', 'probes', 0, 'calls'],
  ['agent', 'surplus'],
];

describe('agent config parser (fuzz)', () => {
  it('never throws on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => expectWellFormed(text)),
      { numRuns: 500 },
    );
  });
  it('never throws on random YAML values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => expectWellFormed(stringify({ agent: value }))),
      { numRuns: 300 },
    );
  });
  it('never throws on a valid config with one key mutated or dropped', () => {
    expectWellFormed(stringify(VALID));
    fc.assert(
      fc.property(
        fc.constantFrom(...PATHS),
        fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 })),
        (path, value) => expectWellFormed(stringify(mutate(VALID, path, value))),
      ),
      { numRuns: 400 },
    );
  });
});

describe('queue recovery and Retry-After (fuzz)', () => {
  it('reads back any file contents: a report id, or corrupt/ — never an exception', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        async (body) => {
          const dir = await mkdtemp(join(tmpdir(), 'voipready-queue-fuzz-'));
          try {
            await writeFile(join(dir, '0000000000000001.json'), body);
            const corrupt: string[] = [];
            const q = await DurableQueue.open(dir, {
              maxReports: 10,
              maxBytes: 1e6,
              events: { dropped: () => undefined, corrupt: (f) => corrupt.push(f) },
            });
            expect(q.length + corrupt.length).toBe(1);
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 100 },
    );
  });
  it('never reads back a changed queue file as genuine: any byte edit is set aside', async () => {
    const original = encodeQueueFile(JSON.stringify({ reportId: 'r-1', probes: [{ ready: false }] }));
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: original.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        async (at, byte) => {
          const bytes = Buffer.from(original);
          fc.pre(bytes[at] !== byte);
          bytes[at] = byte;
          const dir = await mkdtemp(join(tmpdir(), 'voipready-queue-fuzz-'));
          try {
            await writeFile(join(dir, '0000000000000001.json'), bytes);
            const corrupt: string[] = [];
            const q = await DurableQueue.open(dir, {
              maxReports: 10,
              maxBytes: 1e6,
              events: { dropped: () => undefined, corrupt: (f) => corrupt.push(f) },
            });
            expect(q.length).toBe(0);
            expect(corrupt).toEqual(['0000000000000001.json']);
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 100 },
    );
  });
  it('parses any Retry-After to a non-negative delay or nothing', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 0, max: 4e12 }), (value, now) => {
        const ms = parseRetryAfterMs(value, now);
        if (ms !== undefined) expect(ms).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 1000 },
    );
  });
});
