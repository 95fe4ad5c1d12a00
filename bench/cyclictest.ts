// The platform's own timer floor, for the pacing rows: cyclictest (rt-tests) runs a thread that
// does nothing but sleep until an absolute time on CLOCK_REALTIME and note how late it woke — the
// probe's sender thread without the sending. Run beside a pacing run at the same interval and
// scheduling, its lateness is what the host allowed any thread then; what the probe adds is ours.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Summary, summarize } from '../agent/probe/timing.js';

export interface CyclictestRun {
  /** Lateness of each wake-up, ms; undefined when cyclictest could not run (the reason in `error`). */
  done: Promise<{ lateness?: Summary; error?: string }>;
}

/**
 * Starts cyclictest for `wakeups` wake-ups `intervalMs` apart, in namespace `ns`, as SCHED_FIFO at
 * `fifoPriority`, or as an ordinary thread (SCHED_OTHER) when it is undefined.
 */
export function startCyclictest(
  ns: string,
  jsonFile: string,
  intervalMs: number,
  wakeups: number,
  fifoPriority: number | undefined,
): CyclictestRun {
  const policy =
    fifoPriority === undefined ? ['-p0', '--policy=other'] : [`-p${fifoPriority}`, '--policy=fifo'];
  const args = [
    ...['netns', 'exec', ns, 'cyclictest', '-q', ...policy],
    ...[`-i${Math.round(intervalMs * 1000)}`, `-l${wakeups}`, '-c1', '--default-system'],
    // One microsecond buckets up to 100 ms (later wake-ups count as overflows), as JSON.
    ...['-h100000', '--histfile=/dev/null', `--json=${jsonFile}`],
  ];
  const child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const done = new Promise<{ lateness?: Summary; error?: string }>((resolve) => {
    child.on('error', (e) => resolve({ error: `cyclictest: ${e.message}` }));
    child.on('close', (code) => {
      if (code !== 0) return resolve({ error: `cyclictest exited ${code}: ${err.trim().split('\n').pop()}` });
      try {
        resolve({ lateness: latenessOf(JSON.parse(readFileSync(jsonFile, 'utf8'))) });
      } catch (e) {
        resolve({ error: `cyclictest's JSON: ${(e as Error).message}` });
      }
    });
  });
  return { done };
}

interface CyclictestJson {
  thread: Record<string, { histogram: Record<string, number>; cycles: number; max: number }>;
}

/** Each wake-up's lateness from thread 0's µs histogram; overflows (> 100 ms) count at the max. */
function latenessOf(json: CyclictestJson): Summary | undefined {
  const t = json.thread['0'];
  if (!t) throw new Error('no thread 0');
  const values: number[] = [];
  for (const [us, count] of Object.entries(t.histogram)) {
    for (let k = 0; k < count; k++) values.push(Number(us) / 1000);
  }
  for (let k = values.length; k < t.cycles; k++) values.push(t.max / 1000);
  return summarize(values);
}
