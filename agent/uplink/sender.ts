// The delivery loop: strictly FIFO, one report in flight. The oldest queued report is sent; only when
// the collector acknowledged it (2xx) is it removed and the next one sent, so the collector receives
// reports in the order they were stored. Transient failures back off (full jitter, Retry-After
// honoured) and retry the same report; a refused token holds the whole queue (retried at the slowest
// pace); a permanent rejection of the report moves it to dead/ with a log line.
import type { DurableQueue, QueueItem } from '../queue/durable-queue.js';
import type { Clock } from '../service/clock.js';
import type { Log } from '../service/log.js';
import { type BackoffPolicy, backoffDelayMs } from './backoff.js';
import type { SendOutcome } from './post-report.js';

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
    let body: string;
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
      const deadFile = await queue.deadLetter(item, outcome.reason);
      log(
        'error',
        'report.rejected',
        `collector rejected report ${item.reportId} for good; kept in ${deadFile}`,
        {
          reportId: item.reportId,
          status: outcome.status,
          reason: outcome.reason,
          deadFile,
        },
      );
      this.failures = 0;
    } else {
      // A refused token (401/403) is the agent's configuration, not this report: every report would
      // get the same answer, so hold them all and retry at the slowest pace.
      const unauthorized = outcome.kind === 'unauthorized';
      const delayMs = unauthorized
        ? this.deps.backoff.maxMs
        : backoffDelayMs(this.failures, this.deps.backoff, outcome.retryAfterMs, this.deps.random);
      this.failures++;
      const retrying = `retrying report ${item.reportId} in ${(delayMs / 1000).toFixed(1)} s`;
      log(
        unauthorized ? 'error' : 'warn',
        unauthorized ? 'collector.unauthorized' : 'report.retry',
        unauthorized
          ? `collector refused this agent's token (${outcome.reason}); check agent.collector.token/tokenFile and the collector's agents list; ${queue.length} report(s) kept, ${retrying}`
          : `collector unavailable (${outcome.reason}); ${retrying}`,
        {
          reportId: item.reportId,
          status: outcome.status,
          attempt: this.failures,
          delayMs,
          queued: queue.length,
        },
      );
      await clock.sleep(delayMs, signal);
    }
  }
}
