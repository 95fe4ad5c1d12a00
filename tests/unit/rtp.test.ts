import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JitterEstimator, parseRtpHeader, SequenceTracker, writeRtpHeader } from '../../src/rtp.js';

describe('RTP header (RFC 3550 §5.1)', () => {
  it('round-trips the fixed header', () => {
    const buf = Buffer.alloc(172);
    writeRtpHeader(buf, {
      marker: true,
      payloadType: 0,
      sequence: 65535,
      timestamp: 0xfffffff0,
      ssrc: 0xdeadbeef,
    });
    const h = parseRtpHeader(buf)!;
    expect(h).toMatchObject({
      version: 2,
      marker: true,
      payloadType: 0,
      sequence: 65535,
      timestamp: 0xfffffff0,
    });
    expect(h.ssrc).toBe(0xdeadbeef);
    expect(h.payloadLength).toBe(160);
  });
  it('rejects short, non-v2 and bad padding', () => {
    expect(parseRtpHeader(Buffer.alloc(11))).toBeUndefined();
    const b = Buffer.alloc(20);
    b[0] = 0x40;
    expect(parseRtpHeader(b)).toBeUndefined();
    b[0] = 0xa0; // v2 with padding, last byte 0
    expect(parseRtpHeader(b)).toBeUndefined();
  });
});

describe('interarrival jitter (RFC 3550 A.8)', () => {
  it('is zero for perfectly paced packets', () => {
    const j = new JitterEstimator(8000);
    for (let i = 0; i < 100; i++) j.update(1000 + i * 20, i * 160);
    expect(j.jitterMs).toBe(0);
  });
  it('follows J += (|D| - J)/16 on a worked example', () => {
    // Arrivals 0, 20, 45, 60 ms with timestamps every 20 ms: D = 0, 5, -5.
    const j = new JitterEstimator(8000);
    const arrivals = [0, 20, 45, 60];
    for (const [i, t] of arrivals.entries()) j.update(t, i * 160);
    let expected = 0;
    for (const d of [0, 5, 5]) expected += (d - expected) / 16;
    expect(j.jitterMs).toBeCloseTo(expected, 12);
    expect(j.maxJitterMs).toBeCloseTo(expected, 12);
  });
  it('survives a 32-bit timestamp wrap', () => {
    const j = new JitterEstimator(8000);
    for (let i = 0; i < 10; i++) j.update(i * 20, (0xffffff00 + i * 160) >>> 0);
    expect(j.jitterMs).toBeCloseTo(0, 9);
  });
});

describe('sequence accounting (RFC 3550 A.1/A.3)', () => {
  it('counts loss across the 65535 wrap', () => {
    const t = new SequenceTracker();
    for (let s = 65530; s < 65536 + 10; s++) if (s !== 65535 && s !== 65536 + 2) t.add(s & 0xffff);
    expect(t.expected).toBe(16);
    expect(t.lost).toBe(2);
    expect(t.maxBurstLoss()).toBe(1);
  });
  it('counts a reorder, not a loss, and duplicates separately', () => {
    const t = new SequenceTracker();
    for (const s of [1, 2, 4, 3, 5, 5, 6]) t.add(s);
    expect(t.received).toBe(6);
    expect(t.lost).toBe(0);
    expect(t.reordered).toBe(1);
    expect(t.duplicates).toBe(1);
  });
  it('measures the longest loss burst', () => {
    const t = new SequenceTracker();
    for (const s of [10, 11, 15, 16, 20]) t.add(s);
    expect(t.lost).toBe(6);
    expect(t.maxBurstLoss()).toBe(3);
  });
  it('keeps the longest loss burst as packets arrive, equal to a full count after any order (fuzz)', () => {
    // maxBurstLoss() is O(1) unless a late packet filled a gap; then it walks once. Either way it
    // must equal the longest run of missing sequence numbers, asked at any point of a stream.
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (offsets, askAt) => {
          const t = new SequenceTracker();
          const asks = new Set(askAt.map((a) => a % offsets.length));
          const seen = new Set<number>();
          offsets.forEach((o, i) => {
            t.add((65_300 + o) & 0xffff); // across the 16-bit wrap
            seen.add(o);
            if (!asks.has(i) && i !== offsets.length - 1) return;
            const sorted = [...seen].sort((a, b) => a - b);
            let longest = 0;
            for (let k = 1; k < sorted.length; k++)
              longest = Math.max(longest, sorted[k]! - sorted[k - 1]! - 1);
            expect(t.maxBurstLoss()).toBe(longest);
          });
        },
      ),
      { numRuns: 2000 },
    );
  });
  it('accepts a packet older than the first one seen', () => {
    const t = new SequenceTracker();
    for (const s of [5, 6, 4, 7]) t.add(s);
    expect(t.expected).toBe(4);
    expect(t.lost).toBe(0);
    expect(t.reordered).toBe(1);
  });
});
