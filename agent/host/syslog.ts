// Syslog files, the fallback where there is no journal: severity is read where the line carries it,
// as an RFC 5424/3164 PRI ("<11>…", severity = PRI % 8, RFC 5424 §6.2.1) or a facility.severity
// field ("kern.err", rsyslog's %syslogfacility-text%.%syslogseverity-text%). Lines without either
// cannot be judged: a file of only such lines makes the check unknown, saying how to fix it.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { HostEventLog } from '../../src/host-schema.js';
import { type EventRecord, type EventTally, levelOfPriority, unreadEventLog } from './events.js';

const SEVERITY_WORDS: Record<string, number> = {
  emerg: 0,
  panic: 0,
  alert: 1,
  crit: 2,
  err: 3,
  error: 3,
  warning: 4,
  warn: 4,
  notice: 5,
  info: 6,
  debug: 7,
};
const FACILITY_SEVERITY =
  /\s(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])\.(emerg|panic|alert|crit|err|error|warning|warn|notice|info|debug)\s/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const BSD_TIME = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})/;
const ISO_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))/;
const RFC5424_REST = /^\S+ (\S+) \S+ (\S+) (?:-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(.*)$/s;
/** "host tag[pid]: message" or "host tag: message" after the time. */
const TAG = /^\S+\s+([^\s:[\]]{1,128})(?:\[\d+\])?:\s?(.*)$/s;

/** RFC 3164 times have no year: the latest year that does not put the line in the future. */
function bsdTime(m: RegExpExecArray, nowMs: number): number | null {
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return null;
  const year = new Date(nowMs).getUTCFullYear();
  const t = (y: number) => Date.UTC(y, month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  return t(year) > nowMs + 86_400_000 ? t(year - 1) : t(year);
}

/** One syslog line; severity undefined when the line carries none. */
export function syslogRecord(line: string, nowMs: number): { record: EventRecord; severity?: number } {
  let rest = line;
  let severity: number | undefined;
  const pri = /^<(\d{1,3})>(1 )?/.exec(rest);
  if (pri && Number(pri[1]) <= 191) {
    severity = Number(pri[1]) % 8;
    rest = rest.slice(pri[0].length);
  }
  const rfc5424 = pri?.[2] !== undefined;
  let timeMs: number | null = null;
  const iso = ISO_TIME.exec(rest);
  const bsd = iso ? null : BSD_TIME.exec(rest);
  if (iso) {
    const t = Date.parse(iso[1]!);
    timeMs = Number.isFinite(t) ? t : null;
    rest = rest.slice(iso[0].length).trimStart();
  } else if (bsd) {
    timeMs = bsdTime(bsd, nowMs);
    rest = rest.slice(bsd[0].length).trimStart();
  }
  if (severity === undefined) {
    const fs = FACILITY_SEVERITY.exec(` ${rest}`);
    if (fs) {
      severity = SEVERITY_WORDS[fs[1]!];
      rest = rest.replace(FACILITY_SEVERITY, ' ').trimStart();
    }
  }
  // RFC 5424 §6: HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG ("-" for a nil value).
  const structured = rfc5424 ? RFC5424_REST.exec(rest) : null;
  if (structured) {
    return {
      record: {
        provider: structured[1] === '-' ? 'unknown' : structured[1]!,
        eventId: structured[2] === '-' ? null : structured[2]!,
        level: severity === undefined ? 'info' : levelOfPriority(severity),
        timeMs,
        message: structured[3] ?? '',
      },
      ...(severity !== undefined ? { severity } : {}),
    };
  }
  const tag = TAG.exec(rest);
  return {
    record: {
      provider: tag?.[1] ?? 'unknown',
      eventId: null,
      level: severity === undefined ? 'info' : levelOfPriority(severity),
      timeMs,
      message: tag?.[2] ?? rest,
    },
    ...(severity !== undefined ? { severity } : {}),
  };
}

/** Where the last collection stopped reading a file; a new inode or a shorter file starts again. */
export interface SyslogFileState {
  ino: number;
  offset: number;
}

/** Reads new lines of each file (the first time: lines dated since sinceMs) through the tally. */
export async function collectSyslog(
  files: string[],
  state: Map<string, SyslogFileState>,
  sinceMs: number,
  nowMs: number,
  tally: EventTally,
): Promise<HostEventLog> {
  const source = `syslog ${files.join(', ')}`;
  let lines = 0;
  let judged = 0;
  for (const file of files) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(file);
    } catch (err) {
      return unreadEventLog(source, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    const known = state.get(file);
    const size = Number(info.size);
    const resume = known && known.ino === Number(info.ino) && known.offset <= size ? known.offset : 0;
    state.set(file, { ino: Number(info.ino), offset: size });
    if (resume >= size) continue;
    // Up to the size seen now: lines written meanwhile are the next collection's.
    const input = createReadStream(file, { start: resume, end: size - 1 });
    const opened = new Promise<string | undefined>((resolve) => {
      input.once('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
      input.once('open', () => resolve(undefined));
    });
    const openError = await opened;
    if (openError) return unreadEventLog(source, `cannot read ${file}: ${openError}`);
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (line.trim().length === 0) continue;
      const { record, severity } = syslogRecord(line, nowMs);
      // Only the first read of a file filters by time; later reads start where the last ended.
      if (!known && record.timeMs !== null && record.timeMs < sinceMs) continue;
      lines++;
      if (severity === undefined) continue;
      judged++;
      tally.add(record);
    }
  }
  if (lines > 0 && judged === 0) {
    return unreadEventLog(
      source,
      `${lines} line(s) carry no severity (write the files with a template giving <PRI> or facility.severity, or use journald)`,
    );
  }
  const summary = tally.summary(source, sinceMs);
  const unjudged = lines - judged;
  return unjudged > 0
    ? { ...summary, warning: `${unjudged} line(s) without a severity were not judged` }
    : summary;
}
