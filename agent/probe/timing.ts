// Order statistics for delay and timing samples (nearest-rank percentiles).

export interface Summary {
  min: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  samples: number;
}

/** Nearest-rank percentiles of the samples; undefined when there are none. */
export function summarize(values: ArrayLike<number>): Summary | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    min: sorted[0]!,
    mean: sum / n,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: sorted[n - 1]!,
    samples: n,
  };
}

/** Keeps the most recent `capacity` samples (bounded memory for long-running processes). */
export class SampleRing {
  private readonly values: Float64Array;
  private next = 0;
  private count = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }

  add(v: number): void {
    this.values[this.next] = v;
    this.next = (this.next + 1) % this.values.length;
    if (this.count < this.values.length) this.count++;
  }

  summary(): Summary | undefined {
    return summarize(this.values.subarray(0, this.count));
  }
}

/** An append-only series of samples in a typed array (no per-sample garbage for the collector). */
export class Samples {
  private values = new Float64Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = v;
  }

  view(): Float64Array {
    return this.values.subarray(0, this.length);
  }
}
