// `voipready agent`: probes each configured peer on its schedule, turns each result into a
// voipready.report/1, stores it in the durable queue and lets the sender deliver it. Side effects
// (the probe, the uplink, the clock, the file system) come in as dependencies.
import { randomBytes } from 'node:crypto';
import type { AgentConfig } from '../../src/config/agent.js';
import type { HostResult } from '../../src/host-schema.js';
import { AgentReport, type ProbeResult, REPORT_SCHEMA } from '../../src/schemas.js';
import type { SipResult } from '../../src/sip/schema.js';
import type { ProbeOptions } from '../probe.js';
import { DurableQueue, lockQueueDir, type QueueFs } from '../queue/durable-queue.js';
import type { SipPingConfig } from '../sip/ping.js';
import type { SendOutcome } from '../uplink/post-report.js';
import { Sender } from '../uplink/sender.js';
import { autoTracer, type TraceFn } from './auto-trace.js';
import type { Clock } from './clock.js';
import type { Log } from './log.js';
import { runSchedule, type ScheduledJob } from './scheduler.js';

/** What the agent asks of one probe run: a subset of runProbe's options (agent/probe.ts). */
export type ProbeRequest = Pick<
  ProbeOptions,
  'peer' | 'signallingPort' | 'codec' | 'calls' | 'durationMs' | 'secret' | 'priorityTest'
>;

export type ProbeFn = (request: ProbeRequest) => Promise<ProbeResult>;

/** Runs one SIP OPTIONS schedule entry (agent/sip/ping.ts runSipPing with the site's policy). */
export type SipPingFn = (config: SipPingConfig) => Promise<SipResult>;

/** One host-health collection (agent/host/collect.ts with the config's host section and saved state). */
export type HostFn = () => Promise<HostResult>;

export interface AgentDeps {
  probe: ProbeFn;
  /** Needed when the configuration has a `host` section. */
  host?: HostFn;
  /** Needed when the configuration has `sip` entries. */
  sipPing?: SipPingFn;
  /** Traces the path when a probe's DSCP check fails (agent/service/auto-trace.ts); none without it. */
  trace?: TraceFn;
  /** Least time between two automatic traces of one peer and check (default an hour). */
  traceEveryMs?: number;
  send: (body: string) => Promise<SendOutcome>;
  clock: Clock;
  log: Log;
  /** Shared secrets read from each probe's secretFile, by probe index. */
  secrets?: (Buffer | undefined)[];
  random?: () => number;
  fs?: QueueFs;
  /** How often reports that could not be written (disk full) are tried again. */
  rewriteEveryMs?: number;
}

export interface RunningAgent {
  queue: DurableQueue;
  /** Stops scheduling; a probe in progress finishes and is queued; resolves when all loops ended. */
  stop(): Promise<void>;
  /** Resolves when the agent stopped (after stop()). */
  done: Promise<void>;
}

/** `${agent}-${ms since epoch, base 36}-${random}`: unique, sortable per agent, safe as a file name. */
export function newReportId(agent: string, nowMs: number): string {
  return `${agent}-${nowMs.toString(36)}-${randomBytes(6).toString('hex')}`;
}

