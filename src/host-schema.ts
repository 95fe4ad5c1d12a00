// The host-health result (`voipready host --json`, and `host` in an agent's report): disk headroom,
// the system event log, backups and system performance of one server. Keys named in the contract
// below stay; keys may be added. Every array is bounded (a report is untrusted input at the
// collector). What could not be measured carries `unknownReason` and null values: unknown, never pass.
import { z } from 'zod';
import { Check } from './schemas.js';

export const HOST_SCHEMA = 'voipready.host/1';

/** Bounds shared by the agent (what it sends) and the collector (what it accepts). */
export const HOST_LIMITS = {
  disks: 64,
  backups: 64,
  /** Offenders listed per event-log summary. */
  top: 20,
  /** Characters kept of one event's message. */
  sampleChars: 500,
} as const;

const Reason = z.string().min(1).max(1000);
const Bytes = z.number().nonnegative();
const Pct = z.number().min(0).max(100);

/** contract: { path, mount, fsType, totalBytes, freeBytes, freePct, growthBytesPerDay, daysUntilFull } */
export const HostDisk = z.looseObject({
  path: z.string().min(1).max(1024),
  mount: z.string().max(1024).nullable(),
  fsType: z.string().max(64).nullable(),
  totalBytes: Bytes.nullable(),
  freeBytes: Bytes.nullable(),
  freePct: Pct.nullable(),
  /** Bytes consumed per day (least-squares slope of free bytes, negated); null: too little history. */
  growthBytesPerDay: z.number().nullable(),
  daysUntilFull: z.number().nonnegative().nullable(),
  /** Samples and time span the forecast was fitted on. */
  historySamples: z.number().int().nonnegative().optional(),
  historyHours: z.number().nonnegative().optional(),
  unknownReason: Reason.optional(),
});
export type HostDisk = z.infer<typeof HostDisk>;

export const EventLevel = z.enum(['critical', 'error', 'warning']);
export type EventLevel = z.infer<typeof EventLevel>;

/** contract: { provider, eventId, level, count, sample } */
export const EventOffender = z.looseObject({
  provider: z.string().max(256),
  eventId: z.union([z.string().max(128), z.number().int()]).nullable(),
  level: EventLevel,
  count: z.number().int().positive(),
  sample: z.string().max(HOST_LIMITS.sampleChars),
});
export type EventOffender = z.infer<typeof EventOffender>;

/** contract: { source, since, critical, errors, top } */
export const HostEventLog = z.looseObject({
  /** e.g. "journald", "journald (--directory /var/log/journal)", "syslog /var/log/syslog", "windows System,Application", "file x.xml (wevtutil xml)". */
  source: z.string().max(1024),
  /** Start of the window read (ISO time); null when the source did not say. */
  since: z.string().max(64).nullable(),
  /** Windows Level 1 / journald PRIORITY 0–2, after the include/exclude rules; null: not read. */
  critical: z.number().int().nonnegative().nullable(),
  /** Windows Level 2 / journald PRIORITY 3, after the include/exclude rules; null: not read. */
  errors: z.number().int().nonnegative().nullable(),
  /** Warnings are listed, not counted against the rule. */
  warnings: z.number().int().nonnegative().optional(),
  /** Critical and error events the exclude (or include) rules left out. */
  excluded: z.number().int().nonnegative().optional(),
  /** The critical and error offenders, most frequent first. */
  top: z.array(EventOffender).max(HOST_LIMITS.top),
  /** The warning offenders, most frequent first. */
  topWarnings: z.array(EventOffender).max(HOST_LIMITS.top).optional(),
  /** A source read only in part (e.g. a file damaged at a byte offset). */
  warning: Reason.optional(),
  unknownReason: Reason.optional(),
});
export type HostEventLog = z.infer<typeof HostEventLog>;

/** contract: { name, newest, ageHours } */
export const HostBackup = z.looseObject({
  name: z.string().min(1).max(256),
  /** When the newest backup was made (ISO time); null when none was found or it could not be told. */
  newest: z.string().max(64).nullable(),
  ageHours: z.number().nullable(),
  /** The glob pattern or command the time came from. */
  source: z.string().max(1024).optional(),
  /** The newest file matched. */
  file: z.string().max(4096).optional(),
  /** The backup command reported a failed backup (non-zero exit): a failure, not an unknown. */
  failed: Reason.optional(),
  unknownReason: Reason.optional(),
});
export type HostBackup = z.infer<typeof HostBackup>;

/** contract: { cpuPct, load1, memUsedPct, swapUsedPct, uptimeS }; null where the platform has none. */
export const HostSystem = z.looseObject({
  cpuPct: Pct.nullable(),
  load1: z.number().nonnegative().nullable(),
  memUsedPct: Pct.nullable(),
  swapUsedPct: Pct.nullable(),
  uptimeS: z.number().nonnegative().nullable(),
});
export type HostSystem = z.infer<typeof HostSystem>;

/** contract: the `voipready host --json` document, schema voipready.host/1. */
export const HostResult = z.looseObject({
  schema: z.literal(HOST_SCHEMA),
  host: z.string().min(1).max(255),
  collectedAt: z.iso.datetime({ offset: true }),
  disks: z.array(HostDisk).max(HOST_LIMITS.disks),
  eventlog: HostEventLog,
  backups: z.array(HostBackup).max(HOST_LIMITS.backups),
  system: HostSystem,
  // lazy: schemas.ts refers back to this file (AgentReport.host); either may load first.
  checks: z.array(z.lazy(() => Check)).max(16),
  ready: z.boolean(),
});
export type HostResult = z.infer<typeof HostResult>;
