import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { command as configCommand } from '../../src/commands/config.js';
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

  it('traces failing DSCP checks by itself unless told not to, at most once an hour by default', () => {
    const on = parseAgentConfig(VALID, '/etc/voipready/agent.yaml');
    if (!on.ok) throw new Error('valid config refused');
    expect(on.config.agent.autoTrace).toEqual({ enabled: true, every: 3_600_000 });
    const off = parseAgentConfig(`${VALID}  autoTrace: { enabled: false }\n`, '/etc/voipready/agent.yaml');
    if (!off.ok) throw new Error(off.errors.map(formatConfigError).join('\n'));
    expect(off.config.agent.autoTrace).toEqual({ enabled: false, every: 3_600_000 });
    const bad = parseAgentConfig(`${VALID}  autoTrace: { every: soon }\n`, '/etc/voipready/agent.yaml');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.map(formatConfigError).join('\n')).toMatch(/agent\.autoTrace\.every/);
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

  it('rejects a probe interval shorter than its duration and a retry.initial above retry.max', () => {
    const r = parseAgentConfig(
      VALID.replace('duration: 5s', 'duration: 2m').replace(
        '  probes:',
        '  retry: { initial: 10m, max: 1m }\n  probes:',
      ),
      'e.yaml',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map(formatConfigError)).toEqual([
      'e.yaml: agent.retry: initial must not be longer than max',
      "e.yaml: agent.probes.0.interval: interval must be at least 123.5 s: a run takes the duration (120 s) + 2 s waiting for late packets + up to 1.5 s collecting the reflector's summaries",
    ]);
    const long = parseAgentConfig(
      VALID.replace('duration: 5s', 'duration: 2h').replace('interval: 1m', 'interval: 3h'),
      'l.yaml',
    );
    expect(long.ok ? [] : long.errors.map(formatConfigError)).toEqual([
      'l.yaml: agent.probes.0.duration: must be between 20ms (one packet) and 1h',
    ]);
  });

  it('refuses an interval the run cannot fit (duration + late wait + summaries), alone or with other probes', () => {
    const errors = (yaml: string) => {
      const r = parseAgentConfig(yaml, 'i.yaml');
      return r.ok ? [] : r.errors.map(formatConfigError);
    };
    // 1 s of sending every 1.5 s was accepted, but each run takes up to 4.5 s and skips the next slot.
    expect(
      errors(VALID.replace('duration: 5s', 'duration: 1s').replace('interval: 1m', 'interval: 1500ms')),
    ).toEqual([
      "i.yaml: agent.probes.0.interval: interval must be at least 4.5 s: a run takes the duration (1 s) + 2 s waiting for late packets + up to 1.5 s collecting the reflector's summaries",
    ]);
    expect(
      errors(VALID.replace('duration: 5s', 'duration: 1s').replace('interval: 1m', 'interval: 5s')),
    ).toEqual([]);
    // Each fits its own interval, but one at a time they need 50/60 + 50/60 of the clock.
    const crowded = `${VALID.replace('duration: 5s', 'duration: 46500ms')}      duration: 46500ms\n      interval: 1m\n`;
    expect(errors(crowded)).toEqual([
      "i.yaml: agent.probes: the probes run one at a time and together need 167 % of the time (each run's duration + 3.5 s per interval): lengthen intervals or shorten durations",
    ]);
  });

  it('reports an alias to a missing anchor and an alias expansion bomb as errors, not exceptions', () => {
    const missing = parseAgentConfig('agent: *nowhere\n', 'g.yaml');
    expect(missing.ok).toBe(false);
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${'abcdefghij'[i]}: &${'abcdefghij'[i]} [${Array(10)
          .fill(`*${'abcdefghij'[i - 1]}`)
          .join(', ')}]`,
      );
    const r = parseAgentConfig(`${bomb.join('\n')}\nagent: *i\n`, 'h.yaml');
    expect(r.ok).toBe(false);
    if (r.ok || missing.ok) return;
    expect(formatConfigError(missing.errors[0]!)).toMatch(/^g\.yaml: .*nowhere|^g\.yaml: .*alias/i);
    expect(formatConfigError(r.errors[0]!)).toMatch(/^h\.yaml: \(root\): .*alias/i);
  });

  it('reports an unknown YAML tag as an error with line and column, not a process warning', () => {
    const r = parseAgentConfig(VALID.replace('name: agent-1', 'name: !secret agent-1'), 'w.yaml');
    expect(r.ok ? [] : r.errors.map(formatConfigError)).toEqual([
      expect.stringMatching(/^w\.yaml: 2:9: Unresolved tag: !secret/),
    ]);
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

describe('voipready config check', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function check(files: Record<string, string>, extra: string[] = []) {
    const paths = [];
    for (const [name, text] of Object.entries(files)) {
      const path = join(dir, name);
      await writeFile(path, text);
      paths.push(path);
    }
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d) => {
      out += d;
    });
    stderr.on('data', (d) => {
      err += d;
    });
    const code = await configCommand.run({}, ['check', ...paths, ...extra], { stdout, stderr, env: {} });
    return { code, out, err: err.replaceAll(`${dir}/`, '') };
  }

  it('says ok with exit 0 for a valid agent file', async () => {
    await mkdir(join(dir, 'secrets'), { recursive: true });
    await writeFile(join(dir, 'secrets', 'token'), 't0ken\n');
    const r = await check({ 'agent.yaml': VALID });
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${join(dir, 'agent.yaml')}: ok (agent config, 2 probe(s))\n`);
  });

  it('prints one line per error, exit 2', async () => {
    const r = await check({
      'bad.yaml': VALID.replace('calls: 2', 'calls: 0').replace('name: agent-1', 'nme: x'),
    });
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n').sort()).toEqual([
      'bad.yaml: agent.name: Invalid input: expected string, received undefined',
      'bad.yaml: agent.probes.0.calls: Too small: expected number to be >=1',
      'bad.yaml: agent: Unrecognized key: "nme"',
    ]);
  });

  it('names a token or secret file the agent could not read', async () => {
    const r = await check({
      'f.yaml': `${VALID}      secretFile: no-such-secret\n`.replace('secrets/token', 'no-token'),
    });
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toEqual([
      'f.yaml: agent.collector.tokenFile: cannot read no-token: ENOENT',
      'f.yaml: agent.probes.1.secretFile: cannot read no-such-secret: ENOENT',
    ]);
  });

  it('checks collector files with the collector schema', async () => {
    const ok = await check({ 'collector.yaml': 'collector:\n  listen: { port: 0 }\n' });
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/collector\.yaml: ok \(collector config, 0 agent\(s\), 0 viewer\(s\)\)/);
    const bad = await check({ 'c2.yaml': 'collector:\n  listen: { prot: 1 }\n' });
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^c2\.yaml: collector\.listen: Unrecognized key: "prot"$/m);
  });

  it('names a file that is neither, a YAML syntax error and an unreadable file', async () => {
    const r = await check({ 'x.yaml': 'probes: []\n', 'y.yaml': 'agent: {\n' }, [join(dir, 'missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^x\.yaml: \(root\): expected a top-level "agent:" or "collector:" key$/m);
    expect(r.err).toMatch(/^y\.yaml: \d+:\d+: /m);
    expect(r.err).toMatch(/^missing\.yaml: cannot read: ENOENT$/m);
  });
});
