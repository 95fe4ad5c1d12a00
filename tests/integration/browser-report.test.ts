// The report and the collector's pages in a real browser (Debian's Chromium through playwright-core),
// fed by real probe runs over loopback: pages load with no console error and no request leaving the
// page, the verdict and every check are there (also with JavaScript off), every chart draws (its
// canvas carries more than background), the printed PDF has the verdict on page 1, and hostile text
// is shown as text with no dialog and the layout intact. Screenshots and PDFs go to
// test-artifacts/browser/ (gitignored).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../collector/auth.js';
import { type RunningCollector, startCollector } from '../../collector/server.js';
import { CollectorConfig } from '../../src/config/collector.js';
import { renderReportHtml } from '../../src/report/html/index.js';
import type { ProbeResult } from '../../src/schemas.js';
import {
  artifactDir,
  chartPixels,
  chromiumMissing,
  launchChromium,
  type PageWatch,
  watchPage,
} from '../helpers/browser.js';
import {
  cliUnavailableReason,
  killAllCli,
  probeJson,
  type ReflectorProcess,
  startReflector,
} from '../helpers/cli.js';
import { generatedCapture, HOSTILE, hostileProbe } from '../helpers/report-docs.js';
import { binaryMissing, freeLoopbackPort } from '../helpers/service.js';

const AGENTS = { hq: 'agent-token-hq-browser-0123456789', evil: 'agent-token-evil-browser-01234567' };
const VIEWER = 'viewer-token-browser-0123456789ab';
const unavailable = chromiumMissing() ?? cliUnavailableReason() ?? binaryMissing('pdftotext');

const dir = mkdtempSync(join(tmpdir(), 'voipready-browser-'));
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch {
      // keep cleaning up
    }
  }
  await killAllCli();
  rmSync(dir, { recursive: true, force: true });
});

let browser: Browser;
let collector: RunningCollector;
let probe: ProbeResult;

