import * as fsp from 'node:fs/promises';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DurableQueue,
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
    expect(JSON.parse(await reopened.read(reopened.peek()!)).reportId).toBe('r-2');
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
    const dead = await q.deadLetter(q.peek()!, 'HTTP 400: probes.0.forward: required');
    expect(await readFile(dead, 'utf8')).toBe(body('r-1'));
    expect(await readFile(dead.replace(/\.json$/, '.reason.txt'), 'utf8')).toContain('HTTP 400');
    await q.enqueue('r-3', body('r-3'));
    await q.enqueue('r-4', body('r-4')); // drops r-2 while it might be in flight
    await q.ack(first);
    expect(q.ids()).toEqual(['r-3', 'r-4']);
    const reopened = await DurableQueue.open(dir, { maxReports: 2, maxBytes: 1e6, events });
    expect(reopened.ids()).toEqual(['r-3', 'r-4']);
  });

  it("lets one agent at a time use a queue directory, and takes over a dead holder's lock", async () => {
    const release = await lockQueueDir(dir);
    await expect(lockQueueDir(dir, process.pid + 1)).rejects.toMatchObject({
      code: 'EBUSY',
      message: `queue ${dir} is in use by process ${process.pid}`,
    });
    await release();
    // A lock left by a process that no longer exists (kill -9): pid_max is at most 2^22.
    await writeFile(join(dir, 'agent.lock'), `${2 ** 22 + 7}\n`);
    const again = await lockQueueDir(dir);
    expect(await readFile(join(dir, 'agent.lock'), 'utf8')).toBe(`${process.pid}\n`);
    await again();
    expect(await readdir(dir)).toEqual([]);
  });
});
