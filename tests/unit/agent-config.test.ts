import { describe, expect, it } from 'vitest';
import { formatConfigError, parseAgentConfig } from '../../src/config/agent.js';

const VALID = `agent:
  name: agent-1
  site: branch-01
  collector:
    url: http://127.0.0.1:8080
    tokenFile: secrets/token
  queue:
    dir: queue
  probes:
    - peer: 127.0.0.1:4000
      codec: g729
      calls: 2
      duration: 5s
      interval: 1m
    - peer: "[::1]:4000"
`;

describe('agent config', () => {
  it('parses a valid config, applies defaults and resolves paths against the file', () => {
    const r = parseAgentConfig(VALID, '/etc/voipready/agent.yaml');
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    const a = r.config.agent;
    expect(a.queue.dir).toBe('/etc/voipready/queue');
    expect(a.collector.tokenFile).toBe('/etc/voipready/secrets/token');
    expect(a.collector.timeout).toBe(10_000);
    expect(a.queue.maxReports).toBe(10_000);
    expect(a.retry).toEqual({ initial: 1000, max: 300_000 });
    expect(a.probes[0]).toMatchObject({ codec: 'g729', calls: 2, duration: 5000, interval: 60_000 });
    expect(a.probes[1]).toMatchObject({ peer: '[::1]:4000', codec: 'g711u', calls: 1, interval: 300_000 });
  });

  it('names the key path and the problem of every error, unknown keys included', () => {
    const bad = VALID.replace('codec: g729', 'codec: g7291')
      .replace('interval: 1m', 'interval: 5x\n      intervall: 3')
      .replace('name: agent-1', 'name: "agent 1"')
      .replace('tokenFile: secrets/token', 'tokenFile: secrets/token\n    token: abc');
    const r = parseAgentConfig(bad, 'a.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.errors.map(formatConfigError);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^a\.yaml: agent\.name: letters, digits/),
        expect.stringMatching(/^a\.yaml: agent\.collector: give exactly one of token or tokenFile/),
        expect.stringMatching(/^a\.yaml: agent\.probes\.0\.codec: .*g711u/),
        expect.stringMatching(/^a\.yaml: agent\.probes\.0\.interval: "5x" is not a duration/),
        expect.stringMatching(/^a\.yaml: agent\.probes\.0: Unrecognized key: "intervall"/),
      ]),
    );
    expect(lines).toHaveLength(5);
  });

  it('reports YAML syntax errors with line and column', () => {
    const r = parseAgentConfig('agent:\n  name: a\n  site: [b\n', 'c.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatConfigError(r.errors[0]!)).toMatch(/^c\.yaml: \d+:\d+: /);
  });

  it('rejects a missing section, an empty probe list and a non-http collector URL', () => {
    const r = parseAgentConfig(
      'agent:\n  name: a\n  site: b\n  collector: { url: "ftp://x", token: t }\n  probes: []\n',
      'd.yaml',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.errors.map((e) => e.path).sort();
    expect(paths).toEqual(['agent.collector.url', 'agent.probes', 'agent.queue']);
  });
});
