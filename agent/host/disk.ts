// Disk headroom per path (statfs, as df(1) reads it) and days until full from a least-squares fit of
// free bytes over the recent history. The history lives in the caller's state (the agent keeps it
// across runs and restarts); one sample alone gives no forecast, and says so.
import type { HostDisk } from '../../src/host-schema.js';
import type { HostDeps } from './deps.js';
import { localMounts, mountOf } from './mounts.js';

export interface DiskSample {
  tMs: number;
  freeBytes: number;
}

/** History a forecast needs: at least this many samples spanning at least this long. */
export const FORECAST_MIN_SAMPLES = 3;
export const FORECAST_MIN_SPAN_MS = 3_600_000;
/** The fit looks back this far (older samples are dropped) and keeps at most this many samples. */
export const HISTORY_WINDOW_MS = 7 * 86_400_000;
export const HISTORY_MAX_SAMPLES = 2048;

const DAY_MS = 86_400_000;

/** Least-squares slope of free bytes over time, bytes per day; undefined when x does not vary. */
export function slopePerDay(samples: DiskSample[]): number | undefined {
  const n = samples.length;
  if (n < 2) return undefined;
  const t0 = samples[0]!.tMs;
  let sx = 0;
  let sy = 0;
  for (const s of samples) {
    sx += (s.tMs - t0) / DAY_MS;
    sy += s.freeBytes;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  for (const s of samples) {
    const dx = (s.tMs - t0) / DAY_MS - mx;
    sxy += dx * (s.freeBytes - my);
    sxx += dx * dx;
  }
  return sxx > 0 ? sxy / sxx : undefined;
}

/** Adds a sample to a path's history (in place) and returns the forecast fields. */
export function forecast(
  history: DiskSample[],
  sample: DiskSample,
): Pick<HostDisk, 'growthBytesPerDay' | 'daysUntilFull' | 'historySamples' | 'historyHours'> {
  // A clock stepped back makes the earlier samples' times meaningless: start again.
  if (history.length > 0 && sample.tMs <= history[history.length - 1]!.tMs) history.length = 0;
  history.push(sample);
  const oldest = sample.tMs - HISTORY_WINDOW_MS;
  let drop = 0;
  while (drop < history.length - 1 && history[drop]!.tMs < oldest) drop++;
  drop = Math.max(drop, history.length - HISTORY_MAX_SAMPLES);
  if (drop > 0) history.splice(0, drop);
  const spanMs = sample.tMs - history[0]!.tMs;
  const base = { historySamples: history.length, historyHours: Math.round(spanMs / 36_000) / 100 };
  const slope =
    history.length >= FORECAST_MIN_SAMPLES && spanMs >= FORECAST_MIN_SPAN_MS
      ? slopePerDay(history)
      : undefined;
  if (slope === undefined) return { ...base, growthBytesPerDay: null, daysUntilFull: null };
  const growth = -slope;
  return {
    ...base,
    growthBytesPerDay: Math.round(growth),
    daysUntilFull: growth > 0 ? Math.round((sample.freeBytes / growth) * 100) / 100 : null,
  };
}

function statfsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'the path does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOTDIR') return 'a part of the path is not a directory';
  return `statfs failed: ${code ?? (err as Error).message}`;
}

/** The paths to watch: those configured, else every local mounted filesystem. */
export async function diskPaths(
  paths: string[] | undefined,
  deps: Pick<HostDeps, 'mounts'>,
): Promise<string[]> {
  if (paths && paths.length > 0) return paths;
  return localMounts(await deps.mounts()).map((m) => m.mount);
}

export async function collectDisks(
  paths: string[],
  deps: Pick<HostDeps, 'statfs' | 'mounts' | 'now'>,
  histories: Map<string, DiskSample[]>,
): Promise<HostDisk[]> {
  const mounts = await deps.mounts();
  const disks: HostDisk[] = [];
  for (const path of paths) {
    const m = mountOf(path, mounts);
    const where = { path, mount: m?.mount ?? null, fsType: m?.fsType ?? null };
    let s: Awaited<ReturnType<HostDeps['statfs']>>;
    try {
      s = await deps.statfs(path);
    } catch (err) {
      disks.push({
        ...where,
        totalBytes: null,
        freeBytes: null,
        freePct: null,
        growthBytesPerDay: null,
        daysUntilFull: null,
        unknownReason: statfsReason(err),
      });
      continue;
    }
    // As df(1): Avail is what an unprivileged writer can still use; Use% = used / (used + avail),
    // so root's reserved blocks count neither as free nor as usable.
    const totalBytes = s.blocks * s.bsize;
    const freeBytes = s.bavail * s.bsize;
    const usedBytes = (s.blocks - s.bfree) * s.bsize;
    const usable = usedBytes + freeBytes;
    const freePct = usable > 0 ? Math.round((10_000 * freeBytes) / usable) / 100 : 0;
    const history = histories.get(path) ?? [];
    histories.set(path, history);
    disks.push({
      ...where,
      totalBytes,
      freeBytes,
      freePct,
      ...forecast(history, { tMs: deps.now(), freeBytes }),
    });
  }
  return disks;
}
