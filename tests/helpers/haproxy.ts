// A real haproxy (Debian) running the repository's own configuration (deploy/haproxy/voipready.cfg)
// in front of N collectors: only the `bind` address, the `server` lines and the stats socket path
// are substituted, so what the tests prove is what the docs tell operators to run. Every request
// haproxy answered is parsed from its log (the recording point of what agents saw), and server
// states are read over the runtime API.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { type CollectorProcess, REPO_ROOT, startCollectorProcess } from './cli.js';
import { freeLoopbackPort, type Service, startService, waitUntil } from './service.js';

export const HAPROXY_DIR = join(REPO_ROOT, 'deploy', 'haproxy');
export const HAPROXY_CONFIG = join(HAPROXY_DIR, 'voipready.cfg');

export interface Backend {
  /** Server name in haproxy (logs, runtime API). */
  name: string;
  host: string;
  port: number;
}

/** One request as haproxy logged it (option httplog). */
export interface HaproxyRequest {
  /** `collectors/collector1`, or `collectors/<NOSRV>` when no server was up. */
  server: string;
  status: number;
  /** Retries haproxy made for it (the `+` prefix: with a redispatch). */
  retries: number;
  redispatched: boolean;
  /** Termination state (e.g. `----`, `SC--` for a server that refused the connection). */
  termination: string;
  method: string;
  path: string;
}

export interface Haproxy extends Service {
  /** Every request haproxy logged so far, in the order it logged them. */
  requests(): HaproxyRequest[];
  /** Log lines that are not requests (server UP/DOWN, warnings). */
  events(): string[];
  /** Server name → status (`UP`, `DOWN`, `MAINT`, `UP 1/2` while rising …), from `show stat`. */
  serverStates(): Promise<Record<string, string>>;
  /** Waits until the server's status starts with `state` (`UP` or `DOWN`). */
  waitForServer(name: string, state: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
}

/** The repository configuration with this test's listen port, backends and socket path. */
export function haproxyConfig(port: number, backends: Backend[], socket: string): string {
  const text = readFileSync(HAPROXY_CONFIG, 'utf8');
  const servers = backends.map((b) => `  server ${b.name} ${b.host}:${b.port}`);
  const lines = text.split('\n');
  const firstServer = lines.findIndex((l) => /^\s+server\s/.test(l));
  const bind = lines.findIndex((l) => /^\s+bind\s/.test(l));
  const stats = lines.findIndex((l) => /^\s+stats socket\s/.test(l));
  if (firstServer < 0 || bind < 0 || stats < 0)
    throw new Error(`${HAPROXY_CONFIG}: expected bind, stats socket and server lines to substitute`);
  lines[bind] = `  bind 127.0.0.1:${port}`;
  lines[stats] = lines[stats]!.replace(/stats socket \S+/, `stats socket ${socket}`);
  const rest = lines.slice(firstServer).filter((l) => !/^\s+server\s/.test(l));
  return [...lines.slice(0, firstServer), ...servers, ...rest].join('\n');
}

// 127.0.0.1:41234 [29/Nov/2026:10:01:02.123] voipready collectors/collector1 0/0/0/3/3 202 123 - - ---- 1/1/0/0/+1 0/0 "POST /api/v1/reports HTTP/1.1"
const REQUEST_LINE =
  /^\S+ \[[^\]]+\] \S+ (\S+) \S+ (\d{3}) \d+ \S+ \S+ (\S{4}) \d+\/\d+\/\d+\/\d+\/(\+?)(\d+) \S+ "(\S+) (\S+)/;

export function parseRequestLine(line: string): HaproxyRequest | undefined {
  const m = REQUEST_LINE.exec(line);
  if (!m) return undefined;
  return {
    server: m[1]!,
    status: Number(m[2]),
    termination: m[3]!,
    redispatched: m[4] === '+',
    retries: Number(m[5]),
    method: m[6]!,
    path: m[7]!,
  };
}

