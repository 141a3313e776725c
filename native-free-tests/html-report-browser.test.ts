/**
 * The HTML report in a real browser: Debian's Chromium, headless and offline (playwright-core
 * drives it; no browser is downloaded), opens the page of a short real run from file:// and
 * checks what a reader would see: no console error, no request that leaves file://, every chart
 * drawing as many marks as its embedded data implies, and charts that are not blank (decoded
 * screenshot pixels, not file size).
 *
 * Each detector has a control: one copy of the page broken in four ways, each aimed at one
 * detector (a script error, an image fetched over http with the CSP removed, one mark deleted
 * from the throughput chart, the mmu_lock chart's SVG emptied), inspected the same way; the test
 * asserts every detector reports its own defect.
 *
 * Where /usr/bin/chromium is missing the test fails under CI=true (.ci/run installs it) and is
 * skipped elsewhere with a warning.
 */
import test from 'ava';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { PNG } from 'pngjs';
import { embeddedSpecs, marksOfSpec, runWithHtml } from './_html_report.js';
import type { HtmlRun } from './_html_report.js';

const CHROMIUM = '/usr/bin/chromium';
/** Headless and offline: nothing of Chromium's own reaches the network either. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--no-first-run',
  '--disable-extensions',
  '--metrics-recording-only',
  '--disable-domain-reliability',
  '--disable-breakpad',
  '--disable-client-side-phishing-detection',
  '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication',
  '--no-pings',
  '--safebrowsing-disable-auto-update',
];

interface Findings {
  readonly consoleErrors: string[];
  readonly externalRequests: string[];
  /** Charts whose drawn marks differ from their data: "id: drawn N, data M, declared K". */
  readonly markMismatches: string[];
  /** Charts whose screenshot has (almost) a single colour. */
  readonly blankCharts: string[];
  readonly charts: number;
  /** Distinct colours of the whole first screen. */
  readonly pageColours: number;
}

/** Distinct RGB colours in a PNG screenshot (a blank area has one or two). */
function distinctColours(png: Buffer): number {
  const img = PNG.sync.read(png);
  const seen = new Set<number>();
  for (let i = 0; i < img.data.length; i += 4) seen.add((img.data[i]! << 16) | (img.data[i + 1]! << 8) | img.data[i + 2]!);
  return seen.size;
}

/** Open `file` in a fresh page and collect what the detectors see. */
async function inspect(browser: Browser, file: string, html: string): Promise<Findings> {
  const context = await browser.newContext({ viewport: { width: 1150, height: 900 } });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  const externalRequests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  // Every request the page makes is seen here; any that is not file: or data: is recorded and
  // aborted, so the test itself never reaches the network.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
    externalRequests.push(url);
    return route.abort();
  });
  try {
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const specs = embeddedSpecs(html);
    const markMismatches: string[] = [];
    const blankCharts: string[] = [];
    for (const { id, spec } of specs) {
      const figure = page.locator(`figure[data-chart="${id}"]`);
      // Every item of every mark group (role-mark; axes and legends are other roles).
      const drawn = await figure.evaluate((f) => [...f.querySelectorAll('g.role-mark')].reduce((n, g) => n + g.children.length, 0));
      const declared = Number(await figure.getAttribute('data-marks'));
      const fromData = marksOfSpec(spec);
      if (drawn !== fromData || declared !== fromData) markMismatches.push(`${id}: drawn ${drawn}, data ${fromData}, declared ${declared}`);
      const colours = distinctColours(await figure.screenshot());
      if (colours < 16) blankCharts.push(`${id}: ${colours} colour(s)`);
    }
    const pageColours = distinctColours(await page.screenshot());
    return { consoleErrors, externalRequests, markMismatches, blankCharts, charts: specs.length, pageColours };
  } finally {
    await context.close();
  }
}

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env['CI'] !== 'true') {
  console.warn(`\n*** html-report-browser: ${CHROMIUM} is missing: the real-browser test of the HTML report is SKIPPED (apt-get install chromium) ***\n`);
}

const browserTest = haveChromium || process.env['CI'] === 'true' ? test : test.skip;

browserTest('the HTML report opens offline in Chromium: no console error, no request off file://, marks match data, charts not blank', async (t) => {
  if (!haveChromium) {
    t.log(`${CHROMIUM} is missing; CI=true requires it (.ci/run installs Debian's chromium)`);
    t.fail(`${CHROMIUM} is missing under CI=true`);
    return;
  }
  // A short run and two page loads take ~20 s; a loaded shared machine has needed 90 s.
  t.timeout(180_000);
  const run: HtmlRun = runWithHtml();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    t.is(run.code, 0, run.stderr);
    const good = await inspect(browser, run.htmlFile, run.html);
    t.is(good.charts, 4);
    t.deepEqual(good.consoleErrors, []);
    t.deepEqual(good.externalRequests, []);
    t.deepEqual(good.markMismatches, []);
    t.deepEqual(good.blankCharts, []);
    t.true(good.pageColours >= 16, `the page shows ${good.pageColours} colour(s)`);

    // Control: one copy with four defects, one per detector; each must report its own.
    const broken = run.html
      .replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '')
      .replace('</body>', '<script>null.f();</script><img src="http://127.0.0.1:9/x.png" alt=""></body>')
      .replace(/(<g class="mark-rect role-mark[^"]*"[^>]*>)<path[^>]*\/>/, '$1')
      .replace(/(<figure data-chart="mmu-lock"[^>]*>)<svg[\s\S]*?<\/svg>/, '$1<svg width="400" height="200"></svg>');
    const file = join(run.dir, 'broken.html');
    writeFileSync(file, broken);
    const bad = await inspect(browser, file, broken);
    t.true(
      bad.consoleErrors.some((e) => /null/.test(e)),
      `control: the script error is caught (${bad.consoleErrors.join('; ')})`,
    );
    t.deepEqual(bad.externalRequests, ['http://127.0.0.1:9/x.png'], 'control: the request off file:// is caught');
    t.true(
      bad.markMismatches.some((m) => m.startsWith('throughput:')),
      `control: the missing mark is caught (${bad.markMismatches.join('; ')})`,
    );
    t.true(
      bad.blankCharts.some((b) => b.startsWith('mmu-lock:')),
      `control: the blank chart is caught (${bad.blankCharts.join('; ')})`,
    );
  } finally {
    await browser.close();
    run.cleanup();
  }
});
