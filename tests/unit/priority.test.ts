// The priority test's pieces without a bottleneck: the rate parser (fuzzed), the judge on made-up
// figures (pass, fail, unknown), the load messages on the wire (sizes, authentication, fuzz), the
// reflector's answer to load (accepted: counted, never answered; refused: the request says no), and
// runProbe with --priority-test against an in-process reflector (refusal, silence, a loopback run).
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { runProbe } from '../../agent/probe.js';
import { type Reflector, startReflector } from '../../agent/reflector.js';
import { sampleProbe, sampleReport } from '../../bench/collector-report.js';
import { assessReport } from '../../collector/assessment.js';
import { createMetrics } from '../../collector/metrics.js';
import { pointsFromReport } from '../../collector/store/influx.js';
import { formatConfigError, parseAgentConfig } from '../../src/config/agent.js';
import { UserError } from '../../src/errors.js';
import { reportInconsistencies } from '../../src/evidence-consistency.js';
import { DEFAULT_POLICY, Policy } from '../../src/policy.js';
import { formatRate, judgePriority, parseRate } from '../../src/priority.js';
import { type ClassFigures, MAX_LOAD_BPS, type PriorityResult } from '../../src/priority-schema.js';
import { renderReportHtml } from '../../src/report/html/index.js';
import { renderProbeTable } from '../../src/report/probe-table.js';
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
    const started = performance.now();
    const back = await exchange(
      r.port,
      Array.from({ length: 200 }, (_, i) => encodeLoadRequest(i)),
    );
    const elapsedS = (performance.now() - started) / 1000;
    // A burst of 16, then 2 a second for as long as the flood lasted (longer on a busy machine).
    expect(back.length).toBeGreaterThanOrEqual(16);
    expect(back.length).toBeLessThanOrEqual(16 + Math.ceil(2 * elapsedS));
    expect(r.stats().rejected['load-request-rate']).toBe(200 - back.length);
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
    // Shown where the other checks and figures are: the CLI's table and the report page.
    const text = renderProbeTable(doc);
    expect(text).toMatch(/^priority +UNKNOWN/m);
    expect(text).toMatch(
      /priority test: load [\d.]+ (k|M)bit\/s sent in the loaded phase \(fixed, target 2 Mbit\/s/,
    );
    expect(text).toMatch(/^EF loaded \(1-2 s\) +\d+ +\d+ +0 /m);
    const page = renderReportHtml(JSON.parse(JSON.stringify(doc)));
    expect(page).toContain('<h2>Priority under load</h2>');
    expect(page).toContain('EF prioritised under load');
    expect(page).toMatch(/<th scope="row">best effort added under load<\/th>/);
  });

  it("an abort (the agent's stop) ends the load at once; the run finishes and says so", async () => {
    const r = await openReflector({ acceptLoad: true });
    const stop = new AbortController();
    // Abort as soon as the reflector has counted load: inside the loaded phase (1-2 s after the
    // start), however late a timer would fire on a busy machine.
    const watch = setInterval(() => {
      if (r.stats().load.packets > 0) stop.abort();
    }, 5);
    const doc = await runProbe(
      {
        peer: `127.0.0.1:${r.port}`,
        codec: 'g711u',
        calls: 1,
        durationMs: 3000,
        waitMs: 200,
        priorityTest: { loadBps: 4_000_000, signal: stop.signal },
      },
      probeDeps,
    ).finally(() => clearInterval(watch));
    const p = doc.priority!;
    expect(p.loadNotSentReason).toMatch(/^the load was stopped early \(interrupted\) at \d\.\d s$/);
    // A full second at 4 Mbit/s is about 407 datagrams; the abort came at the first of them.
    expect(p.loadSentPackets).toBeLessThan(400);
    expect(r.stats().load.packets).toBe(p.loadSentPackets);
    expect(p.ef.after.sent).toBeGreaterThan(0);
  });

  it('with a shared secret: authenticated load counts; with another secret the request goes unanswered', async () => {
    const r = await openReflector({ acceptLoad: true, secret: SECRET });
    const run = (secret: Buffer) =>
      runProbe(
        {
          peer: `127.0.0.1:${r.port}`,
          codec: 'g711u',
          calls: 1,
          durationMs: 3000,
          waitMs: 200,
          secret,
          priorityTest: { loadBps: 1_000_000 },
        },
        probeDeps,
      );
    const good = await run(SECRET);
    expect(good.priority!.loadSentPackets).toBeGreaterThan(0);
    expect(r.stats().load.packets).toBe(good.priority!.loadSentPackets);
    const wrong = await run(Buffer.from('another secret entirely'));
    expect(wrong.priority!.loadSentPackets).toBe(0);
    expect(wrong.checks.find((c) => c.id === 'priority')?.evidence).toMatch(
      /did not answer the load request .*another --secret-file/,
    );
    expect(r.stats().load.packets).toBe(good.priority!.loadSentPackets);
  });

  it('refuses more than 250 calls and runs shorter than 3 s', async () => {
    const base = { peer: '127.0.0.1:9', codec: 'g711u' as const, priorityTest: {} };
    await expect(runProbe({ ...base, calls: 251, durationMs: 3000 })).rejects.toThrow(/at most 250 calls/);
    await expect(runProbe({ ...base, calls: 1, durationMs: 2000 })).rejects.toThrow(/at least 3s/);
  });
});

