// The fallback's pacing (Node's dgram; the native layer sends at due times from the addon's sender
// thread instead, see sendScheduled in agent/probe.ts). One scheduler for all calls: a single grid
// of ticks `step` apart. The probe spreads its calls
// across the packetization interval in S = min(calls, 5) slots (one tick every 4 ms at 20 ms ptime)
// and sends, at each tick, the packets of the calls in that slot.
//
// Node's timers fire late by up to a millisecond or more. The ticker sleeps with setTimeout until
// shortly before each tick and then waits out the rest with Atomics.wait, which wakes within tens
// of microseconds without spinning. That blocks the event loop for at most TIMER_LEAD_MS per tick;
// a reply arriving meanwhile is timestamped late by that much, but a stream's replies arrive at a
// steady phase of the grid while the path's delay is steady, so the shift is common to them and
// cancels out of RFC 3550 jitter. We measured this against a worker thread that keeps time and
// wakes the main thread (an unblocked event loop): the worker paced worse (p99 0.37–0.46 ms against
// 0.21–0.26 ms at 50 calls), cost as much CPU (two thread switches per tick) and 7–10 MB more
// memory (a second isolate), for no difference in the jitter measured. docs/probe.md has figures.
// The pacer sends every event whose time has come (catching up if a wake-up came late). Each
// packet's RTP timestamp is its actual send instant, so lateness is measured (sendTiming) and never
// shows as network jitter.
import { wallNowMs } from '../net/wall-clock.js';

export interface PacerPlan {
  /** Wall-clock ms of event 0. */
  startMs: number;
  stepMs: number;
  total: number;
}

/** Calls onTick at (or just after) each event time of the plan; returns a stop function. */
export type Ticker = (plan: PacerPlan, onTick: () => void) => () => void;

/** setTimeout fires up to about a millisecond late (millisecond granularity): wake this early. */
const TIMER_LEAD_MS = 1.2;

/**
 * The ticker described above: setTimeout to TIMER_LEAD_MS before each tick, then Atomics.wait
 * (sub-millisecond, no spinning) for the rest. Plans are in wallNowMs() time.
 */
export function mainThreadTicker(now: () => number = wallNowMs): Ticker {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  return (plan, onTick) => {
    let next = 0;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      while (!stopped && next < plan.total) {
        const ahead = plan.startMs + next * plan.stepMs - now();
        if (ahead > TIMER_LEAD_MS) {
          timer = setTimeout(tick, ahead - TIMER_LEAD_MS);
          return;
        }
        if (ahead > 0) Atomics.wait(cell, 0, 0, ahead);
        next++;
        onTick();
      }
    };
    // Never tick synchronously inside the call that starts the plan.
    timer = setTimeout(tick, 0);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  };
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
