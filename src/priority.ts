// The `priority` check: handbook, "RTP traffic needs to be marked with the DSCP set as EF and should
// be processed as such in the priority queue." `voipready probe --priority-test` sends EF streams
// and identical best-effort (CS0) twins, and fills the path with a best-effort load in the middle of
// the run. The path prioritises EF when best effort queues (or drops) under the load while EF keeps
// the policy's limits; it does not when EF degrades with best effort. Pure: judgement only.

import { UserError } from './errors.js';
import { check, type Policy, round, unknown } from './policy.js';
import type { ClassFigures, PriorityResult } from './priority-schema.js';
import { MAX_LOAD_BPS } from './priority-schema.js';
import type { Check, ProbeResult } from './schemas.js';

const RATE_UNITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

/**
 * "8mbit", "500kbit", "1.5mbit", "1gbit" (tc's units, SI) → bit/s, at most MAX_LOAD_BPS. tc's
 * "mbps" means megabytes per second, so byte units are refused rather than guessed.
 */
export function parseRate(text: string, flag: string): number {
  const t = text.trim().toLowerCase();
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$/.exec(t);
  if (!m) {
    const hint = /bps$|b\/s$|^\d+(\.\d+)?$/.test(t) ? ' (bits per second with a unit: kbit, mbit, gbit)' : '';
    throw new UserError(`${flag} "${text}" is not a rate like 8mbit or 500kbit${hint}`);
  }
  const bps = Math.round(Number(m[1]) * RATE_UNITS[m[2]!]!);
  if (!(bps >= 1000 && bps <= MAX_LOAD_BPS)) {
    throw new UserError(`${flag} must be between 1kbit and ${formatRate(MAX_LOAD_BPS)}`);
  }
  return bps;
}

/** 8000000 → "8 Mbit/s". */
export function formatRate(bps: number): string {
  if (bps >= 1e9) return `${round(bps / 1e9, 2)} Gbit/s`;
  if (bps >= 1e6) return `${round(bps / 1e6, 2)} Mbit/s`;
  return `${round(bps / 1e3, 1)} kbit/s`;
}

const ms = (v: number | null) => (v === null ? 'n/a' : `${round(v, 1)} ms`);

/** One class's loaded-phase figures against its unloaded ones, as evidence text. */
function describe(name: string, c: ClassFigures): string {
  return (
    `${name}: +${ms(c.addedDelayP50Ms)} p50 / +${ms(c.addedDelayP95Ms)} p95 delay, ` +
    `jitter ${ms(c.loaded.jitterMs)}, loss ${round(c.loaded.lossPct, 2)} % ` +
    `(${c.loaded.sent - c.loaded.returned} of ${c.loaded.sent})`
  );
}

/** Why EF's loaded phase breaks the policy's limits; empty when it keeps them. */
function efBreaks(ef: ClassFigures, policy: Policy): string[] {
  const out: string[] = [];
  const { maxAddedDelayMs } = policy.priority;
  if (ef.addedDelayP95Ms === null) out.push('no EF reply came back under load');
  else if (ef.addedDelayP95Ms > maxAddedDelayMs)
    out.push(`EF p95 delay grew by ${ms(ef.addedDelayP95Ms)} (limit ${maxAddedDelayMs} ms)`);
  if (ef.loaded.jitterMs !== null && ef.loaded.jitterMs >= policy.jitter.maxMs)
    out.push(`EF jitter ${ms(ef.loaded.jitterMs)} (limit ${policy.jitter.maxMs} ms)`);
  if (ef.loaded.lossPct > policy.loss.maxPct)
    out.push(`EF lost ${round(ef.loaded.lossPct, 2)} % (limit ${policy.loss.maxPct} %)`);
  return out;
}

/** Whether best effort degraded under the load: the load congested the path. */
function congested(be: ClassFigures, policy: Policy): boolean {
  const grew = be.addedDelayP95Ms !== null && be.addedDelayP95Ms >= policy.priority.congestedAddedDelayMs;
  return grew || be.loaded.lossPct > policy.loss.maxPct;
}

