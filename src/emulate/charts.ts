/**
 * The HTML report's charts as data: one vega-lite spec per chart, its rows inline, built from
 * Reports (one run, or one per design with --compare). Nothing here draws: chart_svg.ts hands a
 * spec to vega-lite and vega, which render it to SVG. Keeping the spec as data means the page can
 * carry it next to its picture (html_report.ts), so every chart can be re-rendered from the page.
 *
 * Every chart also states how many marks its SVG must have (`marks`): a rect or a point per data
 * row, a line per series. The browser test counts the drawn marks against it.
 *
 * Latency distributions come from the report's percentiles (p50, p90, p99, p99.9, max of the
 * log-linear histograms, src/stats/histogram.ts): the report keeps no buckets, so the curves
 * have one point per percentile. They are drawn as the tail of the CDF (1 - CDF, the fraction of
 * events slower than x), both axes log, where tail latency is visible; a point beyond what the
 * sample count can resolve (1 - q below 1 / count) is left out.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { LatencySummary, Report } from './report_model.js';
import type { TimelineReport } from './timeline.js';

/** One run as the charts see it: its label (the design, for --compare) and report. */
export interface ChartRun {
  readonly label: string;
  readonly report: Report;
  /** The phase --compare calls the split phase (compare.ts compareRow), shaded in the overlay; null for one run. */
  readonly splitPhase: string | null;
}

export interface Chart {
  /** Stable identifier: the SVG's data-chart and the embedded spec's id. */
  readonly id: string;
  readonly title: string;
  /** One sentence under the chart: what it shows and where the data comes from. */
  readonly caption: string;
  readonly spec: TopLevelSpec;
  /** Marks the rendered SVG must contain (rects and points per row, lines per series). */
  readonly marks: number;
}

const WIDTH = 760;
const HEIGHT = 240;

/** Percentiles drawn on a tail curve, with the fraction of events slower than each. */
const TAIL_POINTS: readonly { readonly key: 'p50' | 'p90' | 'p99' | 'p999'; readonly slower: number }[] = [
  { key: 'p50', slower: 0.5 },
  { key: 'p90', slower: 0.1 },
  { key: 'p99', slower: 0.01 },
  { key: 'p999', slower: 0.001 },
];

interface TailRow {
  readonly series: string;
  readonly design: string;
  readonly percentile: string;
  readonly ns: number;
  readonly slower: number;
}

/**
 * The tail curve of one latency summary: (p50, 0.5) ... (p99.9, 0.001), then the max at
 * 1 / count (the slowest of `count` events). Empty when nothing was measured.
 */
function tailRows(s: LatencySummary, series: string, design: string): TailRow[] {
  if (s.count === 0) return [];
  const rows: TailRow[] = TAIL_POINTS.filter((p) => p.slower >= 1 / s.count && s[p.key] > 0).map((p) => ({
    series,
    design,
    percentile: p.key,
    ns: s[p.key],
    slower: p.slower,
  }));
  if (s.max > 0) rows.push({ series, design, percentile: 'max', ns: s.max, slower: 1 / s.count });
  return rows;
}

function distinct(values: readonly string[]): number {
  return new Set(values).size;
}

/** Where a run's x axis starts: the run's start, or (--compare) the moment dirty logging was enabled, so the designs line up. */
function originMs(run: ChartRun, aligned: boolean): number {
  if (!aligned) return 0;
  return run.report.timeline?.events.find((e) => e.edge === 'begin' && run.report.phases[e.phase]?.kind === 'enable')?.tMs ?? 0;
}

/** Begin/end pairs of the timeline's phase events, in seconds from the origin. */
function phaseSpans(run: ChartRun, origin: number): { name: string; kind: string; from: number; to: number }[] {
  const t = run.report.timeline;
  if (t === undefined) return [];
  const out: { name: string; kind: string; from: number; to: number }[] = [];
  for (const b of t.events) {
    if (b.edge !== 'begin') continue;
    const e = t.events.find((x) => x.edge === 'end' && x.phase === b.phase);
    if (e === undefined || e.tMs <= b.tMs) continue;
    out.push({ name: b.name, kind: run.report.phases[b.phase]?.kind ?? 'phase', from: (b.tMs - origin) / 1000, to: (e.tMs - origin) / 1000 });
  }
  return out;
}

