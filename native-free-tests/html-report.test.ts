/**
 * The HTML report (src/emulate/html_report.ts) without a browser: a short real run's page is
 * self-contained (no http(s) URL, nothing to fetch, a CSP that forbids fetching), has one SVG per
 * chart with its spec and data beside it, declares as many marks as its data implies, and carries
 * the dirty_log_perf_test lines and the tables; two runs overlay as one line per design, also end
 * to end through --compare; a bad --html path exits 2 before any run. The self-containment
 * detector has its own control.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evenRates } from '../src/emulate/charts.js';
import { compareRow, verdictLines } from '../src/emulate/compare.js';
import { htmlReport } from '../src/emulate/html_report.js';
import type { Report } from '../src/emulate/report_model.js';
import { buildTimeline } from '../src/emulate/timeline.js';
import { embeddedSpecs, marksOfSpec, runWithHtml } from './_html_report.js';
import { point } from './_timeline_point.js';

const MAIN = fileURLToPath(new URL('../src/emulate/main.js', import.meta.url));
const CHART_IDS = ['throughput', 'fault-latency', 'mmu-lock', 'splitter-progress'];

/** What in a page would reach beyond it: http(s) URLs, and tags or attributes that load something. */
function externalRefs(html: string): string[] {
  const found = [
    ...html.matchAll(/https?:\/\/[^\s"'<>]*/gi),
    ...html.matchAll(/<(img|link|iframe|object|embed)\b[^>]*>/gi),
    ...html.matchAll(/<script\b[^>]*\bsrc=[^>]*>/gi),
    ...html.matchAll(/url\(\s*['"]?(?!data:|#)[^)]*\)/gi),
    ...html.matchAll(/@import\b[^;]*/gi),
  ];
  return found.map((m) => m[0]);
}

let run: ReturnType<typeof runWithHtml>;
test.before(() => {
  run = runWithHtml();
});
test.after.always(() => run?.cleanup());

test('a short run writes a self-contained page: no URL, nothing to load, a CSP that forbids loading', (t) => {
  t.is(run.code, 0, run.stderr);
  t.true(run.html.startsWith('<!DOCTYPE html>'));
  t.deepEqual(externalRefs(run.html), []);
  t.regex(run.html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">/);
  // No script runs in the page: every <script> is a JSON data block.
  const scripts = [...run.html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
  t.true(scripts.length > 0);
  for (const s of scripts) t.regex(s, /type="application\/json"/);
});

test('control: the self-containment check catches every kind of external reference', (t) => {
  const bad = [
    '<img src="data:image/png;base64,AAAA">',
    '<a href="https://example.org/">x</a>',
    '<link rel="stylesheet" href="s.css">',
    '<script src="x.js"></script>',
    '<style>body { background: url(bg.png) }</style>',
    '<style>@import "x.css";</style>',
  ];
  for (const b of bad) t.true(externalRefs(run.html.replace('</body>', `${b}</body>`)).length > 0, b);
});

test('one SVG per chart, each with its spec beside it and as many marks declared as its data implies', (t) => {
  const specs = embeddedSpecs(run.html);
  t.deepEqual(
    specs.map((s) => s.id),
    CHART_IDS,
  );
  const figures = [...run.html.matchAll(/<figure data-chart="([^"]+)" data-marks="(\d+)"><svg id="chart-svg-\1"[\s\S]*?<\/svg><\/figure>/g)];
  t.deepEqual(
    figures.map((f) => f[1]),
    CHART_IDS,
  );
  t.is([...run.html.matchAll(/<svg\b/g)].length, CHART_IDS.length);
  for (const [i, f] of figures.entries()) {
    const marks = Number(f[2]);
    t.true(marks > 0, `${f[1]} has marks`);
    t.is(marks, marksOfSpec(specs[i]!.spec), `${f[1]}: data-marks against its data`);
  }
  // The throughput chart shades every phase the timeline saw begin and end.
  const throughput = specs[0]!.spec;
  t.is(throughput.layer[0].data.values.length, run.report.phases.length);
});

test('the page carries the dirty_log_perf_test lines and the summary tables', (t) => {
  t.regex(run.html, /<pre class="selftest">Test iterations: 2\n/);
  t.regex(run.html, /Iteration 1 clear dirty log time: \d+\.\d{9}s/);
  for (const h of ['Phases', 'vCPU fault latency by phase', 'mmu_lock (all threads, whole run)', 'Dirty log']) t.true(run.html.includes(`<h3>${h}</h3>`), h);
  // One table row per phase in the phase table.
  const phaseTable = run.html.split('<h3>Phases</h3>')[1]!.split('</table>')[0]!;
  t.is([...phaseTable.matchAll(/<tr>/g)].length, 1 + run.report.phases.length);
});

test('two runs overlay: one throughput line per design, lock and fault panels per design, and the compare tables', async (t) => {
  const r = run.report as Report;
  const b = { ...r, config: { ...r.config, splitAlloc: 'cache' } } as Report;
  const rows = [compareRow(r), compareRow(b)];
  const html = await htmlReport(
    [
      { label: 'drop-always', report: r, splitPhase: rows[0]!.splitPhase },
      { label: 'cache', report: b, splitPhase: rows[1]!.splitPhase },
    ],
    { rows, verdicts: verdictLines(rows) },
  );
  const specs = embeddedSpecs(html);
  const throughput = specs.find((s) => s.id === 'throughput')!.spec;
  const designs = new Set(throughput.layer[1].data.values.map((v: { design: string }) => v.design));
  t.deepEqual([...designs], ['drop-always', 'cache']);
  t.is(throughput.layer[1].encoding.color.field, 'design');
  // Only each design's split phase is shaded.
  t.deepEqual(
    throughput.layer[0].data.values.map((v: { phase: string }) => v.phase),
    rows.map((x) => x.splitPhase),
  );
  for (const s of specs) t.true(marksOfSpec(s.spec) > 0, s.id);
  t.regex(html, /<h2>Compare<\/h2>/);
  t.regex(html, /<li>cache: /);
  t.deepEqual(externalRefs(html), []);
});

test('end to end: --compare --html overlays the designs it ran, with the compare tables', (t) => {
  t.timeout(180_000);
  const dir = mkdtempSync(join(tmpdir(), 'emulate-html-compare-'));
  try {
    const file = join(dir, 'c.html');
    const args = ['--compare', '--split-alloc', 'drop-always,cache', '-q', '-v', '1', '-b', '16M', '--steady-seconds', '0.1', '--html', file];
    const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 150_000 });
    t.is(r.status, 0, r.stderr);
    const html = readFileSync(file, 'utf8');
    t.deepEqual(externalRefs(html), []);
    const throughput = embeddedSpecs(html).find((s) => s.id === 'throughput')!.spec;
    t.deepEqual([...new Set(throughput.layer[1].data.values.map((v: { design: string }) => v.design))], ['drop-always', 'cache']);
    t.is([...html.matchAll(/<summary>(drop-always|cache): dirty_log_perf_test lines and tables<\/summary>/g)].length, 2);
    t.regex(html, /<li>cache: split took /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('throughput points: a forced edge sample microseconds after the last is merged into the next gap, the work kept', (t) => {
  // 1M accesses/s throughout, sampled every 10 ms, with a phase edge 2 us after the sample at 50 ms
  // that happens to see 200 accesses land (a burst of 100M/s over the tiny gap).
  const pts = [];
  for (let i = 0; i <= 10; i++) pts.push(point(i * 10, 0, i * 10_000 + (i > 5 ? 200 : 0)));
  pts.splice(6, 0, point(50.002, 1, 50_200));
  const t0 = buildTimeline({ points: pts, events: [], stride: 1 }, ['a', 'b']);
  t.true(
    t0.rows.some((r) => r.accessesPerSecond > 50e6),
    'the raw rows have the burst',
  );
  const even = evenRates(t0);
  t.is(even.length, 10);
  t.true(
    even.every((p) => p.perSecond < 1.05e6),
    even.map((p) => p.perSecond).join(', '),
  );
  let work = 0;
  for (let i = 0; i < even.length; i++) work += (even[i]!.perSecond * (even[i]!.tMs - (i === 0 ? 0 : even[i - 1]!.tMs))) / 1000;
  t.is(Math.round(work), 100_200);
});

test('a bad --html path exits 2 with one line before any run, for one run and for --compare', (t) => {
  for (const args of [[], ['--compare']]) {
    const r = spawnSync(process.execPath, [MAIN, ...args, '-q', '-b', '8M', '--html', '/no/such/dir/r.html'], { encoding: 'utf8', timeout: 30_000 });
    t.is(r.status, 2, r.stderr);
    t.is(r.stderr.trim().split('\n').length, 1);
    t.regex(r.stderr, /--html/);
    t.is(r.stdout, '');
  }
});
