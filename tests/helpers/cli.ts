// Runs the real `voipready` CLI (bin/voipready.js → dist/) as a child process, optionally inside a
// network namespace and behind a privilege-dropping wrapper, with a hard timeout. Every child is
// tracked so a test's afterAll can kill whatever is still running, even after a failure.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ClockSync, DirectionStats, ProbeResult, ProbeStream, SendPacing } from '../../src/schemas.js';

/** The directory holding package.json (this file also runs compiled, from dist/tests/helpers). */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above tests/helpers');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = findRepoRoot();
export const CLI_BIN = join(REPO_ROOT, 'bin', 'voipready.js');
const BUILT_CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');

/** A `wrapper` running the child as uid/gid 65534 (nobody), no supplementary groups, every capability set emptied. */
export const AS_NOBODY = [
  'setpriv',
  '--reuid=65534',
  '--regid=65534',
  '--clear-groups',
  '--inh-caps=-all',
  '--ambient-caps=-all',
  '--bounding-set=-all',
  '--',
];

export interface CliOptions {
  /** Network namespace to run in (`ip netns exec NS ...`). */
  ns?: string;
  /** Wrapper command placed before `node`, e.g. a `setpriv` invocation dropping CAP_NET_RAW. */
  wrapper?: string[];
  /** Kill the child (SIGKILL) after this long; the result then has timedOut: true. */
  timeoutMs?: number;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
  timedOut: boolean;
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Resolves with the first stderr line matching re; rejects if the process exits or timeoutMs passes first. */
  waitForStderr(re: RegExp, timeoutMs: number): Promise<string>;
  /** The same for stdout. */
  waitForStdout(re: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves when the process exits. */
  done: Promise<CliResult>;
  /** SIGTERM (SIGKILL after graceMs) and wait for the exit. */
  stop(graceMs?: number): Promise<CliResult>;
}

const live = new Set<ChildProcess>();

/**
 * `chrt --fifo 50`: run a child at real-time priority, out of reach of the busy processes it shares
 * the CPUs with (nice does not help across sessions with autogroup scheduling), or undefined where
 * the kernel or container refuses real-time scheduling.
 */
export function realtimeWrapper(): string[] | undefined {
  const wrapper = ['chrt', '--fifo', '50'];
  return spawnSync(wrapper[0]!, [...wrapper.slice(1), 'true']).status === 0 ? wrapper : undefined;
}

/** Why the CLI cannot be spawned, or undefined when it can. */
export function cliUnavailableReason(): string | undefined {
  return existsSync(BUILT_CLI) ? undefined : `${BUILT_CLI} is missing: run \`npm run build\` first`;
}

export function startCli(args: string[], opts: CliOptions = {}): CliProcess {
  const argv = [...(opts.wrapper ?? []), process.execPath, CLI_BIN, ...args];
  const [cmd, rest] = opts.ns ? ['ip', ['netns', 'exec', opts.ns, ...argv]] : [argv[0]!, argv.slice(1)];
  const started = performance.now();
  const child = spawn(cmd, rest, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of waiters) w();
  });
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs);
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      for (const w of waiters) w();
      resolve({ code, signal, stdout, stderr, elapsedMs: performance.now() - started, timedOut });
    });
    child.on('error', (err) => {
      stderr += `spawn failed: ${err.message}\n`;
    });
  });
  let exited = false;
  void done.then(() => {
    exited = true;
  });
  const waitFor = (name: 'stdout' | 'stderr', re: RegExp, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const text = () => (name === 'stdout' ? stdout : stderr);
      const deadline = setTimeout(() => {
        reject(new Error(`no ${name} line matching ${re} within ${timeoutMs} ms; stderr: ${stderr.trim()}`));
      }, timeoutMs);
      const check = () => {
        const line = text()
          .split('\n')
          .find((l) => re.test(l));
        if (line !== undefined) {
          clearTimeout(deadline);
          resolve(line);
        } else if (exited || child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(deadline);
          reject(
            new Error(
              `exited (${child.exitCode ?? child.signalCode}) before ${re}; stderr: ${stderr.trim()}`,
            ),
          );
        }
      };
      waiters.push(check);
      check();
    });
  return {
    child,
    stderr: () => stderr,
    stdout: () => stdout,
    waitForStderr: (re, timeoutMs) => waitFor('stderr', re, timeoutMs),
    waitForStdout: (re, timeoutMs) => waitFor('stdout', re, timeoutMs),
    done,
    async stop(graceMs = 3000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await done;
      clearTimeout(kill);
      return result;
    },
  };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}

