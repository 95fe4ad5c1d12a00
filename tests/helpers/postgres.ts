// A throwaway PostgreSQL cluster (Debian's `postgresql`) for one test file: initdb into a temp
// directory, the server on a free 127.0.0.1 port, trust authentication for the loopback only.
// PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (setpriv); stop()
// kills it and removes the directory whatever happened, and so does the process's exit.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freeLoopbackPort, waitUntil } from './service.js';

/** Debian installs the server binaries per major version, off the PATH (newest first). */
function serverBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** Why a cluster cannot be started here, or undefined when it can. */
export function postgresMissing(): string | undefined {
  if (!serverBinDir()) return 'PostgreSQL server binaries are not installed (Debian postgresql)';
  if (process.getuid?.() === 0 && spawnSync('id', ['postgres']).status !== 0)
    return 'running as root and there is no postgres user to run PostgreSQL as';
  return undefined;
}

export interface PgCluster {
  port: number;
  /** Where the data and the socket live. */
  dir: string;
  /** A new empty database; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown (SIGINT), SIGKILL after 10 s; the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes the directory; safe to call twice. */
  destroy(): Promise<void>;
  /** Server output so far, for failure messages. */
  output(): string;
}

/** `settings`: more `-c name=value` server settings, after (so overriding) the test defaults — a
 * benchmark turns fsync back on. */
export async function startPgCluster(settings: string[] = []): Promise<PgCluster> {
  const bin = serverBinDir();
  if (!bin) throw new Error(postgresMissing());
  const asRoot = process.getuid?.() === 0;
  // setpriv keeps the command line: root runs the server as postgres, anyone else as themselves.
  const asServerUser = (binary: string, args: string[]) =>
    asRoot
      ? {
          command: 'setpriv',
          args: ['--reuid=postgres', '--regid=postgres', '--clear-groups', join(bin, binary), ...args],
        }
      : { command: join(bin, binary), args };
  const dir = mkdtempSync(join(tmpdir(), 'voipready-pg-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
  }
  let out = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;

  const killNow = () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const onExit = () => {
    killNow();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const init = asServerUser('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '--encoding=UTF8',
    '--locale=C',
  ]);
  const initRun = spawnSync(init.command, init.args, { encoding: 'utf8', cwd: dir });
  if (initRun.status !== 0) {
    onExit();
    process.removeListener('exit', onExit);
    throw new Error(`initdb failed: ${initRun.stderr || initRun.stdout}`);
  }
  const port = await freeLoopbackPort();

  const start = async () => {
    // Small buffers and no fsync: a test cluster's data is thrown away (durability is not what these
    // tests measure; the agents' acknowledgements are checked against the rows themselves).
    const server = asServerUser('postgres', [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'shared_buffers=16MB',
      '-c',
      'max_connections=60',
      ...settings.flatMap((setting) => ['-c', setting]),
    ]);
    const proc = spawn(server.command, server.args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const keep = (chunk: Buffer) => {
      out = (out + chunk.toString()).slice(-20_000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitUntil(
      `PostgreSQL on 127.0.0.1:${port}`,
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`postgres exited: ${out.slice(-500)}`);
        const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
        client.on('error', () => {});
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => {});
        }
      },
      30_000,
    );
  };
  const stop = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGINT');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await stop();
    process.removeListener('exit', onExit);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (err) {
    await destroy();
    throw err;
  }
  return {
    port,
    dir,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: lower-case word only`);
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
    start,
    destroy,
    output: () => out,
  };
}
