// `voipready probe --priority-test`: what the probe adds to a run to see whether the path queues EF
// ahead of best effort. Every EF call gets an identical best-effort (CS0) twin; the run is cut in
// three phases (unloaded, loaded, after), and in the loaded one a best-effort bulk load goes to the
// reflector (which must have been started with --accept-load, and discards it unanswered) at the
// stated rate, or doubled every STEP_MS from FIRST_STEP_BPS until the twins queue, up to the cap.
// Each reply gives the forward transit of its probe (the reflector's arrival stamp − our send time:
// the clocks' offset is the same for every packet, so differences and percentiles above the run's
// lowest transit are the path's queueing). Pure apart from the send callback it is given.
import {
  DEFAULT_MAX_LOAD_BPS,
  type PhaseFigures,
  PRIORITY_PHASES,
  type PriorityResult,
} from '../../src/priority-schema.js';
import { JitterEstimator } from '../../src/rtp.js';
import { SampleRing, summarize } from './timing.js';

export interface PriorityTestOptions {
  /** --load RATE, bit/s; absent: stepped up to maxLoadBps. */
  loadBps?: number;
  /** Cap of the stepped load, bit/s (default DEFAULT_MAX_LOAD_BPS). */
  maxLoadBps?: number;
  /** Stops the load at once (the agent's stop); the run goes on and says so. */
  signal?: AbortSignal;
  /** Throw a UserError when the reflector refuses load (the CLI); otherwise the check is unknown. */
  refusalIsError?: boolean;
}

/** Load datagram size: well under any path MTU, so the load is never fragmented. */
export const LOAD_DATAGRAM_BYTES = 1200;
/** Stepped load: the first rate and how long each step lasts before it is doubled. */
export const FIRST_STEP_BPS = 1_000_000;
export const STEP_MS = 500;
/** After a stall the load does not catch up more than this (no burst of a whole second's load). */
const MAX_CATCH_UP_MS = 50;
/** Delay samples kept per class and phase (the most recent; percentiles over them). */
const SAMPLES_PER_PHASE = 1 << 16;
/** The stepped load holds its rate once the twins' median transit grew by this share of the policy's congestion threshold. */
const STEP_HOLD_SHARE = 0.5;

type ClassName = 'ef' | 'be';

interface PhaseState {
  sent: number;
  returned: number;
  transits: SampleRing;
  /** Per stream: RFC 3550 A.8 over (the reflector's arrival, our send time). */
  jitter: Map<number, JitterEstimator>;
}

const newPhase = (): PhaseState => ({
  sent: 0,
  returned: 0,
  transits: new SampleRing(SAMPLES_PER_PHASE),
  jitter: new Map(),
});

export interface LoadSender {
  /** Sends one load datagram of `bytes` with this sequence (marked CS0). */
  send(sequence: number, nowMs: number): void;
  /** IP + UDP header bytes per datagram (28 over IPv4, 48 over IPv6): the rate counts them. */
  headerBytes: number;
}

export class PriorityRun {
  /** Why no load (or not all of it) was sent; null when it ran as planned. */
  loadNotSentReason: string | null = null;
  /** Names this run's load at the reflector (the load request's nonce). */
  readonly loadId = (Math.random() * 0x100000000) >>> 0;
  /** The reflector's answer to the load request: undefined until one came. */
  answer: boolean | undefined;
  private granted = false;
  private resolveAnswer: () => void = () => {};
  /** Settles when the reflector answered the load request. */
  readonly answered = new Promise<void>((resolve) => {
    this.resolveAnswer = resolve;
  });
  private readonly classes: Record<ClassName, PhaseState[]> = {
    ef: PRIORITY_PHASES.map(newPhase),
    be: PRIORITY_PHASES.map(newPhase),
  };
  private startMs = 0;
  private bounds: [number, number, number, number] = [0, 0, 0, 0];
  private minTransitMs = Number.POSITIVE_INFINITY;
  private readonly capBps: number;
  private rateBps = 0;
  private targetBps = 0;
  private readonly steps: Array<{ atS: number; rateBps: number }> = [];
  private nextStepMs = 0;
  private holding = false;
  private creditBytes = 0;
  private lastTickMs = 0;
  private loadSequence = 0;
  private loadPackets = 0;
  private loadBytes = 0;
  private stopped = false;
  /** Twins' transits (arrival order) and sends since the last step. */
  private windowTransits: number[] = [];
  private windowSent = 0;
  private windowReturned = 0;
  private beBaselineP50Ms: number | undefined;

