import { describe, expect, it } from 'vitest';
import { analysisClockRate, RtpStreamStats } from '../../src/capture/rtp-stream.js';
import { JitterEstimator, SequenceTracker } from '../../src/rtp.js';

describe('kernel extensions used by the analyzer', () => {
  it('JitterEstimator.observe is the A.8 step that update() takes', () => {
    const a = new JitterEstimator(8000);
    const b = new JitterEstimator(8000);
    const arrivals = [0, 21, 39, 62, 80, 100, 131];
    let lastTransit = Number.NaN;
    arrivals.forEach((t, i) => {
      a.update(t, i * 160);
      const transit = t - (i * 160 * 1000) / 8000;
      if (!Number.isNaN(lastTransit)) b.observe(transit - lastTransit);
      lastTransit = transit;
    });
    expect(b.jitterMs).toBeCloseTo(a.jitterMs, 12);
    expect(b.maxJitterMs).toBeCloseTo(a.maxJitterMs, 12);
    expect(b.updates).toBe(a.updates);
  });

  it('SequenceTracker: maxSpan and a shared budget bound the bitmap; packets beyond are not counted', () => {
    const spanned = new SequenceTracker(10_000);
    spanned.add(100);
    expect(spanned.add(100 + 8000)).toBe('ignored'); // 3000 early-window numbers + 8000 > 10 000
    expect(spanned.outOfWindow).toBe(1);
    expect(spanned.add(101)).toBe('new');

    const budget = { bytes: 1024 };
    const a = new SequenceTracker(Number.POSITIVE_INFINITY, budget);
    const b = new SequenceTracker(Number.POSITIVE_INFINITY, budget);
    a.add(0);
    b.add(0);
    // Each starts with 1 KiB (8192 numbers, 3000 of them before the first); growing past it costs.
    let seq = 0;
    for (; seq < 20_000 && a.outOfWindow === 0; seq += 1000) a.add(seq);
    expect(budget.bytes).toBe(0); // a took the whole shared budget (1 KiB → 2 KiB)
    expect(a.outOfWindow).toBe(1);
    for (let s = 1000; s <= 6000; s += 1000) b.add(s); // 6000 needs the bitmap to grow
    expect(b.outOfWindow).toBe(1); // b may not grow any more
    expect(b.received).toBe(6);
  });
});

describe('RtpStreamStats (tshark 4.0 definitions)', () => {
  const pcma = (
    stats: RtpStreamStats,
    n: number,
    arrivalMs: number,
    extra: { marker?: boolean; pt?: number; ts?: number; seq?: number } = {},
  ) =>
    stats.add({
      relMs: arrivalMs,
      seq: extra.seq ?? 1000 + n,
      ts: extra.ts ?? 5000 + n * 160,
      marker: extra.marker ?? false,
      pt: extra.pt ?? 8,
    });

  it('counts expected and lost from the first and last sequence numbers, duplicates as received', () => {
    const s = new RtpStreamStats();
    for (const [i, n] of [0, 1, 2, 2, 4, 5].entries()) pcma(s, n, i * 20);
    expect([s.packets, s.expected, s.lost]).toEqual([6, 6, 0]); // one lost, one duplicate: 0
    expect(s.sequence.duplicates).toBe(1);
    expect(s.sequence.maxBurstLoss()).toBe(1);
  });

  it('counts a sequence wrap as a cycle', () => {
    const s = new RtpStreamStats();
    for (let n = 0; n < 10; n++) pcma(s, n, n * 20, { seq: (65530 + n) & 0xffff });
    expect([s.expected, s.lost]).toEqual([10, 0]);
  });

  it('skips marker and comfort-noise packets (and the packet after CN) for max/mean jitter and max delta', () => {
    const s = new RtpStreamStats();
    pcma(s, 0, 0);
    pcma(s, 1, 20);
    pcma(s, 2, 140, { marker: true }); // 100 ms late, but a marker packet (talk spurt)
    pcma(s, 3, 160);
    expect(s.maxDeltaMs).toBe(20); // the 120 ms gap was the marker packet's
    // Packet 2: D = |140 − (20 + 20)| = 100, J = 100/16 (not counted: marker). Packet 3 is on time
    // against packet 2's arrival: D = 0, J = J − J/16, counted.
    const j2 = 100 / 16;
    const j3 = j2 - j2 / 16;
    expect(s.jitterMs).toBeCloseTo(j3, 9);
    expect(s.jitterMaxMs).toBeCloseTo(j3, 9);
    // tshark's running mean m = (m·(n−1) + J)/n, n = packets before this one: packet 1 (n = 1,
    // J = 0) and packet 3 (n = 3).
    expect(s.jitterMeanMs).toBeCloseTo((0 * 2 + j3) / 3, 9);
    const cn = new RtpStreamStats();
    pcma(cn, 0, 0);
    pcma(cn, 1, 80, { pt: 13 });
    pcma(cn, 2, 160);
    pcma(cn, 3, 180);
    expect(cn.maxDeltaMs).toBe(20); // the CN packet and the one after it are skipped
  });

  it('leaves J untouched for packets timestamped before the first (a sender clock restart), as tshark', () => {
    // 100 packets on time, then the sender restarts its RTP clock at 0 — far below the first
    // timestamp (10^6) — and goes on sending every 20 ms (±1 ms) with 0, 160, 320, …
    const s = new RtpStreamStats();
    for (let n = 0; n < 100; n++) pcma(s, n, n * 20, { ts: 1_000_000 + n * 160 });
    expect(s.jitterMs).toBe(0);
    for (let n = 100; n < 200; n++) pcma(s, n, n * 20 + (n % 2), { ts: (n - 100) * 160 });
    // Fed to the estimator, the restart would give D ≈ 1000000/8 ms: J over 7 seconds, for good.
    expect(s.jitterMs).toBe(0);
    expect([s.jitterMaxMs, s.jitterMeanMs, s.maxDeltaMs]).toEqual([0, 0, 20]);
    expect([s.packets, s.lost]).toEqual([200, 0]);
  });

  it('uses the integer clock/1000 of tshark, and no clock for unknown dynamic types', () => {
    expect(analysisClockRate(8, undefined)).toBe(8000);
    expect(analysisClockRate(10, undefined)).toBe(44100);
    expect(analysisClockRate(111, undefined)).toBe(0);
    expect(analysisClockRate(111, { encoding: 'opus', clockRate: 48000 })).toBe(48000);
    expect(analysisClockRate(101, { encoding: 'telephone-event', clockRate: 8000 })).toBe(0);
    // L16 at 44.1 kHz: tshark divides by 44, not 44.1. 441 units late by 10 ms of arrival → D = 0.
    const s = new RtpStreamStats();
    s.add({ relMs: 0, seq: 1, ts: 0, marker: false, pt: 10 });
    s.add({ relMs: 10, seq: 2, ts: 440, marker: false, pt: 10 });
    expect(s.jitterMs).toBe(0);
    const opus = new RtpStreamStats();
    opus.add({ relMs: 0, seq: 1, ts: 0, marker: false, pt: 111 });
    opus.add({ relMs: 20, seq: 2, ts: 960, marker: false, pt: 111 });
    expect([opus.jitterMs, opus.jitterMaxMs, opus.clockRate]).toEqual([null, 0, 0]);
  });
});
