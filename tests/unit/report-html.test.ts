// The HTML report as text: the verdict and every check row are in the markup (so they read without
// JavaScript), hostile text stays text, the CSP admits exactly the page's scripts, and the probe's
// timeline is bounded and counts what it was given.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_BUCKETS, Timeline } from '../../agent/probe/timeline.js';
import { sampleReport } from '../../bench/collector-report.js';
import { UserError } from '../../src/errors.js';
import { historyPoint, renderReportHtml, reportKind } from '../../src/report/html/index.js';
import { escapeHtml, html, scriptJson } from '../../src/report/html/markup.js';
import { ProbeTimeline } from '../../src/schemas.js';
import { cliUnavailableReason, runCli } from '../helpers/cli.js';
import { generatedCapture, HOSTILE, hostileProbe, judgedProbe } from '../helpers/report-docs.js';

/** The page's Content-Security-Policy, as the browser reads the attribute. */
const cspOf = (page: string) =>
  /Content-Security-Policy" content="([^"]+)"/.exec(page)![1]!.replaceAll('&#39;', "'");
const scripts = (page: string) => [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);

describe('Timeline', () => {
  it('counts sends and replies in the bucket of the send, RTT mean and max, jitter by arrival', () => {
    const t = new Timeline(1000, 3000);
    t.sentAt(1000);
    t.sentAt(1500);
    t.sentAt(2100);
    t.returnedAt(1000, 10, 1010, 0.5);
    t.returnedAt(1500, 30, 2530, 2); // arrives in the next second: jitter there, RTT in the first
    expect(t.result()).toEqual({
      bucketS: 1,
      offsetS: [0, 1],
      sent: [2, 1],
      returned: [2, 0],
      rttMeanMs: [20, null],
      rttMaxMs: [30, null],
      reverseJitterMs: [0.5, 2],
    });
  });

  it(`stays within ${MAX_BUCKETS} buckets for an hour, and late replies land in the last bucket`, () => {
    const t = new Timeline(0, 3600_000);
    expect(t.bucketS).toBe(6);
    t.sentAt(3599_999);
    t.returnedAt(3599_999, 5, 3605_000, 1);
    t.sentAt(-50); // before the start (clock read early): first bucket
    const r = t.result();
    expect(r.offsetS).toHaveLength(MAX_BUCKETS);
    expect(r.sent[0]).toBe(1);
    expect(r.sent.at(-1)).toBe(1);
    expect(r.reverseJitterMs.at(-1)).toBe(1);
    expect(ProbeTimeline.safeParse(r).success).toBe(true);
  });

  it('the schema refuses columns of different lengths and more than the bound', () => {
    const good = new Timeline(0, 2000);
    good.sentAt(0);
    const r = good.result();
    expect(ProbeTimeline.safeParse({ ...r, sent: [1, 2] }).success).toBe(false);
    const long = Array.from({ length: MAX_BUCKETS + 1 }, () => 0);
    expect(ProbeTimeline.safeParse({ ...r, offsetS: long, sent: long }).success).toBe(false);
  });
});

describe('markup', () => {
  it('escapes interpolated text, keeps markup made by html``, and JSON cannot close its script', () => {
    const evil = `</script><b onmouseover='x'>&`;
    expect(html`<p title="${evil}">${evil}</p>`.text).toBe(
      `<p title="${escapeHtml(evil)}">&lt;/script&gt;&lt;b onmouseover=&#39;x&#39;&gt;&amp;</p>`,
    );
    expect(html`<div>${html`<i>${'<x>'}</i>`}</div>`.text).toBe('<div><i>&lt;x&gt;</i></div>');
    const json = scriptJson({ a: evil }).text;
    expect(json).not.toContain('<');
    expect(JSON.parse(json)).toEqual({ a: evil });
  });
});

describe('renderReportHtml', () => {
  it('a probe: verdict first, a row per check with rule, evidence and remedy, tables and charts', () => {
    const failing = judgedProbe({ forward: { ...judgedProbe().forward, dscpReceived: { '0': 500 } } });
    expect(failing.checks.find((c) => c.id === 'dscp-rtp')?.status).toBe('fail');
    const page = renderReportHtml(failing, { generatedAt: '2026-11-29T08:00:00Z' });
    const verdictAt = page.indexOf('Not VoIP-ready');
    expect(verdictAt).toBeGreaterThan(0);
    expect(verdictAt).toBeLessThan(page.indexOf('Handbook checks'));
    for (const c of failing.checks) {
      const row = new RegExp(`<tr id="check-${c.id}" class="row-${c.status}">[\\s\\S]*?</tr>`).exec(
        page,
      )?.[0];
      expect(row, c.id).toBeDefined();
      expect(row).toContain(escapeHtml(c.rule!));
      expect(row).toContain(escapeHtml(c.evidence));
    }
    expect(page).toMatch(/<tr id="check-dscp-rtp"[\s\S]*?Mark RTP as EF \(46\)/);
    expect(page).toContain('REWRITTEN: 500 of 500 arrived without EF');
    expect(page).toContain('<caption>RTP media per direction');
    expect(page).toContain('Codec and bandwidth sizing');
    for (const id of ['chart-rtt', 'chart-jitter', 'chart-loss']) expect(page).toContain(`id="${id}"`);
    // no network at view time: nothing is loaded from anywhere
    expect(page).not.toMatch(/<(script|link|img)[^>]+(src|href)=/i);
    expect(cspOf(page)).toMatch(/^default-src 'none';/);
  });

  it('says how late the sends left and what paced them; an older document without the keys says nothing of it', () => {
    const paced = judgedProbe({
      sendTiming: { p50Ms: 0.09, p99Ms: 0.44, maxMs: 3.6, samples: 25_000 },
      sendPacing: { by: 'native-thread', realtime: false, shortSlice: true },
    });
    const page = renderReportHtml(paced);
    expect(page).toContain('<dt>Send times</dt>');
    expect(page).toContain(
      'p50 0.09 p99 0.44 max 3.6 ms after their due time (sender thread, not real-time, 0.1 ms slice: root, CAP_SYS_NICE or LimitRTPRIO=1 makes it real-time)',
    );
    expect(renderReportHtml(judgedProbe())).not.toContain('Send times');
  });

  it('the CSP admits exactly the inline scripts by hash; a page without charts has no script', () => {
    const page = renderReportHtml(judgedProbe());
    const csp = cspOf(page);
    const inline = scripts(page);
    expect(inline).toHaveLength(2); // uPlot, then the chart script
    for (const s of inline) {
      expect(csp).toContain(`'sha256-${createHash('sha256').update(s).digest('base64')}'`);
    }
    const host = renderReportHtml({
      schema: 'example.checks/1',
      host: 'pbx-1',
      checks: [{ id: 'disk', status: 'fail', value: 3, limit: 20, unit: '%', evidence: '/var 3 % free' }],
    });
    expect(scripts(host)).toHaveLength(0);
    expect(cspOf(host)).toContain("script-src 'none'");
    expect(host).toContain('Not passing');
    expect(host).toContain('Free space or add disk');
  });

  it('a host result: checks, disks, the event log offenders (escaped) and backups', () => {
    const host = {
      schema: 'voipready.host/1',
      host: 'pbx-1',
      collectedAt: '2026-11-29T08:00:00Z',
      disks: [
        {
          path: '/var',
          mount: '/var',
          fsType: 'ext4',
          totalBytes: 100 * 1024 ** 3,
          freeBytes: 3 * 1024 ** 3,
          freePct: 3,
          growthBytesPerDay: 1024 ** 3,
          daysUntilFull: 3,
        },
      ],
      eventlog: {
        source: 'journal',
        since: '2026-11-28T08:00:00Z',
        critical: 0,
        errors: 2,
        top: [{ provider: 'disk', eventId: 7, level: 'error', count: 2, sample: HOSTILE.img }],
      },
      backups: [{ name: 'config', newest: null, ageHours: null, unknownReason: 'no backup found' }],
      system: { cpuPct: 5, load1: 0.1, memUsedPct: 40, swapUsedPct: 0, uptimeS: 1000 },
      checks: [
        { id: 'disk', status: 'fail', value: 3, limit: 20, unit: '%', evidence: '/var 3 % free' },
        { id: 'eventlog', status: 'fail', value: 2, limit: 0, unit: 'errors', evidence: '2 errors' },
      ],
      ready: false,
    };
    const page = renderReportHtml(host);
    expect(page).toContain('Not healthy');
    expect(page).toContain('<th scope="row">/var</th>');
    expect(page).toContain(escapeHtml(HOSTILE.img));
    expect(page).not.toContain('<img');
    expect(page).toContain('no backup found');
  });

  it('hostile text in peer, evidence and basis stays text', () => {
    const page = renderReportHtml(hostileProbe());
    expect(page).not.toContain(HOSTILE.script);
    expect(page).not.toContain('<img');
    expect(page).toContain(escapeHtml(HOSTILE.script));
    expect(page).toContain(escapeHtml(HOSTILE.img));
    // only the two scripts of the page itself
    expect(scripts(page)).toHaveLength(2);
    expect(page.match(/<script/g)).toHaveLength(3); // + the JSON data block
  });

  it('a capture: each call and stream, its checks and per-stream charts', () => {
    const capture = generatedCapture(6);
    expect(capture.streams).toHaveLength(6);
    const page = renderReportHtml(JSON.parse(JSON.stringify(capture)));
    for (const call of capture.calls) expect(page).toContain(escapeHtml(call.callId));
    for (const s of capture.streams) expect(page).toContain(`<th scope="row">${s.id}</th>`);
    for (const c of capture.checks) expect(page).toContain(`id="check-${c.id}"`);
    expect(page).toContain(capture.ready ? 'VoIP-ready' : 'Not VoIP-ready');
    expect(page).toContain('id="capture-chart-jitter"');
  });

  it('a large capture: the worst streams open, every call and stream in a folded listing, one row group per call', () => {
    const capture = generatedCapture(40, { packets: 20, bothWays: true });
    expect(capture.streams).toHaveLength(80);
    const page = renderReportHtml(JSON.parse(JSON.stringify(capture)));
    const folded = page.slice(page.indexOf('<details class="listing">'));
    expect(folded.length).toBeLessThan(page.length);
    expect(page.match(/scope="rowgroup"/g)).toHaveLength(40);
    for (const [i, call] of capture.calls.entries()) {
      expect(folded).toContain(`Call ${i + 1}: ${escapeHtml(call.callId)}`);
      for (const id of call.streams) expect(folded).toContain(`<th scope="row">${id}</th>`);
    }
    // the worst ten, each with its call, stand above the listing
    expect(
      page.slice(0, page.indexOf('<details class="listing">')).match(/<th scope="row">s\d+ <span/g),
    ).toHaveLength(10);
    // no endpoint sent RTCP XR: no column of dashes for MOS
    expect(page).not.toContain('MOS (RTCP XR)');
  });

  it('an assessment with history; stale readiness overrides the stored verdict', () => {
    const probe = judgedProbe();
    const assessment = {
      assessmentId: 'a-1',
      site: 'hq',
      agent: 'hq-agent-1',
      reportId: 'r-1',
      measuredAt: '2026-11-29T07:00:00.000Z',
      assessedAt: '2026-11-29T07:00:01.000Z',
      validUntil: '2026-11-30T07:00:00.000Z',
      ready: probe.ready,
      checks: probe.checks,
      peers: [{ peer: probe.peer, codec: 'g711u', calls: 5, ready: probe.ready, checks: probe.checks }],
      measurements: [probe],
    };
    const history = [0, 1, 2].map((i) =>
      historyPoint({ ...assessment, assessmentId: `a-${i}`, measuredAt: `2026-11-2${7 + i}T07:00:00.000Z` }),
    );
    const page = renderReportHtml(assessment, { history, historyLink: (id) => `/x/${id}` });
    expect(probe.ready).toBe(true);
    expect(page).toContain('<span class="verdict-word">VoIP-ready</span>');
    for (const id of ['history-latency', 'history-jitter', 'history-loss', 'peer0-chart-rtt'])
      expect(page).toContain(`id="${id}"`);
    expect(page).toContain('<a href="/x/a-2">');
    const stale = renderReportHtml(assessment, {
      current: {
        ready: false,
        checks: probe.checks.map((c) => ({ ...c, status: 'unknown' as const, evidence: 'evidence stale' })),
        note: 'The evidence is stale.',
      },
    });
    expect(stale).toContain('Not VoIP-ready');
    expect(stale).toContain('The evidence is stale.');
  });

  it('an agent report renders each probe; with several peers every id is unique and every link lands', () => {
    const one = sampleReport({ reportId: 'rep-html-0001' });
    const page = renderReportHtml(one);
    expect(page).toContain('site hq');
    expect(page).toContain('Path to dc1.example.net:4000');
    const failing = hostileProbe();
    const two = renderReportHtml({ ...one, probes: [judgedProbe(), failing] });
    expect(two).toContain(`Path to ${escapeHtml(failing.peer)}`);
    const ids = [...two.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]!);
    expect(ids.length - new Set(ids).size).toBe(0);
    const links = [...two.matchAll(/ href="#([^"]+)"/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !ids.includes(l))).toEqual([]);
    // both peers' rows of one check, each with its own anchor
    expect(two).toContain('id="check-peer0-latency"');
    expect(two).toContain('id="check-peer1-latency"');
  });

  it('refuses what is not a voipready document with a one-line reason', () => {
    expect(() => reportKind([])).toThrow(UserError);
    expect(() => reportKind({ schema: 'x' })).toThrow(/not a voipready document/);
    expect(() => renderReportHtml({ schema: 'voipready.probe/1', peer: 3 })).toThrow(
      /invalid probe result: peer/,
    );
    expect(() => renderReportHtml({ checks: [{ id: 'nope' }] })).toThrow(UserError);
  });
});

describe.skipIf(cliUnavailableReason())('voipready report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'voipready-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the page of a probe JSON file; a bad file is a one-line error, exit 2', async () => {
    const input = join(dir, 'probe.json');
    writeFileSync(input, JSON.stringify(judgedProbe()));
    const out = join(dir, 'report.html');
    const ok = await runCli(['report', input, '-o', out]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toMatch(/^report written to .*report\.html \(\d+ bytes\)\n$/);
    expect(readFileSync(out, 'utf8')).toContain('<span class="verdict-word">VoIP-ready</span>');
    writeFileSync(join(dir, 'bad.json'), '{"schema":');
    const bad = await runCli(['report', join(dir, 'bad.json')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^voipready report: .*bad\.json is not JSON: .*\n$/);
    const missing = await runCli(['report', join(dir, 'none.json')]);
    expect(missing.stderr).toBe(`voipready report: cannot read ${join(dir, 'none.json')}: ENOENT\n`);
  });
});
