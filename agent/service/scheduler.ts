// Runs jobs on fixed intervals, one at a time: two probes never overlap, so one probe's traffic does
// not disturb another's measurement. A run that overruns its slot skips the missed slots (logged)
// instead of bunching catch-up runs.
import type { Clock } from './clock.js';
import type { Log } from './log.js';

export interface ScheduledJob {
  name: string;
  intervalMs: number;
  run(): Promise<void>;
}

export async function runSchedule(
  jobs: ScheduledJob[],
  clock: Clock,
  log: Log,
  signal: AbortSignal,
): Promise<void> {
  const start = clock.now();
  const due = jobs.map(() => start);
  while (!signal.aborted && jobs.length > 0) {
    let next = 0;
    for (let i = 1; i < jobs.length; i++) if (due[i]! < due[next]!) next = i;
    const job = jobs[next]!;
    const waitMs = due[next]! - clock.now();
    if (waitMs > 0) await clock.sleep(waitMs, signal);
    if (signal.aborted) break;
    try {
      await job.run();
    } catch (err) {
      log('error', 'job.failed', `${job.name} failed: ${(err as Error).message}`, { job: job.name });
    }
    let nextDue = due[next]! + job.intervalMs;
    let skipped = 0;
    const now = clock.now();
    while (nextDue <= now) {
      nextDue += job.intervalMs;
      skipped++;
    }
    if (skipped > 0) {
      log('warn', 'job.overrun', `${job.name} ran past its interval; skipped ${skipped} run(s)`, {
        job: job.name,
        skipped,
      });
    }
    due[next] = nextDue;
  }
}
