// The agent's durable on-disk queue: every report is written here before any send attempt and leaves
// only when the collector acknowledged it. One file per report, written to a temp name, fsynced,
// renamed into place and the directory fsynced (rename is atomic on POSIX file systems), so a crash at
// any instant leaves either the whole report or no report — never a torn one under a queue name.
// File names carry a zero-padded sequence number: directory order is FIFO order. Each file starts
// with a checksum line (`sha256:<hex of the body>`), so a file changed after the agent wrote it — by
// hand, by a tool, by a bad disk — is set aside with the reason rather than sent as the agent's
// evidence.
import { createHash } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** The file-system calls the queue uses; tests inject failures (ENOSPC, torn writes) through this. */
export type QueueFs = Pick<
  typeof fsPromises,
  'mkdir' | 'open' | 'rename' | 'unlink' | 'readdir' | 'readFile'
>;

export interface QueueItem {
  seq: number;
  reportId: string;
  bytes: number;
  file: string;
}

export interface QueueEvents {
  /** The size bound was exceeded and these (oldest) items were removed unsent. */
  dropped(items: QueueItem[], bound: string): void;
  /** A file in the queue directory is not a report the agent wrote; moved to corrupt/ with the reason. */
  corrupt(file: string, reason: string): void;
}

export interface QueueOptions {
  maxReports: number;
  maxBytes: number;
  events: QueueEvents;
  fs?: QueueFs;
}

const SEQ_DIGITS = 16;
const ITEM_RE = /^(\d{16})\.json$/;
const TMP_SUFFIX = '.tmp';

