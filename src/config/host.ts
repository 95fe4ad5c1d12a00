// The agent's `host:` section: what host health to collect and how often (docs/host.md). Validated
// like the rest of the agent config, so a bad glob, path or regex is reported as
// `FILE: agent.host.key.path: problem` before anything runs.
import { isAbsolute, win32 } from 'node:path';
import { z } from 'zod';
import { Duration as AgentDuration } from './agent.js';

// lazy: agent.ts refers back to this file (agent.host); either may load first.
const Duration = z.lazy(() => AgentDuration);

/** Absolute on this platform or as a Windows path (C:\…), so one config can describe either server. */
function absolute(p: string): boolean {
  return isAbsolute(p) || win32.isAbsolute(p);
}

const AbsolutePath = z
  .string()
  .min(1)
  .max(1024)
  .refine(absolute, { message: 'must be an absolute path' })
  .refine((p) => !p.includes('\0'), { message: 'must not contain a NUL character' });

const Regex = z
  .string()
  .min(1)
  .max(1000)
  .superRefine((text, ctx) => {
    try {
      new RegExp(text, 'u');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
    }
  });

/** The glob problems a matcher would otherwise take literally or silently match nothing with. */
function globProblem(pattern: string): string | undefined {
  let brackets = 0;
  let braces = 0;
  for (const c of pattern) {
    if (c === '[') brackets++;
    else if (c === ']') brackets = Math.max(0, brackets - 1);
    else if (c === '{') braces++;
    else if (c === '}') braces--;
    if (braces < 0) return 'a "}" without its "{"';
  }
  if (brackets > 0) return 'an unclosed "["';
  if (braces > 0) return 'an unclosed "{"';
  if (/^([A-Za-z]:)?[\\/]*(\*\*|\*)([\\/]|$)/.test(pattern)) return 'it would walk the whole file system';
  return undefined;
}

const Glob = AbsolutePath.superRefine((pattern, ctx) => {
  const problem = globProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: `not a usable glob: ${problem}` });
});

/** One include/exclude rule: an event matches when every field given matches. */
export const EventRuleConfig = z
  .strictObject({
    /** journald SYSLOG_IDENTIFIER (or _COMM), syslog program, Windows provider name; case-insensitive. */
    provider: z.string().min(1).max(256).optional(),
    /** Windows EventID, or journald MESSAGE_ID. */
    eventId: z.union([z.string().min(1).max(128), z.number().int().nonnegative()]).optional(),
    level: z.enum(['critical', 'error', 'warning']).optional(),
    /** A regular expression (JavaScript, unicode) tested against the message. */
    message: Regex.optional(),
  })
  .refine((r) => Object.keys(r).length > 0, { message: 'a rule needs provider, eventId, level or message' });
export type EventRuleConfig = z.infer<typeof EventRuleConfig>;

export const BackupConfig = z
  .strictObject({
    name: z.string().min(1).max(256).optional(),
    /** Files whose newest modification time is the last backup (absolute glob). */
    glob: Glob.optional(),
    /**
     * A program and its arguments (no shell): exit 0 and print the time of the last good backup
     * (ISO 8601 or seconds since the epoch) as its last line; a non-zero exit means the backup failed.
     */
    command: z.array(z.string().min(1).max(4096)).min(1).max(64).optional(),
    timeout: Duration.default(60_000),
  })
  .refine((b) => (b.glob === undefined) !== (b.command === undefined), {
    message: 'give exactly one of glob or command',
  });
export type BackupConfig = z.infer<typeof BackupConfig>;

export const EVENT_SOURCES = ['auto', 'journald', 'syslog', 'windows'] as const;

export const HostConfig = z.strictObject({
  /** Time between two host collections. */
  interval: Duration.default(300_000).refine((ms) => ms >= 1000, { message: 'must be at least 1s' }),
  disk: z
    .strictObject({
      /** Paths to measure; default: every local mounted filesystem. */
      paths: z.array(AbsolutePath).min(1).max(64).optional(),
    })
    .prefault({}),
  eventlog: z
    .strictObject({
      /** auto: the Windows Event Log on Windows, else journald, else the syslog files. */
      source: z.enum(EVENT_SOURCES).default('auto'),
      /** journalctl --directory: a journal other than the system's. */
      directory: AbsolutePath.optional(),
      /** journalctl --file: journal files to read. */
      files: z.array(AbsolutePath).min(1).max(64).optional(),
      /** Syslog files read when journald has no journal (or source: syslog). */
      syslogFiles: z.array(AbsolutePath).min(1).max(64).optional(),
      /** Windows logs read with wevtutil. */
      channels: z
        .array(z.string().regex(/^[A-Za-z0-9 ._/-]{1,128}$/, 'not a Windows event log name'))
        .min(1)
        .max(16)
        .default(['System', 'Application']),
      /** How far back the first collection reads (later ones read from where the last stopped). */
      since: Duration.default(86_400_000),
      include: z.array(EventRuleConfig).max(256).default([]),
      exclude: z.array(EventRuleConfig).max(256).default([]),
    })
    .refine((e) => e.directory === undefined || e.files === undefined, {
      message: 'give directory or files, not both',
    })
    .prefault({}),
  backups: z.array(BackupConfig).max(64).default([]),
});
export type HostConfig = z.infer<typeof HostConfig>;
export type HostConfigInput = z.input<typeof HostConfig>;

export const DEFAULT_HOST_CONFIG: HostConfig = HostConfig.parse({});
