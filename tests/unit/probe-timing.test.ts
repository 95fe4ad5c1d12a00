import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Histogram, Mean, summarize } from '../../agent/probe/timing.js';

describe('delay histogram (bounded memory for any run length)', () => {
  it('agrees with exact nearest-rank percentiles within 0.2 % (or a microsecond)', () => {
    fc.assert(
      fc.property(
        // Log-uniform from 1 µs to about 30 s, so every band of the histogram is exercised.
        fc.array(
          fc
            .tuple(fc.integer({ min: 0, max: 24 }), fc.double({ min: 0, max: 1, noNaN: true }))
            .map(([e, f]) => (2 ** e * (1 + f)) / 1000),
          { minLength: 1, maxLength: 2000 },
        ),
        (values) => {
          const h = new Histogram();
          for (const v of values) h.add(v);
          const got = h.summary()!;
          const exact = summarize(values)!;
          expect(got.samples).toBe(exact.samples);
          expect(got.min).toBe(exact.min);
          expect(got.max).toBe(exact.max);
          expect(got.mean).toBeCloseTo(exact.mean, 6);
          for (const q of ['p50', 'p95', 'p99'] as const) {
            expect(Math.abs(got[q] - exact[q])).toBeLessThanOrEqual(exact[q] * 0.002 + 0.001);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is empty until a value is added, and counts negative delays as zero', () => {
    const h = new Histogram();
    expect(h.summary()).toBeUndefined();
    h.add(-0.3);
    expect(h.summary()).toMatchObject({ min: 0, max: 0, p50: 0, samples: 1 });
  });
});

describe('running mean', () => {
  it('keeps the sign (one-way delays can be negative when clocks disagree)', () => {
    const m = new Mean();
    expect(m.value).toBeNull();
    for (const v of [-2, 1, 4]) m.add(v);
    expect(m.value).toBe(1);
  });
});
