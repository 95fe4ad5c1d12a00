// CPU and memory of benchmarked processes: GNU time around a command, its figures read back, and
// the child GNU time started (time itself ignores SIGINT while it waits).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Usage {
  cpuS: number;
  rssMb: number;
}

/** GNU time's `-f "%U %S %M"` output: user s, system s, peak RSS KiB. */
export function readUsage(file: string): Usage {
  const [user, sys, rssKb] = readFileSync(file, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { cpuS: user! + sys!, rssMb: rssKb! / 1024 };
}

export const timeWrapper = (file: string) => ['/usr/bin/time', '-o', file, '-f', '%U %S %M'];

/** The process GNU time started. */
export function childOf(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
  if (!kids[0]) throw new Error(`process ${pid} has no child`);
  return kids[0];
}

export function exitOf(cmd: string, args: string[]): Promise<number | null> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((resolve) => child.on('close', resolve));
}

export const load1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
