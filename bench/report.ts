// bench:report — size of the HTML report and how long it takes to make and to show: the report of a
// real 50-call probe run over loopback and of a 400-call capture (each call answered, a stream each
// way), rendered by renderReportHtml and opened from a file in Debian's Chromium (playwright-core).
// "Rendering" is measured from navigation start to the moment every chart has drawn (the page's
// load event when it has none): wall-clock time, and the renderer main thread's CPU time over the
// same span (CDP Performance ThreadTime), which a machine shared with other work inflates far less.
// Targets (the report issue): each page < 1 MB, rendering < 1 s in Chromium. Printed, never asserted.
// Usage: npm run bench:report [-- --duration 30 --calls 50 --capture-calls 400 --runs 5]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { renderReportHtml } from '../src/report/html/index.js';
import { tableLines } from '../src/report/table.js';
import { launchChromium } from '../tests/helpers/browser.js';
import { CLI_BIN } from '../tests/helpers/cli.js';
import { generatedCapture } from '../tests/helpers/report-docs.js';
import { freeLoopbackPort } from '../tests/helpers/service.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '30' },
    calls: { type: 'string', default: '50' },
    'capture-calls': { type: 'string', default: '400' },
    runs: { type: 'string', default: '5' },
  },
});

/** A real probe run: a reflector and `voipready probe --json` over loopback. */
async function probeDocument(calls: number, durationS: number): Promise<unknown> {
  const port = await freeLoopbackPort();
  const reflector = spawn(process.execPath, [CLI_BIN, 'reflector', '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      reflector.stderr.on('data', (b: Buffer) => {
        if (b.toString().includes('reflector listening')) resolve();
      });
      reflector.once('exit', (code) => reject(new Error(`reflector exited ${code}`)));
    });
    const out = execFileSync(
      process.execPath,
      [
        CLI_BIN,
        'probe',
        '--peer',
        `127.0.0.1:${port}`,
        '--calls',
        String(calls),
        '--duration',
        `${durationS}s`,
        '--json',
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    return JSON.parse(out);
  } catch (err) {
    // exit 1 (not ready) still printed the document
    const stdout = (err as { stdout?: string }).stdout;
    if (stdout) return JSON.parse(stdout);
    throw err;
  } finally {
    reflector.kill('SIGTERM');
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const runs = Number(values.runs);
  const dir = mkdtempSync(join(tmpdir(), 'voipready-bench-report-'));
  const browser = await launchChromium();
  try {
    process.stderr.write(`probing: ${values.calls} calls for ${values.duration} s …\n`);
    const probe = await probeDocument(Number(values.calls), Number(values.duration));
    const capture = JSON.parse(
      JSON.stringify(generatedCapture(Number(values['capture-calls']), { packets: 500, bothWays: true })),
    );
    const docs: [string, unknown][] = [
      [`probe, ${values.calls} calls × ${values.duration} s`, probe],
      [`capture, ${values['capture-calls']} calls, ${capture.streams.length} streams`, capture],
    ];
    const rows: string[][] = [];
    for (const [name, doc] of docs) {
      const renderMs: number[] = [];
      let page = '';
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        page = renderReportHtml(doc);
        renderMs.push(performance.now() - t);
      }
      const file = join(dir, `${name.split(',')[0]}.html`);
      writeFileSync(file, page);
      const showMs: number[] = [];
      const cpuMs: number[] = [];
      let charts = 0;
      for (let i = 0; i < runs; i++) {
        const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        const cdp = await tab.context().newCDPSession(tab);
        await cdp.send('Performance.enable');
        await tab.goto(`file://${file}`);
        // from navigation start to the last chart drawn (or the load event when there is none)
        const ms = await tab.evaluate(async () => {
          const want = document.querySelectorAll('.chart').length;
          while (document.querySelectorAll('.chart[data-drawn="true"]').length < want)
            await new Promise((r) => setTimeout(r, 5));
          return [performance.now(), want];
        });
        // the renderer's main thread: CPU seconds since this page's renderer started (0 at about:blank)
        const { metrics } = await cdp.send('Performance.getMetrics');
        cpuMs.push(1000 * (metrics.find((m) => m.name === 'ThreadTime')?.value ?? Number.NaN));
        showMs.push(ms[0]!);
        charts = ms[1]!;
        await tab.close();
      }
      rows.push([
        name,
        `${(Buffer.byteLength(page) / 1024).toFixed(0)} KiB`,
        `${median(renderMs).toFixed(1)} ms`,
        `${median(showMs).toFixed(0)} ms (max ${Math.max(...showMs).toFixed(0)})`,
        `${median(cpuMs).toFixed(0)} ms`,
        String(charts),
        '< 1 MB, < 1 s',
      ]);
    }
    const load = loadavg()
      .map((v) => v.toFixed(2))
      .join(' ');
    process.stdout.write(
      `${tableLines(['report', 'page size', 'renderReportHtml (median)', 'Chromium: open → charts drawn (median)', 'main-thread CPU', 'charts', 'target'], rows, { rule: true }).join('\n')}\n` +
        `${runs} runs each; load average ${load}; ${new Date().toISOString()}\n`,
    );
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:report: ${(err as Error).message}\n`);
  process.exit(2);
});
