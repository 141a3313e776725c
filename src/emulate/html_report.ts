/**
 * `--html FILE`: one self-contained HTML page per run (or per --compare): the charts of charts.ts
 * as inline SVG, each with its vega-lite spec and data beside it in a
 * <script type="application/json"> (so the picture can be re-rendered and checked), the
 * dirty_log_perf_test lines, and the summary tables as HTML tables.
 *
 * Self-contained means the page loads nothing: no script runs in it (the JSON blocks are data),
 * styles are inline, there are no images, fonts or links to fetch, and a Content-Security-Policy
 * of default-src 'none' makes the browser refuse any request a future edit might add.
 */
import { writeFileSync } from 'node:fs';
import { version as vegaVersion } from 'vega';
import { version as vegaLiteVersion } from 'vega-lite';
import { renderSvg } from './chart_svg.js';
import { reportCharts } from './charts.js';
import type { Chart, ChartRun } from './charts.js';
import { compareTablesData } from './compare.js';
import type { CompareRow } from './compare.js';
import { dipTableData, dirtyTableData, faultLatencyTableData, formatReport, lockTableData, phaseTableData, selftestLines } from './report.js';
import type { TableData } from './report.js';

/** What --compare adds: its table rows (one per design, medians with --repeat) and verdicts. */
export interface HtmlCompare {
  readonly rows: readonly CompareRow[];
  readonly verdicts: readonly string[];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** JSON inside <script>: `<` escaped so that no "</script>" in the data can end the block. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

function htmlTable(t: TableData): string {
  const head = `<tr>${t.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead>${head}</thead><tbody>\n${body}\n</tbody></table>`;
}

async function chartSection(c: Chart): Promise<string> {
  const svg = (await renderSvg(c.spec)).replace(/^<svg\b/, `<svg id="chart-svg-${c.id}"`);
  return [
    `<section class="chart" id="chart-${c.id}">`,
    `<h2>${esc(c.title)}</h2>`,
    `<figure data-chart="${c.id}" data-marks="${c.marks}">${svg}</figure>`,
    `<p class="caption">${esc(c.caption)}</p>`,
    `<script type="application/json" class="chart-spec" data-chart="${c.id}">${scriptJson(c.spec)}</script>`,
    '</section>',
  ].join('\n');
}

/** The tables of one run, in the text report's order. */
function runTables(run: ChartRun): string {
  const r = run.report;
  const parts = [
    ['Phases', phaseTableData(r)],
    ['vCPU fault latency by phase', faultLatencyTableData(r)],
    ...(r.timeline !== undefined && r.timeline.dips.length > 0 ? [['vCPU throughput dips by phase', dipTableData(r.timeline)] as const] : []),
    ['mmu_lock (all threads, whole run)', lockTableData(r)],
    ['Dirty log', dirtyTableData(r)],
  ] as const;
  return parts.map(([title, t]) => `<h3>${esc(title)}</h3>\n${htmlTable(t)}`).join('\n');
}

function runSection(run: ChartRun, open: boolean): string {
  return [
    `<details${open ? ' open' : ''}><summary>${esc(run.label)}: dirty_log_perf_test lines and tables</summary>`,
    `<pre class="selftest">${esc(selftestLines(run.report).join('\n'))}</pre>`,
    runTables(run),
    `<details><summary>The whole text report</summary><pre>${esc(formatReport(run.report))}</pre></details>`,
    '</details>',
  ].join('\n');
}

function compareSection(c: HtmlCompare): string {
  return [
    '<section id="compare"><h2>Compare</h2>',
    ...compareTablesData(c.rows).map((t) => `<h3>${esc(t.title)}</h3>\n${htmlTable(t.table)}`),
    '<h3>Verdicts (against drop-always)</h3>',
    `<ul>${c.verdicts.map((v) => `<li>${esc(v)}</li>`).join('')}</ul>`,
    '</section>',
  ].join('\n');
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.6em; } h3 { font-size: 1em; }
figure { margin: 0; } .caption { color: #555; margin-top: 0.2em; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
pre.selftest { background: #f7f7f7; padding: 0.6em; }
summary { cursor: pointer; font-weight: 600; margin: 0.6em 0; }
`;

/** The whole page. `compare` is null for one run. */
export async function htmlReport(runs: readonly ChartRun[], compare: HtmlCompare | null): Promise<string> {
  const first = runs[0];
  if (first === undefined) throw new Error('htmlReport: no runs');
  const c = first.report.config;
  const title =
    compare === null
      ? `emulate: ${String(c['vcpus'])} vCPUs, ${String(c['splitAlloc'])}`
      : `emulate --compare: ${String(c['vcpus'])} vCPUs, ${runs.map((r) => r.label).join(', ')}`;
  const charts: string[] = [];
  for (const chart of reportCharts(runs)) charts.push(await chartSection(chart));
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    `<title>${esc(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    `<h1>${esc(title)}</h1>`,
    `<p>Started ${esc(first.report.startedAt)}; Linux ${esc(first.report.kernel?.version ?? '?')} modelled; host ${first.report.host.cores} cores, Node ${esc(first.report.host.nodeVersion)}. ` +
      `Charts rendered to SVG by vega-lite ${vegaLiteVersion} and vega ${vegaVersion}; each chart's spec and data follow it in the page.</p>`,
    ...charts,
    ...(compare === null ? [] : [compareSection(compare)]),
    '<h2>Runs</h2>',
    ...runs.map((r) => runSection(r, compare === null)),
    '</body></html>',
    '',
  ].join('\n');
}

/** Write the page of `runs` to `file` (path checked before the run: output_file.ts). */
export async function writeHtmlReport(file: string, runs: readonly ChartRun[], compare: HtmlCompare | null = null): Promise<void> {
  writeFileSync(file, await htmlReport(runs, compare));
}
