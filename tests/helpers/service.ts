// Starting a real server binary (influxd, prometheus) for a test: free loopback port, temp
// directory, bounded wait until it answers, and a stop() that always kills it and removes the dir.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A port that was free on 127.0.0.1 a moment ago (listen on 0, read it, close). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls check() until it returns true, at most timeoutMs; rejects naming what it waited for. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${last})` : ''}`);
}

/** Why `binary` cannot run here, or undefined when it is on the PATH. */
export function binaryMissing(binary: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `${binary} is not installed`;
}

export interface Service {
  pid: number;
  port: number;
  url: string;
  dir: string;
  /** Output so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface ServiceSpec {
  name: string;
  /** Builds the command line once the port and temp dir are known; may write config files into dir. */
  command(port: number, dir: string): { binary: string; args: string[] };
  /** Answers true once the service is ready. */
  ready(url: string): Promise<boolean>;
  readyTimeoutMs?: number;
  port?: number;
  /** Sees every chunk of stdout and stderr (output() keeps only the last 20,000 characters). */
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

export async function startService(spec: ServiceSpec): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), `voipready-${spec.name}-`));
  const port = spec.port ?? (await freeLoopbackPort());
  const { binary, args } = spec.command(port, dir);
  const child: ChildProcess = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const text = chunk.toString();
    out = (out + text).slice(-20_000);
    spec.onOutput?.(text, stream);
  };
  child.stdout?.on('data', keep('stdout'));
  child.stderr?.on('data', keep('stderr'));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      `${spec.name} on ${url}`,
      async () => {
        if (exitedEarly) throw new Error(`${spec.name} exited: ${out.slice(-500)}`);
        return spec.ready(url);
      },
      spec.readyTimeoutMs ?? 30_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, port, url, dir, output: () => out, stop };
}
