// The native sender thread's scheduling as the kernel reports it (/proc/PID/task/TID/stat and
// sched, read while a probe runs) against what the probe's result says in `sendPacing`: as root
// SCHED_FIFO 1; under `chrt --fifo 50` one level above the process (51), so that its own event
// loop cannot hold the CPU past a due time; as uid 65534 an ordinary thread that asked for the fair
// scheduler's 0.1 ms slice (Linux ≥ 6.12; older kernels ignore it, and the result must then say so).

import { readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNativeUdp } from '../../agent/net/native-udp.js';
import {
  AS_NOBODY,
  cliUnavailableReason,
  killAllCli,
  parseProbeJson,
  type ReflectorProcess,
  realtimeWrapper,
  startCli,
  startReflector,
} from '../helpers/cli.js';
import { freePort } from '../helpers/sipp.js';

const isRoot = process.getuid?.() === 0;
const native = loadNativeUdp();
const unavailable =
  cliUnavailableReason() ??
  (typeof native === 'string' ? `the native socket layer is unavailable: ${native}` : undefined);
const [major = 0, minor = 0] = release().split('.').map(Number);
const kernelHasCustomSlice = major > 6 || (major === 6 && minor >= 12);

interface Task {
  tid: number;
  comm: string;
  /** SCHED_OTHER 0, SCHED_FIFO 1. */
  policy: number;
  rtPriority: number;
  /** The fair scheduler's slice, ns (se.slice). */
  sliceNs: number;
}

function tasksOf(pid: number): Task[] {
  const tasks: Task[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return tasks;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // Fields after "(comm) ": state is field 3; rt_priority 40 and policy 41 (proc(5)).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const sched = readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8');
      const slice = /^se\.slice\s*:\s*(\d+)/m.exec(sched);
      tasks.push({
        tid: Number(tid),
        comm,
        rtPriority: Number(fields[37]),
        policy: Number(fields[38]),
        sliceNs: Number(slice?.[1] ?? -1),
      });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return tasks;
}

/** Runs a 2-call probe under `wrapper`, reading the threads of the probe while it sends. */
async function probeThreads(peer: string, wrapper: string[]) {
  const probe = startCli(
    ['probe', '--peer', peer, '--calls', '2', '--duration', '3s', '--wait', '1s', '--json'],
    {
      wrapper,
      timeoutMs: 30_000,
    },
  );
  let sender: Task | undefined;
  let main: Task | undefined;
  let finished = false;
  void probe.done.then(() => {
    finished = true;
  });
  while (!finished && !sender) {
    const tasks = tasksOf(probe.child.pid!);
    sender = tasks.find((t) => t.comm === 'voipready-send');
    main = tasks.find((t) => t.tid === probe.child.pid);
    await new Promise((r) => setTimeout(r, 50));
  }
  const run = await probe.done;
  expect(run.code === 0 || run.code === 1, run.stderr).toBe(true);
  return { sender, main, json: parseProbeJson(run.stdout) };
}

describe.skipIf(unavailable !== undefined)('the sender thread as the kernel schedules it', () => {
  let reflector: ReflectorProcess;
  let peer: string;

  beforeAll(async () => {
    peer = `127.0.0.1:${await freePort()}`;
    reflector = await startReflector(peer);
  }, 30_000);

  afterAll(async () => {
    await reflector?.stop();
    await killAllCli();
  });

  it.skipIf(!isRoot)(
    'as root: SCHED_FIFO 1, and the result says realtime',
    async () => {
      const { sender, main, json } = await probeThreads(peer, []);
      expect(sender, 'no thread named voipready-send while the probe ran').toBeDefined();
      expect(sender).toMatchObject({ policy: 1, rtPriority: 1 });
      expect(main).toMatchObject({ policy: 0 });
      expect(json.sendPacing).toEqual({ by: 'native-thread', realtime: true, shortSlice: false });
    },
    40_000,
  );

  it.skipIf(!isRoot || !realtimeWrapper())(
    'under chrt --fifo 50: the thread one level above the process',
    async () => {
      const { sender, main, json } = await probeThreads(peer, realtimeWrapper()!);
      expect(main).toMatchObject({ policy: 1, rtPriority: 50 });
      expect(sender).toMatchObject({ policy: 1, rtPriority: 51 });
      expect(json.sendPacing).toEqual({ by: 'native-thread', realtime: true, shortSlice: false });
    },
    40_000,
  );

  it(`as ${isRoot ? 'uid 65534' : 'an ordinary user'}: an ordinary thread with ${kernelHasCustomSlice ? 'a 0.1 ms slice' : 'the default slice (kernel < 6.12)'}, as the result says`, async () => {
    const { sender, json } = await probeThreads(peer, isRoot ? AS_NOBODY : []);
    expect(sender, 'no thread named voipready-send while the probe ran').toBeDefined();
    expect(sender!.policy).toBe(0);
    if (kernelHasCustomSlice) expect(sender!.sliceNs).toBe(100_000);
    else expect(sender!.sliceNs).not.toBe(100_000);
    expect(json.sendPacing).toEqual({
      by: 'native-thread',
      realtime: false,
      shortSlice: kernelHasCustomSlice,
    });
  }, 40_000);
});