async function postReport(site: 'hq' | 'evil', reportId: string, p: ProbeResult): Promise<number> {
  const res = await fetch(`${collector.url}/api/v1/reports`, {
    method: 'POST',
    headers: { authorization: `Bearer ${AGENTS[site]}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      schema: 'voipready.report/1',
      reportId,
      site,
      agent: `${site}-agent`,
      createdAt: new Date().toISOString(),
      probes: [p],
    }),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`report ${reportId}: ${res.status} ${text}`);
  return res.status;
}

/** A new page in a context signed in through the login form. */
async function signedInPage(): Promise<{ page: Page; watch: PageWatch }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  cleanups.push(() => context.close());
  const page = await context.newPage();
  const watch = watchPage(page, collector.url);
  await page.goto(`${collector.url}/sites`);
  expect(page.url()).toContain('/login?next=%2Fsites');
  await page.fill('#token', VIEWER);
  await Promise.all([page.waitForURL(`${collector.url}/sites`), page.click('button[type=submit]')]);
  return { page, watch };
}

async function expectChartsDrawn(page: Page): Promise<number> {
  await page.waitForSelector('.chart[data-drawn="true"]', { timeout: 15_000 });
  const ids = await page.$$eval('.chart', (els) => els.map((e) => e.id));
  for (const id of ids) {
    const px = await chartPixels(page, id);
    expect(px.width, id).toBeGreaterThan(200);
    // background, grid, axes and at least one series: far more than one colour, and real ink
    expect(px.colours, id).toBeGreaterThan(3);
    expect(px.inked, id).toBeGreaterThan(1000);
  }
  return ids.length;
}

function expectClean(watch: PageWatch) {
  expect(watch.consoleErrors).toEqual([]);
  expect(watch.pageErrors).toEqual([]);
  expect(watch.dialogs).toEqual([]);
  expect(watch.outsideRequests).toEqual([]);
}

/** The layout holds: nothing pushes the page wider than the window. */
async function expectNoHorizontalOverflow(page: Page) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  expect(scroll).toBeLessThanOrEqual(inner);
}

describe.skipIf(unavailable)(
  `report and pages in Chromium${unavailable ? ` (skipped: ${unavailable})` : ''}`,
  () => {
    beforeAll(async () => {
      const port = await freeLoopbackPort();
      const reflector: ReflectorProcess = await startReflector(`127.0.0.1:${port}`);
      cleanups.push(() => reflector.stop().then(() => undefined));
      probe = (await probeJson(`127.0.0.1:${port}`, { calls: 4, durationS: 4 })).json;
      expect(probe.timeline?.offsetS.length).toBeGreaterThanOrEqual(4);
      const config = CollectorConfig.parse({
        collector: {
          agents: [
            { name: 'hq-agent', site: 'hq', tokenHash: hashToken(AGENTS.hq) },
            { name: 'evil-agent', site: 'evil', tokenHash: hashToken(AGENTS.evil) },
          ],
          viewers: [{ name: 'browser', tokenHash: hashToken(VIEWER) }],
        },
      }).collector;
      collector = await startCollector({
        config,
        dataDir: join(dir, 'collector'),
        host: '127.0.0.1',
        port: 0,
      });
      cleanups.push(() => collector.close());
      await postReport('hq', 'rep-browser-hq-1', probe);
      // a second real run: the site page has a history
      const second = (await probeJson(`127.0.0.1:${port}`, { calls: 2, durationS: 2 })).json;
      await postReport('hq', 'rep-browser-hq-2', second);
      await postReport('evil', 'rep-browser-evil-1', hostileProbe());
      browser = await launchChromium();
      cleanups.push(() => browser.close());
    }, 180_000);

    it('login, the sites overview and sorting by a column', async () => {
      const { page, watch } = await signedInPage();
      expect(await page.locator('h2#overview-heading').textContent()).toContain('sites VoIP-ready');
      expect(await page.locator('table.sites tbody tr').count()).toBe(2);
      await page.click('th >> text=Site');
      await page.waitForURL(/sort=site/);
      const sites = await page.$$eval('table.sites tbody th a', (as) => as.map((a) => a.textContent));
      expect(sites).toEqual(['evil', 'hq']);
      await page.screenshot({ path: join(artifactDir(), 'sites-overview.png'), fullPage: true });
      expectClean(watch);
    }, 120_000);

    it('the site page: verdict, every check, every chart drawn, and a PDF with the verdict on page 1', async () => {
      const { page, watch } = await signedInPage();
      await page.goto(`${collector.url}/sites/hq`);
      const verdict = (await page.locator('.verdict h2').textContent()) ?? '';
      expect(verdict).toMatch(/^(Not )?VoIP-ready — site hq$/);
      const latest = (await (
        await fetch(`${collector.url}/api/v1/sites/hq/readiness`, {
          headers: { authorization: `Bearer ${VIEWER}` },
        })
      ).json()) as { ready: boolean; checks: { id: string; status: string }[] };
      expect(verdict.startsWith('Not')).toBe(!latest.ready);
      for (const c of latest.checks) {
        expect(await page.locator(`tr#check-${c.id} .status`).isVisible()).toBe(true);
        expect(await page.locator(`tr#check-${c.id}`).getAttribute('class')).toBe(`row-${c.status}`);
      }
      // history (3 charts) and the run of the latest probe (3 charts)
      expect(await expectChartsDrawn(page)).toBe(6);
      await page.screenshot({ path: join(artifactDir(), 'site-hq.png'), fullPage: true });
      const pdf = join(artifactDir(), 'site-hq.pdf');
      await page.pdf({ path: pdf, format: 'A4', printBackground: true });
      const firstPage = execFileSync('pdftotext', ['-f', '1', '-l', '1', '-layout', pdf, '-'], {
        encoding: 'utf8',
      });
      expect(firstPage).toContain(verdict.split(' — ')[0]);
      expect(firstPage).toContain('site hq');
      expectClean(watch);
    }, 120_000);

    it('the verdict and the checks read with JavaScript off', async () => {
      const context = await browser.newContext({ javaScriptEnabled: false });
      cleanups.push(() => context.close());
      const page = await context.newPage();
      const file = join(dir, 'probe.html');
      writeFileSync(file, renderReportHtml(probe));
      await page.goto(`file://${file}`);
      expect(await page.locator('.verdict h2').textContent()).toContain('VoIP-ready');
      for (const c of probe.checks) expect(await page.locator(`tr#check-${c.id}`).isVisible()).toBe(true);
      expect(await page.locator('.chart[data-drawn]').count()).toBe(0);
    }, 60_000);

    it('`voipready report` pages open from a file with no network: a probe and a capture', async () => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      cleanups.push(() => context.close());
      for (const [name, doc, charts] of [
        ['probe', probe, 3],
        ['capture', JSON.parse(JSON.stringify(generatedCapture(12))), 2],
      ] as const) {
        const page = await context.newPage();
        const watch = watchPage(page);
        const file = join(dir, `${name}.html`);
        writeFileSync(file, renderReportHtml(doc));
        await page.goto(`file://${file}`);
        expect(await page.locator('.verdict h2').isVisible()).toBe(true);
        expect(await expectChartsDrawn(page), name).toBe(charts);
        await page.screenshot({ path: join(artifactDir(), `report-${name}.png`), fullPage: true });
        expectClean(watch);
      }
    }, 120_000);

    it('a 100-call capture: every call and stream on the page, folded, read without JavaScript and printed in full', async () => {
      const capture = generatedCapture(100, { packets: 30, bothWays: true });
      expect(capture.streams).toHaveLength(200);
      const file = join(dir, 'capture-100.html');
      writeFileSync(file, renderReportHtml(JSON.parse(JSON.stringify(capture))));
      const streamIds = capture.streams.map((s) => s.id);
      /** The listing's row groups (one per call) and stream rows, as the page holds them. */
      const listing = (page: Page) =>
        page.evaluate(() => {
          const table = document.querySelector('details.listing table.streams');
          const text = (sel: string) =>
            [...(table?.querySelectorAll(sel) ?? [])].map((e) => e.textContent ?? '');
          return { calls: text('th[scope=rowgroup]'), streams: text('tbody th[scope=row]') };
        });
      const expectEveryCallAndStream = (l: { calls: string[]; streams: string[] }) => {
        expect(l.streams).toEqual(streamIds);
        expect(l.calls).toHaveLength(capture.calls.length);
        for (const [i, c] of capture.calls.entries()) expect(l.calls[i]).toContain(c.callId);
      };

      for (const javaScriptEnabled of [true, false]) {
        const context = await browser.newContext({
          javaScriptEnabled,
          viewport: { width: 1280, height: 900 },
        });
        cleanups.push(() => context.close());
        const page = await context.newPage();
        const watch = watchPage(page);
        await page.goto(`file://${file}`);
        expect(await page.locator('.verdict h2').textContent()).toMatch(/VoIP-ready — capture /);
        for (const c of capture.checks) expect(await page.locator(`tr#check-${c.id}`).isVisible()).toBe(true);
        // the worst streams stand open; the whole listing is folded (not laid out) but in the page
        expect(await page.locator('table.streams').first().locator('tbody tr').count()).toBe(10);
        expect(await page.locator('details.listing').getAttribute('open')).toBeNull();
        expect(await page.locator('details.listing table.streams tbody tr').first().isVisible()).toBe(false);
        expectEveryCallAndStream(await listing(page));
        if (javaScriptEnabled) {
          expect(await expectChartsDrawn(page)).toBe(2);
          await page.click('details.listing > summary');
          expect(await page.locator('details.listing table.streams tbody tr').last().isVisible()).toBe(true);
          await page.click('details.listing > summary');
          await page.screenshot({ path: join(artifactDir(), 'report-capture-100.png'), fullPage: true });
        } else expect(await page.locator('.chart[data-drawn]').count()).toBe(0);
        expectClean(watch);
        if (javaScriptEnabled) continue;
        // printed with the listing still closed: the print CSS opens it, so every call and stream is in the PDF
        const pdf = join(artifactDir(), 'report-capture-100.pdf');
        await page.pdf({ path: pdf, format: 'A4', printBackground: true });
        const text = execFileSync('pdftotext', ['-layout', pdf, '-'], {
          encoding: 'utf8',
          maxBuffer: 64 << 20,
        });
        const firstPage = execFileSync('pdftotext', ['-f', '1', '-l', '1', '-layout', pdf, '-'], {
          encoding: 'utf8',
        });
        expect(firstPage).toMatch(/VoIP-ready/);
        for (const c of capture.calls) expect(text).toContain(c.callId);
        const words = new Set(text.split(/\s+/));
        expect(streamIds.filter((id) => !words.has(id))).toEqual([]);
      }
    }, 180_000);

    it('hostile text stays text: no script runs, no dialog, layout intact (collector page and file)', async () => {
      const { page, watch } = await signedInPage();
      await page.goto(`${collector.url}/sites/evil`);
      const peerHeading = (await page.locator('section.peer h2').first().textContent()) ?? '';
      expect(peerHeading).toBe(`Path to ${HOSTILE.script}${HOSTILE.img}`);
      expect(await page.locator('img').count()).toBe(0);
      // the page's own two scripts, the chart data, and nothing the document brought
      expect(await page.locator('script').count()).toBe(3);
      expect(await page.locator('.verdict h2').textContent()).toMatch(/^Not VoIP-ready/);
      await expectChartsDrawn(page);
      await expectNoHorizontalOverflow(page);
      await page.screenshot({ path: join(artifactDir(), 'site-hostile.png'), fullPage: true });
      const overview = await page.goto(`${collector.url}/sites`);
      expect(overview?.status()).toBe(200);
      await page.waitForTimeout(200);
      expectClean(watch);

      const file = join(dir, 'hostile.html');
      writeFileSync(file, renderReportHtml(hostileProbe()));
      const local = await browser.newPage({ viewport: { width: 1024, height: 800 } });
      cleanups.push(() => local.close());
      const localWatch = watchPage(local);
      await local.goto(`file://${file}`);
      expect(await local.locator('.verdict h2').textContent()).toContain('Not VoIP-ready');
      expect(await local.locator('tr#check-latency td.evidence').textContent()).toContain(HOSTILE.long);
      await expectNoHorizontalOverflow(local);
      await local.screenshot({ path: join(artifactDir(), 'report-hostile.png'), fullPage: true });
      expectClean(localWatch);
    }, 120_000);
  },
);
