// Host health, one module with the probe's outer form: configuration in, a voipready.host/1 document
// out, failure as data (a part that cannot be measured is unknown with the reason, never a throw).
// Side effects (statfs, exec, the clock) come in through HostDeps; history between runs (disk
// samples for the forecast, where the event log was last read) through HostState.
import type { HostConfig } from '../../src/config/host.js';
import { errorMessage } from '../../src/errors.js';
import { judgeHost } from '../../src/host-policy.js';
import {
  HOST_LIMITS,
  HOST_SCHEMA,
  type HostDisk,
  type HostEventLog,
  type HostResult,
} from '../../src/host-schema.js';
import { DEFAULT_POLICY, isReady, type Policy } from '../../src/policy.js';
import { collectBackups } from './backups.js';
import type { HostDeps } from './deps.js';
import { collectDisks, type DiskSample, diskPaths } from './disk.js';
import { collectEventLog, type EventLogState, newEventLogState } from './eventlog.js';
import { unreadEventLog } from './events.js';

export interface HostState {
  /** Free-bytes samples per path, oldest first. */
  disks: Map<string, DiskSample[]>;
  events: EventLogState;
}

export function newHostState(): HostState {
  return { disks: new Map(), events: newEventLogState() };
}

export interface HostRequest {
  config: HostConfig;
  policy?: Policy;
  /** Judge this exported event log instead of reading the live one (already read by the caller). */
  eventlog?: HostEventLog;
}

async function safely<T>(part: () => Promise<T>, failed: (reason: string) => T): Promise<T> {
  try {
    return await part();
  } catch (err) {
    return failed(`internal error: ${errorMessage(err)}`);
  }
}

export async function collectHost(
  request: HostRequest,
  deps: HostDeps,
  state: HostState,
): Promise<HostResult> {
  const { config } = request;
  const collectedAt = new Date(deps.now()).toISOString();
  const paths = await safely(
    () => diskPaths(config.disk.paths, deps),
    () => [] as string[],
  );
  const disks = await safely(
    () => collectDisks(paths.slice(0, HOST_LIMITS.disks), deps, state.disks),
    (reason): HostDisk[] =>
      paths.slice(0, HOST_LIMITS.disks).map((path) => ({
        path,
        mount: null,
        fsType: null,
        totalBytes: null,
        freeBytes: null,
        freePct: null,
        growthBytesPerDay: null,
        daysUntilFull: null,
        unknownReason: reason,
      })),
  );
  const eventlog =
    request.eventlog ??
    (await safely(
      () => collectEventLog(config.eventlog, deps, state.events),
      (reason) => unreadEventLog(config.eventlog.source, reason),
    ));
  const backups = await safely(
    () => collectBackups(config.backups.slice(0, HOST_LIMITS.backups), deps),
    (reason) =>
      config.backups.map((b, i) => ({
        name: b.name ?? `backup ${i + 1}`,
        newest: null,
        ageHours: null,
        unknownReason: reason,
      })),
  );
  const system = await safely(
    () => deps.system(),
    () => ({ cpuPct: null, load1: null, memUsedPct: null, swapUsedPct: null, uptimeS: null }),
  );
  const checks = judgeHost({ disks, eventlog, backups, system }, request.policy ?? DEFAULT_POLICY);
  return {
    schema: HOST_SCHEMA,
    host: deps.hostname().slice(0, 255) || 'unknown',
    collectedAt,
    disks,
    eventlog,
    backups,
    system,
    checks,
    ready: isReady(checks),
  };
}
