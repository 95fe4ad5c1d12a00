// The webhook outbox is durable: a notice queued while the tracker is down survives a collector
// restart and is delivered once afterwards; a receiver that cannot verify the signature (wrong
// secret) refuses it, and it stays queued rather than counted as delivered.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningCollector } from '../../collector/server.js';
import { fetchApi, startWebhookCollector, TOKENS, VOICE_CASE } from '../helpers/cases.js';
import { freeLoopbackPort, waitUntil } from '../helpers/service.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'the-trackers-shared-secret-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'vr-cases-webhook-'));
const running: RunningCollector[] = [];
const receivers: WebhookReceiver[] = [];
afterAll(async () => {
  for (const c of running) await c.close().catch(() => undefined);
  for (const r of receivers) await r.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('webhook outbox', () => {
  it('keeps a notice through a wrong-secret receiver and a collector restart, then delivers it once', async () => {
    const port = await freeLoopbackPort();
    const first = await startWebhookCollector(dir, `http://127.0.0.1:${port}/hooks/voipready`, SECRET);
    running.push(first);
    const opened = await fetchApi(first.url, 'POST', '/api/v1/cases', TOKENS.support, {
      ...VOICE_CASE,
      voice: false,
      product: 'Interaction Dialer',
    });
    expect(opened.status).toBe(201);
    const caseId = opened.json.caseId as string;

    // A receiver with another secret: every attempt is refused (401), nothing is marked delivered.
    const impostor = new WebhookReceiver(port, 'not-the-shared-secret-at-all');
    receivers.push(impostor);
    await impostor.start();
    await waitUntil('two refused deliveries', async () => impostor.badSignatures >= 2, 30_000);
    expect(impostor.events).toEqual([]);
    const store = first.app.collector.cases!.store;
    expect(await store.outboxPending()).toBe(1);
    await impostor.stop();
    await first.close();

    // The real tracker is up; the collector starts again on the same data.
    const tracker = new WebhookReceiver(port, SECRET);
    receivers.push(tracker);
    await tracker.start();
    const second = await startWebhookCollector(dir, tracker.url, SECRET);
    running.push(second);
    await waitUntil(
      'the queued notice at the tracker',
      async () => (await second.app.collector.cases!.store.outboxPending()) === 0,
      30_000,
    );
    expect(tracker.types(caseId)).toEqual(['case-opened']);
    expect(tracker.duplicates).toBe(0);
    expect(tracker.badSignatures).toBe(0);
    const event = tracker.events[0]!;
    expect(event.payload).toMatchObject({
      case: { caseId, site: 'hq', customer: 'Acme', status: 'Open', subStatus: 'New' },
    });

    // Later notices follow, in order.
    await fetchApi(second.url, 'POST', `/api/v1/cases/${caseId}/updates`, TOKENS.support, {
      status: 'Awaiting Info',
      text: 'send logs',
    });
    await waitUntil('the update at the tracker', async () => tracker.types(caseId).length === 2, 30_000);
    expect(tracker.types(caseId)).toEqual(['case-opened', 'case-updated']);
  });
});
