import { describe, expect, it } from 'vitest';
import { wallNowMs } from '../../agent/net/wall-clock.js';
import { mainThreadTicker, type PacerPlan, runPacer, type Ticker } from '../../agent/probe/pacer.js';

/** A ticker driven by the test: records the plan, and ticks at the instants the test chooses. */
function manualTicker() {
  let tick: () => void = () => {};
  let plan: PacerPlan | undefined;
  let stopped = false;
  const ticker: Ticker = (p, onTick) => {
    plan = p;
    tick = onTick;
    return () => {
      stopped = true;
    };
  };
  return { ticker, tick: () => tick(), plan: () => plan, stopped: () => stopped };
}

describe('pacer (one scheduler for all calls)', () => {
  it('sends each event once, in order, never before its time, catching up when ticks coalesce', async () => {
    let clock = 1000;
    const sent: Array<{ e: number; ideal: number; at: number }> = [];
    const t = manualTicker();
    const pacer = runPacer({
      startMs: 1000,
      stepMs: 1,
      total: 10,
      now: () => clock,
      ticker: t.ticker,
      onSend: (e, ideal) => sent.push({ e, ideal, at: clock }),
    });
    expect(t.plan()).toEqual({ startMs: 1000, stepMs: 1, total: 10 });
    t.tick(); // at 1000: event 0 only
    expect(sent.map((s) => s.e)).toEqual([0]);
    clock = 1000.5;
    t.tick(); // early wake-up: nothing is due
    expect(sent).toHaveLength(1);
    clock = 1004.2; // a late wake-up: events 1..4 are due
    t.tick();
    expect(sent.map((s) => s.e)).toEqual([0, 1, 2, 3, 4]);
    clock = 1020;
    t.tick();
    await pacer.done;
    expect(sent.map((s) => s.e)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const s of sent) {
      expect(s.ideal).toBe(1000 + s.e);
      expect(s.at).toBeGreaterThanOrEqual(s.ideal);
    }
    expect(t.stopped()).toBe(true);
  });

  it('finishes at once with nothing to send, and stop() ends a run early', async () => {
    const t = manualTicker();
    await runPacer({ startMs: 0, stepMs: 1, total: 0, now: () => 0, ticker: t.ticker, onSend: () => {} })
      .done;
    expect(t.plan()).toBeUndefined();
    const p = runPacer({ startMs: 0, stepMs: 1, total: 5, now: () => 0, ticker: t.ticker, onSend: () => {} });
    p.stop();
    await p.done;
    expect(t.stopped()).toBe(true);
  });

  it('the main-thread ticker wakes the pacer at each tick, never before it, and stops when told', async () => {
    const startMs = wallNowMs() + 10;
    const late: number[] = [];
    await runPacer({
      startMs,
      stepMs: 2,
      total: 25,
      now: wallNowMs,
      ticker: mainThreadTicker(),
      onSend: (_e, ideal) => late.push(wallNowMs() - ideal),
    }).done;
    expect(late).toHaveLength(25);
    // Never early (timing figures are the benchmark's business, not asserted here).
    for (const l of late) expect(l).toBeGreaterThanOrEqual(0);
    let ticks = 0;
    const stop = mainThreadTicker()({ startMs: wallNowMs(), stepMs: 1, total: 1000 }, () => ticks++);
    stop();
    await new Promise((r) => setTimeout(r, 30));
    expect(ticks).toBe(0);
  });
});
