// The host checks' memory between runs, kept in the agent's queue directory (host-state.json) so a
// restart keeps the disk history (the days-to-full forecast) and where the event log was last read.
// Written whole to a temporary file and renamed over the old one: a crash leaves one or the other.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { HostConfig } from '../../src/config/host.js';
import type { HostResult } from '../../src/host-schema.js';
import { collectHost, type HostState, newHostState } from './collect.js';
import type { HostDeps } from './deps.js';
import { HISTORY_MAX_SAMPLES } from './disk.js';

export const HOST_STATE_FILE = 'host-state.json';

const Stored = z.object({
  disks: z.record(z.string(), z.array(z.tuple([z.number(), z.number()])).max(HISTORY_MAX_SAMPLES)),
  journalCursor: z.string().max(4096).optional(),
  syslog: z.record(z.string(), z.object({ ino: z.number(), offset: z.number().nonnegative() })),
  lastReadMs: z.number().optional(),
});

/** The saved state, or a fresh one when there is none or it is unreadable (the forecast restarts). */
export async function loadHostState(dir: string): Promise<HostState> {
  const state = newHostState();
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, HOST_STATE_FILE), 'utf8'));
  } catch {
    return state;
  }
  const parsed = Stored.safeParse(raw);
  if (!parsed.success) return state;
  const s = parsed.data;
  for (const [path, samples] of Object.entries(s.disks)) {
    state.disks.set(
      path,
      samples.map(([tMs, freeBytes]) => ({ tMs, freeBytes })),
    );
  }
  if (s.journalCursor) state.events.journal.cursor = s.journalCursor;
  for (const [file, at] of Object.entries(s.syslog)) state.events.syslog.set(file, at);
  if (s.lastReadMs !== undefined) state.events.lastReadMs = s.lastReadMs;
  return state;
}

export async function saveHostState(dir: string, state: HostState): Promise<void> {
  const stored: z.infer<typeof Stored> = {
    disks: Object.fromEntries(
      [...state.disks].map(([p, h]) => [p, h.map((x) => [x.tMs, x.freeBytes] as [number, number])]),
    ),
    ...(state.events.journal.cursor ? { journalCursor: state.events.journal.cursor } : {}),
    syslog: Object.fromEntries(state.events.syslog),
    ...(state.events.lastReadMs !== undefined ? { lastReadMs: state.events.lastReadMs } : {}),
  };
  const file = join(dir, HOST_STATE_FILE);
  await writeFile(`${file}.new`, JSON.stringify(stored));
  await rename(`${file}.new`, file);
}

/**
 * The agent's host collection: the state is read from `dir` on the first run and saved after each,
 * so the forecast's history and the event-log position survive restarts.
 */
export function persistentHostCollector(
  config: HostConfig,
  dir: string,
  deps: HostDeps,
  onSaveError: (err: Error) => void,
): () => Promise<HostResult> {
  let state: HostState | undefined;
  return async () => {
    state ??= await loadHostState(dir);
    const result = await collectHost({ config }, deps, state);
    await saveHostState(dir, state).catch(onSaveError);
    return result;
  };
}