describe('the collector and the priority check', () => {
  const T0 = Date.parse('2026-11-29T08:00:00Z');
  /** The sample probe (500 packets each way over 10 s) with priority figures whose phases hold them. */
  function probeWith(ef: ClassFigures, be: ClassFigures, peer = 'dc1.example.net:4000') {
    const split = (c: ClassFigures): ClassFigures => ({
      ...c,
      unloaded: { ...c.unloaded, sent: 167, returned: 167, lossPct: 0 },
      after: { ...c.after, sent: 166, returned: 166, lossPct: 0 },
      loaded: {
        ...c.loaded,
        sent: 167,
        returned: 167 - Math.round((c.loaded.lossPct * 167) / 100),
        lossPct: (100 * Math.round((c.loaded.lossPct * 167) / 100)) / 167,
      },
    });
    return {
      ...sampleProbe({ peer, createdAt: new Date(T0).toISOString() }),
      priority: result(split(ef), split(be), {
        phasesS: { unloaded: [0, 3.333], loaded: [3.333, 6.667], after: [6.667, 10] },
      }),
    };
  }
  const quietEf = cls(46, phase(100, 0, 1, 3, 0.5));
  const queuedBe = cls(0, phase(100, 6, 150, 300, 8));
  const report = (...probes: ReturnType<typeof probeWith>[]) => ({
    ...sampleReport({ reportId: 'rep-prio-001', createdAt: new Date(T0).toISOString() }),
    probes,
  });
  const assess = (r: ReturnType<typeof report>, policy = DEFAULT_POLICY) =>
    assessReport({ report: r, policy, assessmentId: 'as-p', receivedAtMs: T0 + 1000, validForMs: 3_600_000 });

  it('judges the check with the site policy beside the network checks; a pass keeps the site ready', () => {
    const r = report(probeWith(quietEf, queuedBe));
    expect(reportInconsistencies(r)).toEqual([]);
    const a = assess(r);
    expect(a.checks.map((c) => c.id)).toContain('priority');
    expect(a.checks.find((c) => c.id === 'priority')?.status).toBe('pass');
    expect(a.ready).toBe(true);
    const strict = assess(r, Policy.parse({ priority: { maxAddedDelayMs: 1 } }));
    expect(strict.checks.find((c) => c.id === 'priority')?.status).toBe('fail');
    expect(strict.ready).toBe(false);
  });

  it('speaks for the site with the worst peer that ran the test; peers without it add nothing', () => {
    const slowEf = cls(46, phase(100, 0, 140, 290, 6));
    const plain = { ...sampleProbe({ peer: 'dc2.example.net:4000', createdAt: new Date(T0).toISOString() }) };
    const a = assess(report(probeWith(slowEf, queuedBe, 'dc1.example.net:4000'), plain as never));
    const c = a.checks.find((x) => x.id === 'priority')!;
    expect(c.status).toBe('fail');
    expect(c.evidence).toMatch(/^dc1\.example\.net:4000: EF degraded/);
    expect(a.checks.filter((x) => x.id === 'latency')).toHaveLength(1);
  });

  it('too few packets in a phase: unknown with the reason', () => {
    const p = probeWith(quietEf, queuedBe);
    const pr = p.priority;
    pr.ef.loaded = { ...pr.ef.loaded, sent: 20, returned: 20 };
    pr.ef.after = { ...pr.ef.after, sent: 313, returned: 313 };
    const r = report(p);
    expect(reportInconsistencies(r)).toEqual([]);
    expect(assess(r).checks.find((c) => c.id === 'priority')?.evidence).toMatch(
      /too little evidence: 20 EF packets sent in the loaded phase \(at least 50 needed\)/,
    );
  });

  it('a policy that requires the test: a site without it is not ready', () => {
    const plain = sampleReport({ reportId: 'rep-prio-002', createdAt: new Date(T0).toISOString() });
    const a = assess(plain as never, Policy.parse({ priority: { required: true } }));
    expect(a.checks.find((c) => c.id === 'priority')?.evidence).toMatch(/priority test was not run/);
    expect(a.ready).toBe(false);
    expect(assess(plain as never).checks.some((c) => c.id === 'priority')).toBe(false);
  });

  it('refuses figures that contradict each other, naming the fields', () => {
    const p = probeWith(quietEf, queuedBe);
    p.priority.be.loaded.lossPct = 0;
    p.priority.ef.addedDelayP95Ms = 0.1;
    p.priority.loadTargetBps = 200_000_000;
    p.priority.phasesS.after = [6.667, 12];
    const fields = reportInconsistencies(report(p)).map((i) => i.fields[0]);
    expect(fields).toEqual(
      expect.arrayContaining([
        'probes.0.priority.be.loaded.lossPct',
        'probes.0.priority.ef.addedDelayP95Ms',
        'probes.0.priority.loadTargetBps',
        'probes.0.priority.phasesS',
      ]),
    );
    const short = probeWith(quietEf, queuedBe);
    short.priority.be.unloaded.sent = 10;
    short.priority.be.unloaded.returned = 10;
    expect(reportInconsistencies(report(short)).map((i) => i.fields[0])).toContain('probes.0.priority.be');
  });

  it('Prometheus: honoured, added delay per class and quantile, loaded-phase loss, load sent', async () => {
    const r = report(probeWith(quietEf, queuedBe));
    const a = assess(r);
    const metrics = createMetrics({
      latest: () => [{ report: r, assessment: a }],
      now: () => T0,
      outboxSize: async () => 0,
    });
    const text = await metrics.registry.metrics();
    const peer = 'site="hq",peer="dc1.example.net:4000"';
    expect(text).toMatch(new RegExp(`^voipready_priority_honoured\\{${peer}\\} 1$`, 'm'));
    expect(text).toMatch(
      new RegExp(
        `^voipready_priority_added_delay_seconds\\{${peer},class="be",quantile="0.95"\\} 0.2995$`,
        'm',
      ),
    );
    expect(text).toMatch(new RegExp(`^voipready_priority_loss_ratio\\{${peer},class="ef"\\} 0$`, 'm'));
    expect(text).toMatch(
      new RegExp(`^voipready_priority_load_sent_bytes_per_second\\{${peer}\\} 987500$`, 'm'),
    );
  });

  it('InfluxDB: a point per class and phase at the probe start, the collector verdict, rtp points unchanged', () => {
    const plain = sampleProbe({ peer: 'dc2.example.net:4000', createdAt: new Date(T0).toISOString() });
    const r = report(probeWith(quietEf, queuedBe), plain as never);
    const a = assess(r);
    const points = pointsFromReport(r, a);
    const prio = points.filter((p) => p.measurement === 'voipready_priority');
    // only the peer that ran the test: 2 classes × 3 phases
    expect(prio.map((p) => `${p.tags.peer} ${p.tags.class} ${p.tags.phase}`)).toEqual(
      ['ef', 'be'].flatMap((c) =>
        ['unloaded', 'loaded', 'after'].map((ph) => `dc1.example.net:4000 ${c} ${ph}`),
      ),
    );
    const beLoaded = prio.find((p) => p.tags.class === 'be' && p.tags.phase === 'loaded')!;
    expect(beLoaded.tags).toEqual({
      site: 'hq',
      agent: 'hq-agent-1',
      peer: 'dc1.example.net:4000',
      codec: 'g711u',
      class: 'be',
      phase: 'loaded',
    });
    const pr = r.probes[0]!.priority;
    expect(beLoaded.timeMs).toBe(Date.parse(r.probes[0]!.startedAt!));
    expect(beLoaded.fields).toMatchObject({
      dscp: 0,
      sent: pr.be.loaded.sent,
      returned: pr.be.loaded.returned,
      lossPct: pr.be.loaded.lossPct,
      delayP95Ms: 300,
      addedDelayP95Ms: pr.be.addedDelayP95Ms,
      loadSentBps: 7_900_000,
      checkStatus: 'pass',
      honoured: 1,
      reportId: 'rep-prio-001',
    });
    // the added delays belong to the loaded phase only
    const efUnloaded = prio.find((p) => p.tags.class === 'ef' && p.tags.phase === 'unloaded')!;
    expect(efUnloaded.fields.addedDelayP95Ms).toBeUndefined();
    // a degraded EF: 0; the rtp points of the same report keep their shape
    const failed = assess(r, Policy.parse({ priority: { maxAddedDelayMs: 1 } }));
    const again = pointsFromReport(r, failed);
    expect(again.find((p) => p.measurement === 'voipready_priority')?.fields).toMatchObject({
      checkStatus: 'fail',
      honoured: 0,
    });
    const rtp = (points: ReturnType<typeof pointsFromReport>) =>
      points.filter((p) => p.measurement !== 'voipready_priority');
    const { priority: _dropped, ...withoutTest } = r.probes[0]!;
    const bare = { ...r, probes: [withoutTest, plain] };
    expect(rtp(again)).toEqual(rtp(pointsFromReport(bare as never, failed)));
    expect(rtp(again).length).toBe(4);
  });
});