  constructor(
    private readonly o: PriorityTestOptions,
    private readonly congestedAddedDelayMs: number,
  ) {
    this.capBps = o.loadBps ?? o.maxLoadBps ?? DEFAULT_MAX_LOAD_BPS;
    o.signal?.addEventListener('abort', () => this.stop('the load was stopped early (interrupted)'), {
      once: true,
    });
  }

  onLoadResponse(nonce: number, accepted: boolean): void {
    if (nonce !== this.loadId || this.answer !== undefined) return;
    this.answer = accepted;
    this.granted = accepted;
    this.resolveAnswer();
  }

  /** The sending starts at startMs and lasts durationMs: three equal phases. */
  begin(startMs: number, durationMs: number): void {
    this.startMs = startMs;
    const third = durationMs / 3;
    this.bounds = [startMs, startMs + third, startMs + 2 * third, startMs + durationMs];
  }

  phaseOf(sentMs: number): number {
    return sentMs < this.bounds[1] ? 0 : sentMs < this.bounds[2] ? 1 : 2;
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    const atS = this.lastTickMs > 0 ? ` at ${((this.lastTickMs - this.startMs) / 1000).toFixed(1)} s` : '';
    this.loadNotSentReason = `${reason}${atS}`;
  }

  onSent(cls: ClassName, sentMs: number): void {
    this.classes[cls][this.phaseOf(sentMs)]!.sent++;
    if (cls === 'be' && this.stepping) this.windowSent++;
  }

  /** The stepped load is still looking for the rate that makes the twins queue (the window is kept only then). */
  private get stepping(): boolean {
    return this.o.loadBps === undefined && this.rateBps > 0 && !this.holding && !this.stopped;
  }

  /** A reply to a probe of class `cls` on stream `stream`, sent at sentMs, arrived at the reflector at reflectorArrivalMs. */
  onReply(cls: ClassName, stream: number, sentMs: number, reflectorArrivalMs: number): void {
    const phase = this.classes[cls][this.phaseOf(sentMs)]!;
    const transitMs = reflectorArrivalMs - sentMs;
    phase.returned++;
    phase.transits.add(transitMs);
    if (transitMs < this.minTransitMs) this.minTransitMs = transitMs;
    let j = phase.jitter.get(stream);
    if (!j) {
      j = new JitterEstimator(1000);
      phase.jitter.set(stream, j);
    }
    j.update(reflectorArrivalMs, sentMs);
    if (cls === 'be' && this.stepping) {
      this.windowTransits.push(transitMs);
      this.windowReturned++;
    }
  }

  /** Called on every pacing tick: sends the load that is due. */
  tick(nowMs: number, sender: LoadSender): void {
    const elapsed = Math.min(MAX_CATCH_UP_MS, Math.max(0, nowMs - this.lastTickMs));
    this.lastTickMs = nowMs;
    if (!this.granted || this.stopped || nowMs < this.bounds[1]) return;
    if (nowMs >= this.bounds[2]) {
      this.stopped = true;
      return;
    }
    this.step(nowMs);
    this.creditBytes += (this.rateBps / 8) * (elapsed / 1000);
    const wireBytes = LOAD_DATAGRAM_BYTES + sender.headerBytes;
    while (this.creditBytes >= wireBytes) {
      this.creditBytes -= wireBytes;
      sender.send(this.loadSequence++, nowMs);
      this.loadPackets++;
      this.loadBytes += wireBytes;
    }
  }

