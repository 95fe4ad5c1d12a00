// The SIP OPTIONS probe's pure parts (target URIs, stream framing, judgement, consistency), the
// probe's transaction timers driven by a virtual clock and a fake transport (RFC 3261 §17.1.2.2),
// and the collector's assessment of SIP results beside RTP ones.
import { describe, expect, it } from 'vitest';
import { runSipPing, type SipPingDeps } from '../../agent/sip/ping.js';
import type { OpenOptions, SipConnection } from '../../agent/sip/transport.js';
import { sampleReport } from '../../bench/collector-report.js';
import { assessReport } from '../../collector/assessment.js';
import { DEFAULT_POLICY, Policy } from '../../src/policy.js';
import type { AgentReport } from '../../src/schemas.js';
import { sipInconsistencies } from '../../src/sip/consistency.js';
import { judgeSip, judgeSipDscp } from '../../src/sip/judge.js';
import { buildOptions, SipStreamFramer } from '../../src/sip/message.js';
import type { SipResult } from '../../src/sip/schema.js';
import { parseSipTarget } from '../../src/sip/target.js';

describe('SIP target URIs', () => {
  it('reads host, port and transport with the RFC 3261 §19.1.2 defaults', () => {
    expect(parseSipTarget('sip:sbc.example.net')).toMatchObject({
      host: 'sbc.example.net',
      port: 5060,
      transport: 'udp',
    });
    expect(parseSipTarget('sip:10.0.0.5:5080;transport=TCP')).toMatchObject({ port: 5080, transport: 'tcp' });
    expect(parseSipTarget('sips:sbc.example.net')).toMatchObject({ port: 5061, transport: 'tls' });
    expect(parseSipTarget('sip:ping@[2001:db8::1]:5062;transport=tls')).toMatchObject({
      host: '2001:db8::1',
      port: 5062,
      transport: 'tls',
    });
  });
  it('refuses anything that is not a SIP URI, in one line naming it', () => {
    for (const bad of [
      'tel:+4930123',
      'sip:',
      'sip:a b',
      'sip:x:0',
      'sip:x;transport=sctp',
      'sip:x?subject=hi',
    ]) {
      expect(() => parseSipTarget(bad), bad).toThrow(/--target/);
    }
  });
});

describe('OPTIONS request and stream framing', () => {
  const target = parseSipTarget('sip:sbc.example.net;transport=tcp');
  const text = buildOptions({
    target,
    localHost: '192.0.2.10',
    localPort: 40000,
    branch: 'z9hG4bKabc',
    fromTag: 't1',
    callId: 'c1@voipready',
    cseq: 3,
    userAgent: 'voipready',
  });
  it('carries the RFC 3261 §8.1.1 headers', () => {
    expect(text).toMatch(/^OPTIONS sip:sbc\.example\.net;transport=tcp SIP\/2\.0\r\n/);
    expect(text).toContain('Via: SIP/2.0/TCP 192.0.2.10:40000;branch=z9hG4bKabc;rport\r\n');
    expect(text).toContain('Max-Forwards: 70\r\n');
    expect(text).toContain('From: <sip:voipready@192.0.2.10>;tag=t1\r\n');
    expect(text).toContain('To: <sip:sbc.example.net>\r\n');
    expect(text).toContain('Call-ID: c1@voipready\r\nCSeq: 3 OPTIONS\r\n');
    expect(text.endsWith('Content-Length: 0\r\n\r\n')).toBe(true);
  });
  it('cuts messages by Content-Length, skips keep-alive CRLFs, and gives up on unframeable bytes', () => {
    const a = 'SIP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nbody';
    const b = 'SIP/2.0 503 Busy\r\nl: 0\r\n\r\n';
    const framer = new SipStreamFramer();
    expect(framer.push(`\r\n\r\n${a.slice(0, 10)}`)).toEqual([]);
    expect(framer.push(`${a.slice(10)}${b}`)).toEqual([a, b]);
    const broken = new SipStreamFramer();
    expect(broken.push('SIP/2.0 200 OK\r\nVia: x\r\n\r\n')).toEqual([]);
    expect(broken.broken).toBe(true);
  });
});

