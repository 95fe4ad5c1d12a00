// The case background work of a running collector: the clock scheduler (due times read from the
// store, so a restart loses or repeats nothing) and the webhook sender draining the outbox.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { UserError } from '../../src/errors.js';
import { PollLoop, WebhookSender, type WebhookTarget } from './webhook.js';

export interface CaseWork {
  /** Something was queued or became due: look now. */
  poke(): void;
  stop(): Promise<void>;
}

function readSecret(file: string, name: string): string {
  let secret: string;
  try {
    secret = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UserError(
      `webhook ${name}: cannot read secretFile ${file} (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  if (secret.length < 16)
    throw new UserError(`webhook ${name}: the secret in ${file} is shorter than 16 characters`);
  return secret;
}

export function startCaseWork(app: FastifyInstance, pollMs: number): CaseWork {
  const { cases, config, now } = app.collector;
  if (!cases) throw new Error('the app has no case service');
  const targets: WebhookTarget[] = config.cases.webhooks.map((w) => ({
    name: w.name,
    url: w.url,
    secret: readSecret(w.secretFile, w.name),
    retryMaxMs: w.retryMax,
  }));
  const caseStore = cases.store;
  const sender = new WebhookSender({
    store: caseStore,
    targets,
    now,
    onFailure: (target, message) =>
      app.log.warn(`webhook ${target}: delivery failed, kept in the outbox: ${message}`),
  });
  const onError = (what: string) => (err: unknown) => app.log.error(`${what}: ${(err as Error).message}`);
  const deliveries = new PollLoop(
    () => sender.deliverDue(),
    Math.min(pollMs, 1000),
    onError('webhook sender'),
  );
  const clocks = new PollLoop(
    async () => {
      // Readiness decides releases: with a shared store, read what the other collectors stored.
      if (app.collector.store.shared) await app.collector.ingest.refresh();
      const { fired, released } = await cases.tick();
      if (fired + released > 0) deliveries.poke();
    },
    pollMs,
    onError('case clocks'),
  );
  clocks.start();
  if (targets.length > 0) deliveries.start();
  return {
    poke: () => (targets.length > 0 ? deliveries.poke() : undefined),
    async stop() {
      await clocks.stop();
      await deliveries.stop();
    },
  };
}
