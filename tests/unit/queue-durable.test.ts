import * as fsp from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DurableQueue,
  encodeQueueFile,
  lockQueueDir,
  type QueueEvents,
  type QueueFs,
  type QueueItem,
} from '../../agent/queue/durable-queue.js';

const body = (id: string, pad = 0) => JSON.stringify({ reportId: id, pad: 'x'.repeat(pad) });

function recorder() {
  const drops: { ids: string[]; bound: string }[] = [];
  const corrupt: string[] = [];
  const events: QueueEvents = {
    dropped: (items: QueueItem[], bound: string) => drops.push({ ids: items.map((i) => i.reportId), bound }),
    corrupt: (file: string) => corrupt.push(file),
  };
  return { drops, corrupt, events };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'voipready-queue-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('durable queue', () => {
  it('keeps FIFO order and survives a reopen (agent restart) with nothing lost or duplicated', async () => {
    const { events } = recorder();
    const q = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    for (const id of ['r-1', 'r-2', 'r-3', 'r-4']) await q.enqueue(id, body(id));
    await q.ack(q.peek()!);
    expect(q.ids()).toEqual(['r-2', 'r-3', 'r-4']);

    const reopened = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    expect(reopened.ids()).toEqual(['r-2', 'r-3', 'r-4']);
    expect(JSON.parse((await reopened.read(reopened.peek()!))!).reportId).toBe('r-2');
    // New items sort after the recovered ones (sequence continues, no name collides).
    await reopened.enqueue('r-5', body('r-5'));
    const again = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    expect(again.ids()).toEqual(['r-2', 'r-3', 'r-4', 'r-5']);
    expect(again.bytes).toBe(['r-2', 'r-3', 'r-4', 'r-5'].reduce((n, id) => n + body(id).length, 0));
  });

  it('recovers from a crash mid-write: a torn temp file is discarded, a corrupt file is set aside', async () => {
    const { events, corrupt } = recorder();
    const q = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    await q.enqueue('r-1', body('r-1'));
    // What a SIGKILL between write and rename leaves: a half-written temp file.
    await writeFile(join(dir, '0000000000000002.json.tmp'), '{"reportId":"r-2","pa');
    // What a broken disk could leave under a queue name.
    await writeFile(join(dir, '0000000000000003.json'), '\0\0\0');
    const reopened = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    expect(reopened.ids()).toEqual(['r-1']);
    expect(corrupt).toEqual(['0000000000000003.json']);
    expect((await readdir(dir)).sort()).toEqual(['0000000000000001.json', 'corrupt', 'dead']);
    expect(await readFile(join(dir, 'corrupt', '0000000000000003.json'), 'utf8')).toBe('\0\0\0');
    const next = await reopened.enqueue('r-4', body('r-4'));
    expect(next.seq).toBe(4);
  });

  it('drops the oldest when the report bound is exceeded and says which', async () => {
    const { events, drops } = recorder();
    const q = await DurableQueue.open(dir, { maxReports: 3, maxBytes: 1e6, events });
    for (let i = 1; i <= 5; i++) await q.enqueue(`r-${i}`, body(`r-${i}`));
    expect(q.ids()).toEqual(['r-3', 'r-4', 'r-5']);
    expect(drops).toEqual([
      { ids: ['r-1'], bound: 'maxReports 3' },
      { ids: ['r-2'], bound: 'maxReports 3' },
    ]);
    expect((await readdir(dir)).filter((n) => n.endsWith('.json'))).toHaveLength(3);
  });

  it('drops the oldest when the byte bound is exceeded, also when reopened with a smaller bound', async () => {
    const { events, drops } = recorder();
    const q = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 10_000, events });
    for (let i = 1; i <= 4; i++) await q.enqueue(`r-${i}`, body(`r-${i}`, 3000));
    expect(q.ids()).toEqual(['r-2', 'r-3', 'r-4']);
    expect(drops).toEqual([{ ids: ['r-1'], bound: 'maxBytes 10000' }]);
    const smaller = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 7000, events });
    expect(smaller.ids()).toEqual(['r-3', 'r-4']);
    expect(drops[1]).toEqual({ ids: ['r-2'], bound: 'maxBytes 7000' });
  });

  it('on ENOSPC rejects the enqueue, leaves no partial file and keeps working once space is back', async () => {
    const { events } = recorder();
    let diskFull = false;
    const enospc = () =>
      Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const fs: QueueFs = {
      ...fsp,
      open: (async (path: string, flags: string) => {
        const handle = await fsp.open(path, flags);
        if (!diskFull || !path.endsWith('.tmp')) return handle;
        // The disk fills up half way through the write: some bytes land, then ENOSPC.
        return Object.assign(Object.create(handle), {
          writeFile: async (data: string) => {
            await handle.writeFile(data.slice(0, 10));
            throw enospc();
          },
          close: () => handle.close(),
        });
      }) as QueueFs['open'],
    };
    const q = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events, fs });
    await q.enqueue('r-1', body('r-1'));
    diskFull = true;
    await expect(q.enqueue('r-2', body('r-2'))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(q.ids()).toEqual(['r-1']);
    expect((await readdir(dir)).sort()).toEqual(['0000000000000001.json', 'dead']);
    diskFull = false;
    await q.enqueue('r-2', body('r-2'));
    const reopened = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    expect(reopened.ids()).toEqual(['r-1', 'r-2']);
  });

  it('moves a rejected report to dead/ with its reason, and an ack of a dropped item is harmless', async () => {
    const { events } = recorder();
    const q = await DurableQueue.open(dir, { maxReports: 2, maxBytes: 1e6, events });
    const first = await q.enqueue('r-1', body('r-1'));
    await q.enqueue('r-2', body('r-2'));
    const { deadFile: dead, reasonKept } = await q.deadLetter(
      q.peek()!,
      'HTTP 400: probes.0.forward: required',
    );
    expect(reasonKept).toBe(true);
    expect(await readFile(dead, 'utf8')).toBe(encodeQueueFile(body('r-1')));
    expect(await readFile(dead.replace(/\.json$/, '.reason.txt'), 'utf8')).toContain('HTTP 400');
    await q.enqueue('r-3', body('r-3'));
    await q.enqueue('r-4', body('r-4')); // drops r-2 while it might be in flight
    await q.ack(first);
    expect(q.ids()).toEqual(['r-3', 'r-4']);
    const reopened = await DurableQueue.open(dir, { maxReports: 2, maxBytes: 1e6, events });
    expect(reopened.ids()).toEqual(['r-3', 'r-4']);
  });

  it('sets aside a queue file changed after it was written, with the reason, at start and before sending', async () => {
    const { events } = recorder();
    const reasons: string[] = [];
    events.corrupt = (file, reason) => reasons.push(`${file}: ${reason}`);
    const q = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    for (const id of ['r-1', 'r-2', 'r-3']) await q.enqueue(id, body(id));
    const file = (seq: number) => join(dir, `000000000000000${seq}.json`);
    // Hand edits: a verdict flipped under the old checksum, and a file written without one.
    const edited = (await readFile(file(2), 'utf8')).replace('"pad":""', '"pad":"","ready":true');
    await writeFile(file(2), edited);
    await writeFile(file(4), body('r-4'));
    const reopened = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events });
    expect(reopened.ids()).toEqual(['r-1', 'r-3']);
    expect(reasons).toEqual([
      '0000000000000002.json: checksum mismatch: the report was changed after the agent wrote it',
      '0000000000000004.json: no checksum line: not written by this agent (or edited by hand)',
    ]);
    expect(await readFile(join(dir, 'corrupt', '0000000000000002.json'), 'utf8')).toBe(edited);
    expect(await readFile(join(dir, 'corrupt', '0000000000000002.reason.txt'), 'utf8')).toMatch(
      /^checksum mismatch/,
    );
    // Edited while the agent runs: found when read for sending, set aside, out of the queue.
    await writeFile(file(3), (await readFile(file(3), 'utf8')).replace('r-3', 'r-9'));
    const r3 = reopened.ids().indexOf('r-3');
    expect(r3).toBe(1);
    await reopened.ack(reopened.peek()!);
    expect(await reopened.read(reopened.peek()!)).toBeUndefined();
    expect(reopened.length).toBe(0);
    expect((await readdir(join(dir, 'corrupt'))).sort()).toContain('0000000000000003.json');
    // Sequence numbers continue past set-aside files: no name is reused.
    expect((await reopened.enqueue('r-5', body('r-5'))).seq).toBe(5);
  });

  it('moves a rejected report to dead/ even on a full disk, and keeps it queued when the move fails', async () => {
    const { events } = recorder();
    let failRename = false;
    const fail = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
    const fs: QueueFs = {
      ...fsp,
      // A full disk: no new file can be written (the reason file), but a rename needs no data block.
      open: (async (path: string, flags: string) => {
        if (path.endsWith('.reason.txt')) throw fail('ENOSPC');
        return fsp.open(path, flags);
      }) as QueueFs['open'],
      rename: (async (from: string, to: string) => {
        if (failRename) throw fail('EIO');
        return fsp.rename(from, to);
      }) as QueueFs['rename'],
    };
    const q = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events, fs });
    await q.enqueue('r-1', body('r-1'));
    await q.enqueue('r-2', body('r-2'));
    failRename = true;
    await expect(q.deadLetter(q.peek()!, 'HTTP 400: bad')).rejects.toMatchObject({ code: 'EIO' });
    // Not moved: still the head of the queue, so the sender tries it again (not only after a restart).
    expect(q.ids()).toEqual(['r-1', 'r-2']);
    failRename = false;
    expect(await q.deadLetter(q.peek()!, 'HTTP 400: bad')).toEqual({
      deadFile: join(dir, 'dead', '0000000000000001.json'),
      reasonKept: false,
    });
    expect(q.ids()).toEqual(['r-2']);
    expect(await readdir(join(dir, 'dead'))).toEqual(['0000000000000001.json']);
  });

  it('lets one agent at a time use a queue directory (flock), whatever pid the lock file names', async () => {
    const release = await lockQueueDir(dir);
    expect(await readFile(join(dir, 'agent.lock'), 'utf8')).toBe(`${process.pid}\n`);
    // flock belongs to the open file, so a second claim fails even from the same process.
    await expect(lockQueueDir(dir)).rejects.toMatchObject({
      code: 'EBUSY',
      message: `queue ${dir} is in use by process ${process.pid}`,
    });
    await release();
    // The file names a live process (pid 1) that holds no lock — what a reused pid looks like after
    // a crash: the directory is free.
    await writeFile(join(dir, 'agent.lock'), '1\n');
    const again = await lockQueueDir(dir);
    expect(await readFile(join(dir, 'agent.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await again();
  });
});