function result(over: Partial<SipResult> = {}): SipResult {
  return {
    schema: 'voipready.sip/1',
    target: 'sip:sbc.example.net',
    transport: 'udp',
    sent: 2,
    answered: 2,
    codes: { '200': 2 },
    responseMs: { min: 10, p50: 12, p95: 40, max: 40 },
    checks: [],
    ready: true,
    succeeded: true,
    privileged: true,
    retransmissions: 0,
    strays: 0,
    malformed: 0,
    duplicates: 0,
    dscp: {
      forward: {
        sent: 2,
        received: 2,
        lost: 0,
        dscpSent: 24,
        dscpReceived: {},
        dscpUnknownReason: 'not reported',
      },
      reverse: { sent: 2, received: 2, lost: 0, dscpSent: null, dscpReceived: { '24': 2 } },
    },
    requests: [
      { cseq: 1, code: 200, reason: 'OK', firstResponseMs: 10, responseMs: 10, retransmissions: 0 },
      { cseq: 2, code: 200, reason: 'OK', firstResponseMs: 40, responseMs: 40, retransmissions: 0 },
    ],
    startedAt: '2026-11-26T00:59:00.000Z',
    ...over,
  };
}

describe('the sip check', () => {
  it('passes accepted answers within the limit and fails slow ones', () => {
    expect(judgeSip(result(), DEFAULT_POLICY)).toMatchObject({
      status: 'pass',
      value: 40,
      limit: 500,
      unit: 'ms',
    });
    const strict = Policy.parse({ sip: { maxResponseMs: 20 } });
    expect(judgeSip(result(), strict)).toMatchObject({ status: 'fail', value: 40, limit: 20 });
    expect(judgeSip(result(), Policy.parse({ sip: { maxResponseMs: 20, severity: 'warn' } })).status).toBe(
      'warn',
    );
  });
  it('fails 503 and no answer; a 404 passes only when the policy accepts it', () => {
    const r503 = result({ codes: { '200': 1, '503': 1 } });
    expect(judgeSip(r503, DEFAULT_POLICY)).toMatchObject({ status: 'fail', value: '503' });
    const r404 = result({ codes: { '404': 2 } });
    expect(judgeSip(r404, DEFAULT_POLICY).status).toBe('fail');
    expect(judgeSip(r404, Policy.parse({ sip: { accept: ['2xx', '404'] } })).status).toBe('pass');
    const silent = judgeSip(result({ answered: 1, codes: { '200': 1 } }), DEFAULT_POLICY);
    expect(silent).toMatchObject({ status: 'fail', value: 'no answer' });
    expect(silent.evidence).toMatch(/1 without a final response before Timer F/);
  });
  it('is unknown when not run or when this machine could not run it; fails when the target was unreachable', () => {
    expect(judgeSip(undefined, DEFAULT_POLICY)).toMatchObject({ status: 'unknown', value: null });
    const local = result({
      succeeded: false,
      failedAt: 'socket',
      reason: 'EMFILE',
      sent: 0,
      answered: 0,
      codes: {},
    });
    expect(judgeSip(local, DEFAULT_POLICY).status).toBe('unknown');
    const refused = { ...local, failedAt: 'connect' as const, reason: 'cannot connect: ECONNREFUSED' };
    expect(judgeSip(refused, DEFAULT_POLICY)).toMatchObject({ status: 'fail', value: 'no answer' });
  });
});

describe('the SIP DSCP check', () => {
  it('judges what it saw (the responses) and names the direction it could not see', () => {
    const ok = judgeSipDscp(result(), DEFAULT_POLICY);
    expect(ok.status).toBe('pass');
    expect(ok.evidence).toMatch(/reverse path .*CS3 on arrival/);
    expect(ok.evidence).toMatch(/forward path .*not seen/);
    const rewritten = result();
    rewritten.dscp.reverse.dscpReceived = { '0': 2 };
    const bad = judgeSipDscp(rewritten, DEFAULT_POLICY);
    expect(bad.status).toBe('fail');
    expect(bad.evidence).toMatch(/arrived as CS0 \(2 of 2\) on reverse path/);
  });
  it('is unknown when no direction could be seen', () => {
    const blind = result();
    blind.dscp.reverse = { ...blind.dscp.reverse, dscpReceived: {}, dscpUnknownReason: 'needs CAP_NET_RAW' };
    expect(judgeSipDscp(blind, DEFAULT_POLICY).status).toBe('unknown');
  });
});

