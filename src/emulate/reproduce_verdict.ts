/**
 * The verdict of one reproduce row in one column, from the seconds its runs measured. Pure: no
 * processes, no clocks; reproduce.ts feeds it the outcomes of the emulator runs.
 *
 * The rule (the reproduction goal): the variants rank in the same order as published, and each
 * ratio that carries over (eager/lazy, after/before, design/design) is within a factor of 2 of
 * the published one at the same vCPU count. Rows published at a vCPU count we cannot run are
 * judged on the ordering alone; larger scaled counts are printed without a verdict; rows whose
 * figures fed the host-cost calibration are printed as calibration points, never counted as
 * reproduced; a published "no regression" is judged against the run-to-run spread of interleaved
 * repeats. A variant the emulator does not support (it exits 2 with a one-line message) makes the
 * row "not runnable", not an error.
 */
import { median, spreadPct } from './compare.js';
import type { Judgement, RatioSpec } from './reproduce_rows.js';

/** What the runs of one variant gave. */
export type VariantOutcome =
  /** Every repeat ran; `samples` holds the metric of each, in seconds. */
  | { readonly kind: 'ok'; readonly samples: readonly number[] }
  /** The emulator refused the options (exit 2): its one-line message. */
  | { readonly kind: 'not-runnable'; readonly message: string }
  /** A run failed (exit 1 or 3, a signal, or a report without the metric). */
  | { readonly kind: 'failed'; readonly message: string };

export type VerdictStatus = 'reproduced' | 'missed' | 'calibration' | 'printed' | 'not-runnable' | 'failed';

/** What the verdict needs of a row (a ReproduceRow satisfies it). */
export interface VerdictRow {
  readonly variants: readonly { readonly id: string; readonly published: number | null }[];
  readonly ratios: readonly RatioSpec[];
  readonly judgement: Judgement;
  readonly calibration: boolean;
}

export interface RatioResult {
  /** `num/den`. */
  readonly label: string;
  readonly published: number | null;
  readonly ours: number | null;
  /** ours / published. */
  readonly factor: number | null;
  /** Within the row's factor of the published ratio; null when the row does not judge ratios. */
  readonly within: boolean | null;
}

export interface OrderingResult {
  /** Variant ids, slowest first. */
  readonly published: readonly string[];
  readonly ours: readonly string[];
  readonly same: boolean;
}

export interface SpreadResult {
  /** (first / second - 1) x 100 of the medians. */
  readonly differencePct: number;
  /** The larger of the two variants' (max - min) / median, in %; null with fewer than two runs. */
  readonly spreadPct: number | null;
  readonly runs: number;
}

export interface ColumnVerdict {
  readonly status: VerdictStatus;
  /** What the rule says of the numbers, also for calibration and print-only rows; null when it could not be applied. */
  readonly rulePassed: boolean | null;
  /** Median seconds per variant id (null when the variant did not run). */
  readonly medians: Readonly<Record<string, number | null>>;
  readonly samples: Readonly<Record<string, readonly number[]>>;
  readonly ratios: readonly RatioResult[];
  readonly ordering: OrderingResult | null;
  readonly spread: SpreadResult | null;
  /** The tolerance the row is judged with, in words. */
  readonly tolerance: string;
  /** One line: why this verdict. */
  readonly detail: string;
}

/** The tolerance of a judgement, as printed beside the verdict. */
function toleranceText(j: Judgement): string {
  switch (j.kind) {
    case 'ordering-and-factor':
      return `same ordering, every ratio within ${j.factor}x of the published one`;
    case 'ordering-only':
      return 'same ordering (ratio printed, not judged)';
    case 'print-only':
      return 'none (printed only)';
    case 'within-spread':
      return '|difference of medians| < run-to-run spread ((max - min) / median of either variant) over interleaved runs';
    case 'excess':
      return j.expect
        ? "the first variant's median exceeds the second's by more than the run-to-run spread (the larger max - min of either)"
        : "the first variant's median does not exceed the second's by more than the run-to-run spread (the effect is absent)";
  }
}

/** The tolerance in a few words, for the summary table. */
export function toleranceShort(j: Judgement): string {
  switch (j.kind) {
    case 'ordering-and-factor':
      return `ordering + ratio within ${j.factor}x`;
    case 'ordering-only':
      return 'ordering';
    case 'print-only':
      return 'none';
    case 'within-spread':
      return 'within run-to-run spread';
    case 'excess':
      return j.expect ? 'exceeds the spread' : 'absent (within the spread)';
  }
}

/** Variant ids, slowest first; ties keep the declared order. */
export function rankSlowestFirst(values: readonly { readonly id: string; readonly value: number }[]): string[] {
  return values
    .map((v, i) => ({ ...v, i }))
    .sort((a, b) => b.value - a.value || a.i - b.i)
    .map((v) => v.id);
}