/**
 * Throughput points at least half a sampling period apart. A phase edge forces a sample (timeline.ts),
 * which can fall microseconds after the previous one, and a rate over so short a gap is noise
 * (a few accesses over a few us reads as billions per second). Such a gap is merged into the next:
 * rate x gap is the work done, so the merged rate is exact over the longer gap. The first row
 * has no gap before it and is left out.
 */
export function evenRates(t: TimelineReport): { tMs: number; perSecond: number }[] {
  const out: { tMs: number; perSecond: number }[] = [];
  const minGap = (t.sampleMs * t.stride) / 2;
  let work = 0;
  let gap = 0;
  for (let i = 1; i < t.rows.length; i++) {
    const r = t.rows[i]!;
    const dt = r.tMs - t.rows[i - 1]!.tMs;
    work += r.accessesPerSecond * dt;
    gap += dt;
    if (gap < minGap) continue;
    out.push({ tMs: r.tMs, perSecond: work / gap });
    work = 0;
    gap = 0;
  }
  return out;
}

function xTitle(aligned: boolean): string {
  return aligned ? 'seconds since dirty logging was enabled' : 'seconds since the run started';
}

/**
 * vCPU throughput over time, the phases shaded: the dip picture. One run: every phase shaded by
 * kind. --compare: one line per design on a common origin (dirty logging enabled), and each
 * design's split phase shaded in its colour.
 */
function throughputChart(runs: readonly ChartRun[]): Chart | null {
  const aligned = runs.length > 1;
  const line: { design: string; s: number; perSecond: number }[] = [];
  const shade: { design: string; phase: string; kind: string; from: number; to: number }[] = [];
  for (const run of runs) {
    const t = run.report.timeline;
    if (t === undefined) continue;
    const origin = originMs(run, aligned);
    for (const p of evenRates(t)) line.push({ design: run.label, s: (p.tMs - origin) / 1000, perSecond: p.perSecond });
    for (const span of phaseSpans(run, origin)) {
      if (aligned && span.name !== run.splitPhase) continue;
      shade.push({ design: run.label, phase: span.name, kind: span.kind, from: span.from, to: span.to });
    }
  }
  if (line.length === 0) return null;
  const x = { field: 's', type: 'quantitative', title: xTitle(aligned) } as const;
  return {
    id: 'throughput',
    title: 'vCPU throughput over time',
    caption: aligned
      ? 'Guest accesses per second, all vCPUs, per timeline sample; each design is shaded over its split phase (the phase that split the most).'
      : 'Guest accesses per second, all vCPUs, per timeline sample; the phases are shaded by kind.',
    marks: shade.length + distinct(line.map((l) => l.design)),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      layer: [
        {
          data: { values: shade },
          mark: { type: 'rect', opacity: 0.25 },
          encoding: {
            x: { ...x, field: 'from' },
            x2: { field: 'to' },
            color: aligned ? { field: 'design', type: 'nominal', title: 'design' } : { field: 'kind', type: 'nominal', title: 'phase kind' },
            tooltip: [{ field: 'phase' }, { field: 'design' }],
          },
        },
        {
          data: { values: line },
          mark: { type: 'line', strokeWidth: 1.2 },
          encoding: {
            x,
            y: { field: 'perSecond', type: 'quantitative', title: 'guest accesses per second' },
            ...(aligned ? { color: { field: 'design', type: 'nominal', title: 'design' } } : { detail: { field: 'design' } }),
          },
        },
      ],
    },
  };
}

/** Tail curves with a point per percentile, one line per series; faceted when `facet` is given. */
function tailChart(id: string, title: string, caption: string, rows: readonly TailRow[], colour: 'series' | 'design', facet: boolean): Chart | null {
  if (rows.length === 0) return null;
  const encoding = {
    x: { field: 'ns', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ns)' },
    y: { field: 'slower', type: 'quantitative', scale: { type: 'log' }, title: 'fraction slower (1 - CDF)' },
    color: { field: colour, type: 'nominal', title: colour === 'design' ? 'design' : 'phase' },
  } as const;
  const line = { mark: { type: 'line', strokeWidth: 1.4 }, encoding } as const;
  const tooltip = ['series', 'design', 'percentile', 'ns'].map((field) => ({ field }));
  const point = { mark: { type: 'point', filled: true, size: 24 } as const, encoding: { ...encoding, tooltip } };
  const lines = distinct(rows.map((r) => `${r.series}\u0000${r.design}`));
  const spec: TopLevelSpec = facet
    ? { data: { values: rows }, facet: { field: 'series', type: 'nominal', title: null }, columns: 2, spec: { width: 340, height: 200, layer: [line, point] } }
    : { data: { values: rows }, width: WIDTH, height: HEIGHT, layer: [line, point] };
  return { id, title, caption, marks: lines + rows.length, spec };
}