/** Sends one runtime API command over the stats socket and returns the answer. */
function runtimeCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    let answer = '';
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      answer += d;
    });
    conn.on('end', () => resolve(answer));
    conn.on('error', reject);
    conn.setTimeout(5000, () => conn.destroy(new Error(`haproxy runtime API: no answer to ${command}`)));
    conn.end(`${command}\n`);
  });
}

export async function startHaproxy(backends: Backend[]): Promise<Haproxy> {
  const requests: HaproxyRequest[] = [];
  const events: string[] = [];
  let partial = '';
  let socket = '';
  const service = await startService({
    name: 'haproxy',
    command(port, dir) {
      socket = join(dir, 'admin.sock');
      // the error pages sit beside the config (`default-path config`)
      mkdirSync(join(dir, 'errors'));
      for (const f of readdirSync(join(HAPROXY_DIR, 'errors')))
        copyFileSync(join(HAPROXY_DIR, 'errors', f), join(dir, 'errors', f));
      const file = join(dir, 'voipready.cfg');
      writeFileSync(file, haproxyConfig(port, backends, socket));
      return { binary: 'haproxy', args: ['-db', '-f', file] };
    },
    onOutput(chunk, stream) {
      if (stream !== 'stdout') return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line === '') continue;
        const request = parseRequestLine(line);
        if (request) requests.push(request);
        else events.push(line);
      }
    },
    // Listening: any HTTP answer (503 while no collector is up yet).
    async ready(url) {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return true;
    },
  });
  const serverStates = async () => {
    const csv = await runtimeCommand(socket, 'show stat');
    const [header, ...rows] = csv.trim().split('\n');
    const cols = header!.replace(/^# /, '').split(',');
    const at = (name: string) => cols.indexOf(name);
    const states: Record<string, string> = {};
    for (const row of rows) {
      const f = row.split(',');
      if (f[at('pxname')] === 'collectors' && !['FRONTEND', 'BACKEND'].includes(f[at('svname')]!))
        states[f[at('svname')]!] = f[at('status')]!;
    }
    return states;
  };
  return {
    ...service,
    requests: () => [...requests],
    events: () => [...events],
    serverStates,
    waitForServer: (name, state, timeoutMs = 20_000) =>
      waitUntil(
        `haproxy to see ${name} ${state}`,
        async () => (await serverStates())[name]?.startsWith(state) === true,
        timeoutMs,
      ),
  };
}

/** Collector processes (the real CLI) behind haproxy, each on a fixed loopback port. */
export interface CollectorPool {
  lb: Haproxy;
  /** The process now running as `name` (a server name: collector1, collector2, …). */
  process(name: string): CollectorProcess;
  port(name: string): number;
  /** Starts `name` (again, after a kill) on its port with the same configuration. */
  start(name: string): Promise<void>;
  /** Stops haproxy and every collector. */
  stop(): Promise<void>;
}

/** Starts `count` collectors with one configuration and haproxy in front; resolves once all are UP. */
export async function startCollectorPool(configFile: string, count: number): Promise<CollectorPool> {
  const names = Array.from({ length: count }, (_, i) => `collector${i + 1}`);
  const ports = new Map<string, number>();
  const running = new Map<string, CollectorProcess>();
  for (const name of names) ports.set(name, await freeLoopbackPort());
  const start = async (name: string) => {
    running.set(
      name,
      await startCollectorProcess(['--config', configFile, '--port', String(ports.get(name))]),
    );
  };
  const stopCollectors = () => Promise.all([...running.values()].map((c) => c.stop()));
  let lb: Haproxy;
  try {
    await Promise.all(names.map(start));
    lb = await startHaproxy(names.map((name) => ({ name, host: '127.0.0.1', port: ports.get(name)! })));
  } catch (err) {
    await stopCollectors();
    throw err;
  }
  const pool: CollectorPool = {
    lb,
    process: (name) => running.get(name)!,
    port: (name) => ports.get(name)!,
    start,
    async stop() {
      await lb.stop();
      await stopCollectors();
    },
  };
  try {
    for (const name of names) await lb.waitForServer(name, 'UP');
  } catch (err) {
    await pool.stop();
    throw err;
  }
  return pool;
}