/**
 * An 'excess' judgement: does the first variant's median exceed the second's by more than the
 * run-to-run spread? The spread is absolute (the larger max - min of the two variants' samples):
 * the metrics judged this way (a share of vCPU time lost waiting for mmu_lock) can be about 0
 * for one variant, where a spread relative to the median means nothing.
 */
function judgeExcess(
  variants: readonly { readonly id: string }[],
  samples: Readonly<Record<string, readonly number[]>>,
  medians: Readonly<Record<string, number | null>>,
  expect: boolean,
): { rulePassed: boolean | null; detail: string; spread: SpreadResult | null } {
  const [a, b] = variants;
  const sa = a === undefined ? undefined : samples[a.id];
  const sb = b === undefined ? undefined : samples[b.id];
  if (a === undefined || b === undefined || sa === undefined || sb === undefined) {
    return { rulePassed: null, detail: 'an excess row needs two variants', spread: null };
  }
  const ma = medians[a.id]!;
  const mb = medians[b.id]!;
  const range = (xs: readonly number[]): number => Math.max(...xs) - Math.min(...xs);
  const runs = Math.min(sa.length, sb.length);
  const differencePct = mb > 0 ? (ma / mb - 1) * 100 : Number.NaN;
  const fmt = (x: number): string => x.toPrecision(3);
  const head = `${a.id} median ${fmt(ma)} vs ${b.id} ${fmt(mb)} (difference ${fmt(ma - mb)})`;
  if (runs < 2) {
    return { rulePassed: null, detail: `${head}; spread unknown (fewer than two runs each): not judged`, spread: { differencePct, spreadPct: null, runs } };
  }
  const spreadAbs = Math.max(range(sa), range(sb));
  const exceeds = ma - mb > spreadAbs;
  const spread: SpreadResult = { differencePct, spreadPct: mb > 0 ? (spreadAbs / mb) * 100 : null, runs };
  const detail = `${head}; run-to-run spread ${fmt(spreadAbs)} over ${runs} interleaved runs each: ${exceeds ? 'exceeds the spread' : 'within the spread'}`;
  return { rulePassed: exceeds === expect, detail, spread };
}

/** `ours / published` within `[1/factor, factor]`. */
export function withinFactor(ours: number, published: number, factor: number): boolean {
  if (!(ours > 0) || !(published > 0) || !Number.isFinite(ours)) return false;
  const f = ours / published;
  return f >= 1 / factor && f <= factor;
}

function ratioOf(num: number | null | undefined, den: number | null | undefined): number | null {
  if (num === null || num === undefined || den === null || den === undefined || !(den > 0)) return null;
  return num / den;
}

export function formatRatio(x: number | null): string {
  if (x === null) return '-';
  if (x >= 100) return `${x.toFixed(0)}x`;
  if (x >= 10) return `${x.toFixed(1)}x`;
  return `${x.toFixed(x >= 0.1 ? 3 : 4)}x`;
}

function orderingText(ids: readonly string[]): string {
  return ids.join(' > ');
}

/**
 * Judge one row in one column. `outcomes` maps every variant id of the row to what its runs gave.
 */