/** Fault latency tails: per phase (one run), or per phase and design (--compare, one panel per phase). */
function faultChart(runs: readonly ChartRun[]): Chart | null {
  const rows: TailRow[] = [];
  for (const run of runs) {
    for (const p of run.report.phases) {
      if (p.vcpu !== null) rows.push(...tailRows(p.vcpu.faultLatencyNs.all, p.name, run.label));
    }
  }
  const compare = runs.length > 1;
  return tailChart(
    'fault-latency',
    'vCPU fault latency by phase',
    `Every vCPU fault (fast and slow), from the report's percentiles p50 ... p99.9 and the max; ${compare ? 'one panel per phase, one line per design' : 'one line per phase'}.`,
    rows,
    compare ? 'design' : 'series',
    compare,
  );
}

const LOCK_TIMES: readonly { readonly key: 'readWaitNs' | 'readHoldNs' | 'writeWaitNs' | 'writeHoldNs'; readonly name: string }[] = [
  { key: 'readWaitNs', name: 'read wait' },
  { key: 'readHoldNs', name: 'read hold' },
  { key: 'writeWaitNs', name: 'write wait' },
  { key: 'writeHoldNs', name: 'write hold' },
];

/** mmu_lock wait and hold distributions, all threads, whole run: a panel per kind, a line per design. */
function lockChart(runs: readonly ChartRun[]): Chart | null {
  const rows: TailRow[] = [];
  for (const run of runs) for (const k of LOCK_TIMES) rows.push(...tailRows(run.report.mmuLock[k.key], k.name, run.label));
  return tailChart(
    'mmu-lock',
    'mmu_lock waits and holds',
    "Every thread's mmu_lock read/write waits and holds over the whole run, from the report's percentiles.",
    rows,
    'design',
    true,
  );
}

const PROGRESS: readonly { readonly key: 'hugePagesSplit' | 'lockDrops' | 'restarts'; readonly name: string }[] = [
  { key: 'hugePagesSplit', name: 'huge pages split' },
  { key: 'lockDrops', name: 'lock drops' },
  { key: 'restarts', name: 'walk restarts' },
];

/** The splitter's progress: cumulative splits, lock drops and walk restarts over time, a panel each. */
function splitterChart(runs: readonly ChartRun[]): Chart | null {
  const aligned = runs.length > 1;
  const rows: { design: string; counter: string; s: number; total: number }[] = [];
  for (const run of runs) {
    const t = run.report.timeline;
    if (t === undefined) continue;
    const origin = originMs(run, aligned);
    for (const k of PROGRESS) {
      // The counters are cumulative and drawn as steps: only the samples where one changes (and the
      // last) shape the line, so the flat stretches are left out of the page.
      t.rows.forEach((r, i) => {
        if (i === 0 || i === t.rows.length - 1 || r[k.key] !== t.rows[i - 1]![k.key]) {
          rows.push({ design: run.label, counter: k.name, s: (r.tMs - origin) / 1000, total: r[k.key] });
        }
      });
    }
  }
  if (rows.length === 0) return null;
  return {
    id: 'splitter-progress',
    title: "The splitter's progress",
    caption: 'Cumulative huge pages split (splitter and vCPU faults), mmu_lock drops and walk restarts, all threads, per timeline sample.',
    marks: distinct(rows.map((r) => `${r.counter}\u0000${r.design}`)),
    spec: {
      data: { values: rows },
      facet: { row: { field: 'counter', type: 'nominal', title: null } },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: WIDTH,
        height: 110,
        mark: { type: 'line', strokeWidth: 1.2, interpolate: 'step-after' },
        encoding: {
          x: { field: 's', type: 'quantitative', title: xTitle(aligned) },
          y: { field: 'total', type: 'quantitative', title: 'count' },
          color: { field: 'design', type: 'nominal', title: 'design' },
        },
      },
    },
  };
}

/** Every chart the runs have data for, in page order. */
export function reportCharts(runs: readonly ChartRun[]): Chart[] {
  return [throughputChart(runs), faultChart(runs), lockChart(runs), splitterChart(runs)].filter((c): c is Chart => c !== null);
}
