import { describe, expect, it } from 'vitest';
import { defaultDataDir, parseCollectorConfig } from '../../src/config/collector.js';

const HASH_A = `sha256:${'a'.repeat(64)}`;
const HASH_B = `sha256:${'b'.repeat(64)}`;

function errorsOf(text: string) {
  const r = parseCollectorConfig(text, '/etc/voipready/collector.yaml');
  if (r.ok) throw new Error('expected errors');
  return r.errors;
}

describe('collector config', () => {
  it('fills documented defaults and resolves relative paths against the file', () => {
    const r = parseCollectorConfig(
      `collector:\n  dataDir: data\n  readinessValidFor: 2h\n  agents:\n    - { name: a1, site: hq, tokenHash: "${HASH_A}" }\n  sites:\n    hq:\n      policy:\n        latency: { maxMs: 100 }\n`,
      '/etc/voipready/collector.yaml',
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.dataDir).toBe('/etc/voipready/data');
    expect(r.config.readinessValidFor).toBe(7_200_000);
    expect(r.config.listen).toEqual({ host: '127.0.0.1', port: 8470 });
    expect(r.config.reads).toBe('token');
    expect(r.config.sites.hq?.policy.latency.maxMs).toBe(100);
    // keys the site's policy does not give keep the handbook's values
    expect(r.config.sites.hq?.policy.jitter.maxMs).toBe(30);
  });

  it('names the file, key path and problem for unknown keys and bad values', () => {
    const errors = errorsOf(
      `collector:\n  listen: { prot: 1 }\n  reads: public\n  agents:\n    - { name: a1, site: "h q", tokenHash: "secret" }\n`,
    );
    const byPath = Object.fromEntries(errors.map((e) => [e.path, e.message]));
    expect(errors.every((e) => e.file === '/etc/voipready/collector.yaml')).toBe(true);
    expect(byPath['collector.listen']).toMatch(/prot/);
    expect(byPath['collector.reads']).toBeDefined();
    expect(byPath['collector.agents.0.site']).toMatch(/letters, digits/);
    expect(byPath['collector.agents.0.tokenHash']).toMatch(/--hash-token/);
  });

  it('rejects one token shared by two principals', () => {
    const errors = errorsOf(
      `collector:\n  agents:\n    - { name: a1, site: hq, tokenHash: "${HASH_A}" }\n  viewers:\n    - { name: noc, tokenHash: "${HASH_A}" }\n    - { name: ops, tokenHash: "${HASH_B}" }\n`,
    );
    expect(errors).toEqual([
      expect.objectContaining({
        path: 'collector.viewers.0.tokenHash',
        message: expect.stringMatching(/same token/),
      }),
    ]);
  });

  it('reports YAML syntax errors with line and column', () => {
    const errors = errorsOf('collector:\n  reads: [open\n');
    expect(errors[0]?.path).toMatch(/^\d+:\d+$/);
  });

  it('takes the store: SQLite by default, PostgreSQL with a URL; a wrong kind or URL names the key', () => {
    const sqlite = parseCollectorConfig('collector: {}\n', '/etc/voipready/collector.yaml');
    expect(sqlite.ok && sqlite.config.store).toEqual({ kind: 'sqlite' });
    const pg = parseCollectorConfig(
      'collector:\n  store: { kind: postgres, url: "postgres://voipready@db:5432/voipready", claimFor: 30s }\n',
      '/etc/voipready/collector.yaml',
    );
    expect(pg.ok && pg.config.store).toEqual({
      kind: 'postgres',
      url: 'postgres://voipready@db:5432/voipready',
      poolSize: 10,
      timeout: 10_000,
      claimFor: 30_000,
    });
    expect(errorsOf('collector:\n  store: { kind: postgres, url: "mysql://db/x" }\n')[0]?.path).toBe(
      'collector.store.url',
    );
    expect(errorsOf('collector:\n  store: { kind: mongodb }\n')[0]?.path).toBe('collector.store.kind');
    expect(errorsOf('collector:\n  store: { kind: sqlite, url: "postgres://db/x" }\n')[0]?.path).toBe(
      'collector.store',
    );
  });

  it('validates the InfluxDB block', () => {
    const errors = errorsOf('collector:\n  influxdb: { url: "ftp://x", retentionDuration: "3 months" }\n');
    expect(errors.map((e) => e.path).sort()).toEqual([
      'collector.influxdb.retentionDuration',
      'collector.influxdb.url',
    ]);
  });

  it('chooses the default data directory by user', () => {
    expect(defaultDataDir({}, true)).toBe('/var/lib/voipready');
    expect(defaultDataDir({ XDG_DATA_HOME: '/x/share', HOME: '/home/u' }, false)).toBe('/x/share/voipready');
    expect(defaultDataDir({ HOME: '/home/u' }, false)).toBe('/home/u/.local/share/voipready');
  });
});
