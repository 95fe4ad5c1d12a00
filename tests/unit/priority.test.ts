// The priority test's pieces without a bottleneck: the rate parser (fuzzed), the judge on made-up
// figures (pass, fail, unknown), the load messages on the wire (sizes, authentication, fuzz), the
// reflector's answer to load (accepted: counted, never answered; refused: the request says no), and
// runProbe with --priority-test against an in-process reflector (refusal, silence, a loopback run).
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { runProbe } from '../../agent/probe.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import { UserError } from '../../src/errors.js';
import { DEFAULT_POLICY, Policy } from '../../src/policy.js';
import { formatRate, judgePriority, parseRate } from '../../src/priority.js';
import { type ClassFigures, MAX_LOAD_BPS, type PriorityResult } from '../../src/priority-schema.js';
import { ProbeResult } from '../../src/schemas.js';
import {
  CONTROL_BYTES,
  decodeMessage,
  encodeLoad,
  encodeLoadRequest,
  encodeLoadResponse,
} from '../../src/wire.js';

const SECRET = Buffer.from('a reflector secret');
const unsynced = async () => ({ synchronised: false, errorBoundMs: null, source: 'none' });

describe('parseRate', () => {
  it('reads tc-style bit rates', () => {
    expect(parseRate('8mbit', '--load')).toBe(8_000_000);
    expect(parseRate(' 500kbit ', '--load')).toBe(500_000);
    expect(parseRate('1.5Mbit', '--load')).toBe(1_500_000);
    expect(parseRate('1gbit', '--load')).toBe(MAX_LOAD_BPS);
    expect(formatRate(8_000_000)).toBe('8 Mbit/s');
  });

  it('refuses anything else with one line naming the flag', () => {
    for (const bad of ['8', '8mbps', '8MB', '-1mbit', '0kbit', '999bit', '1.1gbit', 'mbit', '8 mbit', '']) {
      let err: unknown;
      try {
        parseRate(bad, '--load');
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(/^--load /);
      expect((err as Error).message).not.toMatch(/\n/);
    }
  });

  it('either returns a rate within bounds or throws a UserError (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (text) => {
        try {
          const bps = parseRate(text, '--load');
          return Number.isInteger(bps) && bps >= 1000 && bps <= MAX_LOAD_BPS;
        } catch (err) {
          return err instanceof UserError;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

const phase = (sent: number, lost: number, p50: number, p95: number, jitter: number) => ({
  sent,
  returned: sent - lost,
  lossPct: (100 * lost) / sent,
  delayP50Ms: p50,
  delayP95Ms: p95,
  jitterMs: jitter,
});

function cls(dscp: number, loaded: ReturnType<typeof phase>): ClassFigures {
  const unloaded = phase(100, 0, 0.2, 0.5, 0.1);
  return {
    dscp,
    unloaded,
    loaded,
    after: unloaded,
    addedDelayP50Ms: loaded.delayP50Ms - unloaded.delayP50Ms,
    addedDelayP95Ms: loaded.delayP95Ms - unloaded.delayP95Ms,
  };
}

function result(ef: ClassFigures, be: ClassFigures, more: Partial<PriorityResult> = {}): PriorityResult {
  return {
    loadMode: 'stepped',
    loadCapBps: 100_000_000,
    loadTargetBps: 8_000_000,
    loadSentBps: 7_900_000,
    loadSentPackets: 2000,
    loadDatagramBytes: 1200,
    loadSteps: [{ atS: 1, rateBps: 1_000_000 }],
    phasesS: { unloaded: [0, 1], loaded: [1, 2], after: [2, 3] },
    ef,
    be,
    loadNotSentReason: null,
    ...more,
  };
}

describe('judgePriority', () => {
  const quietEf = cls(46, phase(100, 0, 1, 3, 0.5));
  const queuedBe = cls(0, phase(100, 5, 150, 300, 8));

  it('passes when best effort queues and EF keeps its limits', () => {
    const c = judgePriority(result(quietEf, queuedBe), DEFAULT_POLICY);
    expect(c.status).toBe('pass');
    expect(c.value).toBe(2.5);
    expect(c.limit).toBe(10);
    expect(c.evidence).toMatch(/EF kept its limits while best effort queued/);
    expect(c.evidence).toMatch(/best effort: \+149\.8 ms p50 \/ \+299\.5 ms p95/);
    expect(c.rule).toMatch(/processed as such in the priority queue/);
  });

  it('fails when EF degrades with best effort: delay, jitter or loss', () => {
    const slowEf = cls(46, phase(100, 0, 140, 290, 6));
    const lossyEf = cls(46, phase(100, 4, 1, 3, 0.5));
    const jitteryEf = cls(46, phase(100, 0, 1, 3, 31));
    for (const [ef, why] of [
      [slowEf, /EF p95 delay grew by 289\.5 ms \(limit 10 ms\)/],
      [lossyEf, /EF lost 4 % \(limit 1 %\)/],
      [jitteryEf, /EF jitter 31 ms \(limit 30 ms\)/],
    ] as const) {
      const c = judgePriority(result(ef, queuedBe), DEFAULT_POLICY);
      expect(c.status).toBe('fail');
      expect(c.evidence).toMatch(/EF degraded with best effort under load/);
      expect(c.evidence).toMatch(why);
    }
    const relaxed = Policy.parse({ priority: { severity: 'warn', maxAddedDelayMs: 500 } });
    expect(judgePriority(result(slowEf, queuedBe), relaxed).status).toBe('pass');
    expect(judgePriority(result(lossyEf, queuedBe), relaxed).status).toBe('warn');
  });

  it('best-effort loss alone is congestion', () => {
    const droppedBe = cls(0, phase(100, 30, 0.3, 1, 0.2));
    expect(judgePriority(result(quietEf, droppedBe), DEFAULT_POLICY).status).toBe('pass');
  });

  it('is unknown when the load never congested the path, saying what was offered and seen', () => {
    const idleBe = cls(0, phase(100, 0, 0.4, 2, 0.2));
    const c = judgePriority(result(quietEf, idleBe), DEFAULT_POLICY);
    expect(c.status).toBe('unknown');
    expect(c.evidence).toMatch(/the load never congested the path/);
    expect(c.evidence).toMatch(/load 7\.9 Mbit\/s sent \(target 8 Mbit\/s, stepped, cap 100 Mbit\/s\)/);
    expect(c.evidence).toMatch(/best effort added 1\.5 ms p95 delay and lost 0 %/);
  });

  it('is unknown when no load was sent or the test was not run', () => {
    const refused = result(quietEf, queuedBe, {
      loadSentPackets: 0,
      loadSentBps: 0,
      loadNotSentReason: 'the reflector at x:1 refuses load: start it with --accept-load',
    });
    expect(judgePriority(refused, DEFAULT_POLICY).evidence).toBe(
      'not measured: the reflector at x:1 refuses load: start it with --accept-load',
    );
    expect(judgePriority(undefined, DEFAULT_POLICY).evidence).toMatch(/priority test was not run/);
  });
});

describe('load messages on the wire', () => {
  it('request and response are control-sized; load is any size in range; all decode', () => {
    const req = encodeLoadRequest(77, SECRET);
    expect(req.length).toBe(CONTROL_BYTES);
    expect(decodeMessage(req, SECRET)).toMatchObject({ type: 'loadRequest', nonce: 77, tagged: true });
    const res = Buffer.from(req);
    encodeLoadResponse(res, 77, true, SECRET);
    expect(res.length).toBe(req.length);
    expect(decodeMessage(res, SECRET)).toMatchObject({ type: 'loadResponse', nonce: 77, accepted: true });
    encodeLoadResponse(res, 77, false);
    expect(decodeMessage(res)).toMatchObject({ type: 'loadResponse', accepted: false });
    for (const size of [32, 1200, 1500]) {
      const buf = Buffer.alloc(size);
      encodeLoad(buf, size, { loadId: 5, sequence: 9, sentAtMs: 1_700_000_000_000 }, SECRET);
      expect(decodeMessage(buf, SECRET)).toMatchObject({ type: 'load', loadId: 5, sequence: 9 });
    }
    expect(() => encodeLoad(Buffer.alloc(1600), 1501, { loadId: 1, sequence: 1, sentAtMs: 0 })).toThrow();
  });

  it('with a secret, untagged load is unauthenticated and no mutation of tagged load is accepted', () => {
    const plain = Buffer.alloc(1200);
    encodeLoad(plain, 1200, { loadId: 1, sequence: 1, sentAtMs: 1 });
    expect(decodeMessage(plain, SECRET)).toBe('unauthenticated');
    const tagged = Buffer.alloc(1200);
    encodeLoad(tagged, 1200, { loadId: 1, sequence: 1, sentAtMs: 1 }, SECRET);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1199 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const m = Buffer.from(tagged);
        m[at] = m[at]! ^ x;
        const d = decodeMessage(m, SECRET);
        return typeof d === 'string';
      }),
      { numRuns: 1000 },
    );
  });
});

let reflector: Reflector | undefined;
afterEach(async () => {
  await reflector?.close();
  reflector = undefined;
});

async function openReflector(options: Partial<Parameters<typeof startReflector>[0]> = {}) {
  reflector = await startReflector({
    host: '127.0.0.1',
    port: 0,
    clockSync: unsynced,
    notice: () => {},
    ...options,
  });
  return reflector;
}

/** Sends datagrams from one socket and collects whatever comes back within waitMs. */
async function exchange(port: number, messages: Buffer[], waitMs = 300): Promise<Buffer[]> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  for (const m of messages) await new Promise<void>((r) => socket.send(m, port, '127.0.0.1', () => r()));
  await new Promise((r) => setTimeout(r, waitMs));
  socket.close();
  return received;
}

const loads = (n: number, secret?: Buffer) =>
  Array.from({ length: n }, (_, i) => {
    const b = Buffer.alloc(1200);
    encodeLoad(b, 1200, { loadId: 3, sequence: i, sentAtMs: Date.now() }, secret);
    return b;
  });

describe('the reflector and load', () => {
  it('with --accept-load: grants the request (same size), counts the load and answers none of it', async () => {
    const r = await openReflector({ acceptLoad: true, secret: SECRET });
    const back = await exchange(r.port, [encodeLoadRequest(11, SECRET), ...loads(200, SECRET), ...loads(20)]);
    expect(back).toHaveLength(1);
    expect(back[0]!.length).toBe(CONTROL_BYTES);
    expect(decodeMessage(back[0]!, SECRET)).toMatchObject({
      type: 'loadResponse',
      nonce: 11,
      accepted: true,
    });
    const s = r.stats();
    expect(s.load).toEqual({ requests: 1, packets: 200, bytes: 200 * 1200 });
    // Untagged load with a secret configured: refused by the decoder, never counted as load.
    expect(s.rejected.unauthenticated).toBe(20);
    expect(s.replied).toBe(0);
  });

  it('without --accept-load: says no, and drops the load unanswered', async () => {
    const r = await openReflector();
    const back = await exchange(r.port, [encodeLoadRequest(12), ...loads(50)]);
    expect(back).toHaveLength(1);
    expect(decodeMessage(back[0]!)).toMatchObject({ type: 'loadResponse', accepted: false });
    expect(r.stats().load.packets).toBe(0);
    expect(r.stats().rejected['load-refused']).toBe(50);
  });

  it('answers a flood of load requests from one source at a bounded rate', async () => {
    const r = await openReflector({ acceptLoad: true });
    const back = await exchange(
      r.port,
      Array.from({ length: 200 }, (_, i) => encodeLoadRequest(i)),
    );
    expect(back.length).toBeGreaterThanOrEqual(16);
    expect(back.length).toBeLessThanOrEqual(20);
  });
});

describe('runProbe --priority-test', () => {
  const probeDeps = { clockSync: unsynced, notice: () => {} };

  it('a reflector refusing load: a UserError at once for the CLI, the reason in the check for the agent', async () => {
    const r = await openReflector();
    const peer = `127.0.0.1:${r.port}`;
    const started = Date.now();
    await expect(
      runProbe(
        { peer, codec: 'g711u', calls: 1, durationMs: 3000, priorityTest: { refusalIsError: true } },
        probeDeps,
      ),
    ).rejects.toThrow(/refuses load: start it with --accept-load/);
    expect(Date.now() - started).toBeLessThan(2000 + 5000);
    const doc = await runProbe(
      { peer, codec: 'g711u', calls: 1, durationMs: 3000, waitMs: 200, priorityTest: {} },
      probeDeps,
    );
    expect(doc.priority?.loadSentPackets).toBe(0);
    const c = doc.checks.find((x) => x.id === 'priority')!;
    expect(c.status).toBe('unknown');
    expect(c.evidence).toMatch(/refuses load: start it with --accept-load/);
    expect(r.stats().load.packets).toBe(0);
  });

  it('a peer that does not answer the load request: unknown with the reason, no hang', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((res) => silent.bind(0, '127.0.0.1', () => res()));
    const port = silent.address().port;
    try {
      const started = Date.now();
      const doc = await runProbe(
        {
          peer: `127.0.0.1:${port}`,
          codec: 'g711u',
          calls: 1,
          durationMs: 3000,
          waitMs: 0,
          priorityTest: { refusalIsError: true },
        },
        probeDeps,
      );
      // 1.5 s of load requests, 3 s of sending, 1.5 s of summary requests, plus a loaded machine.
      expect(Date.now() - started).toBeLessThan(6000 + 10_000);
      const c = doc.checks.find((x) => x.id === 'priority')!;
      expect(c.status).toBe('unknown');
      expect(c.evidence).toMatch(/did not answer the load request within 1\.5 s/);
    } finally {
      silent.close();
    }
  });

  it('over loopback (nothing to congest): twins and load sent, the document valid, the check unknown', async () => {
    const r = await openReflector({ acceptLoad: true });
    const doc = await runProbe(
      {
        peer: `127.0.0.1:${r.port}`,
        codec: 'g711u',
        calls: 2,
        durationMs: 3000,
        waitMs: 300,
        priorityTest: { loadBps: 2_000_000 },
      },
      probeDeps,
    );
    expect(ProbeResult.safeParse(JSON.parse(JSON.stringify(doc))).success).toBe(true);
    const p = doc.priority!;
    // Twins are kept out of the document's own directions: 2 calls, 2 streams each way.
    expect(doc.forward.streams).toHaveLength(2);
    expect(p.ef.unloaded.sent + p.ef.loaded.sent + p.ef.after.sent).toBe(doc.forward.sent);
    expect(p.be.unloaded.sent + p.be.loaded.sent + p.be.after.sent).toBe(doc.forward.sent);
    expect(p.loadSentPackets).toBeGreaterThan(0);
    expect(r.stats().load.packets).toBe(p.loadSentPackets);
    expect(p.loadSteps).toEqual([{ atS: expect.any(Number), rateBps: 2_000_000 }]);
    // The loaded phase is a third of the run: 1 s at 2 Mbit/s is about 205 datagrams of 1228 bytes.
    expect(p.loadSentPackets).toBeLessThanOrEqual(Math.ceil(2_000_000 / 8 / 1228) + 5);
    expect(doc.checks.find((x) => x.id === 'priority')?.status).toBe('unknown');
  });

  it('refuses more than 250 calls and runs shorter than 3 s', async () => {
    const base = { peer: '127.0.0.1:9', codec: 'g711u' as const, priorityTest: {} };
    await expect(runProbe({ ...base, calls: 251, durationMs: 3000 })).rejects.toThrow(/at most 250 calls/);
    await expect(runProbe({ ...base, calls: 1, durationMs: 2000 })).rejects.toThrow(/at least 3s/);
  });
});
