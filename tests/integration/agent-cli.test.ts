import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliUnavailableReason, runCli, startCli } from '../helpers/cli.js';

// Bad input to the real `voipready agent` process: one clear line (or one line per config problem)
// and exit 2, never a stack trace or a hang.
async function run(args: string[]) {
  const r = await runCli(args, { timeoutMs: 15_000 });
  return { code: r.code, err: r.stderr };
}

describe.skipIf(cliUnavailableReason())('voipready agent: bad input', () => {
  let dir: string;
  const config = (collector: string, queue = 'queue') => `agent:
  name: agent-1
  site: branch-01
  collector: ${collector}
  queue: { dir: ${queue} }
  probes:
    - { peer: "127.0.0.1:5004" }
`;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'voipready-agent-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('needs --config', async () => {
    expect(await run(['agent'])).toEqual({ code: 2, err: 'voipready agent: --config FILE is required\n' });
  });

  it('names an unreadable config and a bad --log-level', async () => {
    const missing = join(dir, 'nope.yaml');
    expect(await run(['agent', '--config', missing])).toEqual({
      code: 2,
      err: `voipready agent: cannot read config ${missing}: ENOENT\n`,
    });
    const r = await run(['agent', '--config', missing, '--log-level', 'loud']);
    expect(r).toEqual({
      code: 2,
      err: 'voipready agent: --log-level must be one of debug, info, warn, error\n',
    });
  });

  it('prints every config problem as FILE: key.path: problem', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      config('{ url: "http://127.0.0.1:1", token: t, tokn: u }').replace('5004', '99999x'),
    );
    const r = await run(['agent', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n').sort()).toEqual([
      `${file}: agent.collector: Unrecognized key: "tokn"`,
      `${file}: agent.probes.0.peer: must be HOST:PORT (e.g. dc.example.net:4000)`,
    ]);
  });

  it('names an empty or missing token file', async () => {
    const file = join(dir, 'tok.yaml');
    await writeFile(join(dir, 'empty.token'), '\n');
    await writeFile(file, config('{ url: "http://127.0.0.1:1", tokenFile: empty.token }'));
    expect(await run(['agent', '--config', file])).toEqual({
      code: 2,
      err: `voipready agent: token file ${join(dir, 'empty.token')} is empty\n`,
    });
    await writeFile(file, config('{ url: "http://127.0.0.1:1", tokenFile: gone.token }'));
    expect(await run(['agent', '--config', file])).toEqual({
      code: 2,
      err: `voipready agent: cannot read token file ${join(dir, 'gone.token')}: ENOENT\n`,
    });
  });

  it('names a queue directory it cannot create', async () => {
    const file = join(dir, 'q.yaml');
    await writeFile(join(dir, 'a-file'), 'x');
    await writeFile(file, config('{ url: "http://127.0.0.1:1", token: t }', 'a-file/queue'));
    expect(await run(['agent', '--config', file])).toEqual({
      code: 2,
      err: `voipready agent: cannot open queue ${join(dir, 'a-file', 'queue')}: ENOTDIR\n`,
    });
  });

  it('refuses a second agent on a queue directory in use, naming the holder', async () => {
    const file = join(dir, 'busy.yaml');
    // A short probe: SIGTERM lets the probe in progress finish (duration + the 2 s wait) first.
    await writeFile(
      file,
      config('{ url: "http://127.0.0.1:1", token: t }', 'busy-queue').replace(
        '"127.0.0.1:5004" }',
        '"127.0.0.1:5004", duration: 1s, interval: 1h }',
      ),
    );
    const first = startCli(['agent', '--config', file], { timeoutMs: 30_000 });
    try {
      await first.waitForStderr(/"event":"agent.started"/, 10_000);
      expect(await run(['agent', '--config', file])).toEqual({
        code: 2,
        err: `voipready agent: queue ${join(dir, 'busy-queue')} is in use by process ${first.child.pid}\n`,
      });
    } finally {
      expect((await first.stop(10_000)).code).toBe(0);
    }
  });
});
