// A real full disk: the agent's queue lives on a 64 KiB tmpfs that the test fills to the last byte,
// so the kernel answers the agent's writes with ENOSPC. The agent (a real process, probing a real
// reflector, sending to a real collector) must log it, keep running, and once space is freed write
// the held reports in order and deliver every one of them — nothing lost, nothing twice.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import type { RunningCollector } from '../../collector/server.js';
import { SQLITE_FILE } from '../../collector/store/sqlite.js';
import { agentCredentials, agentLog, agentYaml, startCollectorFor } from '../helpers/agent-setup.js';
import { cliUnavailableReason, killAllCli, startCli } from '../helpers/cli.js';

const execFileP = promisify(execFile);
const skipReason =
  cliUnavailableReason() ??
  (process.getuid?.() === 0 ? undefined : 'needs root to mount a small tmpfs (a real full disk)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skipReason)('agent on a full disk (real ENOSPC from a tmpfs)', () => {
  let dir: string;
  let mnt: string;
  let mounted = false;
  let reflector: Reflector;
  let collector: RunningCollector;
  const { token, tokenHash } = agentCredentials();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-diskfull-'));
    mnt = join(dir, 'small-disk');
    await mkdir(mnt);
    await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
    mounted = true;
    reflector = await startReflector({ host: '127.0.0.1', port: 0 });
    collector = await startCollectorFor(tokenHash, join(dir, 'collector'));
  });
  afterAll(async () => {
    await killAllCli();
    await collector?.close();
    await reflector?.close();
    if (mounted) await execFileP('umount', [mnt]);
    await rm(dir, { recursive: true, force: true });
  });

  it('logs ENOSPC, keeps running, and delivers every held report in order once space is back', async () => {
    const queueDir = join(mnt, 'queue');
    await mkdir(join(queueDir, 'dead'), { recursive: true });
    // Fill the file system: the filler takes every remaining page.
    const filler = join(mnt, 'filler');
    await writeFile(filler, Buffer.alloc(64 * 1024)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOSPC') throw err;
    });
    await expect(writeFile(join(mnt, 'probe-space'), 'x')).rejects.toMatchObject({ code: 'ENOSPC' });
    await unlink(join(mnt, 'probe-space')).catch(() => undefined);

    await writeFile(
      join(dir, 'agent.yaml'),
      agentYaml({
        collectorUrl: collector.url,
        collectorAuth: `token: "${token}"`,
        queueDir,
        reflector,
        duration: '1s',
        interval: '4500ms',
      }),
    );
    const agent = startCli(['agent', '--config', join(dir, 'agent.yaml')], { timeoutMs: 90_000 });
    const lines = () => agentLog(agent.stderr());
    await agent.waitForStderr(/"event":"queue.write-failed".*"code":"ENOSPC"/, 20_000);
    // Three probe runs while the disk is full: the agent keeps probing, nothing is sent.
    while (lines().filter((l) => l.event === 'probe.done').length < 3) await sleep(100);
    expect(lines().filter((l) => l.event === 'report.delivered')).toEqual([]);
    expect(agent.child.exitCode).toBeNull();

    await unlink(filler);
    const held = lines()
      .filter((l) => l.event === 'probe.done')
      .map((l) => l.reportId!);
    const deadline = Date.now() + 20_000;
    const delivered = () =>
      lines()
        .filter((l) => l.event === 'report.delivered')
        .map((l) => l.reportId);
    while (!held.every((id) => delivered().includes(id))) {
      if (Date.now() > deadline) throw new Error(`held reports not delivered: ${agent.stderr()}`);
      await sleep(100);
    }
    const stopped = await agent.stop(15_000);
    expect(stopped.code).toBe(0);

    const produced = lines()
      .filter((l) => l.event === 'probe.done')
      .map((l) => l.reportId!);
    const db = new Database(join(dir, 'collector', SQLITE_FILE), { readonly: true });
    try {
      const stored = db.prepare('SELECT report_id FROM reports ORDER BY rowid').pluck().all() as string[];
      // Every report held through the full disk was stored, once, in the order produced.
      expect(stored.slice(0, held.length)).toEqual(held);
      expect(new Set(stored).size).toBe(stored.length);
      expect(stored).toEqual(produced.filter((id) => stored.includes(id)));
    } finally {
      db.close();
    }
  }, 90_000);
});
