// What host health collection touches, passed in (telegraf style) so tests drive the clock, the file
// system and the programs run. systemHostDeps() is the real thing.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, stat, statfs } from 'node:fs/promises';
import { hostname } from 'node:os';
import { glob } from 'tinyglobby';
import { listMounts, type Mount } from './mounts.js';
import { type SystemSampler, sampleSystem } from './system.js';

export interface FsStats {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
}

export interface HostDeps {
  platform: NodeJS.Platform;
  hostname(): string;
  /** ms since the epoch. */
  now(): number;
  statfs(path: string): Promise<FsStats>;
  /** Mounted filesystems, longest mount point first. */
  mounts(): Promise<Mount[]>;
  /** Modification time of a file, ms. */
  mtimeMs(path: string): Promise<number>;
  readFile(path: string): Promise<Buffer>;
  /** Absolute paths of the files matching absolute patterns. */
  glob(pattern: string): Promise<string[]>;
  spawn(command: string, args: string[]): ChildProcess;
  system: SystemSampler;
}

export function systemHostDeps(): HostDeps {
  return {
    platform: process.platform,
    hostname,
    now: Date.now,
    statfs: async (path) => {
      const s = await statfs(path);
      return {
        bsize: Number(s.bsize),
        blocks: Number(s.blocks),
        bfree: Number(s.bfree),
        bavail: Number(s.bavail),
      };
    },
    mounts: () => listMounts(process.platform, readFile),
    mtimeMs: async (path) => (await stat(path)).mtimeMs,
    readFile: (path) => readFile(path),
    // Backslashes are escapes to the matcher: Windows paths are given with forward slashes.
    glob: (pattern) =>
      glob(pattern.replaceAll('\\', '/'), {
        absolute: true,
        onlyFiles: true,
        dot: true,
        followSymbolicLinks: false,
      }),
    spawn: (command, args) => spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true }),
    system: sampleSystem,
  };
}
