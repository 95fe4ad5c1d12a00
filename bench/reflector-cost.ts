// The reflector's CPU per message, in-process (agent/reflector/streams.ts, no sockets): a probe, a
// summary of an ordinary stream, and the worst summary a stranger can ask for — a stream whose
// sequence numbers span the whole 2^18 window, with a late packet filling one of its gaps before
// every request (so the longest loss run must be found again), while the hold-time ring is full.
// Printed by `npm run bench:probe` (section 4); figures, never assertions.

import { wallNowMs } from '../agent/net/wall-clock.js';
import { STREAM_DEFAULTS, StreamTable } from '../agent/reflector/streams.js';
import { encodeProbe, encodeSummaryRequest } from '../src/wire.js';

export interface MessageCost {
  probeUs: number;
  summaryUs: number;
  /** A late probe filling a gap of the 2^18-span stream, then its summary: the pair. */
  hostilePairUs: number;
  /** A request over the source's summary budget: refused before any work. */
  refusedSummaryUs: number;
}

const SRC = '192.0.2.1';

function probeBuf(ssrc: number, sequence: number): Buffer {
  const buf = Buffer.alloc(172);
  const fields = {
    payloadType: 0,
    sequence,
    timestamp: sequence * 160,
    ssrc,
    replyDscp: 46,
    signalling: false,
  };
  encodeProbe(buf, 172, { ...fields, sentAtMs: wallNowMs() });
  return buf;
}

/** Mean CPU µs (user + system) per call of `run(i)` over n calls: on a busy host wall time is not ours. */
function perCallUs(n: number, run: (i: number) => void): number {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) run(i);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

/** The second of two runs: the first warms the JIT up, as a long-running reflector is. */
export function reflectorMessageCost(n = 20_000): MessageCost {
  measure(n);
  return measure(n);
}

function measure(n: number): MessageCost {
  const table = new StreamTable({
    ...STREAM_DEFAULTS,
    summaryBurst: 1e9,
    summaryRatePerS: 1e9,
    now: wallNowMs,
    log: () => {},
  });
  const arrive = (msg: Buffer, srcPort: number) =>
    table.handle({
      msg,
      src: SRC,
      srcPort,
      localPort: 5004,
      arrivalMs: wallNowMs(),
      dscp: 46,
      queueDrops: -1,
    });
  // An ordinary stream long enough to fill the 16,384-reply hold ring, then timed probes.
  for (let seq = 0; seq < 16_384; seq++) arrive(probeBuf(1, seq), 20000);
  const probes = Array.from({ length: n }, (_, i) => probeBuf(1, (16_384 + i) & 0xffff));
  const probeUs = perCallUs(n, (i) => arrive(probes[i]!, 20000));
  const summary = encodeSummaryRequest({ ssrc: 1, nonce: 1 });
  const summaryUs = perCallUs(n, () => arrive(summary, 20000));
  // The hostile stream: jumps of 30,000 sequence numbers up to the 2^18 span, then fills.
  for (let k = 0; k < 8; k++) arrive(probeBuf(2, (k * 30_000) & 0xffff), 20002);
  // Each fill lands in a gap behind the newest packet: the longest loss run may have changed.
  const newest = (7 * 30_000) & 0xffff;
  const fills = Array.from({ length: n }, (_, i) => probeBuf(2, (newest - 1 - 7 * i) & 0xffff));
  const hostile = encodeSummaryRequest({ ssrc: 2, nonce: 2 });
  const hostilePairUs = perCallUs(n, (i) => {
    arrive(fills[i]!, 20002);
    arrive(hostile, 20002);
  });
  const stingy = new StreamTable({
    ...STREAM_DEFAULTS,
    summaryBurst: 1,
    summaryRatePerS: 0,
    now: wallNowMs,
    log: () => {},
  });
  const refusedSummaryUs = perCallUs(n, () =>
    stingy.handle({
      msg: Buffer.from(summary),
      src: SRC,
      srcPort: 1,
      localPort: 5004,
      arrivalMs: 0,
      dscp: null,
      queueDrops: -1,
    }),
  );
  return { probeUs, summaryUs, hostilePairUs, refusedSummaryUs };
}