export async function startAgent(config: AgentConfig['agent'], deps: AgentDeps): Promise<RunningAgent> {
  const { clock, log } = deps;
  const unlock = await lockQueueDir(config.queue.dir, deps.fs);
  let queue: DurableQueue;
  try {
    queue = await DurableQueue.open(config.queue.dir, {
      maxReports: config.queue.maxReports,
      maxBytes: config.queue.maxBytes,
      fs: deps.fs,
      events: {
        dropped: (items, bound) =>
          log(
            'warn',
            'queue.dropped',
            `queue over ${bound}: dropped the ${items.length} oldest undelivered report(s): ${items.map((i) => i.reportId).join(', ')}`,
            { count: items.length, reportIds: items.map((i) => i.reportId), bound },
          ),
        corrupt: (file, reason) =>
          log('error', 'queue.corrupt', `queue file ${file} is unreadable (${reason}); moved to corrupt/`, {
            file,
          }),
      },
    });
  } catch (err) {
    await unlock();
    throw err;
  }
  if (queue.length > 0) {
    log(
      'info',
      'queue.recovered',
      `${queue.length} undelivered report(s) found in ${queue.dir}; sending them first`,
      {
        count: queue.length,
        oldest: queue.peek()!.reportId,
      },
    );
  }
  const sender = new Sender({
    queue,
    send: deps.send,
    backoff: { initialMs: config.retry.initial, maxMs: config.retry.max },
    clock,
    log,
    random: deps.random,
  });

  const controller = new AbortController();
  const rewriteEveryMs = deps.rewriteEveryMs ?? 10_000;
  // While reports wait in memory (disk full) one timer retries writing them; none runs otherwise.
  let rewriteTimer: Promise<void> | undefined;
  const scheduleRewrite = (): void => {
    if (rewriteTimer || controller.signal.aborted) return;
    rewriteTimer = clock.sleep(rewriteEveryMs, controller.signal).then(async () => {
      rewriteTimer = undefined;
      if (!controller.signal.aborted && unwritten.length > 0) await flush();
    });
  };
  // Reports produced while the disk was full, oldest first; written before any newer report.
  const unwritten: { reportId: string; body: string }[] = [];
  let writing: Promise<void> = Promise.resolve();
  // Failed write attempts in a row; logged on the first and then every 30th (5 min at the 10 s pace).
  let writeFailures = 0;
  const writePending = async (): Promise<void> => {
    while (unwritten.length > 0) {
      const next = unwritten[0]!;
      try {
        await queue.enqueue(next.reportId, next.body);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        if (writeFailures++ % 30 === 0) {
          log(
            'error',
            'queue.write-failed',
            `cannot write report ${next.reportId} to ${queue.dir} (${code}); keeping ${unwritten.length} report(s) in memory and retrying every ${rewriteEveryMs / 1000} s`,
            { reportId: next.reportId, code, inMemory: unwritten.length, attempts: writeFailures },
          );
        }
        scheduleRewrite();
        return;
      }
      if (writeFailures > 0) {
        log(
          'info',
          'queue.write-recovered',
          `queue ${queue.dir} writable again after ${writeFailures} failed attempt(s)`,
          {
            attempts: writeFailures,
          },
        );
        writeFailures = 0;
      }
      unwritten.shift();
      log('info', 'report.queued', `report ${next.reportId} queued`, {
        reportId: next.reportId,
        queued: queue.length,
      });
      sender.notify();
    }
  };
  // Serialised so two writers never interleave and order is kept.
  const flush = (): Promise<void> => {
    writing = writing.then(writePending);
    return writing;
  };

  /**
   * Turns one schedule entry's results into a voipready.report/1, validates it and queues it (in
   * memory first while the disk is full). `what` names the entry in the logs.
   */
  const queueReport = async (
    results: Pick<AgentReport, 'probes' | 'sip' | 'host' | 'traces'>,
    what: string,
    ready: boolean,
    fields: Record<string, unknown>,
  ): Promise<void> => {
    const nowMs = clock.now();
    const report = {
      schema: REPORT_SCHEMA,
      reportId: newReportId(config.name, nowMs),
      site: config.site,
      agent: config.name,
      createdAt: new Date(nowMs).toISOString(),
      ...results,
    };
    // Validate before queueing: the collector would reject a malformed report for good anyway.
    const checked = AgentReport.safeParse(report);
    if (!checked.success) {
      log('error', 'report.invalid', `${what} produced a report that fails the schema; not queued`, {
        issues: checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      });
      return;
    }
    log('info', 'probe.done', `${what}: ${ready ? 'ready' : 'not ready'}`, {
      ...fields,
      reportId: report.reportId,
      ready,
    });
    unwritten.push({ reportId: report.reportId, body: JSON.stringify(checked.data) });
    // Memory holds at most the queue's bound while the disk is full; the oldest go first (logged).
    if (unwritten.length > config.queue.maxReports) {
      const lost = unwritten.splice(0, unwritten.length - config.queue.maxReports);
      log(
        'warn',
        'queue.dropped',
        `disk still full: dropped the ${lost.length} oldest unwritten report(s): ${lost.map((u) => u.reportId).join(', ')}`,
        {
          count: lost.length,
          reportIds: lost.map((u) => u.reportId),
        },
      );
    }
    await flush();
  };

  const autoTrace = deps.trace ? autoTracer(deps.trace, clock, log, deps.traceEveryMs) : undefined;
  const probeJobs: ScheduledJob[] = config.probes.map((p, index) => ({
    name: `probe ${p.peer} (${p.codec}, ${p.calls} call(s))`,
    intervalMs: p.interval,
    run: async () => {
      const result = await deps.probe({
        peer: p.peer,
        signallingPort: p.signallingPort,
        codec: p.codec,
        calls: p.calls,
        durationMs: p.duration,
        secret: deps.secrets?.[index],
        ...(p.priorityTest
          ? {
              priorityTest: {
                ...(p.priorityTest.load !== undefined ? { loadBps: p.priorityTest.load } : {}),
                ...(p.priorityTest.maxLoad !== undefined ? { maxLoadBps: p.priorityTest.maxLoad } : {}),
                // stop() ends the load at once; the run itself finishes and is queued.
                signal: controller.signal,
              },
            }
          : {}),
      });
      const traces = autoTrace
        ? await autoTrace(
            { peer: p.peer, signallingPort: p.signallingPort, secret: deps.secrets?.[index] },
            result,
          )
        : [];
      await queueReport(
        { probes: [result], ...(traces.length > 0 ? { traces } : {}) },
        `probe of ${p.peer}`,
        result.ready,
        { peer: p.peer },
      );
    },
  }));
  // SIP OPTIONS entries: the same loop (never overlapping a probe), the same report contract.
  const sipJobs: ScheduledJob[] = (config.sip ?? []).map((s) => ({
    name: `sip-ping ${s.target} (${s.count} request(s))`,
    intervalMs: s.interval,
    run: async () => {
      if (!deps.sipPing) throw new Error('no SIP OPTIONS probe was given to the agent');
      const result = await deps.sipPing({
        target: s.target,
        count: s.count,
        intervalMs: s.requestInterval,
        ...(s.t1 !== undefined ? { t1Ms: s.t1 } : {}),
        tlsVerify: s.tlsVerify,
      });
      await queueReport({ probes: [], sip: [result] }, `sip-ping of ${s.target}`, result.ready, {
        target: s.target,
      });
    },
  }));
  // Host health: the same loop, the same report contract (a report with a host result, no probes).
  const host = config.host;
  const hostJobs: ScheduledJob[] = host
    ? [
        {
          name: 'host checks',
          intervalMs: host.interval,
          run: async () => {
            if (!deps.host) throw new Error('no host collection was given to the agent');
            const result = await deps.host();
            await queueReport({ probes: [], host: result }, `host checks of ${result.host}`, result.ready, {
              host: result.host,
            });
          },
        },
      ]
    : [];
  const jobs = [...probeJobs, ...sipJobs, ...hostJobs];

  log(
    'info',
    'agent.started',
    `agent ${config.name} for site ${config.site}: ${probeJobs.length} probe(s)${sipJobs.length > 0 ? `, ${sipJobs.length} SIP target(s)` : ''}${hostJobs.length > 0 ? ', host checks' : ''}, queue ${queue.dir}`,
    {
      agent: config.name,
      site: config.site,
      queued: queue.length,
    },
  );
  const done = Promise.all([
    runSchedule(jobs, clock, log, controller.signal),
    sender.run(controller.signal),
  ]).then(async () => {
    await rewriteTimer;
    await writing;
    await unlock();
    log(
      'info',
      'agent.stopped',
      `agent stopped; ${queue.length} report(s) still queued${unwritten.length ? `, ${unwritten.length} unwritten (disk full) and lost` : ''}`,
      {
        queued: queue.length,
        unwritten: unwritten.length,
      },
    );
  });
  return {
    queue,
    done,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}
