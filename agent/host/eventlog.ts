// The event-log part of a host collection: which source to read (the Windows Event Log, journald,
// syslog files), the window since the last collection, and offline judging of an exported file
// (`voipready host --events FILE`), told apart by content.
import { existsSync } from 'node:fs';
import type { HostConfig } from '../../src/config/host.js';
import { UserError } from '../../src/errors.js';
import type { HostEventLog } from '../../src/host-schema.js';
import type { HostDeps } from './deps.js';
import { compileRules, EventTally, unreadEventLog } from './events.js';
import {
  collectJournal,
  type JournalState,
  journalMissing,
  journalSource,
  tallyJournalJson,
} from './journal.js';
import { collectSyslog, type SyslogFileState } from './syslog.js';
import { collectWindows, tallyWindowsXml } from './windows-events.js';

export interface EventLogState {
  journal: JournalState;
  syslog: Map<string, SyslogFileState>;
  /** When the last collection read the log, ms: the next one starts there. */
  lastReadMs?: number;
}

export function newEventLogState(): EventLogState {
  return { journal: {}, syslog: new Map() };
}

/** Syslog files tried when there is no journal and none is configured. */
const DEFAULT_SYSLOG_FILES = ['/var/log/syslog', '/var/log/messages'];

function newTally(cfg: HostConfig['eventlog']): EventTally {
  return new EventTally(compileRules(cfg.include), compileRules(cfg.exclude));
}

export async function collectEventLog(
  cfg: HostConfig['eventlog'],
  deps: Pick<HostDeps, 'spawn' | 'platform' | 'now'>,
  state: EventLogState,
): Promise<HostEventLog> {
  const nowMs = deps.now();
  // A clock stepped back below the last read: read the configured window again rather than nothing.
  const last = state.lastReadMs !== undefined && state.lastReadMs <= nowMs ? state.lastReadMs : undefined;
  const sinceMs = last ?? nowMs - cfg.since;
  const tally = newTally(cfg);
  const source = cfg.source === 'auto' ? (deps.platform === 'win32' ? 'windows' : 'journald') : cfg.source;
  let result: HostEventLog;
  if (source === 'windows') {
    result = await collectWindows(cfg, deps, sinceMs, tally);
  } else {
    const missing = source === 'journald' ? await journalMissing(cfg) : 'syslog chosen';
    if (missing === undefined) {
      result = await collectJournal(cfg, deps, state.journal, sinceMs, tally);
    } else {
      const fallback = cfg.source === 'auto' && !cfg.directory && !cfg.files;
      const files = cfg.syslogFiles ?? (fallback ? DEFAULT_SYSLOG_FILES.filter((f) => existsSync(f)) : []);
      if (source === 'journald' && !(cfg.syslogFiles || fallback)) {
        result = unreadEventLog(journalSource(cfg), missing);
      } else if (files.length === 0) {
        result = unreadEventLog(
          'syslog',
          `${source === 'journald' ? `${missing}, and ` : ''}no syslog file configured or found`,
        );
      } else {
        result = await collectSyslog(files, state.syslog, sinceMs, nowMs, tally);
      }
    }
  }
  if (result.critical !== null) state.lastReadMs = nowMs;
  return result;
}

/** UTF-16 (PowerShell's `>` writes it) and UTF-8 with or without a byte-order mark. */
function decode(buf: Buffer): { text: string; bytesPerChar: number; skip: number } {
  if (buf[0] === 0xff && buf[1] === 0xfe)
    return { text: buf.toString('utf16le', 2), bytesPerChar: 2, skip: 2 };
  const skip = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  return { text: buf.toString('utf8', skip), bytesPerChar: 0, skip };
}

/**
 * Judges an exported event log offline: `wevtutil qe … /f:xml` or `/f:RenderedXml` output, or
 * `journalctl -o json` lines. A file damaged part-way yields the events before the damage and a
 * warning naming the byte offset; a file with nothing readable is a UserError.
 */
export async function readEventsFile(
  file: string,
  cfg: HostConfig['eventlog'],
  deps: Pick<HostDeps, 'readFile'>,
): Promise<HostEventLog> {
  let buf: Buffer;
  try {
    buf = await deps.readFile(file);
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const { text, bytesPerChar, skip } = decode(buf);
  const first = /\S/.exec(text)?.[0];
  const tally = newTally(cfg);
  let format: string;
  let outcome: { records: number; damagedAt?: number };
  if (first === '{') {
    format = 'journalctl -o json';
    const body = skip > 0 || bytesPerChar === 2 ? Buffer.from(text, 'utf8') : buf;
    outcome = tallyJournalJson(body, tally);
    if (bytesPerChar === 2 && outcome.damagedAt !== undefined) {
      outcome.damagedAt = skip + 2 * body.toString('utf8', 0, outcome.damagedAt).length;
    } else if (outcome.damagedAt !== undefined) outcome.damagedAt += skip;
  } else if (first === '<') {
    format = 'wevtutil xml';
    outcome = tallyWindowsXml(text, tally);
    if (outcome.damagedAt !== undefined) {
      const head = text.slice(0, outcome.damagedAt);
      outcome.damagedAt = skip + (bytesPerChar === 2 ? 2 * head.length : Buffer.byteLength(head));
    }
  } else {
    throw new UserError(`${file} is neither wevtutil XML nor journalctl -o json output`);
  }
  if (outcome.records === 0) {
    const where = outcome.damagedAt !== undefined ? ` (unreadable from byte ${outcome.damagedAt})` : '';
    throw new UserError(`${file}: no readable event (${format})${where}`);
  }
  const warning =
    outcome.damagedAt !== undefined
      ? `${file} is damaged at byte ${outcome.damagedAt}: the ${outcome.records} event(s) before it were judged`
      : undefined;
  return tally.summary(`file ${file} (${format})`, null, warning);
}
