// One scheduler for all calls: a single grid of ticks `step` apart. The probe spreads its calls
// across the packetization interval in S = min(calls, 5) slots (one tick every 4 ms at 20 ms ptime)
// and sends, at each tick, the packets of the calls in that slot.
//
// Node's timers fire late by a millisecond or more. Blocking the main thread until each deadline
// (Atomics.wait) would be precise but would also delay the receive callbacks that timestamp
// replies, turning our own stall into reverse-path jitter. So a worker thread keeps time: it sleeps
// with Atomics.wait until each deadline (sub-millisecond wake-ups without spinning) and then wakes
// the main thread, whose event loop stays free for receiving. The main thread sends every event
// whose time has come (catching up if wake-ups coalesced). Each packet's RTP timestamp is taken
// from its actual send instant, so whatever lateness remains is measured (sendTiming) and never
// shows as network jitter.
import { Worker } from 'node:worker_threads';
import { wallNowMs } from '../net/wall-clock.js';

export interface PacerPlan {
  /** Wall-clock ms of event 0. */
  startMs: number;
  stepMs: number;
  total: number;
}

/** Calls onTick at (or just after) each event time of the plan; returns a stop function. */
export type Ticker = (plan: PacerPlan, onTick: () => void) => () => void;

// The worker starts, reports ready, then runs the plan it is sent (so its start-up time, tens of
// milliseconds, never delays the first packets).
const TICKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const cell = new Int32Array(new SharedArrayBuffer(4));
const now = () => Number(process.hrtime.bigint()) / 1e6;
parentPort.once('message', ({ startMs, stepMs, total }) => {
  for (let e = 0; e < total; e++) {
    const ahead = startMs + e * stepMs - now();
    if (ahead > 0) Atomics.wait(cell, 0, 0, ahead);
    parentPort.postMessage(0);
  }
});
parentPort.postMessage('ready');
`;

/**
 * Starts the timing worker; resolves once it runs, with a ticker for one plan (given in
 * wallNowMs() time; the worker keeps time on process.hrtime, the monotonic clock both threads share).
 */
export function startWorkerTicker(): Promise<{ ticker: Ticker; close(): void }> {
  const worker = new Worker(TICKER_SOURCE, { eval: true });
  const close = () => {
    worker.terminate().catch(() => {});
  };
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => {
      worker.off('error', reject);
      worker.on('error', () => {});
      resolve({
        ticker: (plan, onTick) => {
          const shift = Number(process.hrtime.bigint()) / 1e6 - wallNowMs();
          worker.on('message', onTick);
          worker.postMessage({ ...plan, startMs: plan.startMs + shift });
          return close;
        },
        close,
      });
    });
  });
}

export interface PacerOptions extends PacerPlan {
  now: () => number;
  ticker: Ticker;
  /** Handles tick e, whose ideal time was idealMs. */
  onSend: (event: number, idealMs: number) => void;
}

export interface Pacer {
  done: Promise<void>;
  stop(): void;
}

/** Runs the plan: never sends an event before its time, sends every event once, in order. */
export function runPacer(o: PacerOptions): Pacer {
  let next = 0;
  let stopTicker: () => void = () => {};
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const stop = () => {
    stopTicker();
    finish();
  };
  const onTick = () => {
    const t = o.now();
    while (next < o.total) {
      const ideal = o.startMs + next * o.stepMs;
      if (ideal > t) break;
      o.onSend(next, ideal);
      next++;
    }
    if (next >= o.total) stop();
  };
  if (o.total <= 0) finish();
  else stopTicker = o.ticker({ startMs: o.startMs, stepMs: o.stepMs, total: o.total }, onTick);
  return { done, stop };
}