describe('SIP result consistency', () => {
  it('accepts a coherent result and names the fields of a contradictory one', () => {
    expect(sipInconsistencies(result(), 'sip.0')).toEqual([]);
    const bad = sipInconsistencies(
      result({ answered: 3, responseMs: { min: 50, p50: 12, p95: 40, max: 40 } }),
      'sip.0',
    );
    expect(bad.map((i) => i.fields[0])).toEqual(['sip.0.answered', 'sip.0.codes', 'sip.0.responseMs']);
  });
});

/** Virtual time for the probe: timers fire in order when the test advances the clock. */
function virtualDeps(onSend: (text: string, now: number, deliver: (t: string) => void) => void) {
  let now = 0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  const sends: number[] = [];
  let handlers: OpenOptions['handlers'] | undefined;
  const deps: SipPingDeps = {
    now: () => now,
    wallNow: () => Date.parse('2026-11-26T00:00:00Z') + now,
    sleep: (ms) => new Promise((resolve) => deps.setTimer(() => resolve(), ms)),
    setTimer: (fn, ms) => {
      const t = { at: now + ms, fn, live: true };
      timers.push(t);
      return () => {
        t.live = false;
      };
    },
    lookup: async () => ({ address: '192.0.2.1' }),
    open: async (o) => {
      handlers = o.handlers;
      const conn: SipConnection = {
        localHost: '192.0.2.10',
        localPort: 40000,
        privileged: false,
        forward: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: 'test' },
        reverse: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: 'test' },
        send: (text) => {
          sends.push(now);
          onSend(text, now, (t) => handlers!.onMessage(t, now));
        },
        close: () => {},
      };
      return conn;
    },
    token: (() => {
      let n = 0;
      return (bytes: number) => (n++).toString(16).padStart(bytes * 2, '0');
    })(),
    useRawSocket: false,
    nativeUdp: () => 'a fake transport',
    userAgent: 'voipready-test',
  };
  /** Runs the earliest live timer until none is left. */
  const drain = async () => {
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const live = timers.filter((t) => t.live).sort((a, b) => a.at - b.at);
      const next = live[0];
      if (!next) return;
      next.live = false;
      now = next.at;
      next.fn();
    }
  };
  return { deps, sends, drain };
}

