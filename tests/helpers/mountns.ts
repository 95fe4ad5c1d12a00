// Small real filesystems for host-check tests and the bench: tmpfs mounts inside a private mount
// namespace (`unshare -m`) held open by a sleeping process. This process reaches them through
// /proc/PID/root/…, and they vanish with the namespace when the holder is killed: nothing is left
// mounted on the machine, even when a test fails.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

export interface MountNamespace {
  pid: number;
  /** Paths of the mounts as this process sees them (/proc/PID/root/MOUNT). */
  paths: string[];
  /** Runs a command inside the namespace (nsenter), e.g. df on a mount as its own namespace sees it. */
  exec(command: string[]): { status: number | null; stdout: string; stderr: string };
  close(): void;
}

/** Why mount namespaces cannot be used here, or undefined when they can. */
export function mountNamespaceUnavailable(): string | undefined {
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'true']);
  return r.status === 0 ? undefined : `unshare -m failed: ${r.stderr?.toString().trim() || r.error?.message}`;
}

/** Mounts `count` tmpfs of `sizeBytes` at /mnt/voipready-host-test-N in a new mount namespace. */
export async function startTmpfsNamespace(count: number, sizeBytes: number): Promise<MountNamespace> {
  const mounts = Array.from({ length: count }, (_, i) => `/mnt/voipready-host-test-${i}`);
  const script = [
    ...mounts.map((m) => `mkdir -p ${m} && mount -t tmpfs -o size=${sizeBytes} voipready-test ${m}`),
    'echo ready',
    'exec sleep 3600',
  ].join(' && ');
  const child: ChildProcess = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mount namespace not ready in 30 s: ${stderr}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`unshare exited ${code}: ${stderr}`));
    });
  });
  const pid = child.pid!;
  return {
    pid,
    paths: mounts.map((m) => `/proc/${pid}/root${m}`),
    exec(command) {
      const r = spawnSync('nsenter', ['-t', String(pid), '-m', ...command], { encoding: 'utf8' });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    close() {
      child.kill('SIGKILL');
    },
  };
}

/** df's figures for a path, in bytes: size, used, avail and Use% (rounded up, as df prints it). */
export function dfBytes(
  path: string,
  run: (cmd: string[]) => { stdout: string } = (c) => ({
    stdout: spawnSync(c[0]!, c.slice(1), { encoding: 'utf8' }).stdout,
  }),
): { size: number; used: number; avail: number; usePct: number } {
  const out = run(['df', '-B1', '--output=size,used,avail,pcent', path]).stdout.trim().split('\n');
  const [size, used, avail, pcent] = out[out.length - 1]!.trim().split(/\s+/);
  return {
    size: Number(size),
    used: Number(used),
    avail: Number(avail),
    usePct: Number(pcent!.replace('%', '')),
  };
}
