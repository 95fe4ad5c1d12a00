// Bearer tokens: agents and viewers are configured with the SHA-256 of their token (tokens are long
// random strings, so a fast hash suffices and nothing secret is stored). Presented tokens are hashed
// and compared in constant time against every configured hash.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CollectorConfig } from '../src/config/collector.js';

export type Principal =
  | { kind: 'agent'; name: string; site: string }
  | { kind: 'viewer'; name: string }
  /** A support engineer: every case. */
  | { kind: 'support'; name: string }
  /** A customer contact: cases of its sites only. */
  | { kind: 'customer'; name: string; sites: string[] };

export function hashToken(token: string): string {
  return `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}`;
}

/** A new random token: 32 bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

interface Entry {
  digest: Buffer;
  principal: Principal;
}

export class TokenTable {
  private readonly entries: Entry[];

  constructor(
    config: Pick<CollectorConfig, 'agents' | 'viewers'> &
      Partial<Pick<CollectorConfig, 'support' | 'customers'>>,
  ) {
    const digest = (hash: string) => Buffer.from(hash.slice('sha256:'.length), 'hex');
    this.entries = [
      ...config.agents.map((a) => ({
        digest: digest(a.tokenHash),
        principal: { kind: 'agent' as const, name: a.name, site: a.site },
      })),
      ...config.viewers.map((v) => ({
        digest: digest(v.tokenHash),
        principal: { kind: 'viewer' as const, name: v.name },
      })),
      ...(config.support ?? []).map((s) => ({
        digest: digest(s.tokenHash),
        principal: { kind: 'support' as const, name: s.name },
      })),
      ...(config.customers ?? []).map((c) => ({
        digest: digest(c.tokenHash),
        principal: { kind: 'customer' as const, name: c.name, sites: c.sites },
      })),
    ];
  }

  get agentCount(): number {
    return this.entries.filter((e) => e.principal.kind === 'agent').length;
  }

  /** The principal whose token this is; every entry is compared so timing tells nothing. */
  identify(token: string): Principal | undefined {
    const presented = createHash('sha256').update(token, 'utf8').digest();
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.digest)) found = e.principal;
    }
    return found;
  }
}

/** `Authorization: Bearer <token>` (RFC 6750 §2.1) → the token, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer +([\x21-\x7e]+) *$/i.exec(header) : null;
  return m?.[1];
}

/** A token bucket per key: `perSecond` refill, `burst` capacity. Clock injected. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {}

  /** 0 when allowed (and a token is taken), else the seconds until one is available. */
  take(key: string): number {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, atMs: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.atMs) / 1000) * this.perSecond);
    b.atMs = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
  }
}

/** The cookie the collector's pages keep a viewer token in (set by POST /login). */
export const SESSION_COOKIE = 'voipready_token';

/** The token in the `Cookie` header's session cookie (RFC 6265 §4.2.1), or undefined. */
export function cookieToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = pair.slice(eq + 1).trim();
      return /^[\x21-\x7e]{1,512}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}
