// Retry timing for the uplink: exponential backoff with "full jitter" (a uniformly random delay up
// to the capped exponential), so agents that lost the collector at the same moment do not retry in
// lockstep; a server's Retry-After (RFC 9110 §10.2.3) is honoured as a lower bound.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** Longest Retry-After the agent obeys; a larger value is treated as this (the queue keeps the report). */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** Delay before retry number `attempt` (0 = the first retry). `random` returns [0, 1). */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 52));
  const jittered = Math.floor(random() * ceiling);
  if (retryAfterMs === undefined) return jittered;
  // Wait at least what the server asked; add a little jitter so a herd told the same does not return at once.
  return Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) + Math.floor(random() * policy.initialMs);
}

/** Retry-After: delay-seconds or an HTTP-date (RFC 9110 §10.2.3) → milliseconds from now. */
export function parseRetryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}
