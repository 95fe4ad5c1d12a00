// The SIP probe's response times against the wire: each request's measured time must agree within
// 5 ms with dumpcap's kernel stamps of the same request and answer on the loopback interface, over
// UDP and TCP, with sipp (sip-tester) answering after a pause the test sets. Timing-sensitive: runs
// on its own after the other files (vitest.config.ts), as JavaScript stamps lag on a busy machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSipPing } from '../../agent/sip/ping.js';
import { SipResult } from '../../src/sip/schema.js';
import { captureLo, killAllSipp, sippUnavailableReason, startSipp, wireSip } from '../helpers/sipp.js';

const reason = sippUnavailableReason();

async function ping(target: string, count: number, intervalMs: number): Promise<SipResult> {
  return SipResult.parse(await runSipPing({ target, count, intervalMs }));
}

describe.skipIf(reason !== undefined)(`sip-ping times against the wire ${reason ?? ''}`, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'voipready-sip-timing-'));
  });
  afterAll(() => {
    killAllSipp();
    rmSync(dir, { recursive: true, force: true });
  });

  it('UDP: a slow answer is timed within 5 ms of the wire', async () => {
    const pauseMs = 300;
    const sipp = await startSipp({ scenario: 'options-200.xml', pauseMs });
    const cap = await captureLo(dir, sipp.port);
    let r: SipResult;
    try {
      r = await ping(`sip:127.0.0.1:${sipp.port}`, 3, 100);
    } finally {
      await sipp.stop();
    }
    const wire = await wireSip(await cap.stop(), sipp.port);
    expect(r.answered).toBe(3);
    for (const q of r.requests) {
      const sent = wire.find((w) => w.cseq === q.cseq && w.status === null)!;
      const answer = wire.find((w) => w.cseq === q.cseq && w.status === 200)!;
      const wireMs = answer.timeMs - sent.timeMs;
      expect(wireMs).toBeGreaterThanOrEqual(pauseMs);
      expect(Math.abs(q.responseMs! - wireMs)).toBeLessThanOrEqual(5);
    }
    // 300 ms is within the default limit (T1, 500 ms); a stricter policy fails it.
    expect(r.checks.find((c) => c.id === 'sip')!.status).toBe('pass');
  });

  it('TCP: a slow answer is timed within 5 ms of the wire', async () => {
    const pauseMs = 100;
    const sipp = await startSipp({ scenario: 'options-200.xml', transport: 'tcp', pauseMs });
    const cap = await captureLo(dir, sipp.port);
    let r: SipResult;
    try {
      r = await ping(`sip:127.0.0.1:${sipp.port};transport=tcp`, 3, 50);
    } finally {
      await sipp.stop();
    }
    const wire = await wireSip(await cap.stop(), sipp.port);
    expect(r.answered).toBe(3);
    for (const q of r.requests) {
      const sent = wire.find((w) => w.cseq === q.cseq && w.status === null)!;
      const answer = wire.find((w) => w.cseq === q.cseq && w.status === 200)!;
      expect(answer.timeMs - sent.timeMs).toBeGreaterThanOrEqual(pauseMs);
      expect(Math.abs(q.responseMs! - (answer.timeMs - sent.timeMs))).toBeLessThanOrEqual(5);
    }
  });
});