describe('the OPTIONS client transaction (virtual time)', () => {
  it('retransmits at T1, 2·T1, 4·T1 … capped at T2, and gives up at Timer F = 64·T1', async () => {
    const v = virtualDeps(() => {});
    const run = runSipPing({ target: 'sip:192.0.2.1', count: 1, intervalMs: 1000 }, v.deps);
    await v.drain();
    const r = await run;
    // T1 500, T2 4000: 0, 500, 1500, 3500, 7500, 11500, …, 31500; F at 32000.
    const expected = [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500];
    expect(v.sends).toEqual(expected);
    expect(r.requests[0]).toMatchObject({ code: null, retransmissions: 10 });
    expect(r.requests[0]!.error).toMatch(/Timer F \(32000 ms\)/);
  });

  it('after a provisional response retransmits every T2; the final response stops it; copies are duplicates', async () => {
    let transmissions = 0;
    const v = virtualDeps((text, _now, deliver) => {
      transmissions++;
      const branch = /branch=([^;\r]+)/.exec(text)![1]!;
      const resp = (code: string) =>
        `SIP/2.0 ${code}\r\nVia: SIP/2.0/UDP 192.0.2.10:40000;branch=${branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      if (transmissions === 1) deliver(resp('100 Trying'));
      if (transmissions === 3) {
        deliver(resp('200 OK'));
        deliver(resp('200 OK'));
      }
    });
    const run = runSipPing({ target: 'sip:192.0.2.1', count: 1, intervalMs: 1000 }, v.deps);
    await v.drain();
    const r = await run;
    // Trying at 0 → Proceeding: Timer E fires at T1 (500), then T2 later (4500), when 200 OK comes.
    expect(v.sends).toEqual([0, 500, 4500]);
    expect(r.requests[0]).toMatchObject({
      code: 200,
      reason: 'OK',
      firstResponseMs: 0,
      responseMs: 4500,
      retransmissions: 2,
    });
    expect(r.duplicates).toBe(1);
  });
});

describe('the collector: SIP results beside RTP probes', () => {
  const T0 = Date.parse('2026-11-26T01:00:00Z');
  const HOUR = 3_600_000;
  const rtp = sampleReport({ reportId: 'rep-rtp-00001', createdAt: new Date(T0 - 60_000).toISOString() });
  const sipReport = (id: string, r: SipResult, createdAtMs: number): AgentReport => ({
    ...rtp,
    reportId: id,
    createdAt: new Date(createdAtMs).toISOString(),
    probes: [],
    sip: [r],
  });

  it('a SIP-only report keeps the RTP checks (carried, expiring with them) and adds the sip check', () => {
    const first = assessReport({
      report: rtp,
      policy: DEFAULT_POLICY,
      assessmentId: 'a1',
      receivedAtMs: T0,
      validForMs: HOUR,
    });
    const second = assessReport({
      report: sipReport(
        'rep-sip-00001',
        result({ startedAt: new Date(T0 + 60_000).toISOString() }),
        T0 + 61_000,
      ),
      policy: DEFAULT_POLICY,
      assessmentId: 'a2',
      receivedAtMs: T0 + 62_000,
      validForMs: HOUR,
      previous: first,
    });
    expect(second.checks.map((c) => c.id)).toEqual([...first.checks.map((c) => c.id), 'sip']);
    expect(second.ready).toBe(true);
    expect(second.peers[0]!.carriedFrom).toEqual({ reportId: 'rep-rtp-00001', measuredAt: first.measuredAt });
    // Valid only as long as its oldest part, the carried RTP evidence.
    expect(second.validUntil).toBe(first.validUntil);
    // The next RTP report carries the SIP result forward in turn.
    const third = assessReport({
      report: { ...rtp, reportId: 'rep-rtp-00002', createdAt: new Date(T0 + 120_000).toISOString() },
      policy: DEFAULT_POLICY,
      assessmentId: 'a3',
      receivedAtMs: T0 + 121_000,
      validForMs: HOUR,
      previous: second,
    });
    expect(third.sip?.map((t) => t.reportId)).toEqual(['rep-sip-00001']);
    expect(third.checks.find((c) => c.id === 'sip')!.status).toBe('pass');
  });

  it('without any SIP result the sip check is absent, or unknown when the policy requires it', () => {
    const a = assessReport({
      report: rtp,
      policy: DEFAULT_POLICY,
      assessmentId: 'a1',
      receivedAtMs: T0,
      validForMs: HOUR,
    });
    expect(a.checks.some((c) => c.id === 'sip')).toBe(false);
    // A one-peer RTP assessment keeps the peer's own checks array (the store writes it once).
    expect(a.checks).toBe(a.peers[0]!.checks);
    const required = Policy.parse({ sip: { required: true } });
    const b = assessReport({
      report: rtp,
      policy: required,
      assessmentId: 'a1',
      receivedAtMs: T0,
      validForMs: HOUR,
    });
    expect(b.checks.find((c) => c.id === 'sip')).toMatchObject({ status: 'unknown' });
    expect(b.ready).toBe(false);
  });

  it('a SIP-only site has no RTP evidence: its network checks are unknown, not ready', () => {
    const a = assessReport({
      report: sipReport('rep-sip-00002', result(), T0),
      policy: DEFAULT_POLICY,
      assessmentId: 'a1',
      receivedAtMs: T0,
      validForMs: HOUR,
    });
    expect(a.checks.find((c) => c.id === 'latency')!.status).toBe('unknown');
    expect(a.checks.find((c) => c.id === 'sip')!.status).toBe('pass');
    expect(a.ready).toBe(false);
  });
});