describe('the agent option', () => {
  const config = (probe: string) => `agent:
  name: agent-1
  site: branch-01
  collector:
    url: http://127.0.0.1:8080
    token: t0k3n-t0k3n
  queue:
    dir: queue
  probes:
    - peer: 127.0.0.1:4000
      duration: 12s
      interval: 5m
${probe}`;

  it('is off unless configured; load or maxLoad parse as the CLI flags do', () => {
    const off = parseAgentConfig(config(''), '/etc/a.yaml');
    expect(off.ok && off.config.agent.probes[0]!.priorityTest).toBeUndefined();
    const on = parseAgentConfig(config('      priorityTest: { load: 8mbit }'), '/etc/a.yaml');
    expect(on.ok && on.config.agent.probes[0]!.priorityTest).toEqual({ load: 8_000_000 });
    const stepped = parseAgentConfig(config('      priorityTest: {}'), '/etc/a.yaml');
    expect(stepped.ok && stepped.config.agent.probes[0]!.priorityTest).toEqual({});
  });

  it('names bad rates, both limits at once and a run too short for three phases', () => {
    const errors = (probe: string) => {
      const r = parseAgentConfig(config(probe), '/etc/a.yaml');
      return r.ok ? [] : r.errors.map(formatConfigError);
    };
    expect(errors('      priorityTest: { load: 8mbps }')).toEqual([
      expect.stringMatching(/agent\.probes\.0\.priorityTest\.load: "8mbps" is not a rate like 8mbit/),
    ]);
    expect(errors('      priorityTest: { load: 8mbit, maxLoad: 20mbit }').join()).toMatch(/not both/);
    expect(errors('      priorityTest: {}\n      calls: 300').join()).toMatch(
      /agent\.probes\.0\.calls: the priority test runs at most 250 calls/,
    );
  });
});
