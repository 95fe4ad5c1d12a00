import { describe, expect, it } from 'vitest';
import { CODECS } from '../../src/codecs.js';
import { mosFromR, rFactor } from '../../src/emodel.js';
import { DEFAULT_POLICY, isReady, judgeDscp, judgeLoss, judgeNetwork, Policy } from '../../src/policy.js';

describe('E-model (ITU-T G.107)', () => {
  it('gives the default-parameter R of 93.2 with no delay or loss', () => {
    expect(rFactor({ codec: CODECS.g711u, mouthToEarMs: 0, lossPct: 0 })).toBeCloseTo(93.2, 1);
    expect(mosFromR(93.2)).toBeCloseTo(4.41, 2);
  });
  it('applies Ie and Bpl (G.113): G.729 at 1% random loss', () => {
    // Ie,eff = 11 + (95 - 11) * 1 / (1 + 19) = 15.2
    const r = rFactor({ codec: CODECS.g729, mouthToEarMs: 0, lossPct: 1 });
    expect(r).toBeCloseTo(93.21 - 15.2, 1);
  });
  it('penalises delay beyond 100 ms (Idd)', () => {
    const short = rFactor({ codec: CODECS.g711u, mouthToEarMs: 50, lossPct: 0 });
    const long = rFactor({ codec: CODECS.g711u, mouthToEarMs: 300, lossPct: 0 });
    expect(long).toBeLessThan(short - 10);
  });
});

describe('policy', () => {
  it('defaults to the handbook thresholds', () => {
    expect(DEFAULT_POLICY.latency.maxMs).toBe(150);
    expect(DEFAULT_POLICY.jitter.maxMs).toBe(30);
    expect(DEFAULT_POLICY.loss.maxPct).toBe(1);
    expect(DEFAULT_POLICY['dscp-rtp'].audio).toBe(46);
    expect(DEFAULT_POLICY['dscp-sip'].class).toBe(24);
  });
  it('rejects unknown keys and bad DSCP names', () => {
    expect(Policy.safeParse({ latncy: {} }).success).toBe(false);
    expect(Policy.safeParse({ 'dscp-rtp': { audio: 'XX' } }).success).toBe(false);
    expect(Policy.parse({ 'dscp-sip': { class: 'cs5' } })['dscp-sip'].class).toBe(40);
  });
  it('names the direction that rewrote the mark', () => {
    const c = judgeDscp(
      'dscp-rtp',
      [
        { label: 'forward path', expected: 46, sent: 46, received: { '46': 100 } },
        { label: 'reverse path', expected: 46, sent: 46, received: { '0': 100 } },
      ],
      DEFAULT_POLICY,
      '',
    );
    expect(c.status).toBe('fail');
    expect(c.evidence).toContain('EF sent, arrived as CS0 (100 of 100) on reverse path');
  });
  it('reports unreadable marks as unknown, never pass', () => {
    const c = judgeDscp(
      'dscp-sip',
      [{ label: 'forward path', expected: 24, sent: null, received: null, unknownReason: 'no CAP_NET_RAW' }],
      DEFAULT_POLICY,
      '',
    );
    expect(c.status).toBe('unknown');
    expect(c.evidence).toContain('no CAP_NET_RAW');
  });
  it('judges limits at the handbook boundaries', () => {
    const checks = judgeNetwork({
      latency: { forwardMs: 150, reverseMs: 10, estimated: false, basis: 'test' },
      jitter: [{ label: 'forward', jitterMs: 29.9 }],
      loss: [{ label: 'forward', lost: 1, expected: 100 }],
      dscpRtp: [],
      dscpSip: [],
      bandwidth: { codec: CODECS.g711u, calls: 1 },
    });
    const byId = Object.fromEntries(checks.map((c) => [c.id, c.status]));
    expect(byId).toEqual({
      latency: 'fail', // "less than 150ms"
      jitter: 'pass',
      loss: 'pass', // "no more than 1%"
      'dscp-rtp': 'unknown',
      'dscp-sip': 'unknown',
      bandwidth: 'fail',
    });
    expect(isReady(checks)).toBe(false);
  });
});

describe('loss with streams the reflector refused or forgot', () => {
  const refused = {
    label: 'forward path, stream 0x00000001',
    lost: 0,
    expected: 0,
    unknownReason: 'evicted',
  };
  const clean = { label: 'forward path, stream 0x00000002', lost: 0, expected: 100 };
  const lossy = { label: 'forward path, stream 0x00000003', lost: 5, expected: 100 };
  it('is unknown while a stream is unmeasured and the measured ones are within the limit', () => {
    const c = judgeLoss([clean, refused], DEFAULT_POLICY);
    expect(c.status).toBe('unknown');
    expect(c.evidence).toBe(
      'not measured: 1 stream not measured (forward path, stream 0x00000001: evicted); 0 of 100 packets lost on forward path, stream 0x00000002',
    );
    expect(judgeLoss([refused], DEFAULT_POLICY).evidence).toContain('evicted');
  });
  it('still fails when a measured stream broke the limit', () => {
    const c = judgeLoss([lossy, refused], DEFAULT_POLICY);
    expect(c.status).toBe('fail');
    expect(c.evidence).toContain('5 of 100 packets lost');
  });
  it('passes only with every stream measured', () => {
    expect(judgeLoss([clean], DEFAULT_POLICY).status).toBe('pass');
  });
});
