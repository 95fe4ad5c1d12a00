// How far the agent's own send times strayed from the pacing grid, and what paced them, in words
// for the text table and the report page. On the native layer a late send is part of the forward
// jitter (the packet carries its due time), so a reader judging jitter needs this beside it.
import type { ProbeResult } from '../schemas.js';

/** "p50 … p99 … max … ms after their due time (what paced them)", or null when no send was timed. */
export function sendTimesText(r: ProbeResult): string | null {
  const t = r.sendTiming;
  const p = r.sendPacing;
  if (!t || t.p99Ms === null || !p) return null;
  const late = `p50 ${t.p50Ms} p99 ${t.p99Ms} max ${t.maxMs} ms after their due time`;
  if (p.by === 'js-timer') return `${late} (JavaScript timer; each packet carries its actual send time)`;
  if (p.realtime) return `${late} (sender thread, real-time)`;
  return `${late} (sender thread, not real-time${p.shortSlice ? ', 0.1 ms slice' : ''}: root, CAP_SYS_NICE or LimitRTPRIO=1 makes it real-time)`;
}
