// The outgoing webhook of the tracker adapter: every notification is queued (in the same
// transaction as the case change that caused it) in a durable outbox, one row per configured
// webhook, and POSTed as JSON until the receiver answers 2xx — at least once, so each carries its
// idempotency key (the event id, the same on every attempt) for the receiver to drop repeats.
// Signed with HMAC-SHA256 over "<timestamp>.<body>" so the receiver can check origin and freshness.
import { createHmac } from 'node:crypto';
import type { CaseStore } from './store.js';

export const SIGNATURE_HEADER = 'x-voipready-signature';
export const IDEMPOTENCY_HEADER = 'idempotency-key';

export interface WebhookTarget {
  name: string;
  url: string;
  secret: string;
  retryMaxMs: number;
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function signBody(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** Backoff before attempt `attempts + 1`: doubling from 1 s up to retryMax, with jitter (half to full). */
export function retryDelayMs(attempts: number, retryMaxMs: number, random = Math.random): number {
  const ceiling = Math.min(retryMaxMs, 1000 * 2 ** Math.min(attempts, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface SenderDeps {
  store: CaseStore;
  targets: WebhookTarget[];
  now: () => number;
  fetch?: typeof fetch;
  onFailure?: (target: string, message: string) => void;
}

export class WebhookSender {
  constructor(private readonly deps: SenderDeps) {}

  /** Delivers what is due, in outbox order; a failing target's later items wait for its retry. */
  async deliverDue(limit = 200): Promise<number> {
    const { store, now } = this.deps;
    const blocked = new Set<string>();
    let delivered = 0;
    for (const item of await store.outboxDue(now(), limit)) {
      const target = this.deps.targets.find((t) => t.name === item.target);
      if (!target || blocked.has(target.name)) continue;
      const failure = await this.post(target, item.eventId, item.body, item.attempts);
      if (failure === undefined) {
        await store.outboxDelivered(item.seq, now());
        delivered++;
      } else {
        blocked.add(target.name);
        await store.outboxRetry(item.seq, now() + retryDelayMs(item.attempts, target.retryMaxMs), failure);
        this.deps.onFailure?.(target.name, failure);
      }
    }
    return delivered;
  }

  /** undefined when the receiver took it (2xx), else why not. */
  private async post(t: WebhookTarget, eventId: string, body: string, attempts: number) {
    const doFetch = this.deps.fetch ?? fetch;
    try {
      const res = await doFetch(t.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(10_000),
        headers: {
          'content-type': 'application/json',
          [IDEMPOTENCY_HEADER]: eventId,
          [SIGNATURE_HEADER]: signBody(t.secret, body, Math.floor(this.deps.now() / 1000)),
          'x-voipready-attempt': String(attempts + 1),
        },
        body,
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return e.cause?.code ?? e.message;
    }
  }
}

/**
 * Runs `step` now and then every `intervalMs`, or sooner when poked; errors go to onError and the
 * loop goes on. Timers in memory only pace the work: what is due is read from the store each time.
 */
export class PollLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly step: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.poke();
  }

  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.step()
      .catch(this.onError)
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          this.poke();
        } else {
          this.timer = setTimeout(() => this.poke(), this.intervalMs);
          this.timer.unref();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
