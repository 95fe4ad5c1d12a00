import { describe, expect, it } from 'vitest';
import { sampleProbe, sampleReport } from '../../bench/collector-report.js';
import { assessReport, readinessAt } from '../../collector/assessment.js';
import { timeOrderedId } from '../../collector/ingest.js';
import { pointsFromReport, RTP_MEASUREMENT } from '../../collector/store/influx.js';
import { DEFAULT_POLICY, Policy } from '../../src/policy.js';

const T0 = Date.parse('2026-11-26T01:00:00Z');
const HOUR = 3_600_000;

function assess(
  report = sampleReport({ reportId: 'rep-0000001', createdAt: new Date(T0).toISOString() }),
  policy = DEFAULT_POLICY,
) {
  return assessReport({ report, policy, assessmentId: 'as-1', receivedAtMs: T0 + 1000, validForMs: HOUR });
}

const status = (a: ReturnType<typeof assess>) => Object.fromEntries(a.checks.map((c) => [c.id, c.status]));

describe('collector assessment', () => {
  it('judges a clean report ready, with the handbook limits and the report it came from', () => {
    const a = assess();
    expect(status(a)).toEqual({
      latency: 'pass',
      jitter: 'pass',
      loss: 'pass',
      'dscp-rtp': 'pass',
      'dscp-sip': 'pass',
      bandwidth: 'pass',
    });
    expect(a.ready).toBe(true);
    expect(a.reportId).toBe('rep-0000001');
    expect(a.checks.find((c) => c.id === 'latency')).toMatchObject({ value: 11.2, limit: 150, unit: 'ms' });
    expect(a.validUntil).toBe(new Date(T0 + HOUR).toISOString());
  });

  it("re-judges with the site's policy, not the probe's own verdict", () => {
    // the probe said ready; the site allows only 10 ms one-way
    const a = assess(undefined, Policy.parse({ latency: { maxMs: 10 } }));
    expect(a.checks.find((c) => c.id === 'latency')).toMatchObject({
      status: 'fail',
      value: 11.2,
      limit: 10,
    });
    expect(a.ready).toBe(false);
    // bandwidth rests on the checks under load: broken latency breaks it too
    expect(status(a).bandwidth).toBe('fail');
  });

  it('fails DSCP when EF arrives rewritten and names the direction', () => {
    const report = sampleReport({ reportId: 'rep-0000002', reverse: { dscpReceived: { '0': 500 } } });
    const dscp = assess(report).checks.find((c) => c.id === 'dscp-rtp')!;
    expect(dscp.status).toBe('fail');
    expect(dscp.evidence).toMatch(/EF sent, arrived as CS0 \(500 of 500\) on reverse path/);
  });

  it('keeps DSCP unknown (not ready) when marks could not be read', () => {
    const unreadable = {
      dscpSent: null,
      dscpReceived: {},
      dscpUnknownReason: 'no CAP_NET_RAW: DSCP not checked',
    };
    const report = sampleReport({ reportId: 'rep-0000003', forward: unreadable, reverse: unreadable });
    const a = assess(report);
    expect(a.checks.find((c) => c.id === 'dscp-rtp')).toMatchObject({
      status: 'unknown',
      evidence: expect.stringMatching(/no CAP_NET_RAW/),
    });
    expect(a.ready).toBe(false);
  });

  it('judges loss per RTP stream when the probe lists its streams ("in any RTP stream")', () => {
    // ten calls: nine clean streams and one losing 3 %; the direction as a whole loses 0.3 %
    const streams = Array.from({ length: 10 }, (_, i) => ({
      ssrc: `0x0000000${i}`,
      srcPort: 16000 + 2 * i,
      dstPort: 4000,
      sent: 100,
      received: i === 7 ? 97 : 100,
      lost: i === 7 ? 3 : 0,
      duplicates: 0,
      reordered: 0,
      jitterMs: 1,
      jitterMaxMs: 2,
    }));
    const report = sampleReport({
      reportId: 'rep-0000007',
      forward: { sent: 1000, received: 997, lost: 3, lossPct: 0.3, streams } as never,
    });
    expect(assess(report).checks.find((c) => c.id === 'loss')).toMatchObject({
      status: 'fail',
      value: 3,
      evidence: expect.stringMatching(/^3 of 100 packets lost on forward path, stream 0x00000007/),
    });
  });

  it('speaks for the site with the worst peer', () => {
    const report = sampleReport({ reportId: 'rep-0000004' });
    report.probes.push(
      sampleProbe({ peer: 'dc2.example.net:4000', forward: { received: 450, lost: 50, lossPct: 10 } }),
    );
    const a = assess(report);
    expect(a.peers.map((p) => [p.peer, p.ready])).toEqual([
      ['dc1.example.net:4000', true],
      ['dc2.example.net:4000', false],
    ]);
    expect(a.checks.find((c) => c.id === 'loss')).toMatchObject({
      status: 'fail',
      value: 10,
      evidence: expect.stringMatching(
        /^dc2\.example\.net:4000: 50 of 500 packets lost on forward.*worst of 2 peers/,
      ),
    });
  });

  it('never dates evidence later than its arrival (agent clock ahead)', () => {
    const future = new Date(T0 + 10 * HOUR).toISOString();
    const a = assess(sampleReport({ reportId: 'rep-0000005', createdAt: future }));
    expect(a.measuredAt).toBe(new Date(T0 + 1000).toISOString());
    expect(a.validUntil).toBe(new Date(T0 + 1000 + HOUR).toISOString());
  });

  it('turns stale evidence into not ready, every check unknown with the reason', () => {
    const a = assess();
    expect(readinessAt('hq', a, T0 + HOUR).ready).toBe(true);
    const stale = readinessAt('hq', a, T0 + HOUR + 1);
    expect(stale).toMatchObject({ site: 'hq', ready: false, stale: true, assessmentId: 'as-1' });
    expect(stale.checks.every((c) => c.status === 'unknown' && c.evidence.startsWith('evidence stale'))).toBe(
      true,
    );
  });

  it('reports a site without evidence as not ready, every network check unknown', () => {
    const r = readinessAt('branch', undefined, T0);
    expect(r.ready).toBe(false);
    expect(r.checks.map((c) => c.status)).toEqual(Array(6).fill('unknown'));
  });

  it('makes one InfluxDB point per direction per probe with the documented tags', () => {
    const report = sampleReport({
      reportId: 'rep-0000006',
      createdAt: new Date(T0).toISOString(),
      forward: { jitterMs: 3.5, dscpReceived: { '46': 490, '0': 10 } },
      reverse: { dscpSent: null, dscpReceived: {}, dscpUnknownReason: 'unprivileged' },
    });
    const points = pointsFromReport(report, assess(report));
    expect(points).toHaveLength(2);
    const [fwd, rev] = points;
    expect(fwd).toMatchObject({
      measurement: RTP_MEASUREMENT,
      tags: {
        site: 'hq',
        agent: 'hq-agent-1',
        peer: 'dc1.example.net:4000',
        codec: 'g711u',
        direction: 'forward',
      },
      fields: { jitterMs: 3.5, dscpHonoured: 0, reportId: 'rep-0000006', lossPct: 0, sent: 500 },
    });
    expect(rev?.tags.direction).toBe('reverse');
    // unknown is not pass: no dscpHonoured field at all
    expect(rev?.fields).not.toHaveProperty('dscpHonoured');
    expect(fwd?.timeMs).toBe(Date.parse(report.probes[0]!.startedAt!));
  });

  it('makes one point per RTP stream when the probe lists its streams (tag stream, SSRC as a field)', () => {
    const stream = (i: number, jitterMs: number) => ({
      ssrc: `0x0000000${i}`,
      srcPort: 16000 + 2 * i,
      dstPort: 4000,
      sent: 250,
      received: 250 - i,
      lost: i,
      duplicates: 0,
      reordered: 0,
      jitterMs,
      jitterMaxMs: jitterMs * 2,
    });
    const report = sampleReport({
      reportId: 'rep-0000008',
      forward: { streams: [stream(0, 1.5), { ...stream(1, 2.5), maxBurstLoss: 1 }] } as never,
    });
    const points = pointsFromReport(report, assess(report));
    // forward: two streams; reverse lists none: one point for the direction
    expect(points.map((p) => [p.tags.direction, p.tags.stream])).toEqual([
      ['forward', '0'],
      ['forward', '1'],
      ['reverse', undefined],
    ]);
    // a stream's own longest burst when the agent listed it (older agents did not), never the direction's
    expect(points[0]?.fields).not.toHaveProperty('maxBurstLoss');
    expect(points[2]?.fields).toHaveProperty('maxBurstLoss', 0);
    expect(points[1]?.fields).toMatchObject({
      maxBurstLoss: 1,
      ssrc: '0x00000001',
      jitterMs: 2.5,
      lost: 1,
      lossPct: 0.4,
      sent: 250,
    });
  });
});

describe('assessment ids', () => {
  it('are UUIDs of version 7 whose first 48 bits are the time, so later ids sort later', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => timeOrderedId(T0 + Math.floor(i / 10)));
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(ids[0]!.replace('-', '').slice(0, 12), 16)).toBe(T0);
    expect(new Set(ids).size).toBe(ids.length);
    // Sorted by time across milliseconds (within one millisecond the random bits decide).
    for (let i = 10; i < ids.length; i += 10) expect(ids[i]! > ids[i - 1]!).toBe(true);
  });
});
