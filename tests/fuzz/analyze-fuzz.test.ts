// Fuzzing the capture analyzer with mutations of the sample captures: bit flips, truncations,
// corrupted length fields, inserted garbage. Whatever the bytes, analyzeCapture either returns a
// result (with warnings for damage) or throws the documented UserError — never anything else, never
// hangs (each case runs under a time bound) and never allocates absurdly (heap growth is bounded).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeCapture } from '../../src/capture/analyze.js';
import { memorySource } from '../../src/capture/reader.js';
import { UserError } from '../../src/errors.js';
import { renderCaptureTable } from '../../src/report/capture-table.js';
import { CAPTURE_SCHEMA, CaptureResult } from '../../src/schemas.js';
import { frameFor, tcpPacket, writePcap } from '../helpers/pcap-writer.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'captures');

function samples(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...samples(path));
    // Small samples keep each case fast; together they cover every format and link type here.
    else if (!/\.(tsv|txt)$/.test(name) && statSync(path).size <= 130_000) out.push(readFileSync(path));
  }
  return out;
}

const SAMPLES = samples(FIXTURES);
const BUDGET_MS = 15_000;
const PER_CASE_MS = 2_000;

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'length'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('length' as const),
    at: fc.nat(),
    value: fc.oneof(fc.constantFrom(0, 1, 11, 12, 0x7fffffff, 0xffffffff, 0x1000000, 65535), fc.nat()),
  }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  }),
);

function mutate(base: Buffer, mutations: Mutation[]): Buffer {
  let b = Buffer.from(base);
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'flip') b[at] = b[at]! ^ (1 << m.bit);
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else if (m.kind === 'length') {
      // Aim at 4-byte fields: pcap record lengths and pcapng block lengths sit on such offsets.
      const aligned = at - (at % 4);
      if (aligned + 4 <= b.length) b.writeUInt32LE(m.value >>> 0, aligned);
    } else b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
  }
  return b;
}

describe('analyze fuzz (mutated sample captures)', () => {
  it('has samples of both formats to mutate', () => {
    expect(SAMPLES.length).toBeGreaterThanOrEqual(15);
    expect(SAMPLES.some((s) => s.readUInt32BE(0) === 0x0a0d0d0a)).toBe(true);
  });

  it('returns a result or a UserError, in bounded time and memory', () => {
    const deadline = Date.now() + BUDGET_MS;
    let runs = 0;
    let userErrors = 0;
    let damaged = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: SAMPLES.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (index, mutations) => {
          if (Date.now() > deadline) return; // time budget spent: remaining cases pass trivially
          runs++;
          const bytes = mutate(SAMPLES[index]!, mutations);
          const heapBefore = process.memoryUsage().heapUsed;
          const started = Date.now();
          try {
            const r = analyzeCapture(memorySource(bytes), 'fuzz.pcap');
            expect(r.schema).toBe(CAPTURE_SCHEMA);
            expect(r.packets).toBeGreaterThanOrEqual(0);
            // Both outputs must render whatever was found, the JSON one to its schema.
            CaptureResult.parse(JSON.parse(JSON.stringify(r)));
            expect(renderCaptureTable(r)).toMatch(/^fuzz\.pcap: /);
            if (r.warnings.length > 0) damaged++;
          } catch (err) {
            if (!(err instanceof UserError)) throw err;
            expect(err.message).not.toContain('\n');
            userErrors++;
          }
          expect(Date.now() - started).toBeLessThan(PER_CASE_MS);
          // A mutated 130 kB sample must not make the analyzer hold hundreds of MB.
          expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 * 2 ** 20);
        },
      ),
      { numRuns: 100_000, seed: 20261126, endOnFailure: true },
    );
    console.log(`fuzz: ${runs} mutated captures, ${damaged} with warnings, ${userErrors} refused`);
    expect(runs).toBeGreaterThan(50);
    // The mutations reach both outcomes: damage analysed with warnings, and unreadable input.
    expect(damaged).toBeGreaterThan(0);
    expect(userErrors).toBeGreaterThan(0);
  }, 60_000);

  it('reads any bytes after a SIP WebSocket handshake without throwing; valid frames round-trip', () => {
    const client = { src: '192.0.2.10', dst: '198.51.100.20', srcPort: 50123, dstPort: 8088 };
    const handshake = Buffer.from(
      'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n',
      'latin1',
    );
    const sip = Buffer.from(
      'OPTIONS sip:b@x SIP/2.0\r\nCall-ID: f\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
    );
    const frame = (payload: Buffer, key: number[] | null) => {
      const head = [0x81, (key ? 0x80 : 0) | payload.length];
      const body = key ? payload.map((b, i) => b ^ key[i & 3]!) : payload;
      return Buffer.concat([Buffer.from(head), Buffer.from(key ?? []), body]);
    };
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 12 }),
        fc.option(fc.array(fc.nat({ max: 255 }), { minLength: 4, maxLength: 4 })),
        fc.nat({ max: 12 }),
        (garbage, key, goodAt) => {
          // Garbage segments with one valid SIP frame among them, at `goodAt` (if in range).
          const segments = garbage.map((g) => Buffer.from(g));
          segments.splice(goodAt, 0, frame(sip, key));
          let seq = 1;
          const frames = [handshake, ...segments].map((bytes, i) => {
            const f = { time: 1000 + i * 0.01, bytes: frameFor(1, tcpPacket(client, seq, bytes)) };
            seq += bytes.length;
            return f;
          });
          const r = analyzeCapture(memorySource(writePcap(frames)), 'ws.pcap');
          // Frames are read in order: the valid frame is counted when nothing before it broke the framing.
          expect(r.sip.messages).toBeLessThanOrEqual(1);
          if (goodAt === 0 || segments.slice(0, goodAt).every((g) => g.length === 0))
            expect(r.sip.messages).toBe(1);
          expect(r.warnings.length).toBeLessThanOrEqual(100);
        },
      ),
      { numRuns: 200, seed: 20261129 },
    );
  });

  it('handles the hostile samples as documented', () => {
    const cool = readFileSync(join(FIXTURES, 'aboutsip__pkts/cool.pcap'));
    expect(() => analyzeCapture(memorySource(cool), 'cool.pcap')).toThrow(
      new UserError(
        'cool.pcap: damaged pcap file: nothing readable after its header (record 1 at byte 24 claims 587333632 bytes (more than 262144))',
      ),
    );
    const seg = readFileSync(join(FIXTURES, 'the-tcpdump-group__tcpdump/rtp-seg-fault-1.pcapng'));
    expect(analyzeCapture(memorySource(seg), 'seg.pcapng').packets).toBe(1);
  });
});
