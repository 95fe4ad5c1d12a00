import * as fsp from 'node:fs/promises';
import { mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DurableQueue, type QueueFs } from '../../agent/queue/durable-queue.js';
import type { Clock } from '../../agent/service/clock.js';
import type { Log } from '../../agent/service/log.js';
import { backoffDelayMs, parseRetryAfterMs } from '../../agent/uplink/backoff.js';
import { postReport, reportsUrl, type UplinkTarget } from '../../agent/uplink/post-report.js';
import { Sender } from '../../agent/uplink/sender.js';

// A tiny collector stand-in on loopback: answers each request with the next scripted response.
type Scripted = { status: number; headers?: Record<string, string>; body?: string; hang?: boolean };
let server: Server;
let script: Scripted[] = [];
const received: {
  method: string | undefined;
  url: string | undefined;
  auth: string | undefined;
  body: string;
}[] = [];
let target: UplinkTarget;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, auth: req.headers.authorization, body: data });
      const next = script.shift() ?? { status: 202 };
      if (next.hang) return;
      res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
      res.end(next.body ?? '{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  target = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token: 'tok-1',
    // Generous: on a loaded machine a loopback answer can take seconds; the timeout case sets its own.
    timeoutMs: 15_000,
  };
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('backoff', () => {
  it('grows exponentially with full jitter up to the cap', () => {
    const p = { initialMs: 1000, maxMs: 60_000 };
    expect(backoffDelayMs(0, p, undefined, () => 0.999)).toBe(999);
    expect(backoffDelayMs(3, p, undefined, () => 0.5)).toBe(4000);
    expect(backoffDelayMs(30, p, undefined, () => 0.999)).toBe(59_940);
    expect(backoffDelayMs(5, p, undefined, () => 0)).toBe(0);
  });
  it('honours Retry-After as a lower bound, capped at an hour', () => {
    const p = { initialMs: 1000, maxMs: 60_000 };
    expect(backoffDelayMs(0, p, 7000, () => 0.5)).toBe(7500);
    expect(backoffDelayMs(0, p, 99 * 3_600_000, () => 0)).toBe(3_600_000);
  });
  it('parses Retry-After seconds and HTTP-dates (RFC 9110 §10.2.3)', () => {
    const now = Date.parse('2026-11-26T10:00:00Z');
    expect(parseRetryAfterMs('120', now)).toBe(120_000);
    expect(parseRetryAfterMs('Thu, 26 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfterMs('soon', now)).toBeUndefined();
    expect(parseRetryAfterMs(null, now)).toBeUndefined();
  });
});

describe('postReport against a real HTTP server', () => {
  it('posts to /api/v1/reports under the base URL, keeping a proxy path prefix', () => {
    expect(reportsUrl('http://c:8470')).toBe('http://c:8470/api/v1/reports');
    expect(reportsUrl('https://proxy.example/voipready/')).toBe(
      'https://proxy.example/voipready/api/v1/reports',
    );
    expect(reportsUrl('https://proxy.example/voipready')).toBe(
      'https://proxy.example/voipready/api/v1/reports',
    );
  });
  beforeEach(() => {
    script = [];
    received.length = 0;
  });
  it('sends the bearer token and the body; 2xx is an ack (a duplicate ack too)', async () => {
    script = [{ status: 202 }, { status: 200, body: '{"duplicate":true}' }];
    expect(await postReport(target, '{"a":1}')).toEqual({ kind: 'acked', status: 202 });
    expect(await postReport(target, '{"a":1}')).toEqual({ kind: 'acked', status: 200 });
    expect(received[0]).toEqual({
      method: 'POST',
      url: '/api/v1/reports',
      auth: 'Bearer tok-1',
      body: '{"a":1}',
    });
  });
  it('retries 500, 503 and 429 (with Retry-After) and 408', async () => {
    script = [
      { status: 500 },
      { status: 429, headers: { 'retry-after': '3' } },
      { status: 503, headers: { 'retry-after': '1' } },
      { status: 408 },
    ];
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'retry', status: 500 });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'retry', status: 429, retryAfterMs: 3000 });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'retry', status: 503, retryAfterMs: 1000 });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'retry', status: 408 });
  });
  it('rejects other 4xx for good, with the server explanation in the reason; 401/403 is the token', async () => {
    script = [
      { status: 400, body: '{"error":"probes.0.forward: required"}' },
      { status: 403 },
      { status: 413 },
      { status: 401 },
    ];
    expect(await postReport(target, '{}')).toEqual({
      kind: 'rejected',
      status: 400,
      reason: 'HTTP 400: {"error":"probes.0.forward: required"}',
    });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'held', problem: 'token', status: 403 });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'rejected', status: 413 });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'held', problem: 'token', status: 401 });
  });
  it('does not follow a redirect: 3xx holds the queue as a configuration error, naming the target', async () => {
    // The redirect target is this same server, which would answer the followed request with 202.
    script = [301, 302, 303, 307, 308].map((status) => ({
      status,
      headers: { location: '/login?next=/api/v1/reports' },
    }));
    for (const status of [301, 302, 303, 307, 308]) {
      expect(await postReport(target, '{"a":1}')).toEqual({
        kind: 'held',
        problem: 'redirect',
        status,
        reason: `HTTP ${status} redirect to /login?next=/api/v1/reports`,
      });
    }
    expect(received.map((r) => `${r.method} ${r.url}`)).toEqual(Array(5).fill('POST /api/v1/reports'));
  });
  it('holds on 404/405/415 (wrong base path, a proxy mid-deploy) instead of rejecting the report', async () => {
    script = [{ status: 404, body: 'Not Found' }, { status: 405 }, { status: 415 }];
    expect(await postReport(target, '{}')).toEqual({
      kind: 'held',
      problem: 'endpoint',
      status: 404,
      reason: 'HTTP 404: Not Found',
    });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'held', problem: 'endpoint', status: 405 });
    expect(await postReport(target, '{}')).toMatchObject({ kind: 'held', problem: 'endpoint', status: 415 });
  });
  it('turns a refused connection and a timeout into retry outcomes, not exceptions', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect(await postReport({ ...target, url: `http://127.0.0.1:${port}` }, '{}')).toMatchObject({
      kind: 'retry',
      status: null,
      reason: 'ECONNREFUSED',
    });
    script = [{ status: 0, hang: true }];
    expect(await postReport({ ...target, timeoutMs: 200 }, '{}')).toEqual({
      kind: 'retry',
      status: null,
      reason: 'no answer within 200 ms',
    });
  });
});

