// The run over time: media packets sent and returned, round-trip time and reverse-path jitter in
// buckets of whole seconds, so a report can chart how the path behaved during the run rather than
// only its totals. Bounded: at most MAX_BUCKETS buckets, however long the run (a one-hour run gets
// 6 s buckets). Pure: times come in as arguments.
import type { ProbeTimeline } from '../../src/schemas.js';

export const MAX_BUCKETS = 600;

const round3 = (v: number) => Math.round(v * 1000) / 1000;

export class Timeline {
  readonly bucketS: number;
  private readonly sent: Uint32Array;
  private readonly returned: Uint32Array;
  private readonly rttSum: Float64Array;
  private readonly rttMax: Float64Array;
  private readonly jitterMax: Float64Array;
  private used = 0;

  /** `startMs`: the run's first send; `durationMs`: how long it sends. */
  constructor(
    private readonly startMs: number,
    durationMs: number,
  ) {
    this.bucketS = Math.max(1, Math.ceil(durationMs / 1000 / MAX_BUCKETS));
    const n = Math.min(MAX_BUCKETS, Math.max(1, Math.ceil(durationMs / 1000 / this.bucketS)));
    this.sent = new Uint32Array(n);
    this.returned = new Uint32Array(n);
    this.rttSum = new Float64Array(n);
    this.rttMax = new Float64Array(n);
    this.jitterMax = new Float64Array(n).fill(-1);
  }

  /** The bucket of an instant; times past the run (late replies) go to the last one. */
  private bucket(ms: number): number {
    const i = Math.floor((ms - this.startMs) / (this.bucketS * 1000));
    const b = Math.min(this.sent.length - 1, Math.max(0, i));
    if (b + 1 > this.used) this.used = b + 1;
    return b;
  }

  /** A media packet left at `sentMs`. */
  sentAt(sentMs: number): void {
    this.sent[this.bucket(sentMs)]!++;
  }

  /**
   * The reply to the packet sent at `sentMs` arrived after `rttMs`; the receiving stream's RFC 3550
   * jitter estimate was then `jitterMs`. Counted in the bucket of the send, so sent − returned is
   * the round-trip loss of the packets that left in that second.
   */
  returnedAt(sentMs: number, rttMs: number, arrivalMs: number, jitterMs: number): void {
    const b = this.bucket(sentMs);
    this.returned[b]!++;
    this.rttSum[b]! += rttMs;
    if (rttMs > this.rttMax[b]!) this.rttMax[b] = rttMs;
    const a = this.bucket(arrivalMs);
    if (jitterMs > this.jitterMax[a]!) this.jitterMax[a] = jitterMs;
  }

  /** The columns, one entry per bucket; null where a bucket had no reply to measure. */
  result(): ProbeTimeline {
    const n = this.used;
    const col = <T>(f: (i: number) => T) => Array.from({ length: n }, (_, i) => f(i));
    return {
      bucketS: this.bucketS,
      offsetS: col((i) => i * this.bucketS),
      sent: col((i) => this.sent[i]!),
      returned: col((i) => this.returned[i]!),
      rttMeanMs: col((i) => (this.returned[i]! > 0 ? round3(this.rttSum[i]! / this.returned[i]!) : null)),
      rttMaxMs: col((i) => (this.returned[i]! > 0 ? round3(this.rttMax[i]!) : null)),
      reverseJitterMs: col((i) => (this.jitterMax[i]! >= 0 ? round3(this.jitterMax[i]!) : null)),
    };
  }
}