/** Reads the report id out of a queued body; undefined when the body is not a report. */
function reportIdOf(body: string): string | undefined {
  try {
    const id = (JSON.parse(body) as { reportId?: unknown }).reportId;
    return typeof id === 'string' && id.length > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

const CHECKSUM_PREFIX = 'sha256:';
const CHECKSUM_LINE_BYTES = CHECKSUM_PREFIX.length + 64 + 1;

function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A queue file's bytes: the checksum line, then the report exactly as it will be sent. */
export function encodeQueueFile(body: string): string {
  return `${CHECKSUM_PREFIX}${sha256Hex(body)}\n${body}`;
}

/** A queue file read back: the report body and id, or why it is not one the agent wrote. */
export function decodeQueueFile(data: Buffer): { body: string; reportId: string } | { problem: string } {
  const line = data.subarray(0, CHECKSUM_LINE_BYTES).toString('latin1');
  const m = /^sha256:([0-9a-f]{64})\n$/.exec(line);
  if (!m) return { problem: 'no checksum line: not written by this agent (or edited by hand)' };
  const bodyBytes = data.subarray(CHECKSUM_LINE_BYTES);
  if (sha256Hex(bodyBytes) !== m[1]) {
    return { problem: 'checksum mismatch: the report was changed after the agent wrote it' };
  }
  const body = bodyBytes.toString('utf8');
  const reportId = reportIdOf(body);
  return reportId === undefined ? { problem: 'not a JSON report' } : { body, reportId };
}

export class DurableQueue {
  readonly dir: string;
  readonly deadDir: string;
  private readonly items: QueueItem[] = [];
  private totalBytes = 0;
  private nextSeq = 1;
  private readonly fs: QueueFs;

  private constructor(
    dir: string,
    private readonly options: QueueOptions,
  ) {
    this.dir = dir;
    this.deadDir = join(dir, 'dead');
    this.fs = options.fs ?? fsPromises;
  }

  /**
   * Opens (creating) a queue directory and recovers its state: leftover temp files of an interrupted
   * write are removed (that report was never acknowledged as queued), unreadable files go to corrupt/.
   */
  static async open(dir: string, options: QueueOptions): Promise<DurableQueue> {
    const q = new DurableQueue(dir, options);
    await q.recover();
    return q;
  }

  private async recover(): Promise<void> {
    const fs = this.fs;
    await fs.mkdir(this.deadDir, { recursive: true });
    const names = (await fs.readdir(this.dir)).sort();
    for (const name of names) {
      const path = join(this.dir, name);
      if (name.endsWith(TMP_SUFFIX)) {
        await fs.unlink(path);
        continue;
      }
      const m = ITEM_RE.exec(name);
      if (!m) continue;
      const seq = Number(m[1]);
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
      const decoded = decodeQueueFile(await fs.readFile(path));
      if ('problem' in decoded) {
        await this.setAside(path, name, decoded.problem);
        continue;
      }
      this.push({ seq, reportId: decoded.reportId, bytes: Buffer.byteLength(decoded.body), file: path });
    }
    // Sequence numbers keep growing past dead-lettered items too, so names never collide.
    for (const name of [...(await fs.readdir(this.deadDir)), ...(await this.corruptNames())]) {
      const m = /^(\d{16})\./.exec(name);
      if (m) this.nextSeq = Math.max(this.nextSeq, Number(m[1]) + 1);
    }
    await this.enforceBound();
  }

  private async corruptNames(): Promise<string[]> {
    return this.fs.readdir(join(this.dir, 'corrupt')).catch(() => []);
  }

  /**
   * Moves a file that is not a genuine report to corrupt/, the reason beside it (best effort: on a
   * full disk the log line carries it), and tells the events.
   */
  private async setAside(path: string, name: string, reason: string): Promise<void> {
    const corruptDir = join(this.dir, 'corrupt');
    await this.fs.mkdir(corruptDir, { recursive: true });
    await this.fs.rename(path, join(corruptDir, name));
    await this.writeReason(join(corruptDir, `${name.replace(/\.json$/, '')}.reason.txt`), reason);
    this.options.events.corrupt(name, reason);
  }

  /** Writes a reason file; false (and no partial file) when it cannot be written, e.g. ENOSPC. */
  private async writeReason(file: string, reason: string): Promise<boolean> {
    try {
      const handle = await this.fs.open(file, 'w');
      try {
        await handle.writeFile(`${reason}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      return true;
    } catch {
      await this.fs.unlink(file).catch(() => undefined);
      return false;
    }
  }

  private push(item: QueueItem): void {
    this.items.push(item);
    this.totalBytes += item.bytes;
  }

  get length(): number {
    return this.items.length;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** The oldest report not yet acknowledged. */
  peek(): QueueItem | undefined {
    return this.items[0];
  }

  ids(): string[] {
    return this.items.map((i) => i.reportId);
  }

  /**
   * Stores a report durably. Resolves only once it is on disk (file and directory fsynced); rejects
   * (e.g. ENOSPC) leaving no partial file under a queue name, so the caller may simply retry later.
   */
  async enqueue(reportId: string, body: string): Promise<QueueItem> {
    const seq = this.nextSeq++;
    const name = String(seq).padStart(SEQ_DIGITS, '0') + '.json';
    const file = join(this.dir, name);
    const tmp = file + TMP_SUFFIX;
    let renamed = false;
    try {
      const handle = await this.fs.open(tmp, 'wx');
      try {
        await handle.writeFile(encodeQueueFile(body), 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.fs.rename(tmp, file);
      renamed = true;
      await this.syncDir();
    } catch (err) {
      // Not queued as far as the caller knows, so leave nothing behind that a restart would send.
      await this.fs.unlink(renamed ? file : tmp).catch(() => undefined);
      throw err;
    }
    const item = { seq, reportId, bytes: Buffer.byteLength(body), file };
    this.push(item);
    await this.enforceBound();
    return item;
  }

  /**
   * The report's body as it was queued; undefined when the file no longer matches its checksum (it
   * is then set aside to corrupt/ and out of the queue). Rejects ENOENT for a file deleted by hand.
   */
  async read(item: QueueItem): Promise<string | undefined> {
    const decoded = decodeQueueFile(await this.fs.readFile(item.file));
    if (!('problem' in decoded)) return decoded.body;
    await this.setAside(item.file, `${String(item.seq).padStart(SEQ_DIGITS, '0')}.json`, decoded.problem);
    this.remove(item);
    return undefined;
  }

  /** The collector acknowledged the item (2xx, a duplicate ack included): remove it. */
  async ack(item: QueueItem): Promise<void> {
    if (!this.items.includes(item)) return;
    // Unlink first: if that fails the item stays at the head and is sent (and acknowledged) again.
    await this.unlinkIfPresent(item.file);
    this.remove(item);
    await this.syncDir();
  }

  /**
   * The collector rejected the item for good: move it to dead/ with the reason beside it. The item
   * leaves the queue only once the move succeeded — if it fails (EIO, ENOSPC for a new directory
   * block) the item stays at the head and the caller retries. A move needs no data blocks, a reason
   * file does: on a full disk the report is still dead-lettered and `reasonKept` is false.
   */
  async deadLetter(item: QueueItem, reason: string): Promise<{ deadFile: string; reasonKept: boolean }> {
    const base = join(this.deadDir, String(item.seq).padStart(SEQ_DIGITS, '0'));
    const deadFile = `${base}.json`;
    if (!this.items.includes(item)) return { deadFile, reasonKept: false };
    await this.fs.rename(item.file, deadFile);
    this.remove(item);
    const reasonKept = await this.writeReason(`${base}.reason.txt`, reason);
    await this.syncDir();
    return { deadFile, reasonKept };
  }

  private remove(item: QueueItem): boolean {
    const i = this.items.indexOf(item);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.totalBytes -= item.bytes;
    return true;
  }

  private async unlinkIfPresent(file: string): Promise<void> {
    try {
      await this.fs.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** Drops the oldest items while the queue is over its bound (the newest report always stays). */
  private async enforceBound(): Promise<void> {
    const { maxReports, maxBytes } = this.options;
    const dropped: QueueItem[] = [];
    let bound = '';
    while (this.items.length > 1 && (this.items.length > maxReports || this.totalBytes > maxBytes)) {
      bound = this.items.length > maxReports ? `maxReports ${maxReports}` : `maxBytes ${maxBytes}`;
      const oldest = this.items[0]!;
      this.remove(oldest);
      dropped.push(oldest);
    }
    if (dropped.length === 0) return;
    for (const item of dropped) await this.unlinkIfPresent(item.file);
    await this.syncDir();
    this.options.events.dropped(dropped, bound);
  }

  /** fsync the directory so a rename or unlink survives a power loss, not only a process crash. */
  private async syncDir(): Promise<void> {
    const handle = await this.fs.open(this.dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

type FlockFn = (fd: number, flags: 'exnb', done: (err: NodeJS.ErrnoException | null) => void) => void;

/** flock(2) from fs-ext (Node has no binding of its own); loaded on first use. */
function loadFlock(): FlockFn {
  const require = createRequire(import.meta.url);
  try {
    return (require('fs-ext') as { flock: FlockFn }).flock;
  } catch (err) {
    throw new Error(
      `cannot lock the queue: the fs-ext module does not load (${(err as Error).message.split('\n')[0]})`,
    );
  }
}

/**
 * Claims the queue directory for this process, so two agents never interleave writes to one queue:
 * an exclusive flock(2) on `agent.lock`. The kernel holds it for the open file and drops it when
 * that closes — on exit, on a crash, on kill -9 — so nothing stale is left behind and no process id
 * is trusted: a pid in a lock file can be reused by an unrelated process after a crash, while a
 * flock cannot outlive its holder. (An O_EXCL lock file survives kill -9 and needs exactly that
 * guess to be taken over.) The file keeps the last holder's pid for people to read; it is never
 * removed, since removing a flock'd file lets a second agent lock a new file of the same name.
 * Throws an Error with code EBUSY naming the holder when another process has the lock.
 */
export async function lockQueueDir(dir: string, fs: QueueFs = fsPromises): Promise<() => Promise<void>> {
  const flock = loadFlock();
  await fs.mkdir(dir, { recursive: true });
  const lock = join(dir, 'agent.lock');
  // No truncation before the lock is ours: the holder's pid stays readable for the message.
  const handle = await fs.open(lock, 'a+');
  try {
    await new Promise<void>((resolve, reject) =>
      flock(handle.fd, 'exnb', (err) => (err ? reject(err) : resolve())),
    );
  } catch (err) {
    const holder = (await handle.readFile('utf8').catch(() => '')).trim();
    await handle.close();
    if (
      (err as NodeJS.ErrnoException).code !== 'EWOULDBLOCK' &&
      (err as NodeJS.ErrnoException).code !== 'EAGAIN'
    ) {
      throw err;
    }
    const by = /^\d+$/.test(holder) ? `process ${holder}` : 'another process';
    throw Object.assign(new Error(`queue ${dir} is in use by ${by}`), { code: 'EBUSY' });
  }
  try {
    await handle.truncate(0);
    await handle.write(`${process.pid}\n`, 0, 'utf8');
  } catch {
    // Full disk: the lock is the flock, not the text; the agent still starts.
  }
  return () => handle.close();
}
