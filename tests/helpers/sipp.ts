// A real SIP server for tests: sipp (Debian sip-tester) as a UAS running one of the scenarios in
// tests/fixtures/sipp, on a free loopback port (or inside a namespace), stopped by the test.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './cli.js';

export const SIPP_SCENARIOS = join(REPO_ROOT, 'tests', 'fixtures', 'sipp');

export function sippUnavailableReason(): string | undefined {
  try {
    accessSync('/usr/bin/sipp', constants.X_OK);
    return undefined;
  } catch {
    return 'sipp is not installed (Debian package sip-tester)';
  }
}

/** A port free for both UDP and TCP on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}

export interface SippOptions {
  /** Scenario file name in tests/fixtures/sipp. */
  scenario: string;
  transport?: 'udp' | 'tcp' | 'tls';
  /** The scenario's <pause/>, ms (sipp -d). */
  pauseMs?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  port?: number;
  /** Network namespace to run in. */
  ns?: string;
  /** Extra sipp arguments (e.g. -nr). */
  args?: string[];
  /** Working directory (TLS: holds cacert.pem and cakey.pem). */
  cwd?: string;
}

export interface SippServer {
  host: string;
  port: number;
  stop(): Promise<void>;
}

const execFileP = promisify(execFile);
const SIPP_TRANSPORT = { udp: 'u1', tcp: 't1', tls: 'l1' } as const;
const live = new Set<ChildProcess>();

/** Kills every sipp this file started (afterAll safety net). */
export function killAllSipp(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

/** Starts sipp and resolves once its port accepts (TCP/TLS) or it has run for a moment (UDP). */
export async function startSipp(o: SippOptions): Promise<SippServer> {
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? (await freePort());
  const transport = o.transport ?? 'udp';
  const sippArgs = [
    '-sf',
    join(SIPP_SCENARIOS, o.scenario),
    '-i',
    host,
    '-p',
    String(port),
    '-t',
    SIPP_TRANSPORT[transport],
    '-d',
    String(o.pauseMs ?? 0),
    '-nostdin',
    ...(o.args ?? []),
  ];
  const [cmd, args] = o.ns ? ['ip', ['netns', 'exec', o.ns, 'sipp', ...sippArgs]] : ['sipp', sippArgs];
  const child = spawn(cmd as string, args as string[], { stdio: ['ignore', 'ignore', 'pipe'], cwd: o.cwd });
  live.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    live.delete(child);
  };
  // sipp binds at start; give it a moment and make sure it did not exit with an error.
  await new Promise((r) => setTimeout(r, 400));
  if (child.exitCode !== null) {
    await stop();
    throw new Error(
      `sipp exited at start (${child.exitCode}): ${stderr.trim().split('\n').slice(-3).join(' ')}`,
    );
  }
  return { host, port, stop };
}

/** dumpcap on the loopback interface for one port; stop() returns the capture file. */
export async function captureLo(dir: string, port: number): Promise<{ stop(): Promise<string> }> {
  const file = join(dir, `lo-${port}.pcapng`);
  const child: ChildProcess = spawn('dumpcap', ['-i', 'lo', '-f', `port ${port}`, '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dumpcap did not start: ${stderr}`)), 10_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (/Capturing on/.test(stderr)) {
        clearTimeout(timer);
        // dumpcap announces itself a moment before its filter is attached.
        setTimeout(resolve, 500);
      }
    });
  });
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300)); // the last packets reach the file
      child.kill('SIGINT');
      await exited;
      return file;
    },
  };
}

export interface WireSip {
  timeMs: number;
  cseq: number;
  method: string;
  status: number | null;
}

/** The SIP messages of a capture as tshark decodes them (time, CSeq, method, status). */
export async function wireSip(file: string, port: number): Promise<WireSip[]> {
  const { stdout } = await execFileP('tshark', [
    '-r',
    file,
    '-d',
    `udp.port==${port},sip`,
    '-d',
    `tcp.port==${port},sip`,
    '-Y',
    'sip',
    '-T',
    'fields',
    '-e',
    'frame.time_epoch',
    '-e',
    'sip.CSeq.seq',
    '-e',
    'sip.CSeq.method',
    '-e',
    'sip.Status-Code',
  ]);
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [t, cseq, method, status] = line.split('\t');
      return {
        timeMs: Number(t) * 1000,
        cseq: Number(cseq),
        method: method!,
        status: status ? Number(status) : null,
      };
    });
}
