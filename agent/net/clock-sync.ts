// Is this host's clock synchronised, and how far off can it be? Read from the real time daemons,
// never assumed: chrony (`chronyc -c tracking`: leap status and the error bound
// |offset| + root dispersion + root delay / 2, as chrony's documentation defines the maximum error),
// else systemd-timesyncd / timedatectl, which say "synchronised" without a bound.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { ClockSync } from '../../src/schemas.js';

export interface ClockSyncDeps {
  /** Runs a command; resolves with stdout, rejects when it cannot run or fails. */
  exec(cmd: string, args: string[]): Promise<string>;
  readFile(path: string): Promise<string>;
}

export const systemClockSyncDeps: ClockSyncDeps = {
  exec: (cmd, args) =>
    new Promise((resolve, reject) => {
      execFile(cmd, args, { timeout: 2000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    }),
  readFile: (path) => readFile(path, 'utf8'),
};

/** Parses `chronyc -c tracking` (CSV); undefined when the output is not chrony's. */
export function parseChronyTracking(csv: string): ClockSync | undefined {
  const f = csv.trim().split(',');
  // Fields: ref id, ref name, stratum, ref time, system time offset (s), last offset, RMS offset,
  // frequency, residual freq, skew, root delay (s), root dispersion (s), update interval, leap status.
  if (f.length < 14) return undefined;
  const offsetS = Number(f[4]);
  const rootDelayS = Number(f[10]);
  const rootDispersionS = Number(f[11]);
  const leap = f[13]!.trim();
  if (![offsetS, rootDelayS, rootDispersionS].every(Number.isFinite)) return undefined;
  const synchronised = leap !== 'Not synchronised' && Number(f[2]) > 0 && Number(f[2]) < 16;
  return {
    synchronised,
    errorBoundMs: synchronised ? (Math.abs(offsetS) + rootDispersionS + rootDelayS / 2) * 1000 : null,
    source: 'chrony',
  };
}

/** Detects the local clock's synchronisation state from chrony, then systemd. Never throws. */
export async function detectClockSync(deps: ClockSyncDeps = systemClockSyncDeps): Promise<ClockSync> {
  try {
    const parsed = parseChronyTracking(await deps.exec('chronyc', ['-c', 'tracking']));
    if (parsed) return parsed;
  } catch {
    // chronyd absent or not answering: try the next source.
  }
  try {
    await deps.readFile('/run/systemd/timesync/synchronized');
    // The flag file exists once timesyncd has synchronised; it gives no error bound.
    return { synchronised: true, errorBoundMs: null, source: 'systemd-timesyncd' };
  } catch {
    // not present
  }
  try {
    const out = await deps.exec('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
    if (out.trim() === 'yes') return { synchronised: true, errorBoundMs: null, source: 'timedatectl' };
    if (out.trim() === 'no') return { synchronised: false, errorBoundMs: null, source: 'timedatectl' };
  } catch {
    // no systemd
  }
  return { synchronised: false, errorBoundMs: null, source: 'none' };
}

/** Largest combined error bound of the two clocks at which one-way delay is still reported. */
export const MAX_ONE_WAY_ERROR_MS = 5;

export interface OneWayDecision {
  oneWay: boolean;
  /** Why, for the latency check's evidence. */
  basis: string;
}

const describe = (who: string, c: ClockSync | null) =>
  !c
    ? `${who} clock state unknown (no summary from the reflector)`
    : c.synchronised
      ? `${who} clock synchronised by ${c.source}${c.errorBoundMs === null ? ' without an error bound' : ` (error ≤ ${c.errorBoundMs.toFixed(2)} ms)`}`
      : `${who} clock not synchronised (${c.source === 'none' ? 'no chrony or systemd-timesyncd found' : c.source})`;

/** One-way delay only when both ends are synchronised with known, small error bounds. */
export function decideOneWay(local: ClockSync, peer: ClockSync | null): OneWayDecision {
  const both = `${describe('agent', local)}; ${describe('reflector', peer)}`;
  if (
    peer &&
    local.synchronised &&
    peer.synchronised &&
    local.errorBoundMs !== null &&
    peer.errorBoundMs !== null &&
    local.errorBoundMs + peer.errorBoundMs <= MAX_ONE_WAY_ERROR_MS
  ) {
    return { oneWay: true, basis: both };
  }
  const why =
    peer &&
    local.synchronised &&
    peer.synchronised &&
    local.errorBoundMs !== null &&
    peer.errorBoundMs !== null
      ? `combined clock error exceeds ${MAX_ONE_WAY_ERROR_MS} ms`
      : 'clocks not known to be synchronised';
  return { oneWay: false, basis: `${why}: ${both}` };
}
