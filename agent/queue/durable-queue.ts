// The agent's durable on-disk queue: every report is written here before any send attempt and leaves
// only when the collector acknowledged it. One file per report, written to a temp name, fsynced,
// renamed into place and the directory fsynced (rename is atomic on POSIX file systems), so a crash at
// any instant leaves either the whole report or no report — never a torn one under a queue name.
// File names carry a zero-padded sequence number: directory order is FIFO order.
import * as fsPromises from 'node:fs/promises';
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
  /** A file in the queue directory could not be read back as a report; moved to corrupt/. */
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
      const body = await fs.readFile(path, 'utf8');
      const reportId = reportIdOf(body);
      if (reportId === undefined) {
        await fs.mkdir(join(this.dir, 'corrupt'), { recursive: true });
        await fs.rename(path, join(this.dir, 'corrupt', name));
        this.options.events.corrupt(name, 'not a JSON report');
        continue;
      }
      this.push({ seq, reportId, bytes: Buffer.byteLength(body), file: path });
    }
    // Sequence numbers keep growing past dead-lettered items too, so names never collide.
    for (const name of await fs.readdir(this.deadDir)) {
      const m = /^(\d{16})\./.exec(name);
      if (m) this.nextSeq = Math.max(this.nextSeq, Number(m[1]) + 1);
    }
    await this.enforceBound();
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
        await handle.writeFile(body, 'utf8');
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

  async read(item: QueueItem): Promise<string> {
    return this.fs.readFile(item.file, 'utf8');
  }

  /** The collector acknowledged the item (2xx, a duplicate ack included): remove it. */
  async ack(item: QueueItem): Promise<void> {
    if (!this.items.includes(item)) return;
    // Unlink first: if that fails the item stays at the head and is sent (and acknowledged) again.
    await this.unlinkIfPresent(item.file);
    this.remove(item);
    await this.syncDir();
  }

  /** The collector rejected the item for good: keep it in dead/ with the reason beside it. */
  async deadLetter(item: QueueItem, reason: string): Promise<string> {
    const base = join(this.deadDir, String(item.seq).padStart(SEQ_DIGITS, '0'));
    if (!this.remove(item)) return `${base}.json`;
    const handle = await this.fs.open(`${base}.reason.txt`, 'w');
    try {
      await handle.writeFile(`${reason}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.fs.rename(item.file, `${base}.json`);
    await this.syncDir();
    return `${base}.json`;
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

/** Whether a process with this id exists (signal 0 checks without sending anything). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims the queue directory for this process (`agent.lock` holding the pid), so two agents never
 * interleave writes to one queue. A lock left by a process that no longer exists (kill -9, power
 * loss) is taken over. Throws an Error with code EBUSY naming the holder otherwise.
 */
export async function lockQueueDir(
  dir: string,
  pid = process.pid,
  fs: QueueFs = fsPromises,
): Promise<() => Promise<void>> {
  await fs.mkdir(dir, { recursive: true });
  const lock = join(dir, 'agent.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await fs.open(lock, 'wx');
      try {
        await handle.writeFile(`${pid}\n`, 'utf8');
        await handle.sync();
      } catch (err) {
        // On a full disk the lock is held by the empty file alone (a later agent takes it over as
        // stale): the agent must still start and keep its reports in memory until space returns.
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') {
          await handle.close();
          await fs.unlink(lock).catch(() => undefined);
          throw err;
        }
      }
      await handle.close();
      return () => fs.unlink(lock).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(await fs.readFile(lock, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== pid && processAlive(holder)) {
        throw Object.assign(new Error(`queue ${dir} is in use by process ${holder}`), { code: 'EBUSY' });
      }
      await fs.unlink(lock).catch(() => undefined);
    }
  }
  throw Object.assign(new Error(`cannot take the lock ${lock}`), { code: 'EBUSY' });
}
