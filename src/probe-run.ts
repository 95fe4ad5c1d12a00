// How long one probe run keeps the agent busy beyond its sending time: after the last packet the
// probe waits for late ones, then asks the reflector for its per-stream summaries (retried until a
// deadline). agent/probe.ts runs to these numbers; the agent's config check (src/config/agent.ts)
// adds them up to refuse an interval a run cannot fit.

/** Wait after the last packet for late replies (the probe's default `waitMs`). */
export const PROBE_LATE_WAIT_MS = 2000;
/** Longest time spent asking the reflector for its per-stream summaries after that wait. */
export const PROBE_SUMMARY_DEADLINE_MS = 1500;

/** The longest a probe run sending for `durationMs` takes: sending, the late wait, the summaries. */
export function probeRunMaxMs(durationMs: number, waitMs = PROBE_LATE_WAIT_MS): number {
  return durationMs + waitMs + PROBE_SUMMARY_DEADLINE_MS;
}