  /** Sets the rate: the stated one, or the stepped one (doubled until the twins queue). */
  private step(nowMs: number): void {
    if (nowMs < this.nextStepMs) return;
    this.nextStepMs = nowMs + STEP_MS;
    if (this.o.loadBps !== undefined) {
      if (this.rateBps === 0) this.setRate(nowMs, this.o.loadBps);
      return;
    }
    if (this.rateBps === 0) {
      this.beBaselineP50Ms = this.classes.be[0]!.transits.summary()?.p50;
      this.setRate(nowMs, Math.min(FIRST_STEP_BPS, this.capBps));
    } else if (!this.holding) {
      if (this.queueing()) this.holding = true;
      else if (this.rateBps < this.capBps) this.setRate(nowMs, Math.min(this.capBps, this.rateBps * 2));
    }
    this.windowTransits = [];
    this.windowSent = 0;
    this.windowReturned = 0;
  }

  /** The twins queue: their median transit over the last step grew, or most of their replies are missing. */
  private queueing(): boolean {
    const median = summarize(this.windowTransits)?.p50;
    const grew =
      median !== undefined &&
      this.beBaselineP50Ms !== undefined &&
      median - this.beBaselineP50Ms >= this.congestedAddedDelayMs * STEP_HOLD_SHARE;
    return grew || (this.windowSent > 0 && this.windowReturned < this.windowSent / 2);
  }

  private setRate(nowMs: number, bps: number): void {
    this.rateBps = bps;
    this.targetBps = Math.max(this.targetBps, bps);
    if (this.steps.length < 64) {
      this.steps.push({ atS: Math.round(nowMs - this.startMs) / 1000, rateBps: Math.round(bps) });
    }
  }

  private figures(p: PhaseState): PhaseFigures {
    const s = p.transits.summary();
    const base = this.minTransitMs;
    const rel = (v: number | undefined) => (v === undefined ? null : round3(Math.max(0, v - base)));
    const jitters = [...p.jitter.values()].map((j) => j.jitterMs);
    return {
      sent: p.sent,
      returned: Math.min(p.returned, p.sent),
      lossPct: p.sent > 0 ? round3((100 * Math.max(0, p.sent - p.returned)) / p.sent) : 0,
      delayP50Ms: rel(s?.p50),
      delayP95Ms: rel(s?.p95),
      jitterMs: jitters.length > 0 ? round3(Math.max(...jitters)) : null,
    };
  }

  private classFigures(cls: ClassName, dscp: number) {
    const [unloaded, loaded, after] = this.classes[cls].map((p) => this.figures(p)) as [
      PhaseFigures,
      PhaseFigures,
      PhaseFigures,
    ];
    const added = (k: 'delayP50Ms' | 'delayP95Ms') =>
      loaded[k] === null || unloaded[k] === null ? null : round3(loaded[k] - unloaded[k]);
    return {
      dscp,
      unloaded,
      loaded,
      after,
      addedDelayP50Ms: added('delayP50Ms'),
      addedDelayP95Ms: added('delayP95Ms'),
    };
  }

  result(efDscp: number): PriorityResult {
    const [s, l, a, e] = this.bounds.map((t) => round3((t - this.startMs) / 1000)) as [
      number,
      number,
      number,
      number,
    ];
    const loadedS = (this.bounds[2] - this.bounds[1]) / 1000;
    return {
      loadMode: this.o.loadBps !== undefined ? 'fixed' : 'stepped',
      loadCapBps: Math.round(this.capBps),
      loadTargetBps: Math.round(this.targetBps),
      loadSentBps: loadedS > 0 ? Math.round((this.loadBytes * 8) / loadedS) : 0,
      loadSentPackets: this.loadPackets,
      loadDatagramBytes: LOAD_DATAGRAM_BYTES,
      loadSteps: this.steps,
      phasesS: { unloaded: [s, l], loaded: [l, a], after: [a, e] },
      ef: this.classFigures('ef', efDscp),
      be: this.classFigures('be', 0),
      loadNotSentReason: this.loadNotSentReason,
    };
  }
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
