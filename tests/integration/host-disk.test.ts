// Disk checks against a real small filesystem whose fill the test controls: tmpfs in a private mount
// namespace. Free bytes and % equal df's; a steady fill across samples forecasts days-to-full within
// 10 % of the truth the test knows; a full disk fails, through the real CLI.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemHostDeps } from '../../agent/host/deps.js';
import { collectDisks, type DiskSample } from '../../agent/host/disk.js';
import { judgeDisks } from '../../src/host-policy.js';
import { HostResult } from '../../src/host-schema.js';
import { Policy } from '../../src/policy.js';
import { CLI_BIN, cliUnavailableReason } from '../helpers/cli.js';
import {
  dfBytes,
  type MountNamespace,
  mountNamespaceUnavailable,
  startTmpfsNamespace,
} from '../helpers/mountns.js';

const MIB = 1024 ** 2;
const HOUR = 3_600_000;
const skip = mountNamespaceUnavailable();

describe.skipIf(skip)('host disk checks on a real tmpfs', () => {
  let ns: MountNamespace;
  beforeAll(async () => {
    ns = await startTmpfsNamespace(1, 64 * MIB);
  }, 60_000);
  afterAll(() => ns?.close());

  it('reports free bytes and free % as df does', async () => {
    const path = ns.paths[0]!;
    writeFileSync(join(path, 'a'), Buffer.alloc(10 * MIB, 1));
    const [d] = await collectDisks([path], systemHostDeps(), new Map());
    // df run inside the namespace: from outside it would name the filesystem holding /proc/PID/root
    const df = dfBytes('/mnt/voipready-host-test-0', (cmd) => ns.exec(cmd));
    expect(d!.totalBytes).toBe(df.size);
    expect(d!.freeBytes).toBe(df.avail);
    // df prints Use% rounded up; free % is the exact complement
    expect(100 - d!.freePct!).toBeLessThanOrEqual(df.usePct);
    expect(100 - d!.freePct!).toBeGreaterThan(df.usePct - 1);
  });

  it('forecasts days-to-full from a steady fill within 10 % of the truth', async () => {
    const path = ns.paths[0]!;
    const history = new Map<string, DiskSample[]>();
    let now = Date.parse('2026-11-01T00:00:00Z');
    const deps = { ...systemHostDeps(), now: () => now };
    const stepBytes = 2 * MIB; // every hour: 48 MiB a day
    let last: Awaited<ReturnType<typeof collectDisks>>[number] | undefined;
    for (let i = 0; i < 8; i++) {
      writeFileSync(join(path, `fill-${i}`), Buffer.alloc(stepBytes, 2));
      [last] = await collectDisks([path], deps, history);
      now += HOUR;
    }
    const truthDays = last!.freeBytes! / ((stepBytes * 24) as number);
    expect(last!.historySamples).toBe(8);
    expect(last!.growthBytesPerDay! / (stepBytes * 24)).toBeGreaterThan(0.9);
    expect(last!.growthBytesPerDay! / (stepBytes * 24)).toBeLessThan(1.1);
    expect(Math.abs(last!.daysUntilFull! - truthDays) / truthDays).toBeLessThan(0.1);
    // under a day to full: the default 14-day rule fails it
    const check = judgeDisks([last!], Policy.parse({ disk: { minFreeBytes: 0, minFreePct: 0 } }));
    expect(check.status).toBe('fail');
    expect(check.evidence).toMatch(/fills within 14 days/);
  });

  it.skipIf(cliUnavailableReason())('a full disk fails `voipready host`, which names the tmpfs mount', () => {
    const path = ns.paths[0]!;
    try {
      writeFileSync(join(path, 'full'), Buffer.alloc(80 * MIB, 3));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    const inside = '/mnt/voipready-host-test-0';
    const r = ns.exec([process.execPath, CLI_BIN, 'host', '--path', inside, '--json']);
    expect(r.status, r.stderr).toBe(1);
    const result = HostResult.parse(JSON.parse(r.stdout));
    const [d] = result.disks;
    expect(d).toMatchObject({ path: inside, mount: inside, fsType: 'tmpfs', freeBytes: 0, freePct: 0 });
    expect(result.checks.find((c) => c.id === 'disk')).toMatchObject({ status: 'fail', value: 0 });
    const df = dfBytes(inside, (cmd) => ns.exec(cmd));
    expect(df.avail).toBe(0);
  });

  it('a path that does not exist is unknown with the reason, never a crash', async () => {
    const [d] = await collectDisks(['/nonexistent/voipready'], systemHostDeps(), new Map());
    expect(d).toMatchObject({ freeBytes: null, unknownReason: 'the path does not exist' });
    expect(judgeDisks([d!], Policy.parse({})).status).toBe('unknown');
  });
});
