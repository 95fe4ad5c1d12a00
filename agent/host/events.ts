// One event-log record whatever its source (journald, syslog, the Windows Event Log), the site's
// include/exclude rules, and the tally that turns a stream of records into the `eventlog` summary.
// Counting is the same everywhere: critical = Windows Level 1 / journald PRIORITY 0–2, errors =
// Windows Level 2 / PRIORITY 3; warnings are listed, not counted.
import type { EventRuleConfig } from '../../src/config/host.js';
import { type EventOffender, HOST_LIMITS, type HostEventLog } from '../../src/host-schema.js';

export type RecordLevel = 'critical' | 'error' | 'warning' | 'info';

export interface EventRecord {
  provider: string;
  eventId: string | number | null;
  level: RecordLevel;
  /** ms since the epoch; null when the record carries no time. */
  timeMs: number | null;
  message: string;
}

/** syslog / journald PRIORITY (RFC 5424 §6.2.1 severity) → level. */
export function levelOfPriority(priority: number): RecordLevel {
  if (priority <= 2) return 'critical';
  if (priority === 3) return 'error';
  if (priority === 4) return 'warning';
  return 'info';
}

/** A rule matches a record when every field it gives matches (message: a regular expression). */
export interface EventRule {
  provider?: string;
  eventId?: string;
  level?: RecordLevel;
  message?: RegExp;
}

export function compileRules(rules: EventRuleConfig[] | undefined): EventRule[] {
  return (rules ?? []).map((r) => ({
    ...(r.provider !== undefined ? { provider: r.provider.toLowerCase() } : {}),
    ...(r.eventId !== undefined ? { eventId: String(r.eventId) } : {}),
    ...(r.level !== undefined ? { level: r.level } : {}),
    // Validated when the config was read (src/config/host.ts).
    ...(r.message !== undefined ? { message: new RegExp(r.message, 'u') } : {}),
  }));
}

/** Regexes see at most this much of a message: a huge message cannot stall the tally. */
const MATCH_CHARS = 4096;

function matches(rule: EventRule, e: EventRecord): boolean {
  if (rule.provider !== undefined && rule.provider !== e.provider.toLowerCase()) return false;
  if (rule.eventId !== undefined && rule.eventId !== String(e.eventId)) return false;
  if (rule.level !== undefined && rule.level !== e.level) return false;
  if (rule.message !== undefined && !rule.message.test(e.message.slice(0, MATCH_CHARS))) return false;
  return true;
}

/** Distinct offenders kept; the rest are counted under one "(other offenders)" row. */
const MAX_OFFENDERS = 10_000;

function cleanSample(message: string): string {
  const flat = message.replace(/\p{Cc}+/gu, ' ').trim();
  return flat.length > HOST_LIMITS.sampleChars ? `${flat.slice(0, HOST_LIMITS.sampleChars - 1)}…` : flat;
}

export class EventTally {
  critical = 0;
  errors = 0;
  warnings = 0;
  excluded = 0;
  /** Oldest record time seen, ms. */
  firstMs: number | null = null;
  private readonly offenders = new Map<string, EventOffender>();

  constructor(
    private readonly include: EventRule[] = [],
    private readonly exclude: EventRule[] = [],
  ) {}

  add(e: EventRecord): void {
    if (e.level === 'info') return;
    if (e.timeMs !== null && (this.firstMs === null || e.timeMs < this.firstMs)) this.firstMs = e.timeMs;
    const kept =
      (this.include.length === 0 || this.include.some((r) => matches(r, e))) &&
      !this.exclude.some((r) => matches(r, e));
    if (!kept) {
      if (e.level !== 'warning') this.excluded++;
      return;
    }
    if (e.level === 'critical') this.critical++;
    else if (e.level === 'error') this.errors++;
    else this.warnings++;
    const key = `${e.level}\u0000${e.provider}\u0000${e.eventId ?? ''}`;
    const known = this.offenders.get(key);
    if (known) {
      known.count++;
      return;
    }
    if (this.offenders.size >= MAX_OFFENDERS) {
      const otherKey = `${e.level}\u0000(other)`;
      const other = this.offenders.get(otherKey);
      if (other) other.count++;
      else
        this.offenders.set(otherKey, {
          provider: '(other offenders)',
          eventId: null,
          level: e.level,
          count: 1,
          sample: cleanSample(e.message),
        });
      return;
    }
    this.offenders.set(key, {
      provider: e.provider.slice(0, 256),
      eventId: typeof e.eventId === 'string' ? e.eventId.slice(0, 128) : e.eventId,
      level: e.level,
      count: 1,
      sample: cleanSample(e.message),
    });
  }

  private top(levels: RecordLevel[]): EventOffender[] {
    return [...this.offenders.values()]
      .filter((o) => levels.includes(o.level))
      .sort((a, b) => b.count - a.count || a.provider.localeCompare(b.provider))
      .slice(0, HOST_LIMITS.top);
  }

  /** The `eventlog` section; `since` falls back to the oldest record seen. */
  summary(source: string, sinceMs: number | null, warning?: string): HostEventLog {
    const since = sinceMs ?? this.firstMs;
    return {
      source,
      since: since === null ? null : new Date(since).toISOString(),
      critical: this.critical,
      errors: this.errors,
      warnings: this.warnings,
      excluded: this.excluded,
      top: this.top(['critical', 'error']),
      topWarnings: this.top(['warning']),
      ...(warning ? { warning } : {}),
    };
  }
}

/** The `eventlog` section of a source that could not be read: unknown, with the reason. */
export function unreadEventLog(source: string, reason: string): HostEventLog {
  return { source, since: null, critical: null, errors: null, top: [], unknownReason: reason.slice(0, 1000) };
}
