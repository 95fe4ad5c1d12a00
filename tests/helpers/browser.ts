// Debian's Chromium driven by playwright-core (Playwright's own browser download does not work
// here). The flags keep it from reaching out to the network on its own: without them its
// connections are refused in this sandbox. playwright-core gives each launch a fresh profile.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { REPO_ROOT } from './cli.js';

export const CHROMIUM = '/usr/bin/chromium';

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not installed (scripts/install-test-deps.sh)`;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Where browser tests leave screenshots and PDFs (gitignored), made on first use. */
export function artifactDir(): string {
  const dir = join(REPO_ROOT, 'test-artifacts', 'browser');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** What went wrong on a page while it was open: console errors, page errors, dialogs, requests. */
export interface PageWatch {
  consoleErrors: string[];
  pageErrors: string[];
  dialogs: string[];
  /** Requests to anything but the page's own origin or data:/blob: URLs. */
  outsideRequests: string[];
}

export function watchPage(page: Page, origin?: string): PageWatch {
  const w: PageWatch = { consoleErrors: [], pageErrors: [], dialogs: [], outsideRequests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') w.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => w.pageErrors.push(e.message));
  page.on('dialog', (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('request', (r) => {
    const url = r.url();
    if (/^(data|blob|about):/.test(url)) return;
    if (origin && url.startsWith(origin)) return;
    if (url.startsWith('file:') && !origin) return;
    w.outsideRequests.push(url);
  });
  return w;
}

/**
 * Whether a chart drew: its canvas exists, has a size, and carries more than one colour (a blank or
 * single-colour canvas is not a chart).
 */
export async function chartPixels(
  page: Page,
  containerId: string,
): Promise<{ width: number; colours: number; inked: number }> {
  return page.evaluate((id) => {
    const canvas = document.getElementById(id)?.querySelector('canvas');
    if (!canvas || canvas.width === 0 || canvas.height === 0) return { width: 0, colours: 0, inked: 0 };
    const ctx = canvas.getContext('2d');
    if (!ctx) return { width: canvas.width, colours: 0, inked: 0 };
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set<number>();
    let inked = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3]! > 0) {
        inked++;
        colours.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
      }
    }
    return { width: canvas.width, colours: colours.size, inked };
  }, containerId);
}
