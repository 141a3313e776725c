/**
 * Sweeps: comma lists for --split-alloc, --clear-lock, --cache-capacity, --levels, --vcpus and --pressure
 * expand to one run per combination (a Cartesian product), run one after another on the same
 * seed, each a full emulation with its own VM. `--compare` is a sweep over designs: every design
 * unless --split-alloc names some.
 *
 * Expansion works on the raw command-line values (RawValues, before options.ts resolves them), so
 * each combination is validated by exactly the parser a single run uses; all combinations are
 * resolved BEFORE the first run starts, so a bad item fails at once (exit 2) instead of after
 * minutes of runs.
 *
 * Order: the design varies fastest, so a design's runs sit next to the drop-always run they are
 * compared with; then cache capacity, pressure, levels, vCPUs (slowest).
 *
 * --pressure items: profile names separate with commas ("none,heavy"); a custom spec contains
 * commas itself ("heavy,watermark=0.1"), so a value with '=' is one item unless items are
 * separated with ';' ("heavy;heavy,watermark=0.1").
 */
import { invalidOption } from '../errors.js';
import type { RawValues } from './options.js';
import type { Report } from './report_model.js';

/** Options a sweep may list, slowest-varying first. */
export const SWEEP_KEYS = ['vcpus', 'levels', 'pressure', 'cache-capacity', 'clear-lock', 'split-alloc'] as const;
export type SweepKey = (typeof SWEEP_KEYS)[number];

/** Split one option's value into its items; throws naming the option for an empty item. */
export function sweepItems(key: SweepKey, raw: string): string[] {
  let items: string[];
  if (key === 'pressure') {
    if (raw.includes(';')) items = raw.split(';');
    else if (raw.includes('=')) items = [raw];
    else items = raw.split(',');
  } else {
    items = raw.split(',');
  }
  items = items.map((s) => s.trim());
  if (items.some((s) => s === '')) throw invalidOption(`--${key}`, `empty item in the list ${JSON.stringify(raw)}`);
  return items;
}

/** True when any sweepable option holds a list of more than one item (throws on an empty item). */
export function isSweep(raw: RawValues): boolean {
  return SWEEP_KEYS.some((k) => {
    const v = raw[k];
    return typeof v === 'string' && sweepItems(k, v).length > 1;
  });
}

export interface SweepRun {
  /** The raw values of this one run (every swept key holds a single item). */
  readonly raw: RawValues;
  /** The swept values of this run, for labels, grouping and CSV (only keys that were lists or compared). */
  readonly swept: Readonly<Record<string, string>>;
}

export interface ExpandOptions {
  /** --compare: sweep over these designs when --split-alloc is not given (compare order). */
  readonly compareDesigns?: readonly string[];
}

/**
 * One SweepRun per combination. A key is "swept" (reported per run) when its value is a list of
 * more than one item, or it is the design under --compare.
 */
export function expandSweep(raw: RawValues, opts: ExpandOptions = {}): SweepRun[] {
  const lists: [SweepKey, string[]][] = [];
  const shown = new Set<SweepKey>();
  for (const key of SWEEP_KEYS) {
    const v = raw[key];
    let items: string[] | undefined;
    if (typeof v === 'string') items = sweepItems(key, v);
    else if (key === 'split-alloc' && opts.compareDesigns !== undefined) items = [...opts.compareDesigns];
    if (items === undefined) continue;
    lists.push([key, items]);
    if (items.length > 1 || (key === 'split-alloc' && opts.compareDesigns !== undefined)) shown.add(key);
  }
  let combos: Record<string, string>[] = [{}];
  for (const [key, items] of lists) {
    const next: Record<string, string>[] = [];
    for (const c of combos) for (const item of items) next.push({ ...c, [key]: item });
    combos = next;
  }
  return combos.map((c) => {
    const swept: Record<string, string> = {};
    for (const k of SWEEP_KEYS) if (shown.has(k) && c[k] !== undefined) swept[k] = c[k];
    return { raw: Object.freeze({ ...raw, ...c }), swept: Object.freeze(swept) };
  });
}

export interface SweepResult<C> {
  readonly run: SweepRun;
  readonly config: C;
  readonly report: Report;
}

export interface SweepDriver<C> {
  /** Resolve and validate one run's options (throws ERR_INVALID_OPTION / ERR_TOO_BIG). */
  resolve(raw: RawValues): C;
  /** Run one emulation. */
  run(config: C, index: number, total: number): Promise<Report>;
}

/**
 * Resolve every combination first (any bad item throws before anything runs), then run them one
 * after another. A failed run rejects the whole sweep (its error names the run).
 */
export async function runSweep<C>(runs: readonly SweepRun[], driver: SweepDriver<C>): Promise<SweepResult<C>[]> {
  const configs = runs.map((r) => driver.resolve(r.raw));
  const out: SweepResult<C>[] = [];
  for (let i = 0; i < runs.length; i++) {
    const report = await driver.run(configs[i]!, i, runs.length);
    out.push({ run: runs[i]!, config: configs[i]!, report });
  }
  return out;
}
