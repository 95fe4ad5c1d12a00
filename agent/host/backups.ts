// Backups: the newest file matching each configured glob, or the time a backup command reports, and
// its age. A location that is missing or unreadable is unknown (not measured); a location that holds
// no backup, or a command that says the backup failed, is a failure.
import { stat } from 'node:fs/promises';
import type { BackupConfig } from '../../src/config/host.js';
import type { HostBackup } from '../../src/host-schema.js';
import type { HostDeps } from './deps.js';
import { runToText } from './exec.js';

const HOUR_MS = 3_600_000;

/** The directory part of a glob before its first wildcard. */
export function globBase(pattern: string): string {
  const parts = pattern.split(/[\\/]/);
  const wild = parts.findIndex((p) => /[*?[{]/.test(p));
  const base = (wild < 0 ? parts.slice(0, -1) : parts.slice(0, wild)).join('/');
  return base === '' ? '/' : base;
}

function aged(name: string, source: string, newestMs: number, nowMs: number, file?: string): HostBackup {
  return {
    name,
    source,
    newest: new Date(newestMs).toISOString(),
    ageHours: Math.round(((nowMs - newestMs) / HOUR_MS) * 1000) / 1000,
    ...(file ? { file } : {}),
  };
}

async function fromGlob(
  name: string,
  pattern: string,
  deps: Pick<HostDeps, 'glob' | 'mtimeMs' | 'now'>,
): Promise<HostBackup> {
  const none = { name, source: pattern, newest: null, ageHours: null };
  const base = globBase(pattern);
  try {
    if (!(await stat(base)).isDirectory()) return { ...none, unknownReason: `${base} is not a directory` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : code;
    return { ...none, unknownReason: `backup directory ${base} ${why}` };
  }
  let files: string[];
  try {
    files = await deps.glob(pattern);
  } catch (err) {
    return { ...none, unknownReason: `cannot list ${pattern}: ${(err as Error).message}` };
  }
  if (files.length === 0) return { ...none, failed: `no file matches ${pattern}: no backup found` };
  let newest: { file: string; mtimeMs: number } | undefined;
  for (const file of files) {
    try {
      const mtimeMs = await deps.mtimeMs(file);
      if (!newest || mtimeMs > newest.mtimeMs) newest = { file, mtimeMs };
    } catch {
      // removed between listing and stat (a rotation): the others still tell
    }
  }
  if (!newest) return { ...none, unknownReason: `the files matching ${pattern} could not be read` };
  return aged(name, pattern, newest.mtimeMs, deps.now(), newest.file);
}

/** The last non-empty line: an ISO 8601 time or seconds since the epoch. */
export function parseBackupTime(stdout: string): number | undefined {
  const last = stdout.trim().split(/\r?\n/).pop()?.trim() ?? '';
  if (/^\d{9,11}(\.\d+)?$/.test(last)) return Number(last) * 1000;
  if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(last)) {
    const t = Date.parse(last);
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}

async function fromCommand(
  name: string,
  argv: string[],
  timeoutMs: number,
  deps: Pick<HostDeps, 'spawn' | 'now'>,
): Promise<HostBackup> {
  const source = argv.join(' ');
  const none = { name, source, newest: null, ageHours: null };
  const out = await runToText(deps, argv[0]!, argv.slice(1), timeoutMs);
  if ('error' in out) {
    // A non-zero exit is the command's way of saying the backup failed; anything else is not knowing.
    return out.code !== undefined
      ? { ...none, failed: `backup command: ${out.error}` }
      : { ...none, unknownReason: out.error };
  }
  const t = parseBackupTime(out.text);
  if (t === undefined) {
    return {
      ...none,
      unknownReason: 'the backup command printed no time (ISO 8601 or epoch seconds) as its last line',
    };
  }
  return aged(name, source, t, deps.now());
}

export async function collectBackups(
  configs: BackupConfig[],
  deps: Pick<HostDeps, 'glob' | 'mtimeMs' | 'now' | 'spawn'>,
): Promise<HostBackup[]> {
  const out: HostBackup[] = [];
  for (const b of configs) {
    if (b.glob) out.push(await fromGlob(b.name ?? b.glob, b.glob, deps));
    else if (b.command)
      out.push(await fromCommand(b.name ?? b.command.join(' ').slice(0, 256), b.command, b.timeout, deps));
  }
  return out;
}
