// journald through `journalctl -o json` (one JSON object per line; see systemd.journal-fields(7) and
// the JSON format of journalctl(1)): the records since the last collection, or a customer's exported
// file judged offline.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { HostConfig } from '../../src/config/host.js';
import type { HostEventLog } from '../../src/host-schema.js';
import type { HostDeps } from './deps.js';
import { type EventRecord, type EventTally, levelOfPriority, unreadEventLog } from './events.js';

/** A field's value: a string, several values (array), binary data (byte array) or null (too large). */
function fieldText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    if (v.length > 0 && v.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
      return Buffer.from(v as number[]).toString('utf8');
    }
    const first = v.find((x) => typeof x === 'string' || Array.isArray(x));
    return first === undefined ? undefined : fieldText(first);
  }
  return undefined;
}

/** One journal entry as an EventRecord; undefined when it is not an object or carries no priority. */
export function journalRecord(entry: unknown): EventRecord | undefined {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined;
  const e = entry as Record<string, unknown>;
  const priority = Number(fieldText(e.PRIORITY));
  if (!Number.isInteger(priority) || priority < 0 || priority > 7) return undefined;
  const realtimeUs = Number(fieldText(e.__REALTIME_TIMESTAMP));
  return {
    provider: fieldText(e.SYSLOG_IDENTIFIER) ?? fieldText(e._COMM) ?? fieldText(e._SYSTEMD_UNIT) ?? 'unknown',
    eventId: fieldText(e.MESSAGE_ID) ?? null,
    level: levelOfPriority(priority),
    timeMs: Number.isFinite(realtimeUs) && realtimeUs > 0 ? Math.floor(realtimeUs / 1000) : null,
    message: fieldText(e.MESSAGE) ?? '',
  };
}

/** Offline: `journalctl -o json` lines in a buffer; stops at the first damaged line. */
export function tallyJournalJson(buf: Buffer, tally: EventTally): { records: number; damagedAt?: number } {
  let records = 0;
  let start = 0;
  while (start < buf.length) {
    let end = buf.indexOf(0x0a, start);
    if (end < 0) end = buf.length;
    const line = buf.toString('utf8', start, end).trim();
    if (line.length > 0) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return { records, damagedAt: start };
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        return { records, damagedAt: start };
      }
      records++;
      const record = journalRecord(parsed);
      if (record) tally.add(record);
    }
    start = end + 1;
  }
  return { records };
}

export interface JournalState {
  /** __CURSOR of the last entry read: the next collection starts after it. */
  cursor?: string;
}

/** Fields asked of journalctl: less to format and parse than every field of every entry. */
const OUTPUT_FIELDS = 'PRIORITY,MESSAGE,MESSAGE_ID,SYSLOG_IDENTIFIER,_COMM,_SYSTEMD_UNIT';

const SYSTEM_JOURNALS = ['/var/log/journal', '/run/log/journal'];

/** Whether a directory (or its machine-id subdirectories) holds journal files. */
async function holdsJournal(dir: string, depth = 1): Promise<boolean> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  if (entries.some((e) => e.isFile() && /\.journal~?$/.test(e.name))) return true;
  if (depth === 0) return false;
  for (const e of entries)
    if (e.isDirectory() && (await holdsJournal(join(dir, e.name), depth - 1))) return true;
  return false;
}

export function journalSource(cfg: HostConfig['eventlog']): string {
  if (cfg.directory) return `journald (--directory ${cfg.directory})`;
  if (cfg.files) return `journald (--file ${cfg.files.join(', ')})`;
  return 'journald';
}

/** Why the journal configured cannot be read, or undefined when there is one to read. */
export async function journalMissing(cfg: HostConfig['eventlog']): Promise<string | undefined> {
  if (cfg.files) return undefined; // journalctl names a missing file itself
  const dirs = cfg.directory ? [cfg.directory] : SYSTEM_JOURNALS;
  for (const d of dirs) if (await holdsJournal(d)) return undefined;
  return `no journal files in ${dirs.join(' or ')}`;
}

/**
 * Reads priority warning and worse after the state's cursor (the first time: since `sinceMs`, which
 * is also the window start reported), streaming journalctl's output through the tally; the state's
 * cursor moves to the last entry read.
 */
export async function collectJournal(
  cfg: HostConfig['eventlog'],
  deps: Pick<HostDeps, 'spawn'>,
  state: JournalState,
  sinceMs: number,
  tally: EventTally,
): Promise<HostEventLog> {
  const source = journalSource(cfg);
  const args = ['-o', 'json', '--no-pager', '-q', '-p', '0..4', `--output-fields=${OUTPUT_FIELDS}`];
  if (cfg.directory) args.push('--directory', cfg.directory);
  for (const f of cfg.files ?? []) args.push('--file', f);
  if (state.cursor) args.push('--after-cursor', state.cursor);
  else args.push('--since', `@${Math.floor(sinceMs / 1000)}`);
  let child: ReturnType<HostDeps['spawn']>;
  try {
    child = deps.spawn('journalctl', args);
  } catch (err) {
    return unreadEventLog(source, `cannot run journalctl: ${(err as Error).message}`);
  }
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString('utf8');
  });
  const exit = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  const resumed = state.cursor !== undefined;
  let cursor: string | undefined;
  let damaged: string | undefined;
  let offset = 0;
  const lines = createInterface({ input: child.stdout!, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    const at = offset;
    offset += Buffer.byteLength(line) + 1;
    if (damaged || line.length === 0) continue;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      damaged = `journalctl output unreadable at byte ${at}; entries after it were not counted`;
      continue;
    }
    const c = fieldText((entry as Record<string, unknown> | null)?.__CURSOR);
    if (c) cursor = c;
    const record = journalRecord(entry);
    // --since seeks by time and reads on: an entry written later with an older clock is left out here.
    if (record && (resumed || record.timeMs === null || record.timeMs >= sinceMs)) tally.add(record);
  }
  const { code, error } = await exit;
  if (error) {
    const why =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'journalctl is not installed' : error.message;
    return unreadEventLog(source, why);
  }
  if (code !== 0) {
    const line = stderr.trim().split('\n')[0] ?? '';
    return unreadEventLog(source, `journalctl exited ${code}${line ? `: ${line}` : ''}`);
  }
  if (cursor) state.cursor = cursor;
  return tally.summary(source, sinceMs, damaged);
}
