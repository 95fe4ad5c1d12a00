// Running a helper program (journalctl's peers: wevtutil, a backup command) to completion with a
// timeout; failure comes back as data.
import type { HostDeps } from './deps.js';

/** Runs a program to completion; its stdout as text, or why it failed. */
export async function runToText(
  deps: Pick<HostDeps, 'spawn'>,
  command: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{ text: string; code: number } | { error: string; code?: number; stdout?: string }> {
  let child: ReturnType<HostDeps['spawn']>;
  try {
    child = deps.spawn(command, args);
  } catch (err) {
    return { error: `cannot run ${command}: ${(err as Error).message}` };
  }
  const out: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => {
    if (err.length < 2000) err += d.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    },
  );
  clearTimeout(timer);
  if (result.error) {
    const notFound = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    return { error: notFound ? `${command} not found` : `cannot run ${command}: ${result.error.message}` };
  }
  const stdout = Buffer.concat(out).toString('utf8');
  if (result.signal)
    return { error: `${command} killed by ${result.signal} (timeout ${timeoutMs / 1000} s?)` };
  if (result.code !== 0) {
    const line = err.trim().split('\n')[0] ?? '';
    return {
      error: `${command} exited ${result.code}${line ? `: ${line}` : ''}`,
      code: result.code ?? undefined,
      stdout,
    };
  }
  return { text: stdout, code: 0 };
}