/**
 * Pass: best effort degraded under the load while EF kept the limits (added p95 delay, jitter, loss).
 * Fail: EF degraded with it. Unknown: not run, no load sent, or the load never congested the path
 * (then what was offered and what best effort saw). The value is EF's added p95 delay, ms.
 */
export function judgePriority(
  e: PriorityResult | undefined,
  policy: Policy,
  reason = 'the priority test was not run (voipready probe --priority-test)',
): Check {
  const limit = policy.priority.maxAddedDelayMs;
  if (!e) return unknown('priority', reason, limit, 'ms');
  if (e.loadSentPackets === 0) {
    return unknown('priority', e.loadNotSentReason ?? 'no load was sent', limit, 'ms');
  }
  const figures = `${describe('EF', e.ef)}; ${describe('best effort', e.be)}`;
  const offered = `load ${formatRate(e.loadSentBps)} sent (target ${formatRate(e.loadTargetBps)}, ${e.loadMode}, cap ${formatRate(e.loadCapBps)})`;
  const stopped = e.loadNotSentReason ? `; ${e.loadNotSentReason}` : '';
  if (!congested(e.be, policy)) {
    return unknown(
      'priority',
      `the load never congested the path: ${offered}; best effort added ${ms(e.be.addedDelayP95Ms)} p95 delay and lost ${round(e.be.loaded.lossPct, 2)} % ` +
        `(congestion needs ≥ ${policy.priority.congestedAddedDelayMs} ms or > ${policy.loss.maxPct} %)${stopped}`,
      limit,
      'ms',
    );
  }
  const value = e.ef.addedDelayP95Ms === null ? null : round(e.ef.addedDelayP95Ms, 2);
  const breaks = efBreaks(e.ef, policy);
  if (breaks.length > 0) {
    return check(
      'priority',
      policy.priority.severity,
      value,
      limit,
      'ms',
      `EF degraded with best effort under load (no priority queue, or EF not classified into it): ${breaks.join(', ')}; ${figures}; ${offered}${stopped}`,
    );
  }
  return check(
    'priority',
    'pass',
    value,
    limit,
    'ms',
    `EF kept its limits while best effort queued: ${figures}; ${offered}${stopped}`,
  );
}

/**
 * The `priority` check of a probe document: present only when the probe ran the priority test.
 * `insufficient` (the collector's sufficiency rule) says why the figures cannot decide, if so.
 */
export function priorityChecks(
  probe: Pick<ProbeResult, 'priority'>,
  policy: Policy,
  insufficient: (p: PriorityResult) => string | undefined = () => undefined,
): Check[] {
  if (!probe.priority) return [];
  const why = insufficient(probe.priority);
  return [why ? judgePriority(undefined, policy, why) : judgePriority(probe.priority, policy)];
}

/** The priority test's figures as a table (the CLI's and the report page's): class × phase. */
export function priorityTable(p: PriorityResult): { header: string[]; rows: string[][] } {
  const v = (x: number | null) => (x === null ? '-' : String(round(x, 2)));
  const rows: string[][] = [];
  for (const [name, c] of [
    ['EF', p.ef],
    ['best effort', p.be],
  ] as const) {
    for (const phase of ['unloaded', 'loaded', 'after'] as const) {
      const f = c[phase];
      const [from, to] = p.phasesS[phase];
      rows.push([
        `${name} ${phase} (${round(from, 1)}-${round(to, 1)} s)`,
        String(f.sent),
        String(f.returned),
        `${round(f.lossPct, 2)}`,
        v(f.delayP50Ms),
        v(f.delayP95Ms),
        v(f.jitterMs),
      ]);
    }
    rows.push([`${name} added under load`, '', '', '', v(c.addedDelayP50Ms), v(c.addedDelayP95Ms), '']);
  }
  return {
    header: ['CLASS / PHASE', 'SENT', 'RETURNED', 'LOSS %', 'DELAY p50 ms', 'DELAY p95 ms', 'JITTER ms'],
    rows,
  };
}
