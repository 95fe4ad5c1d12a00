// `voipready collector` as a real process: token hashing, one-line errors with exit 2, and what
// happens to acknowledged reports when the process is SIGKILLed or stopped with SIGTERM mid-stream.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleReport } from '../../bench/collector-report.js';
import { hashToken } from '../../collector/auth.js';
import { CLI_BIN, cliUnavailableReason } from '../helpers/cli.js';

const AGENT = 'agent-token-hq-0123456789abcdef';
const VIEWER = 'viewer-token-noc-0123456789abcd';
const unavailable = cliUnavailableReason();
const STARTED = new Date().toISOString();
const dir = mkdtempSync(join(tmpdir(), 'voipready-collector-proc-'));
const configFile = join(dir, 'collector.yaml');
const children = new Set<ChildProcess>();

beforeAll(() => {
  writeFileSync(
    configFile,
    `collector:
  dataDir: data
  rateLimit: { perSecond: 100000, burst: 100000 }
  agents:
    - { name: hq-agent-1, site: hq, tokenHash: "${hashToken(AGENT)}" }
  viewers:
    - { name: noc, tokenHash: "${hashToken(VIEWER)}" }
`,
  );
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  url: string;
  port: number;
  stdout(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, [CLI_BIN, ...args], { input, encoding: 'utf8', timeout: 20_000 });
}

function start(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [CLI_BIN, 'collector', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) =>
      child.on('close', (code, signal) => {
        children.delete(child);
        resolve({ code, signal, stderr });
      }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector did not start: ${stderr}`)), 30_000);
    child.stdout!.on('data', (d: string) => {
      stdout += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, port: Number(m[2]), stdout: () => stdout, exited });
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`collector exited ${code}: ${stderr}`));
    });
  });
}

async function post(url: string, id: string): Promise<number> {
  try {
    const res = await fetch(`${url}/api/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${AGENT}`, 'content-type': 'application/json' },
      // the same body for the same id, as an agent's queue resends it
      body: JSON.stringify(sampleReport({ reportId: id, createdAt: STARTED })),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0; // connection refused or reset: not acknowledged
  }
}

async function storedIds(url: string): Promise<string[]> {
  const res = await fetch(`${url}/api/v1/reports?limit=10000`, {
    headers: { authorization: `Bearer ${VIEWER}` },
  });
  return ((await res.json()) as { reports: { reportId: string }[] }).reports.map((r) => r.reportId);
}

/**
 * Posts n reports from `workers` concurrent senders, each waiting for its answer before the next
 * (like agents); calls interrupt() once `after` were acknowledged, and keeps going until n were tried.
 */
async function postMany(url: string, prefix: string, n: number, after: number, interrupt: () => void) {
  const acked: string[] = [];
  const codes: number[] = [];
  let next = 0;
  let interrupted = false;
  const worker = async () => {
    while (next < n) {
      const id = `${prefix}-${String(next++).padStart(5, '0')}`;
      const code = await post(url, id);
      codes.push(code);
      if (code === 202) acked.push(id);
      if (!interrupted && acked.length >= after) {
        interrupted = true;
        interrupt();
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return { acked, codes };
}

describe.skipIf(unavailable)(
  `voipready collector process${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    it('hashes a token from stdin, and refuses a short one with one line and exit 2', () => {
      const ok = run(['collector', '--hash-token'], `${AGENT}\n`);
      expect(ok.status).toBe(0);
      expect(ok.stdout.trim()).toBe(hashToken(AGENT));
      const short = run(['collector', '--hash-token'], 'abc');
      expect(short.status).toBe(2);
      expect(short.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^voipready collector: .*shorter than 16/),
      ]);
      const fresh = run(['collector', '--new-token']);
      const [, token, hash] = /^token: (\S+)\ntokenHash: (\S+)\n$/.exec(fresh.stdout) ?? [];
      expect(hash).toBe(hashToken(token!));
    });

    it('names the file and key path of a bad config in one line, exit 2', () => {
      const bad = join(dir, 'bad.yaml');
      writeFileSync(
        bad,
        'collector:\n  agents:\n    - { name: a, site: hq, tokenHash: nope }\n  colour: blue\n',
      );
      const r = run(['collector', '--config', bad]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(
        new RegExp(`^voipready collector: ${bad}: collector(\\.agents\\.0\\.tokenHash)?: .*and 1 more`),
      );
    });

    it('sets itself up on the first start without --config: config and tokens in the data directory', async () => {
      const dataDir = join(dir, 'first-start');
      const c = await start(['--data-dir', dataDir, '--port', '0']);
      expect(c.stdout()).toMatch(
        /^first start: wrote .*collector\.yaml with agent "agent-1" for site "site-1"/,
      );
      expect(statSync(join(dataDir, 'agent-1.token')).mode & 0o777).toBe(0o600);
      const token = readFileSync(join(dataDir, 'agent-1.token'), 'utf8').trim();
      const res = await fetch(`${c.url}/api/v1/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(sampleReport({ reportId: 'rep-first-0001', site: 'site-1', agent: 'agent-1' })),
      });
      expect(res.status).toBe(202);
      c.child.kill('SIGTERM');
      expect((await c.exited).code).toBe(0);
      // the second start reuses what the first wrote
      const again = await start(['--data-dir', dataDir, '--port', '0']);
      expect(again.stdout()).not.toMatch(/first start/);
      again.child.kill('SIGTERM');
      expect((await again.exited).code).toBe(0);
    });

    it('says the port is in use in one line, exit 2', async () => {
      const first = await start(['--config', configFile, '--port', '0']);
      const second = run(['collector', '--config', configFile, '--port', String(first.port)]);
      expect(second.status).toBe(2);
      expect(second.stderr.trim()).toBe(
        `voipready collector: port ${first.port} on 127.0.0.1 is already in use`,
      );
      first.child.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);
    });

    it('keeps every acknowledged report through SIGKILL mid-stream, stored once', async () => {
      const c = await start(['--config', configFile, '--port', '0']);
      const { acked, codes } = await postMany(c.url, 'rep-kill', 1000, 100, () => c.child.kill('SIGKILL'));
      expect((await c.exited).signal).toBe('SIGKILL');
      // the kill really happened mid-stream: some posts were never acknowledged
      expect(codes.filter((x) => x !== 202).length).toBeGreaterThan(0);
      const again = await start(['--config', configFile, '--port', '0']);
      const stored = await storedIds(again.url);
      expect(new Set(stored).size).toBe(stored.length);
      for (const id of acked) expect(stored).toContain(id);
      // the agent's retry of everything: acknowledged ones are duplicates, the rest are stored now
      const { codes: retry } = await postMany(
        again.url,
        'rep-kill',
        1000,
        Number.POSITIVE_INFINITY,
        () => {},
      );
      expect(retry.every((x) => x === 200 || x === 202)).toBe(true);
      expect(retry.filter((x) => x === 200).length).toBe(
        stored.filter((id) => id.startsWith('rep-kill')).length,
      );
      const after = await storedIds(again.url);
      expect(after.filter((id) => id.startsWith('rep-kill'))).toHaveLength(1000);
      again.child.kill('SIGTERM');
      expect((await again.exited).code).toBe(0);
    }, 120_000);

    it('finishes in-flight requests on SIGTERM and exits 0', async () => {
      const c = await start(['--config', configFile, '--port', '0']);
      const { acked, codes } = await postMany(c.url, 'rep-term', 1000, 50, () => c.child.kill('SIGTERM'));
      const exit = await c.exited;
      expect(exit.code).toBe(0);
      expect(c.stdout()).toMatch(/SIGTERM: finishing in-flight requests and closing/);
      // every answer was an acknowledgement, a refusal to start new work (503), or no connection
      expect(codes.every((x) => x === 202 || x === 503 || x === 0)).toBe(true);
      const again = await start(['--config', configFile, '--port', '0']);
      const stored = await storedIds(again.url);
      for (const id of acked) expect(stored).toContain(id);
      again.child.kill('SIGTERM');
      expect((await again.exited).code).toBe(0);
    }, 120_000);
  },
);
