// Real journal files for tests and the bench: entries in journald's export format
// (systemd-journal-export-formats(7)) written by Debian's systemd-journal-remote, read back by
// journalctl --directory like any system journal.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const JOURNAL_REMOTE = '/lib/systemd/systemd-journal-remote';

export interface JournalEntry {
  priority: number;
  identifier: string;
  message: string;
  messageId?: string;
  timeMs: number;
}

const BOOT_ID = '0123456789abcdef0123456789abcdef';

function exportEntry(e: JournalEntry, seq: number): string {
  const fields = [
    `__REALTIME_TIMESTAMP=${Math.round(e.timeMs * 1000)}`,
    `__MONOTONIC_TIMESTAMP=${seq + 1}`,
    `_BOOT_ID=${BOOT_ID}`,
    `PRIORITY=${e.priority}`,
    `SYSLOG_IDENTIFIER=${e.identifier}`,
    `MESSAGE=${e.message}`,
    ...(e.messageId ? [`MESSAGE_ID=${e.messageId}`] : []),
    '_HOSTNAME=ic-test',
  ];
  return `${fields.join('\n')}\n\n`;
}

/** Writes the entries to DIR/remote.journal (DIR created); resolves when the file is complete. */
export async function writeJournal(dir: string, entries: Iterable<JournalEntry>): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'remote.journal');
  const child = spawn(JOURNAL_REMOTE, [`--output=${file}`, '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  let seq = 0;
  let chunk = '';
  for (const e of entries) {
    chunk += exportEntry(e, seq++);
    if (chunk.length > 1 << 16) {
      if (!child.stdin!.write(chunk)) await new Promise((r) => child.stdin!.once('drain', r));
      chunk = '';
    }
  }
  child.stdin!.end(chunk);
  const code = await exited;
  if (code !== 0) throw new Error(`systemd-journal-remote exited ${code}: ${stderr}`);
  return file;
}
