// The `priority` block of a probe document (`voipready probe --priority-test`): EF streams and their
// best-effort (CS0) twins measured per phase of the run, unloaded and under a best-effort bulk load
// to the reflector. Figures per class and phase; delays are forward one-way delays above the run's
// lowest (the two clocks' offset cancels out of differences), loss is round-trip (the load fills the
// forward path only; the reflector answers no load). Only zod here: src/schemas.ts builds on it.
import { z } from 'zod';
import { TagText } from './tag-text.js';

/** Hard ceiling of any load the probe sends, bit/s (docs/probe.md, "Priority under load"). */
export const MAX_LOAD_BPS = 1_000_000_000;
/** Default cap of a stepped load (no --load): 100 Mbit/s. */
export const DEFAULT_MAX_LOAD_BPS = 100_000_000;

export const PRIORITY_PHASES = ['unloaded', 'loaded', 'after'] as const;
export type PriorityPhaseName = (typeof PRIORITY_PHASES)[number];

const Ms = z.number().nonnegative();
const Count = z.number().int().nonnegative();

/** One traffic class in one phase: packets sent in the phase and their replies. */
export const PhaseFigures = z.strictObject({
  sent: Count,
  returned: Count,
  /** (sent − returned) / sent, round trip, %. */
  lossPct: z.number().min(0).max(100),
  /** Forward delay above the run's lowest, ms; null when no reply came back. */
  delayP50Ms: Ms.nullable(),
  delayP95Ms: Ms.nullable(),
  /** RFC 3550 A.8 interarrival jitter of the forward path, the worst stream's, ms. */
  jitterMs: Ms.nullable(),
});
export type PhaseFigures = z.infer<typeof PhaseFigures>;

export const ClassFigures = z.strictObject({
  dscp: z.number().int().min(0).max(63),
  unloaded: PhaseFigures,
  loaded: PhaseFigures,
  after: PhaseFigures,
  /** Loaded phase over the unloaded one, per percentile; null without delays in both phases. */
  addedDelayP50Ms: z.number().nullable(),
  addedDelayP95Ms: z.number().nullable(),
});
export type ClassFigures = z.infer<typeof ClassFigures>;

export const PriorityResult = z.strictObject({
  /** `fixed`: --load RATE; `stepped`: doubled every step until best effort queued, up to the cap. */
  loadMode: z.enum(['fixed', 'stepped']),
  loadCapBps: z.number().int().positive().max(MAX_LOAD_BPS),
  /** The highest rate asked of the load generator. */
  loadTargetBps: Count.max(MAX_LOAD_BPS),
  /** What actually left during the loaded phase, on average (UDP payload + IP/UDP headers). */
  loadSentBps: Count,
  loadSentPackets: Count,
  loadDatagramBytes: z.number().int().positive().max(1500),
  /** The rate at each step of the loaded phase (seconds from the run's start). */
  loadSteps: z.array(z.strictObject({ atS: Ms, rateBps: Count })).max(64),
  /** The phases, in seconds from the run's start: [start, end). */
  phasesS: z.strictObject({
    unloaded: z.tuple([Ms, Ms]),
    loaded: z.tuple([Ms, Ms]),
    after: z.tuple([Ms, Ms]),
  }),
  ef: ClassFigures,
  be: ClassFigures,
  /** Why no load (or not all of it) was sent: the reflector refused or did not answer, or the run was stopped. */
  loadNotSentReason: TagText(500).nullable(),
});
export type PriorityResult = z.infer<typeof PriorityResult>;
