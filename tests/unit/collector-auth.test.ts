import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerToken, hashToken, newToken, RateLimiter, TokenTable } from '../../collector/auth.js';

describe('collector tokens', () => {
  it('hashes tokens as sha256:<hex> of the UTF-8 token', () => {
    const token = newToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(hashToken(token)).toBe(`sha256:${createHash('sha256').update(token).digest('hex')}`);
  });

  it('identifies agents and viewers by token, and nobody by a wrong one', () => {
    const table = new TokenTable({
      agents: [{ name: 'a1', site: 'hq', tokenHash: hashToken('agent-token-0123456789') }],
      viewers: [{ name: 'noc', tokenHash: hashToken('viewer-token-0123456789') }],
    });
    expect(table.identify('agent-token-0123456789')).toEqual({ kind: 'agent', name: 'a1', site: 'hq' });
    expect(table.identify('viewer-token-0123456789')).toEqual({ kind: 'viewer', name: 'noc' });
    expect(table.identify('agent-token-012345678')).toBeUndefined();
    expect(table.identify('')).toBeUndefined();
  });

  it('reads RFC 6750 bearer headers only', () => {
    expect(bearerToken('Bearer abc.def')).toBe('abc.def');
    expect(bearerToken('bearer abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it('limits per key with a token bucket and says when to retry', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 0]);
    expect(limiter.take('a')).toBe(1);
    // another key has its own bucket
    expect(limiter.take('b')).toBe(0);
    now += 500; // one token refilled at 2/s
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBe(1);
  });
});
