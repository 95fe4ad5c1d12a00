// Time as a dependency: the scheduler and the sender sleep through this, so tests drive them with a
// fake clock instead of waiting.
import { setTimeout as delay } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after ms, or early (without error) when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    if (signal?.aborted) return;
    await delay(ms, undefined, { signal }).catch(() => undefined);
  },
};
