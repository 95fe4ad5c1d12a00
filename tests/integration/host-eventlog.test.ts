// Event logs and backups with real things: journal files written by systemd-journal-remote and read
// through journalctl; a syslog file the test writes; backup files with set modification times and a
// backup command that fails; recorded wevtutil XML judged offline by the real CLI; a bad config.
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectBackups } from '../../agent/host/backups.js';
import { systemHostDeps } from '../../agent/host/deps.js';
import { collectEventLog, newEventLogState } from '../../agent/host/eventlog.js';
import { HostConfig } from '../../src/config/host.js';
import { judgeBackups, judgeEventLog } from '../../src/host-policy.js';
import { HostResult } from '../../src/host-schema.js';
import { Policy } from '../../src/policy.js';
import { CLI_BIN, cliUnavailableReason, REPO_ROOT } from '../helpers/cli.js';
import { JOURNAL_REMOTE, writeJournal } from '../helpers/journal.js';

const work = mkdtempSync(join(tmpdir(), 'voipready-host-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const deps = systemHostDeps();
const policy = Policy.parse({});
const FIXTURES = join(REPO_ROOT, 'tests', 'fixtures', 'wevtutil');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI_BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!existsSync(JOURNAL_REMOTE))('journald through journalctl', () => {
  const now = Date.now();
  const dir = join(work, 'journal');
  const at = (minutesAgo: number) => now - minutesAgo * 60_000;
  const unordered = [
    ...[1, 2, 3].map((m) => ({
      priority: 3,
      identifier: 'ininotify',
      message: `notifier lost its peer ${m}`,
      messageId: 'aa11bb22cc33dd44ee55ff6677889900',
      timeMs: at(m),
    })),
    { priority: 2, identifier: 'kernel', message: 'EXT4-fs error (device sda1): bad block', timeMs: at(4) },
    ...[5, 6].map((m) => ({
      priority: 4,
      identifier: 'sshd',
      message: 'warning: slow reverse lookup',
      timeMs: at(m),
    })),
    ...[7, 8, 9, 10, 11].map((m) => ({ priority: 6, identifier: 'cron', message: 'job ran', timeMs: at(m) })),
    ...[12, 13].map((m) => ({
      priority: 3,
      identifier: 'noisy-agent',
      message: 'known noise',
      timeMs: at(m),
    })),
    {
      priority: 3,
      identifier: 'smartd',
      message: 'Device: /dev/sdb, SMART Failure: TEMPERATURE (known sensor bug)',
      timeMs: at(14),
    },
    { priority: 3, identifier: 'old', message: 'before the window', timeMs: at(3 * 24 * 60) },
  ];
  // journald writes in time order; so does this test
  const entries = unordered.sort((a, b) => a.timeMs - b.timeMs);
  const config = HostConfig.parse({
    eventlog: {
      source: 'journald',
      directory: dir,
      since: '1d',
      exclude: [{ provider: 'Noisy-Agent' }, { message: 'known sensor bug' }],
    },
  }).eventlog;

  it('counts critical and errors since the window, applies the exclude rules, lists the top offenders', async () => {
    await writeJournal(dir, entries);
    const state = newEventLogState();
    const e = await collectEventLog(config, deps, state);
    expect(e).toMatchObject({ critical: 1, errors: 3, warnings: 2, excluded: 3 });
    expect(e.source).toBe(`journald (--directory ${dir})`);
    expect(e.top[0]).toMatchObject({
      provider: 'ininotify',
      eventId: 'aa11bb22cc33dd44ee55ff6677889900',
      level: 'error',
      count: 3,
    });
    expect(e.top.map((o) => o.provider).sort()).toEqual(['ininotify', 'kernel']);
    expect(e.topWarnings?.[0]).toMatchObject({ provider: 'sshd', count: 2 });
    expect(judgeEventLog(e, policy)).toMatchObject({ status: 'fail', value: 4 });
    // the next collection starts after the last entry read: nothing new
    const again = await collectEventLog(config, deps, state);
    expect(again).toMatchObject({ critical: 0, errors: 0 });
    expect(judgeEventLog(again, policy).status).toBe('pass');
  });

  it.skipIf(cliUnavailableReason())('judges `journalctl -o json` output offline the same way', () => {
    const file = join(work, 'export.json');
    const out = spawnSync('journalctl', ['--directory', dir, '-o', 'json', '--no-pager'], {
      encoding: 'utf8',
    });
    writeFileSync(file, out.stdout);
    const cfg = join(work, 'rules.yaml');
    writeFileSync(
      cfg,
      `agent:\n  name: a1\n  site: s1\n  collector: { url: "http://127.0.0.1:1", token: t }\n  queue: { dir: ${work}/q }\n  host:\n    eventlog:\n      exclude: [{ provider: noisy-agent }, { message: "known sensor bug" }]\n`,
    );
    const r = cli(['host', '--config', cfg, '--events', file, '--json', '--path', work]);
    expect(r.code, r.stderr).toBe(1);
    const result = HostResult.parse(JSON.parse(r.stdout));
    // the exported file has the old entry too: the window is the file
    expect(result.eventlog).toMatchObject({ critical: 1, errors: 4, excluded: 3 });
  });

  it('a journal directory without journal files is unknown, naming it', async () => {
    const empty = join(work, 'no-journal');
    mkdirSync(empty, { recursive: true });
    const e = await collectEventLog({ ...config, directory: empty }, deps, newEventLogState());
    expect(e.critical).toBeNull();
    expect(judgeEventLog(e, policy)).toMatchObject({ status: 'unknown' });
    expect(e.unknownReason).toContain(empty);
  });
});

describe('syslog files', () => {
  it('parses the severity where the line carries it and reads only new lines next time', async () => {
    const file = join(work, 'syslog');
    const iso = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
    writeFileSync(
      file,
      [
        `<11>1 ${iso(5)} ic-srv ininotify 812 - - notifier lost its peer`,
        `<10>${new Date().toUTCString().slice(8, 11)} 28 10:00:00 ic-srv kernel: I/O error, dev sda`,
        `${iso(4)} ic-srv kern.crit kernel: EXT4-fs error`,
        `<12>1 ${iso(3)} ic-srv sshd 90 - - slow lookup`,
        `<14>1 ${iso(2)} ic-srv cron 91 - - job ran`,
        `${iso(1)} ic-srv nothing: a line without severity`,
        '',
      ].join('\n'),
    );
    const config = HostConfig.parse({
      eventlog: { source: 'syslog', syslogFiles: [file], since: '400d' },
    }).eventlog;
    const state = newEventLogState();
    const e = await collectEventLog(config, deps, state);
    expect(e).toMatchObject({ critical: 2, errors: 1, warnings: 1 });
    expect(e.warning).toMatch(/1 line\(s\) without a severity/);
    appendFileSync(file, `<11>1 ${iso(0)} ic-srv ininotify 812 - - again\n`);
    const next = await collectEventLog(config, deps, state);
    expect(next).toMatchObject({ critical: 0, errors: 1 });
    expect(next.top[0]).toMatchObject({ provider: 'ininotify', count: 1, sample: 'again' });
  });

  it('a file of lines without severity is unknown, with how to fix it; a missing file is unknown', async () => {
    const file = join(work, 'messages');
    writeFileSync(file, `${new Date().toISOString()} ic-srv app: something happened\n`);
    const config = HostConfig.parse({ eventlog: { source: 'syslog', syslogFiles: [file] } }).eventlog;
    const e = await collectEventLog(config, deps, newEventLogState());
    expect(judgeEventLog(e, policy).status).toBe('unknown');
    expect(e.unknownReason).toMatch(/carry no severity/);
    const missing = await collectEventLog(
      { ...config, syslogFiles: [join(work, 'nope')] },
      deps,
      newEventLogState(),
    );
    expect(missing.unknownReason).toMatch(/ENOENT/);
  });
});

describe('backups', () => {
  it('takes the newest matching file by modification time; a stale one fails', async () => {
    const dir = join(work, 'backups');
    mkdirSync(dir, { recursive: true });
    const hoursAgo = (h: number) => (Date.now() - h * 3_600_000) / 1000;
    for (const [name, h] of [
      ['ic-2026-11-20.zip', 200],
      ['ic-2026-11-27.zip', 30],
      ['ic-2026-11-26.zip', 50],
      ['notes.txt', 1],
    ] as const) {
      writeFileSync(join(dir, name), 'x');
      utimesSync(join(dir, name), hoursAgo(h), hoursAgo(h));
    }
    const [b] = await collectBackups(
      HostConfig.parse({ backups: [{ name: 'config', glob: `${dir}/ic-*.zip` }] }).backups,
      deps,
    );
    expect(b).toMatchObject({ name: 'config', file: join(dir, 'ic-2026-11-27.zip') });
    expect(b!.ageHours!).toBeGreaterThan(29.9);
    expect(b!.ageHours!).toBeLessThan(30.5);
    expect(judgeBackups([b!], policy).status).toBe('pass');
    expect(judgeBackups([b!], Policy.parse({ backup: { maxAgeHours: 24 } })).status).toBe('fail');
  });

  it('a failing backup command fails the check; a command that prints no time, or a missing directory, is unknown', async () => {
    const backups = HostConfig.parse({
      backups: [
        { name: 'migrator', command: ['sh', '-c', 'echo "last backup failed: tape offline" >&2; exit 3'] },
        { name: 'epoch', command: ['sh', '-c', `echo ${Math.floor(Date.now() / 1000) - 7200}`] },
        { name: 'chatty', command: ['sh', '-c', 'echo done'] },
        { name: 'gone', glob: '/nonexistent/voipready/*.bak' },
      ],
    }).backups;
    const [failed, epoch, chatty, gone] = await collectBackups(backups, deps);
    expect(failed!.failed).toMatch(/exited 3: last backup failed: tape offline/);
    expect(epoch!.ageHours!).toBeCloseTo(2, 1);
    expect(chatty!.unknownReason).toMatch(/printed no time/);
    expect(gone!.unknownReason).toMatch(/does not exist/);
    expect(judgeBackups([failed!, epoch!], policy).status).toBe('fail');
    expect(judgeBackups([epoch!, gone!], policy).status).toBe('unknown');
  });
});

describe.skipIf(cliUnavailableReason())('recorded wevtutil XML, offline (`voipready host --events`)', () => {
  it('counts Level 1 as critical, Level 2 as errors, lists warnings, keeps non-ASCII and long messages', () => {
    const r = cli(['host', '--events', join(FIXTURES, 'system-application.xml'), '--json', '--path', work]);
    expect(r.code, r.stderr).toBe(1);
    const e = HostResult.parse(JSON.parse(r.stdout)).eventlog;
    expect(e).toMatchObject({ critical: 1, errors: 5, warnings: 1 });
    expect(e.top[0]).toMatchObject({ provider: 'Service Control Manager', eventId: 7034, count: 2 });
    const appError = e.top.find((o) => o.provider === 'Application Error')!;
    expect(appError.sample).toContain('Größe & «Ünïcödé» 日本語');
    expect(e.top.find((o) => o.eventId === 9001)!.sample.length).toBeLessThanOrEqual(500);
    expect(e.top.find((o) => o.eventId === 4625)).toMatchObject({ provider: 'unknown', level: 'error' });
    expect(e.since).toBe('2026-11-28T01:02:03.123Z');
  });

  it('reads UTF-16 /f:xml output (insertion strings as the sample)', () => {
    const r = cli(['host', '--events', join(FIXTURES, 'system-plain-utf16.xml'), '--json', '--path', work]);
    const e = HostResult.parse(JSON.parse(r.stdout)).eventlog;
    expect(e).toMatchObject({ critical: 1, errors: 2 });
    expect(e.top[0]!.sample).toBe('Interaction Center 1');
  });

  it('a file damaged part-way: the events before are judged, one warning names the byte offset', () => {
    const r = cli(['host', '--events', join(FIXTURES, 'damaged.xml'), '--json', '--path', work]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/damaged at byte 1844: the 2 event\(s\) before it were judged/);
    expect(HostResult.parse(JSON.parse(r.stdout)).eventlog.errors).toBe(2);
  });

  it('nothing readable: exit 2 with one line', () => {
    for (const text of ['<Event><System><Level>2', 'hello, not an event log\n', '']) {
      const file = join(work, 'bad.xml');
      writeFileSync(file, text);
      const r = cli(['host', '--events', file, '--path', work]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
  });
});

describe.skipIf(cliUnavailableReason())('a bad host section', () => {
  it('is reported as FILE: key.path: problem for bad globs, paths and regexes', () => {
    const file = join(work, 'bad-agent.yaml');
    writeFileSync(
      file,
      `agent:
  name: a1
  site: s1
  collector: { url: "http://127.0.0.1:1", token: t }
  queue: { dir: q }
  host:
    interval: 5x
    disk: { paths: [relative/path] }
    eventlog:
      exclude: [{ message: "(unclosed" }, {}]
    backups:
      - glob: "/backups/[abc*.zip"
      - glob: "/**/*.bak"
      - { glob: /b/*.zip, command: [/bin/true] }
`,
    );
    const r = cli(['host', '--config', file]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    const expected = [
      /^.*bad-agent\.yaml: agent\.host\.interval: "5x" is not a duration/,
      /^.*bad-agent\.yaml: agent\.host\.disk\.paths\.0: must be an absolute path$/,
      /^.*bad-agent\.yaml: agent\.host\.eventlog\.exclude\.0\.message: not a valid regular expression/,
      /^.*bad-agent\.yaml: agent\.host\.eventlog\.exclude\.1: a rule needs provider, eventId, level or message$/,
      /^.*bad-agent\.yaml: agent\.host\.backups\.0\.glob: not a usable glob: an unclosed "\["$/,
      /^.*bad-agent\.yaml: agent\.host\.backups\.1\.glob: not a usable glob: it would walk the whole file system$/,
      /^.*bad-agent\.yaml: agent\.host\.backups\.2: give exactly one of glob or command$/,
    ];
    for (const re of expected)
      expect(
        lines.some((l) => re.test(l)),
        `${re} in\n${r.stderr}`,
      ).toBe(true);
    expect(lines).toHaveLength(expected.length);
    // the same through the one-off flag
    const flag = cli(['host', '--backup', 'relative/*.zip']);
    expect(flag.code).toBe(2);
    expect(flag.stderr.trim()).toBe('voipready host: --backup relative/*.zip: must be an absolute path');
  });
});