describe('sender: queue → collector', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-sender-'));
    script = [];
    received.length = 0;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs a sender against the scripted server until the queue is empty; the sleeps it asked for. */
  async function drain(queue: DurableQueue, log: Log): Promise<number[]> {
    const sleeps: number[] = [];
    const controller = new AbortController();
    const sender = new Sender({
      queue,
      send: (body) => postReport(target, body),
      backoff: { initialMs: 1000, maxMs: 30_000 },
      clock: { now: () => 0, sleep: async (ms) => void sleeps.push(ms) },
      log,
    });
    const running = sender.run(controller.signal);
    while (queue.length > 0) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await running;
    return sleeps;
  }

  it('delivers in order through 500/429/401/400, backs off, dead-letters the 400 and stops when empty', async () => {
    const logs: { level: string; event: string; fields?: Record<string, unknown> }[] = [];
    const log: Log = (level, event, _msg, fields) => logs.push({ level, event, fields });
    const queue = await DurableQueue.open(dir, {
      maxReports: 100,
      maxBytes: 1e6,
      events: { dropped: () => undefined, corrupt: () => undefined },
    });
    for (const id of ['r-1', 'r-2', 'r-3']) await queue.enqueue(id, JSON.stringify({ reportId: id }));
    script = [
      { status: 500 },
      { status: 429, headers: { 'retry-after': '2' } },
      { status: 401 }, // a token problem holds the report at the slowest pace
      { status: 202 }, // r-1
      { status: 400, body: 'bad' }, // r-2
      { status: 202 }, // r-3
    ];
    const controller = new AbortController();
    const sleeps: number[] = [];
    const clock: Clock = {
      now: () => 0,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    };
    const sender = new Sender({
      queue,
      send: (body) => postReport(target, body),
      backoff: { initialMs: 1000, maxMs: 30_000 },
      clock,
      log,
      random: () => 0.5,
    });
    const running = sender.run(controller.signal);
    while (queue.length > 0) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    await running;
    expect(received.map((r) => JSON.parse(r.body).reportId)).toEqual([
      'r-1',
      'r-1',
      'r-1',
      'r-1',
      'r-2',
      'r-3',
    ]);
    expect(sleeps).toEqual([500, 2500, 30_000]);
    expect(logs.map((l) => l.event)).toEqual([
      'report.retry',
      'report.retry',
      'collector.unauthorized',
      'report.delivered',
      'report.rejected',
      'report.delivered',
    ]);
    expect(logs[3]!.fields).toMatchObject({ reportId: 'r-1', afterFailures: 3 });
    expect(await readdir(join(dir, 'dead'))).toEqual([
      '0000000000000002.json',
      '0000000000000002.reason.txt',
    ]);
  });

  it('holds the whole backlog through 302, 404, 405 and 415 — nothing dead-lettered, nothing lost', async () => {
    const logs: { level: string; event: string; msg: string }[] = [];
    const log: Log = (level, event, msg) => logs.push({ level, event, msg });
    const queue = await DurableQueue.open(dir, {
      maxReports: 100,
      maxBytes: 1e6,
      events: { dropped: () => undefined, corrupt: () => undefined },
    });
    const ids = ['r-1', 'r-2', 'r-3', 'r-4'];
    for (const id of ids) await queue.enqueue(id, JSON.stringify({ reportId: id }));
    script = [
      { status: 302, headers: { location: 'https://sso.example/login' } },
      { status: 404 },
      { status: 405 },
      { status: 415 },
      ...ids.map(() => ({ status: 202 })),
    ];
    const sleeps = await drain(queue, log);
    // The head report is retried at the slowest pace until the configuration is right; then all go, in order.
    expect(received.map((r) => JSON.parse(r.body).reportId)).toEqual(['r-1', 'r-1', 'r-1', 'r-1', ...ids]);
    expect(received.every((r) => r.method === 'POST')).toBe(true);
    expect(sleeps).toEqual([30_000, 30_000, 30_000, 30_000]);
    expect(logs.slice(0, 4).map((l) => `${l.level} ${l.event}`)).toEqual([
      'error collector.redirect',
      'error collector.endpoint',
      'error collector.endpoint',
      'error collector.endpoint',
    ]);
    expect(logs[0]!.msg).toContain('HTTP 302 redirect to https://sso.example/login');
    expect(logs[0]!.msg).toContain('4 report(s) kept');
    expect(logs.slice(4).map((l) => l.event)).toEqual(Array(4).fill('report.delivered'));
    expect(await readdir(join(dir, 'dead'))).toEqual([]);
  });

  it('skips a queued report whose checksum no longer matches: set aside, never sent', async () => {
    const corrupt: string[] = [];
    const queue = await DurableQueue.open(dir, {
      maxReports: 100,
      maxBytes: 1e6,
      events: { dropped: () => undefined, corrupt: (file, reason) => corrupt.push(`${file}: ${reason}`) },
    });
    for (const id of ['r-1', 'r-2']) await queue.enqueue(id, JSON.stringify({ reportId: id, ready: false }));
    const first = join(dir, '0000000000000001.json');
    await fsp.writeFile(first, (await fsp.readFile(first, 'utf8')).replace('false', 'true'));
    expect(await drain(queue, () => undefined)).toEqual([]);
    expect(received.map((r) => JSON.parse(r.body))).toEqual([{ reportId: 'r-2', ready: false }]);
    expect(corrupt).toEqual([
      '0000000000000001.json: checksum mismatch: the report was changed after the agent wrote it',
    ]);
  });

  it('survives queue file-system errors: an ack that cannot unlink (EIO) is retried, a vanished file skipped', async () => {
    const logs: { event: string; fields?: Record<string, unknown> }[] = [];
    const log: Log = (_level, event, _msg, fields) => logs.push({ event, fields });
    let failUnlink = 1;
    const fs: QueueFs = {
      ...fsp,
      unlink: (async (path: string) => {
        if (failUnlink > 0 && path.endsWith('.json')) {
          failUnlink--;
          throw Object.assign(new Error('EIO: i/o error, unlink'), { code: 'EIO' });
        }
        return fsp.unlink(path);
      }) as QueueFs['unlink'],
    };
    const events = { dropped: () => undefined, corrupt: () => undefined };
    const queue = await DurableQueue.open(dir, { maxReports: 100, maxBytes: 1e6, events, fs });
    for (const id of ['r-1', 'r-2', 'r-3']) await queue.enqueue(id, JSON.stringify({ reportId: id }));
    await unlink(join(dir, '0000000000000002.json')); // r-2's file deleted by hand
    const sleeps = await drain(queue, log);
    // r-1 was acknowledged but its file could not be removed: it is sent again (the collector
    // acknowledges the repeat without storing it twice), then removed.
    expect(received.map((r) => JSON.parse(r.body).reportId)).toEqual(['r-1', 'r-1', 'r-3']);
    expect(logs.map((l) => l.event)).toEqual([
      'queue.error',
      'report.delivered',
      'queue.vanished',
      'report.delivered',
    ]);
    expect(logs[0]!.fields).toMatchObject({ reportId: 'r-1', code: 'EIO' });
    expect(sleeps).toEqual([30_000]);
    expect((await readdir(dir)).filter((n) => n.endsWith('.json'))).toEqual([]);
  });
});
