// `voipready case …` and `voipready cutover …` as child processes against a real listening
// collector; the cutover notice's rules (5 business days in the site's calendar, a passing
// assessment attached, every checklist item answered) through the API.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { addBusinessDays } from '../../src/cases/calendar.js';
import { caseConfig, cutoverChecklist, fetchApi, siteReport, TOKENS } from '../helpers/cases.js';
import { cliUnavailableReason, killAllCli, runCli } from '../helpers/cli.js';
import { freeLoopbackPort } from '../helpers/service.js';

const unavailable = cliUnavailableReason();
const NY = { timeZone: 'America/New_York', holidays: ['2026-12-25'] };

describe.skipIf(unavailable)(
  `case and cutover commands${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  // Each command is a node process start: seconds apiece on a loaded 2-core machine.
  { timeout: 420_000 },
  () => {
    let dir: string;
    let collector: RunningCollector;
    const files: Record<string, string> = {};
    const cli = (args: string[], token = 'acme') =>
      runCli([...args, '--collector', collector.url, '--token-file', files[token]!], { timeoutMs: 30_000 });
    const api = (method: string, path: string, token: string, body?: unknown) =>
      fetchApi(collector.url, method, path, token, body);

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vr-cases-cli-'));
      for (const [name, token] of Object.entries({
        acme: TOKENS.acme,
        support: TOKENS.support,
        globex: TOKENS.globex,
      })) {
        files[name] = join(dir, `${name}.token`);
        writeFileSync(files[name], `${token}\n`, { mode: 0o600 });
      }
      collector = await startCollector({
        config: caseConfig(),
        dataDir: join(dir, 'data'),
        host: '127.0.0.1',
        port: 0,
      });
      const failing = await api(
        'POST',
        '/api/v1/reports',
        TOKENS.branchAgent,
        siteReport('rep-cli-branch', Date.now(), 'branch', true),
      );
      expect(failing.status).toBe(202);
    });
    afterAll(async () => {
      await killAllCli();
      await collector?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('case open on a site that is not ready exits 1 with the checks to fix; show, list, update work; errors are one line', async () => {
      const opened = await cli(
        [
          'case',
          'open',
          '--site',
          'branch',
          '--subject',
          'Choppy audio',
          '--product',
          'PureConnect Telephony',
          '--priority',
          '2-High',
        ],
        'globex',
      );
      expect(opened.stderr).toBe('');
      expect(opened.code).toBe(1);
      const id = /^case (\d{10}) opened: Awaiting Info \/ Info required from the customer$/m.exec(
        opened.stdout,
      )?.[1];
      expect(id, opened.stdout).toBeDefined();
      expect(opened.stdout).toMatch(/dscp-rtp fail: .*CS0/);

      const listed = await cli(['case', 'list', '--site', 'branch'], 'support');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(
        `${id}  Awaiting Info / Info required from the customer  2-High  branch  Choppy audio [support withheld]`,
      );

      const updated = await cli(['case', 'update', id!, '--text', 'We re-marked the uplink'], 'globex');
      expect(updated.code).toBe(0);
      const shown = await cli(['case', 'show', id!, '--json'], 'support');
      expect(JSON.parse(shown.stdout).updates.map((u: { kind: string }) => u.kind)).toEqual([
        'system',
        'customer-update',
      ]);

      const hidden = await cli(['case', 'show', id!], 'acme');
      expect(hidden.code).toBe(2);
      expect(hidden.stderr).toBe(`voipready case: GET /api/v1/cases/${id}: 404 no case "${id}"\n`);
      const forbidden = await cli(
        ['case', 'update', id!, '--status', 'Open', '--sub-status', 'New'],
        'support',
      );
      expect(forbidden.code).toBe(2);
      expect(forbidden.stderr).toMatch(
        /^voipready case: POST .*: 409 New is the sub-status of a case just opened.*\n$/,
      );
      const badPriority = await cli([
        'case',
        'open',
        '--site',
        'hq',
        '--subject',
        's',
        '--product',
        'p',
        '--priority',
        'urgent',
      ]);
      expect(badPriority.code).toBe(2);
      expect(badPriority.stderr).toMatch(
        /^voipready case: POST \/api\/v1\/cases: 400 invalid case: priority: .*\n$/,
      );
      const noToken = await runCli(['case', 'list', '--collector', collector.url], { timeoutMs: 30_000 });
      expect(noToken.code).toBe(2);
      expect(noToken.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      const down = await runCli(
        [
          'case',
          'list',
          '--collector',
          `http://127.0.0.1:${await freeLoopbackPort()}`,
          '--token-file',
          files.acme!,
        ],
        { timeoutMs: 30_000 },
      );
      expect(down.code).toBe(2);
      expect(down.stderr).toMatch(
        /^voipready case: cannot reach the collector at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/,
      );
    });

    it('a cutover notice 5 business days ahead with a passing assessment is accepted, listed, and rendered', async () => {
      const ok = await api(
        'POST',
        '/api/v1/reports',
        TOKENS.hqAgent,
        siteReport(`rep-cli-hq-${Date.now()}`, Date.now(), 'hq'),
      );
      expect(ok.json.ready).toBe(true);
      const cutoverAt = addBusinessDays(Date.now() + 60_000, 5, NY);
      const file = join(dir, 'cutover.yaml');
      writeFileSync(file, stringify(cutoverChecklist(cutoverAt)));
      const submitted = await cli(['cutover', 'submit', file]);
      expect(submitted.stderr).toBe('');
      expect(submitted.code).toBe(0);
      expect(submitted.stdout).toMatch(/^To: customercare@genesys\.com$/m);
      expect(submitted.stdout).toContain('- IC Handler testing/migration complete: verified');
      expect(submitted.stdout).toContain(
        '- Email Server User configurations: not applicable (no e-mail integration)',
      );
      expect(submitted.stdout).toMatch(/Readiness assessment \S+ of site hq .*: passing\./);
      const id = /^cutover notice (\S+) accepted$/m.exec(submitted.stdout)![1]!;

      const listed = await cli(['cutover', 'list'], 'support');
      expect(listed.stdout).toContain(
        `${new Date(cutoverAt).toISOString()}  hq  new-installation  technician Dana Field  site contact Sam Site +1 555 0100  ${id}`,
      );
      const globex = await cli(['cutover', 'list'], 'globex');
      expect(globex.stdout).toBe('no upcoming cutovers\n');
      const html = await cli(['cutover', 'show', id, '--html'], 'support');
      expect(html.stdout).toMatch(/^<!doctype html>/);
      expect(html.stdout).toContain('call flows in the attached design &lt;v2&gt;');
      const shown = await api('GET', `/api/v1/cutovers/${id}`, TOKENS.support);
      expect((shown.json.assessment as { ready: boolean }).ready).toBe(true);
    });

    it('refuses with every reason: 3 business days away, in the past, unanswered items, no passing assessment; nothing stored', async () => {
      const count = async () =>
        ((await api('GET', '/api/v1/cutovers', TOKENS.support)).json.cutovers as unknown[]).length;
      const before = await count();
      const notice = (token: string, body: unknown) => api('POST', '/api/v1/cutovers', token, body);
      const soon = await notice(TOKENS.support, cutoverChecklist(addBusinessDays(Date.now(), 3, NY)));
      expect(soon.status).toBe(400);
      expect(soon.json.message).toMatch(
        /is 3 business day\(s\) after submission in the site's calendar \(America\/New_York\); notify support at least 5/,
      );
      const past = await api(
        'POST',
        '/api/v1/cutovers',
        TOKENS.support,
        cutoverChecklist(Date.now() - 86_400_000),
      );
      expect(past.json.message).toMatch(/is in the past/);
      const branch = await api('POST', '/api/v1/cutovers', TOKENS.support, {
        ...cutoverChecklist(Date.now() - 86_400_000),
        site: 'branch',
      });
      expect(branch.status).toBe(400);
      expect(branch.json.message).toMatch(
        /in the past.*site "branch" has no passing, current readiness assessment to attach \(dscp-rtp fail\)/,
      );
      const partial = cutoverChecklist(addBusinessDays(Date.now(), 8, NY)) as {
        checklist: Record<string, unknown>;
        information: Record<string, unknown>;
      };
      delete partial.checklist.icIntegrations;
      delete partial.information.umPlatform;
      const unanswered = await api('POST', '/api/v1/cutovers', TOKENS.support, partial);
      expect(unanswered.status).toBe(400);
      expect(unanswered.json.message).toMatch(/checklist\.icIntegrations/);
      expect(unanswered.json.message).toMatch(/information\.umPlatform/);
      const other = await notice(TOKENS.globex, cutoverChecklist(addBusinessDays(Date.now(), 8, NY)));
      expect(other.status).toBe(403);
      expect(await count()).toBe(before);
    });
  },
);
