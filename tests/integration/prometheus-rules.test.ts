// The alert rules (dashboards/alerts/voipready-rules.yml) under Debian's promtool: the file is valid,
// its unit tests pass (each alert fires on data breaking its rule, after its `for:`, and not on data
// within the limit; with two collectors exporting the same figures, once), every metric a rule names
// is one the collector exports, and a rule with the wrong threshold or without the aggregation
// across collectors fails those tests (so they can fail).
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT } from '../helpers/cli.js';
import { binaryMissing } from '../helpers/service.js';

const run = promisify(execFile);
const ALERTS = join(REPO_ROOT, 'dashboards', 'alerts');
const missing = binaryMissing('promtool');
const dir = mkdtempSync(join(tmpdir(), 'voipready-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: dir, timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe.skipIf(missing)(`alert rules${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('pass promtool check rules and promtool test rules', async () => {
    copyFileSync(join(ALERTS, 'voipready-rules.yml'), join(dir, 'voipready-rules.yml'));
    copyFileSync(join(ALERTS, 'voipready-rules.test.yml'), join(dir, 'voipready-rules.test.yml'));
    const check = await promtool('check', 'rules', 'voipready-rules.yml');
    expect(check.out).toContain('SUCCESS: 15 rules found');
    expect(check.code).toBe(0);
    const test = await promtool('test', 'rules', 'voipready-rules.test.yml');
    expect(test.code, test.out).toBe(0);
    expect(test.out).toContain('SUCCESS');
  });

  it('every alert is tested, and every metric a rule names is one the collector exports', () => {
    const rules = parse(readFileSync(join(ALERTS, 'voipready-rules.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const tests = readFileSync(join(ALERTS, 'voipready-rules.test.yml'), 'utf8');
    const exported = ['metrics.ts', 'metrics-host.ts', 'metrics-priority.ts']
      .map((f) => readFileSync(join(REPO_ROOT, 'collector', f), 'utf8'))
      .join('\n');
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      expect(tests, rule.alert).toContain(`alertname: ${rule.alert}`);
      for (const metric of rule.expr.match(/voipready_[a-z_]+/g) ?? [])
        expect(exported, `${rule.alert}: ${metric}`).toContain(`'${metric}'`);
    }
  });

  it.each([
    [
      'voipready_path_latency_seconds) >= 0.150',
      'voipready_path_latency_seconds) >= 0.250',
      'VoipreadyLatencyHigh',
    ],
    [
      'voipready_host_disk_days_until_full) < 14',
      'voipready_host_disk_days_until_full) < 13',
      'VoipreadyHostDiskFillingUp',
    ],
    [
      'voipready_host_disk_free_ratio) < 0.20',
      'voipready_host_disk_free_ratio) < 0.10',
      'VoipreadyHostDiskLow',
    ],
    // unknown (-1) taken for not honoured
    [
      'max without (instance) (voipready_priority_honoured) == 0',
      'max without (instance) (voipready_priority_honoured) < 1',
      'VoipreadyPriorityNotHonoured',
    ],
    // not aggregated across collectors: two collectors on one store would raise the alert twice
    [
      'max without (instance) (voipready_site_ready) == 0',
      'voipready_site_ready == 0',
      'VoipreadySiteNotReady',
    ],
  ])('a rule with the wrong threshold fails its test (%s → %s)', async (right, wrongRule, alert) => {
    const rules = readFileSync(join(ALERTS, 'voipready-rules.yml'), 'utf8');
    expect(rules).toContain(right);
    writeFileSync(join(dir, 'voipready-rules.yml'), rules.replace(right, wrongRule));
    copyFileSync(join(ALERTS, 'voipready-rules.test.yml'), join(dir, 'voipready-rules.test.yml'));
    const test = await promtool('test', 'rules', 'voipready-rules.test.yml');
    expect(test.code).not.toBe(0);
    expect(test.out).toContain(alert);
  });
});
