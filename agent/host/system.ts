// System performance (the handbook's "Monitor system performance"): CPU busy share since the last
// sample, the 1-minute load, memory and swap in use, uptime. Linux reads /proc/meminfo (MemAvailable
// counts reclaimable cache as free, as free(1) does); Windows has no load average or swap figure here.
import { readFile } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem, uptime } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { HostSystem } from '../../src/host-schema.js';

export type SystemSampler = () => Promise<HostSystem>;

interface CpuTimes {
  busy: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const { user, nice, sys, idle, irq } = c.times;
    busy += user + nice + sys + irq;
    total += user + nice + sys + idle + irq;
  }
  return { busy, total };
}

/** kB values of /proc/meminfo by key. */
export function parseMeminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^(\w+):\s+(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const pct = (used: number, total: number): number | null =>
  total > 0 ? Math.round(Math.min(100, Math.max(0, (100 * used) / total)) * 100) / 100 : null;

async function memory(): Promise<Pick<HostSystem, 'memUsedPct' | 'swapUsedPct'>> {
  if (process.platform === 'linux') {
    try {
      const m = parseMeminfo(await readFile('/proc/meminfo', 'utf8'));
      const total = m.MemTotal ?? 0;
      const available = m.MemAvailable ?? m.MemFree ?? 0;
      const swapTotal = m.SwapTotal ?? 0;
      return {
        memUsedPct: pct(total - available, total),
        // No swap configured: nothing is swapped, 0 % rather than unknown.
        swapUsedPct: swapTotal > 0 ? pct(swapTotal - (m.SwapFree ?? 0), swapTotal) : 0,
      };
    } catch {}
  }
  return { memUsedPct: pct(totalmem() - freemem(), totalmem()), swapUsedPct: null };
}

let previous: CpuTimes | undefined;

/** CPU since the previous call; the first call measures over a short window. */
export const sampleSystem: SystemSampler = async () => {
  if (!previous) {
    previous = cpuTimes();
    await delay(250);
  }
  const now = cpuTimes();
  const busy = now.busy - previous.busy;
  const total = now.total - previous.total;
  previous = now;
  return {
    cpuPct: pct(busy, total),
    load1: process.platform === 'win32' ? null : Math.round(loadavg()[0]! * 100) / 100,
    ...(await memory()),
    uptimeS: uptime(),
  };
};