export function judgeColumn(row: VerdictRow, outcomes: Readonly<Record<string, VariantOutcome>>): ColumnVerdict {
  const tolerance = toleranceText(row.judgement);
  const samples: Record<string, readonly number[]> = {};
  const medians: Record<string, number | null> = {};
  let blocked: { status: 'not-runnable' | 'failed'; message: string } | null = null;
  for (const v of row.variants) {
    const o = outcomes[v.id];
    if (o === undefined) {
      blocked ??= { status: 'failed', message: `${v.id}: no outcome` };
      medians[v.id] = null;
      continue;
    }
    if (o.kind === 'ok' && o.samples.length > 0) {
      samples[v.id] = o.samples;
      medians[v.id] = median(o.samples);
      continue;
    }
    medians[v.id] = null;
    if (o.kind === 'failed') {
      // A failure outranks "not runnable": it is a bug to look at, not an option still to merge.
      if (blocked?.status !== 'failed') blocked = { status: 'failed', message: `${v.id}: ${o.message}` };
    } else if (o.kind === 'not-runnable') {
      blocked ??= { status: 'not-runnable', message: `${v.id}: ${o.message}` };
    } else {
      blocked ??= { status: 'failed', message: `${v.id}: no samples` };
    }
  }

  const published = (id: string): number | null => row.variants.find((v) => v.id === id)?.published ?? null;
  const judgesRatios = row.judgement.kind === 'ordering-and-factor';
  const ratios: RatioResult[] = row.ratios.map((r) => {
    const pub = r.published ?? ratioOf(published(r.num), published(r.den));
    const ours = ratioOf(medians[r.num], medians[r.den]);
    const factor = ours !== null && pub !== null && pub > 0 ? ours / pub : null;
    const within = row.judgement.kind === 'ordering-and-factor' && ours !== null && pub !== null ? withinFactor(ours, pub, row.judgement.factor) : null;
    return { label: `${r.num}/${r.den}`, published: pub, ours, factor, within: judgesRatios ? within : null };
  });

  if (blocked !== null) {
    return { status: blocked.status, rulePassed: null, medians, samples, ratios, ordering: null, spread: null, tolerance, detail: blocked.message };
  }

  // Ordering: only among variants with a published figure.
  const withFigures = row.variants.filter((v) => v.published !== null);
  const ordering: OrderingResult | null =
    withFigures.length >= 2
      ? (() => {
          const pub = rankSlowestFirst(withFigures.map((v) => ({ id: v.id, value: v.published! })));
          const ours = rankSlowestFirst(withFigures.map((v) => ({ id: v.id, value: medians[v.id]! })));
          return { published: pub, ours, same: pub.every((id, i) => ours[i] === id) };
        })()
      : null;

  let rulePassed: boolean | null;
  let detail: string;
  let spread: SpreadResult | null = null;
  const orderPart =
    ordering === null
      ? ''
      : ordering.same
        ? `ordering ${orderingText(ordering.ours)} as published`
        : `ordering ${orderingText(ordering.ours)}, published ${orderingText(ordering.published)}`;
  const ratioPart = ratios
    .map((r) => `${r.label} ${formatRatio(r.ours)} vs ${formatRatio(r.published)} published${r.factor !== null ? ` (${r.factor.toFixed(2)}x)` : ''}`)
    .join('; ');

  switch (row.judgement.kind) {
    case 'ordering-and-factor': {
      const outside = ratios.filter((r) => r.within !== true);
      rulePassed = ordering?.same === true && outside.length === 0;
      detail = `${orderPart}; ${ratioPart}${outside.length > 0 ? `; outside ${row.judgement.factor}x: ${outside.map((r) => r.label).join(', ')}` : ''}`;
      break;
    }
    case 'ordering-only':
      rulePassed = ordering !== null ? ordering.same : null;
      detail = `${orderPart}; ${ratioPart} (${row.judgement.why})`;
      break;
    case 'print-only':
      rulePassed = null;
      detail = `${orderPart === '' ? '' : `${orderPart}; `}${ratioPart} (${row.judgement.why})`;
      break;
    case 'within-spread': {
      const [a, b] = row.variants;
      const sa = a === undefined ? undefined : samples[a.id];
      const sb = b === undefined ? undefined : samples[b.id];
      if (a === undefined || b === undefined || sa === undefined || sb === undefined) {
        rulePassed = null;
        detail = 'a within-spread row needs two variants';
        break;
      }
      const ma = medians[a.id]!;
      const mb = medians[b.id]!;
      const differencePct = mb > 0 ? (ma / mb - 1) * 100 : Number.NaN;
      const pa = spreadPct(sa);
      const pb = spreadPct(sb);
      const sp = pa === null || pb === null ? null : Math.max(pa, pb);
      spread = { differencePct, spreadPct: sp, runs: Math.min(sa.length, sb.length) };
      const diffText = `${a.id} ${differencePct >= 0 ? '+' : ''}${differencePct.toFixed(1)} % against ${b.id} (medians ${ma.toFixed(4)} s vs ${mb.toFixed(4)} s)`;
      if (sp === null || !Number.isFinite(differencePct)) {
        rulePassed = null;
        detail = `${diffText}; spread unknown (fewer than two runs each): not judged`;
      } else {
        rulePassed = Math.abs(differencePct) < sp;
        detail = `${diffText}; run-to-run spread ${sp.toFixed(1)} % over ${spread.runs} interleaved runs each: ${
          rulePassed ? 'within the spread' : differencePct > 0 ? `slower by more than the spread` : 'faster by more than the spread'
        }`;
      }
      break;
    }
    case 'excess': {
      const r = judgeExcess(row.variants, samples, medians, row.judgement.expect);
      rulePassed = r.rulePassed;
      detail = r.detail;
      spread = r.spread;
      break;
    }
  }

  let status: VerdictStatus;
  if (row.calibration) {
    status = 'calibration';
    detail = `not counted as reproduced: its figures fed the host-cost calibration (the rule would say ${ruleWord(rulePassed)}); ${detail}`;
  } else if (rulePassed === null) {
    status = 'printed';
  } else {
    status = rulePassed ? 'reproduced' : 'missed';
  }
  return { status, rulePassed, medians, samples, ratios, ordering, spread, tolerance, detail };
}

/** What the rule said, for calibration rows. */
export function ruleWord(rulePassed: boolean | null): string {
  return rulePassed === true ? 'reproduced' : rulePassed === false ? 'missed' : 'nothing';
}

/** The word printed for a status. */
export function statusWord(s: VerdictStatus): string {
  switch (s) {
    case 'reproduced':
      return 'REPRODUCED';
    case 'missed':
      return 'MISSED';
    case 'calibration':
      return 'CALIBRATION POINT';
    case 'printed':
      return 'printed (no verdict)';
    case 'not-runnable':
      return 'not runnable';
    case 'failed':
      return 'FAILED';
  }
}