export interface ReflectorProcess extends CliProcess {
  /** The line the reflector printed once listening ("... DSCP readable: yes|no (reason)"). */
  listening: string;
}

/** Starts `voipready reflector --listen ADDR:PORT` and resolves once it says it is listening. */
export async function startReflector(listen: string, opts: CliOptions = {}): Promise<ReflectorProcess> {
  const reflector = startCli(['reflector', '--listen', listen], opts);
  try {
    return { ...reflector, listening: await reflector.waitForStderr(/reflector listening/, 10_000) };
  } catch (err) {
    await reflector.stop();
    throw err;
  }
}

export interface CollectorProcess extends CliProcess {
  /** http://host:port from its "listening on" line. */
  url: string;
  port: number;
}

/** Starts `voipready collector ARGS` and resolves once it says it is listening. */
export async function startCollectorProcess(
  args: string[],
  opts: CliOptions = {},
): Promise<CollectorProcess> {
  const collector = startCli(['collector', ...args], opts);
  try {
    const line = await collector.waitForStdout(/listening on http:\/\/\S+:\d+/, 30_000);
    const m = /listening on (http:\/\/\S+:(\d+))/.exec(line)!;
    return { ...collector, url: m[1]!, port: Number(m[2]) };
  } catch (err) {
    await collector.stop();
    throw err;
  }
}

export interface ProbeRun {
  run: CliResult;
  json: ProbeJson;
}

/**
 * `voipready probe --peer PEER --calls N --duration Ds --wait Ws --json`, checked to have finished
 * in time with a verdict (exit 0 or 1) and one valid ProbeJson document.
 */
export async function probeJson(
  peer: string,
  opts: CliOptions & { calls: number; durationS?: number; waitS?: number },
): Promise<ProbeRun> {
  const { calls, durationS = 3, waitS = 1, ...cli } = opts;
  const run = await runCli(
    [
      'probe',
      '--peer',
      peer,
      '--calls',
      `${calls}`,
      '--duration',
      `${durationS}s`,
      '--wait',
      `${waitS}s`,
      '--json',
    ],
    { timeoutMs: (durationS + waitS + 25) * 1000, ...cli },
  );
  if (run.timedOut || (run.code !== 0 && run.code !== 1)) {
    throw new Error(`probe ${run.timedOut ? 'timed out' : `exited ${run.code}`}: ${run.stderr.trim()}`);
  }
  return { run, json: parseProbeJson(run.stdout) };
}

/**
 * Runs a short probe against a freshly started reflector and discards it. A reflector's first
 * packets run cold code (measured: the first burst of 50 new streams stamped up to 7 ms late);
 * a long-running reflector answers every later probe warm, and that is what is measured.
 */
export async function warmUpReflector(peer: string, calls: number, opts: CliOptions = {}): Promise<void> {
  await probeJson(peer, { ...opts, calls, durationS: 1, waitS: 0 });
}

/** Kills every CLI child still running (for afterAll/finally). */
export async function killAllCli(): Promise<void> {
  const waits = [...live].map(
    (child) =>
      new Promise<void>((resolve) => {
        child.once('close', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  await Promise.all(waits);
}

const Timing = z.object({
  p50Ms: z.number().nonnegative(),
  p99Ms: z.number().nonnegative(),
  maxMs: z.number().nonnegative(),
  samples: z.number().int().nonnegative(),
});

/**
 * `voipready probe --json` as the namespace tests and the benchmark read it: the voipready.probe/1
 * contract (ProbeResult) plus the extra keys agreed with the probe's author.
 */
export const ProbeJson = ProbeResult.extend({
  forward: DirectionStats.extend({ streams: z.array(ProbeStream) }),
  reverse: DirectionStats.extend({ streams: z.array(ProbeStream) }),
  sendTiming: Timing,
  reflectorSendTiming: Timing.nullable().optional(),
  clockSync: z.object({ local: ClockSync, peer: ClockSync.nullable() }),
  bandwidth: z.looseObject({}),
  socketPath: z.enum(['native', 'dgram']).optional(),
  socketPathReason: z.string().optional(),
  // This build's probes always say how the thread was scheduled.
  sendPacing: SendPacing.required().optional(),
});
export type ProbeJson = z.infer<typeof ProbeJson>;

/** Parses a probe's stdout: exactly one JSON document that must satisfy ProbeJson. */
export function parseProbeJson(stdout: string): ProbeJson {
  return ProbeJson.parse(JSON.parse(stdout));
}
