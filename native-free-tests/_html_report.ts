// Helpers for the HTML report tests: one short real run with --html and --json, and the marks a
// chart's embedded vega-lite spec must draw, counted from its data alone (the oracle the page's
// data-marks and the drawn SVG are checked against).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Json } from './_emulate.js';

const MAIN = fileURLToPath(new URL('../src/emulate/main.js', import.meta.url));

/** A tiny steady run (2 vCPUs, 32 MiB each): enough samples, faults and splits for every chart. */
const SHORT_RUN = ['-q', '-v', '2', '-b', '32M', '--steady', '--steady-seconds', '0.2'];

export interface HtmlRun {
  readonly dir: string;
  readonly htmlFile: string;
  readonly html: string;
  readonly report: Json;
  readonly stderr: string;
  readonly code: number | null;
  cleanup(): void;
}

/** Run emulate with `--html` and `--json` into a temp directory. */
export function runWithHtml(args: readonly string[] = SHORT_RUN): HtmlRun {
  const dir = mkdtempSync(join(tmpdir(), 'emulate-html-'));
  const htmlFile = join(dir, 'r.html');
  const json = join(dir, 'r.json');
  const r = spawnSync(process.execPath, [MAIN, ...args, '--html', htmlFile, '--json', json], { encoding: 'utf8', timeout: 90_000 });
  const read = (f: string): string => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const reportText = read(json);
  return {
    dir,
    htmlFile,
    html: read(htmlFile),
    report: reportText === '' ? null : JSON.parse(reportText),
    stderr: r.stderr,
    code: r.status,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Every chart's id and spec, from the page's <script type="application/json" class="chart-spec"> blocks. */
export function embeddedSpecs(html: string): { id: string; spec: Json }[] {
  const out: { id: string; spec: Json }[] = [];
  for (const m of html.matchAll(/<script type="application\/json" class="chart-spec" data-chart="([^"]+)">([^<]*)<\/script>/g)) {
    out.push({ id: m[1]!, spec: JSON.parse(m[2]!) });
  }
  return out;
}

/**
 * How many marks a spec draws, from its data: a line per distinct series (the values of its
 * nominal channels color/detail/strokeDash and of the facet fields), anything else one per row.
 * Covers the forms the report uses: a layer, a facet over a layer or a single mark, inline data.
 */
export function marksOfSpec(spec: Json, inherited: Json[] = [], facetFields: string[] = []): number {
  const data: Json[] = spec.data?.values ?? inherited;
  if (spec.facet !== undefined) {
    const f = spec.facet;
    const fields = [f.field, f.row?.field, f.column?.field].filter((x: unknown): x is string => typeof x === 'string');
    return marksOfSpec(spec.spec, data, [...facetFields, ...fields]);
  }
  if (spec.layer !== undefined) return (spec.layer as Json[]).reduce((n: number, l: Json) => n + marksOfSpec(l, data, facetFields), 0);
  const type = typeof spec.mark === 'string' ? spec.mark : spec.mark.type;
  if (type !== 'line') return data.length;
  const enc = spec.encoding ?? {};
  const keys = [...facetFields, enc.color?.field, enc.detail?.field, enc.strokeDash?.field].filter((x: unknown): x is string => typeof x === 'string');
  return new Set(data.map((row) => JSON.stringify(keys.map((k) => row[k])))).size;
}
