import * as fsp from 'node:fs/promises';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runProbe } from '../../agent/probe.js';
import type { QueueFs } from '../../agent/queue/durable-queue.js';
import { type ProbeRequest, startAgent } from '../../agent/service/agent.js';
import type { Clock } from '../../agent/service/clock.js';
import type { Log } from '../../agent/service/log.js';
import { runSchedule } from '../../agent/service/scheduler.js';
import type { SendOutcome } from '../../agent/uplink/post-report.js';
import { sampleProbe } from '../../bench/collector-report.js';
import { assessReport } from '../../collector/assessment.js';
import { AgentConfig } from '../../src/config/agent.js';
import { DEFAULT_POLICY } from '../../src/policy.js';
import { AgentReport } from '../../src/schemas.js';

/** Virtual time: sleeps wait until the test moves the clock past them. */
class FakeClock implements Clock {
  t = Date.parse('2026-11-26T00:00:00Z');
  private timers: { at: number; resolve: () => void }[] = [];
  now = () => this.t;
  sleep = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const onAbort = () => {
        this.timers = this.timers.filter((x) => x !== timer);
        resolve();
      };
      const timer = {
        at: this.t + ms,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.timers.push(timer);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  /** Lets real I/O settle, then fires the earliest timer; repeats until cond() holds. */
  async runUntil(cond: () => boolean, maxSteps = 500): Promise<void> {
    for (let step = 0; step < maxSteps; step++) {
      await new Promise((r) => setTimeout(r, 2));
      if (cond()) return;
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers.shift();
      if (next) {
        this.t = Math.max(this.t, next.at);
        next.resolve();
      }
    }
    throw new Error('condition not reached');
  }
}

const logs: { level: string; event: string; msg: string; fields?: Record<string, unknown> }[] = [];
const log: Log = (level, event, msg, fields) => logs.push({ level, event, msg, fields });

describe('scheduler', () => {
  beforeEach(() => {
    logs.length = 0;
  });
  it('runs jobs on their intervals, one at a time, skipping slots a long run overran', async () => {
    const clock = new FakeClock();
    const t0 = clock.t;
    const runs: [string, number][] = [];
    const job = (name: string, intervalMs: number, takesMs: number) => ({
      name,
      intervalMs,
      run: async () => {
        runs.push([name, (clock.t - t0) / 1000]);
        clock.t += takesMs;
      },
    });
    const controller = new AbortController();
    const done = runSchedule(
      [job('a', 60_000, 10_000), job('b', 90_000, 200_000)],
      clock,
      log,
      controller.signal,
    );
    await clock.runUntil(() => runs.length >= 6);
    controller.abort();
    await done;
    // a at 0 (till 10); b, due at 0, runs 10..210, so its slots 90 and 180 are skipped (next 270);
    // a's 60 slot runs late at 210 (till 220), its 120 and 180 slots are skipped, back on its grid at 240.
    expect(runs.slice(0, 5)).toEqual([
      ['a', 0],
      ['b', 10],
      ['a', 210],
      ['a', 240],
      ['b', 270],
    ]);
    expect(
      logs.filter((l) => l.event === 'job.overrun').map((l) => [l.fields?.job, l.fields?.skipped]),
    ).toEqual(
      expect.arrayContaining([
        ['b', 2],
        ['a', 2],
      ]),
    );
    expect(
      logs
        .filter((l) => l.event === 'job.overrun')
        .slice(0, 2)
        .map((l) => l.fields?.job),
    ).toEqual(['b', 'a']);
  });
});

describe('agent service', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-agent-'));
    logs.length = 0;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const config = (
    extra: Record<string, unknown> = {},
    probes: Record<string, unknown>[] = [
      { peer: '127.0.0.1:4000', interval: '1m', duration: '5s' },
      { peer: '127.0.0.1:4001', interval: '2m', duration: '5s', codec: 'g729', calls: 3 },
    ],
  ) =>
    AgentConfig.parse({
      agent: {
        name: 'agent-1',
        site: 'branch-01',
        collector: { url: 'http://127.0.0.1:1', token: 't' },
        queue: { dir, ...extra },
        probes,
      },
    }).agent;

  it('probes on schedule, queues schema-valid reports and delivers them in order', async () => {
    const clock = new FakeClock();
    const requests: ProbeRequest[] = [];
    const sent: string[] = [];
    const agent = await startAgent(config(), {
      probe: async (r) => {
        requests.push(r);
        clock.t += r.durationMs;
        return sampleProbe({ peer: r.peer });
      },
      send: async (body): Promise<SendOutcome> => {
        sent.push(body);
        return { kind: 'acked', status: 202 };
      },
      clock,
      log,
    });
    await clock.runUntil(() => sent.length >= 4);
    await agent.stop();
    // a (1m) at 0, b (2m) at 5 s, a at 60 s, a and b both due at 120 s: a first.
    expect(requests.slice(0, 4).map((r) => `${r.peer} ${r.codec} ${r.calls} ${r.durationMs}`)).toEqual([
      '127.0.0.1:4000 g711u 1 5000',
      '127.0.0.1:4001 g729 3 5000',
      '127.0.0.1:4000 g711u 1 5000',
      '127.0.0.1:4000 g711u 1 5000',
    ]);
    const reports = sent.map((b) => AgentReport.parse(JSON.parse(b)));
    expect(reports.slice(0, 4).map((r) => [r.site, r.agent, r.probes[0]!.peer])).toEqual([
      ['branch-01', 'agent-1', '127.0.0.1:4000'],
      ['branch-01', 'agent-1', '127.0.0.1:4001'],
      ['branch-01', 'agent-1', '127.0.0.1:4000'],
      ['branch-01', 'agent-1', '127.0.0.1:4000'],
    ]);
    expect(new Set(reports.map((r) => r.reportId)).size).toBe(reports.length);
    // Every queued report was sent, in the order queued, or is still in the queue.
    const queued = logs.filter((l) => l.event === 'report.queued').map((l) => l.fields?.reportId);
    expect([...reports.map((r) => r.reportId), ...agent.queue.ids()]).toEqual(queued);
  });

  it('keeps reports in memory while the disk is full and writes them, in order, when space is back', async () => {
    const clock = new FakeClock();
    let diskFull = true;
    const fs: QueueFs = {
      ...fsp,
      open: (async (path: string, flags: string) => {
        if (diskFull && path.endsWith('.tmp')) {
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        }
        return fsp.open(path, flags);
      }) as QueueFs['open'],
    };
    const sent: string[] = [];
    const agent = await startAgent(config(), {
      probe: async (r) => {
        clock.t += r.durationMs;
        return sampleProbe({ peer: r.peer });
      },
      send: async (body) => {
        sent.push(JSON.parse(body).reportId);
        return { kind: 'acked', status: 202 };
      },
      clock,
      log,
      fs,
      rewriteEveryMs: 10_000,
    });
    const produced = () =>
      logs.filter((l) => l.event === 'probe.done').map((l) => l.fields?.reportId as string);
    await clock.runUntil(() => produced().length >= 3);
    expect(sent).toEqual([]);
    expect(logs.some((l) => l.event === 'queue.write-failed' && l.fields?.code === 'ENOSPC')).toBe(true);
    diskFull = false;
    await clock.runUntil(() => sent.length >= 3);
    await agent.stop();
    // Nothing lost, order kept: sent, then what is still queued, is everything produced.
    expect([...sent, ...agent.queue.ids()]).toEqual(produced());
    expect((await readdir(dir)).filter((n) => n.endsWith('.json')).length).toBe(agent.queue.length);
  });

  it('drops the oldest reports past the queue bound with a log line naming them', async () => {
    const clock = new FakeClock();
    const agent = await startAgent(config({ maxReports: 2 }), {
      probe: async (r) => {
        clock.t += r.durationMs;
        return sampleProbe({ peer: r.peer });
      },
      send: async () => ({ kind: 'retry', status: 503, retryAfterMs: 3_600_000, reason: 'HTTP 503' }),
      clock,
      log,
    });
    const produced = () =>
      logs.filter((l) => l.event === 'probe.done').map((l) => l.fields?.reportId as string);
    await clock.runUntil(() => produced().length >= 4);
    await agent.stop();
    const drops = logs.filter((l) => l.event === 'queue.dropped');
    expect(drops.flatMap((d) => d.fields?.reportIds as string[])).toEqual(produced().slice(0, 2));
    expect(drops[0]!.msg).toMatch(
      /queue over maxReports 2: dropped the 1 oldest undelivered report\(s\): agent-1-/,
    );
    expect(agent.queue.ids()).toEqual(produced().slice(2, 4));
  });

  it('a peer whose name does not resolve is sent as a not-ready report naming the cause, not skipped', async () => {
    const clock = new FakeClock();
    const sent: string[] = [];
    // RFC 6761: .invalid never resolves; the probe answers it itself, so no DNS query leaves the host.
    const unresolvable = config({}, [{ peer: 'no-such-host.invalid:5004', interval: '1m', duration: '1s' }]);
    const agent = await startAgent(unresolvable, {
      probe: (r) => runProbe(r),
      send: async (body): Promise<SendOutcome> => {
        sent.push(body);
        return { kind: 'acked', status: 202 };
      },
      clock,
      log,
    });
    await clock.runUntil(() => sent.length >= 1);
    await agent.stop();
    const report = AgentReport.parse(JSON.parse(sent[0]!));
    expect(report.probes[0]).toMatchObject({ peer: 'no-such-host.invalid:5004', ready: false });
    // The collector's assessment of that report: the site is not ready, and says why.
    const assessment = assessReport({
      report,
      policy: DEFAULT_POLICY,
      assessmentId: 'a-1',
      receivedAtMs: clock.now(),
      validForMs: 3_600_000,
    });
    expect(assessment.ready).toBe(false);
    const latency = assessment.checks.find((c) => c.id === 'latency')!;
    expect(latency).toMatchObject({ status: 'unknown' });
    expect(latency.evidence).toContain('cannot resolve no-such-host.invalid: ENOTFOUND');
    expect(assessment.checks.find((c) => c.id === 'loss')).toMatchObject({ status: 'fail', value: 100 });
    expect(logs.some((l) => l.event === 'probe.done' && l.fields?.ready === false)).toBe(true);
  });
});
