// The delivery loop: strictly FIFO, one report in flight. The oldest queued report is sent; only when
// the collector acknowledged it (2xx) is it removed and the next one sent, so the collector receives
// reports in the order they were stored. Transient failures back off (full jitter, Retry-After
// honoured) and retry the same report; an answer about the agent's configuration (a refused token, a
// redirect, a path that is not the reports API) holds the whole queue (retried at the slowest pace);
// a permanent rejection of the report moves it to dead/ with a log line.
import type { DurableQueue, QueueItem } from '../queue/durable-queue.js';
import type { Clock } from '../service/clock.js';
import type { Log } from '../service/log.js';
import { type BackoffPolicy, backoffDelayMs } from './backoff.js';
import type { HeldProblem, SendOutcome } from './post-report.js';

export interface SenderDeps {
  queue: DurableQueue;
  send: (body: string) => Promise<SendOutcome>;
  backoff: BackoffPolicy;
  clock: Clock;
  log: Log;
  random?: () => number;
}

export class Sender {
  private wake: (() => void) | undefined;
  private pendingWake = false;
  private failures = 0;

  constructor(private readonly deps: SenderDeps) {}

  /** Something was queued: stop waiting for work (not for a backoff, which stays honoured). */
  notify(): void {
    this.pendingWake = true;
    this.wake?.();
  }

  private async waitForWork(signal: AbortSignal): Promise<void> {
    if (this.pendingWake) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Runs until the signal aborts; an attempt in progress when it aborts finishes or times out first. */
  async run(signal: AbortSignal): Promise<void> {
    const { queue, log, clock } = this.deps;
    while (!signal.aborted) {
      this.pendingWake = false;
      const item = queue.peek();
      if (!item) {
        await this.waitForWork(signal);
        continue;
      }
      try {
        await this.deliver(item, signal);
      } catch (err) {
        // A file-system error on the queue itself (EIO, EACCES, ENOSPC writing a dead letter): the
        // report stays where it is; log and try again later rather than end the agent.
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        const delayMs = this.deps.backoff.maxMs;
        log(
          'error',
          'queue.error',
          `queue ${queue.dir}: ${code} while handling report ${item.reportId}; retrying in ${(delayMs / 1000).toFixed(0)} s`,
          {
            reportId: item.reportId,
            code,
          },
        );
        await clock.sleep(delayMs, signal);
      }
    }
  }

  private async deliver(item: QueueItem, signal: AbortSignal): Promise<void> {
    const { queue, log, clock } = this.deps;
    let body: string | undefined;
    try {
      body = await queue.read(item);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Dropped by the size bound between peek and read (already out of the index), or deleted by
      // hand: nothing to send; make sure it leaves the index so the loop moves on.
      if (queue.peek() === item) {
        await queue.ack(item);
        log('warn', 'queue.vanished', `queue file of report ${item.reportId} disappeared; skipped`, {
          reportId: item.reportId,
        });
      }
      return;
    }
    // Failed its checksum: set aside to corrupt/ by the queue (logged through its events), not sent.
    if (body === undefined) return;
    const outcome = await this.deps.send(body);
    if (outcome.kind === 'acked') {
      await queue.ack(item);
      log('info', 'report.delivered', `report ${item.reportId} acknowledged (HTTP ${outcome.status})`, {
        reportId: item.reportId,
        status: outcome.status,
        queued: queue.length,
        ...(this.failures > 0 ? { afterFailures: this.failures } : {}),
      });
      this.failures = 0;
    } else if (outcome.kind === 'rejected') {
      const { deadFile, reasonKept } = await queue.deadLetter(item, outcome.reason);
      log(
        'error',
        'report.rejected',
        `collector rejected report ${item.reportId} for good (${outcome.reason}); kept in ${deadFile}${reasonKept ? '' : ' (no room for the .reason.txt beside it: the reason is in this line only)'}`,
        {
          reportId: item.reportId,
          status: outcome.status,
          reason: outcome.reason,
          deadFile,
          reasonKept,
        },
      );
      this.failures = 0;
    } else {
      const delayMs = outcome.kind === 'held' ? this.held(item, outcome) : this.retryLater(item, outcome);
      await clock.sleep(delayMs, signal);
    }
  }

  /** A transient failure: back off (full jitter, Retry-After honoured) and send the same report again. */
  private retryLater(item: QueueItem, outcome: Extract<SendOutcome, { kind: 'retry' }>): number {
    const delayMs = backoffDelayMs(this.failures, this.deps.backoff, outcome.retryAfterMs, this.deps.random);
    this.failures++;
    this.deps.log(
      'warn',
      'report.retry',
      `collector unavailable (${outcome.reason}); retrying report ${item.reportId} in ${(delayMs / 1000).toFixed(1)} s`,
      {
        reportId: item.reportId,
        status: outcome.status,
        attempt: this.failures,
        delayMs,
        queued: this.deps.queue.length,
      },
    );
    return delayMs;
  }

  /**
   * The answer concerns the agent's configuration (token, URL, a proxy), not this report: every
   * report would get the same, so hold them all, say what to fix, and retry at the slowest pace.
   */
  private held(item: QueueItem, outcome: Extract<SendOutcome, { kind: 'held' }>): number {
    const { queue, log } = this.deps;
    const delayMs = this.deps.backoff.maxMs;
    this.failures++;
    const kept = `${queue.length} report(s) kept, retrying report ${item.reportId} in ${(delayMs / 1000).toFixed(1)} s`;
    log('error', HELD_EVENT[outcome.problem], `${HELD_ADVICE[outcome.problem](outcome.reason)}; ${kept}`, {
      reportId: item.reportId,
      status: outcome.status,
      reason: outcome.reason,
      attempt: this.failures,
      delayMs,
      queued: queue.length,
    });
    return delayMs;
  }
}

const HELD_EVENT: Record<HeldProblem, string> = {
  token: 'collector.unauthorized',
  redirect: 'collector.redirect',
  endpoint: 'collector.endpoint',
};

const HELD_ADVICE: Record<HeldProblem, (reason: string) => string> = {
  token: (reason) =>
    `collector refused this agent's token (${reason}); check agent.collector.token/tokenFile and the collector's agents list`,
  redirect: (reason) =>
    `collector URL answered with a redirect (${reason}); not followed: set agent.collector.url to the collector's own address (scheme, host, path) or fix the proxy in front of it`,
  endpoint: (reason) =>
    `collector URL does not serve the reports API (${reason}); check agent.collector.url's path and any proxy in front of the collector (or wait out its deploy)`,
};
