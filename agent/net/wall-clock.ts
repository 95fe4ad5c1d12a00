// The agent's one time base: wall-clock milliseconds with sub-millisecond resolution, advancing
// monotonically within a process (performance.now() offset by the process's start time).
export function wallNowMs(): number {
  return performance.timeOrigin + performance.now();
}
