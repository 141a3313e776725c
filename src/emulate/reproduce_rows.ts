/**
 * The rows of `npm run reproduce`: each published comparison the emulator should reproduce, as data.
 *
 * A row names its source, the published seconds of each variant (the "before" and "after" kernels,
 * or the designs compared), the emulator arguments of its scaled run, which phase metric of the
 * JSON report it reads, how it is judged, and whether its figures fed the host-cost calibration.
 * reproduce.ts runs the rows, reproduce_verdict.ts judges them; nothing here runs anything.
 *
 * Scaling. The published runs used up to 96 vCPUs with 1 GiB each, on hosts with as many cores.
 * This machine has 2 cores, so each row runs fewer vCPUs (and, at 16 and 32, less memory per
 * vCPU) and keeps the backing page size. Seconds do not carry over; ratios between variants of
 * the same run shape do (a per-page cost over the same number of pages). Each row's `scaling`
 * says what changed.
 *
 * Kernel versions the variants model:
 *  - "before" of the 2021 v1 cover and "eps=N before" of the 6.2 split-on-fault patch: no eager
 *    split, the pre-6.2 fault path that zaps the huge SPTE and maps one 4K page per fault
 *    (`--split-alloc lazy-zap`);
 *  - "eps=N after": 6.2+ split on fault, under mmu_lock for read (`--split-alloc lazy`);
 *  - "after" / "eps=Y": eager splitting as it allocated from 5.18 to 6.10, GFP_NOWAIT under
 *    mmu_lock, dropping it to retry with GFP_KERNEL (`--split-alloc nowait-retry`);
 *  - the 6.11 cover compares 6.11's `drop-always` with that `nowait-retry`.
 * Dirty tracking is Intel PML (`--dirty-track pml`), which the x86 figures most likely used: a
 * write to a writable 4K SPTE whose D bit is clear does not exit.
 */
import type { BackingName } from './options.js';

/** Which number a row reads from each run's JSON report (REPORT_SCHEMA.md, `phases[]`). */
export interface MetricRef {
  /** A phase name: 'enable', 'iteration 1 dirty', 'iteration 1 clear', ... */
  readonly phase: string;
  /** `seconds` is the selftest's figure; `splitSeconds` the split walk inside an enable or CLEAR op. */
  readonly field: 'seconds' | 'splitSeconds';
  /** How the selftest (or the cover letter) names it. */
  readonly label: string;
}

/** vCPUs, memory per vCPU and backing of a scaled run (`-v`, `-b`, `-s`). */
export interface Scale {
  readonly vcpus: number;
  /** An emulator size string: `1G`, `256M`. */
  readonly memoryPerVcpu: string;
  readonly backing: BackingName;
}

export interface VariantSpec {
  /** Short name used in orderings and ratios: `before`, `after`, `lazy-zap`, `eager`. */
  readonly id: string;
  /** What it models, for the printout. */
  readonly label: string;
  /** Emulator arguments that make this variant (added after the row's shared arguments). */
  readonly args: readonly string[];
  /** The published seconds, or null when the source gives no figure. */
  readonly published: number | null;
}

/** A ratio between two variants' metrics; `published` overrides the one derived from their figures. */
export interface RatioSpec {
  readonly num: string;
  readonly den: string;
  readonly published?: number;
  /** Why `published` is what it is, when it is not derived. */
  readonly publishedNote?: string;
}

/**
 * How a row is judged:
 *  - `ordering-and-factor`: the variants rank in the same order as published and every ratio is
 *    within `factor` of the published one (the goal at the same vCPU count);
 *  - `ordering-only`: the ranking alone; ratios are printed (published at a vCPU count we cannot run);
 *  - `print-only`: no verdict (a scaled vCPU count the goal does not cover);
 *  - `within-spread`: the first two variants' medians differ by less than the run-to-run spread
 *    over interleaved repeats (a published "no regression").
 */
export type Judgement =
  | { readonly kind: 'ordering-and-factor'; readonly factor: number }
  | { readonly kind: 'ordering-only'; readonly why: string }
  | { readonly kind: 'print-only'; readonly why: string }
  | { readonly kind: 'within-spread' };

export interface ReproduceRow {
  /** Stable id (`--rows` selects by prefix). */
  readonly id: string;
  /** One line: what is compared. */
  readonly title: string;
  /** Where the published figures come from. */
  readonly source: string;
  /** The published setup, as stated or inferred. */
  readonly publishedSetup: string;
  /** The published vCPU count the row's figures belong to. */
  readonly publishedVcpus: number | null;
  readonly metric: MetricRef;
  /** Arguments every variant shares, apart from the scale (`-g`, `-w 5`, `-i 3`, `--dirty-track pml`). */
  readonly args: readonly string[];
  readonly scale: Scale;
  /** How the published setup was scaled to `scale`, for the printout and the JSON. */
  readonly scaling: string;
  readonly variants: readonly VariantSpec[];
  readonly ratios: readonly RatioSpec[];
  readonly judgement: Judgement;
  /** Its published figures fed the host-cost calibration: printed, never counted as reproduced. */
  readonly calibration: boolean;
  /** Runs per variant and column (medians); repeats are interleaved across variants. */
  readonly repeats: number;
  /** The `--quick` version (tiny scale, fewer repeats), or undefined if `--quick` skips the row. */
  readonly quick?: { readonly scale: Scale; readonly repeats: number };
  /** Anything else the reader needs. */
  readonly note?: string;
}

/**
 * The columns every row is run in: the default (host costs calibrated from the references) and
 * the bare emulator, so that each ratio can be read with and without the modelled host costs.
 */
export interface ColumnSpec {
  readonly id: 'calibrated' | 'bare';
  readonly label: string;
  readonly args: readonly string[];
}

export const COLUMNS: readonly ColumnSpec[] = Object.freeze([
  { id: 'calibrated', label: 'host costs calibrated (default)', args: [] },
  { id: 'bare', label: '--host-costs none', args: ['--host-costs', 'none'] },
]);

// ---------------------------------------------------------------------------------------------
// Shared pieces

const HUGE_1G = 'anonymous_hugetlb_1gb' as const;
const QUICK_SCALE: Scale = Object.freeze({ vcpus: 2, memoryPerVcpu: '32M', backing: 'anonymous_hugetlb_2mb' });

const PML = ['--dirty-track', 'pml'] as const;
const LAZY_ZAP = ['--split-alloc', 'lazy-zap'] as const;
const LAZY = ['--split-alloc', 'lazy'] as const;
/** Eager splitting as the 2021 series and 6.2 allocated (5.18 to 6.10). */
const EAGER_5_18 = ['--split-alloc', 'nowait-retry'] as const;

const V1_SOURCE = 'TDP MMU eager splitting series v1 cover, 2021-12-13 (same tables in v2)';
const V1_SETUP = 'dirty_log_perf_test -v 96 -b 1G -s anonymous_hugetlb_1gb, -i 3 or more';
const V1_SCALE: Scale = Object.freeze({ vcpus: 8, memoryPerVcpu: '1G', backing: HUGE_1G });
const V1_SCALING = '96 vCPUs x 1 GiB 1G-hugetlb -> 8 vCPUs x 1 GiB 1G-hugetlb (2 cores); ratios carry over, seconds do not';
const V1_WHY = 'published at 96 vCPUs only: the ordering is judged, the ratio printed';

function v1Variants(before: number, after: number): VariantSpec[] {
  return [
    { id: 'before', label: 'no eager split, pre-6.2 zap on fault', args: LAZY_ZAP, published: before },
    { id: 'after', label: 'eager split (5.18-6.10 allocation)', args: EAGER_5_18, published: after },
  ];
}

// ---------------------------------------------------------------------------------------------
// v1 cover rows (reference kvm-eager-split.md §3.1)

const V1_ROWS: readonly ReproduceRow[] = [
  {
    id: 'v1-g-enable',
    title: 'enabling dirty logging time, -g (split when logging is enabled)',
    source: V1_SOURCE,
    publishedSetup: `${V1_SETUP}, -g`,
    publishedVcpus: 96,
    metric: { phase: 'enable', field: 'seconds', label: 'Enabling dirty logging time' },
    args: ['-g', '-i', '2', ...PML],
    scale: V1_SCALE,
    scaling: V1_SCALING,
    variants: v1Variants(0.001683739, 1.546904175),
    ratios: [{ num: 'after', den: 'before' }],
    judgement: { kind: 'ordering-only', why: V1_WHY },
    calibration: false,
    repeats: 1,
    quick: { scale: QUICK_SCALE, repeats: 1 },
  },
  {
    id: 'v1-g-dirty1',
    title: 'iteration 1 dirty memory time, -g',
    source: V1_SOURCE,
    publishedSetup: `${V1_SETUP}, -g`,
    publishedVcpus: 96,
    metric: { phase: 'iteration 1 dirty', field: 'seconds', label: 'Iteration 1 dirty memory time' },
    args: ['-g', '-i', '2', ...PML],
    scale: V1_SCALE,
    scaling: V1_SCALING,
    variants: v1Variants(2.943733325, 0.145979748),
    ratios: [{ num: 'before', den: 'after' }],
    judgement: { kind: 'ordering-only', why: V1_WHY },
    calibration: false,
    repeats: 1,
    quick: { scale: QUICK_SCALE, repeats: 1 },
    note: 'the same runs as v1-g-enable',
  },
  {
    id: 'v1-is-clear1',
    title: 'iteration 1 clear dirty log time, manual-protect + initially-set (split in the first CLEAR)',
    source: V1_SOURCE,
    publishedSetup: V1_SETUP,
    publishedVcpus: 96,
    metric: { phase: 'iteration 1 clear', field: 'seconds', label: 'Iteration 1 clear dirty log time' },
    args: ['-i', '3', ...PML],
    scale: V1_SCALE,
    scaling: V1_SCALING,
    variants: v1Variants(0.049572219, 1.667811687),
    ratios: [{ num: 'after', den: 'before' }],
    judgement: { kind: 'ordering-only', why: V1_WHY },
    calibration: false,
    repeats: 1,
    quick: { scale: QUICK_SCALE, repeats: 1 },
  },
  {
    id: 'v1-is-dirty2',
    title: 'iteration 2 dirty memory time, initially-set',
    source: V1_SOURCE,
    publishedSetup: V1_SETUP,
    publishedVcpus: 96,
    metric: { phase: 'iteration 2 dirty', field: 'seconds', label: 'Iteration 2 dirty memory time' },
    args: ['-i', '3', ...PML],
    scale: V1_SCALE,
    scaling: V1_SCALING,
    variants: v1Variants(2.751442902, 0.127016504),
    ratios: [{ num: 'before', den: 'after' }],
    judgement: { kind: 'ordering-only', why: V1_WHY },
    calibration: false,
    repeats: 1,
    quick: { scale: QUICK_SCALE, repeats: 1 },
    note: 'the same runs as v1-is-clear1',
  },
  {
    id: 'v1-is-clear3',
    title: 'iteration 3 clear dirty log time, initially-set: "about 4% slower" after (it walks for pages to split)',
    source: V1_SOURCE,
    publishedSetup: V1_SETUP,
    publishedVcpus: 96,
    metric: { phase: 'iteration 3 clear', field: 'seconds', label: 'Iteration 3 clear dirty log time' },
    args: ['-i', '3', ...PML],
    scale: V1_SCALE,
    scaling: V1_SCALING,
    variants: v1Variants(1.374501209, 1.422478617),
    ratios: [{ num: 'after', den: 'before' }],
    judgement: { kind: 'ordering-only', why: V1_WHY },
    calibration: false,
    repeats: 1,
    quick: { scale: QUICK_SCALE, repeats: 1 },
    note: 'the same runs as v1-is-clear1; a 3.5 % published difference, so one run per variant decides the ordering only if the noise is smaller (--repeat N takes medians)',
  },
];

// ---------------------------------------------------------------------------------------------
// Split-on-fault rows (reference kvm-eager-split.md §3.3): eps=N before / eps=N after / eps=Y,
// "Iteration 1 dirty memory time", ept=Y tdp_mmu=Y.

const SOF_SOURCE = 'split-on-fault patch (6.2), v3 20221109185905.486172-1, ept=Y tdp_mmu=Y';

/** Published [eps=N before, eps=N after, eps=Y] seconds by write percentage and vCPU count. */
const SOF_PUBLISHED: Readonly<Record<5 | 100, Readonly<Record<number, readonly [number, number, number]>>>> = {
  5: {
    2: [0.332305091, 0.019615027, 0.006108211],
    8: [0.453938562, 0.019748246, 0.006610997],
    16: [0.719095024, 0.019972171, 0.007757889],
    32: [1.698727124, 0.021361615, 0.012274432],
  },
  100: {
    2: [0.317710329, 0.296204596, 0.058689782],
    8: [0.386025681, 0.29727446, 0.060399702],
    16: [0.791462524, 0.298942578, 0.062508699],
    32: [1.719646014, 0.313101996, 0.075984855],
  },
};

/**
 * The scaled guest per published vCPU count: 1 GiB per vCPU where it fits the time budget (2 and
 * 8), a 4 GiB guest at 16 and 32 (256M and 128M per vCPU).
 */
const SOF_SCALE: Readonly<Record<number, Scale>> = {
  2: { vcpus: 2, memoryPerVcpu: '1G', backing: HUGE_1G },
  8: { vcpus: 8, memoryPerVcpu: '1G', backing: HUGE_1G },
  16: { vcpus: 16, memoryPerVcpu: '256M', backing: HUGE_1G },
  32: { vcpus: 32, memoryPerVcpu: '128M', backing: HUGE_1G },
};

/** vCPU counts the goal judges (same count as published); larger ones are printed only. */
const SOF_JUDGED = new Set([2, 8]);

function sofRow(writes: 5 | 100, vcpus: number): ReproduceRow {
  const [before, after, eager] = SOF_PUBLISHED[writes][vcpus]!;
  const scale = SOF_SCALE[vcpus]!;
  const judged = SOF_JUDGED.has(vcpus);
  // The 2-vCPU 100 %-writes figures gave the host costs their values (kvm-faults-and-dirty-tracking.md §8).
  const calibration = writes === 100 && vcpus === 2;
  const row: ReproduceRow = {
    id: `sof-w${writes}-v${vcpus}`,
    title: `split on fault, ${writes} % writes, ${vcpus} vCPUs: eps=N before / eps=N after / eps=Y`,
    source: SOF_SOURCE,
    publishedSetup:
      `dirty_log_perf_test -v ${vcpus} -w ${writes}; size and backing not stated (1 GiB per vCPU and 1G hugetlb assumed, ` +
      "as in the series' other tests); -g inferred (with initially-set the first pass takes no fault, so eps could not matter)",
    publishedVcpus: vcpus,
    metric: { phase: 'iteration 1 dirty', field: 'seconds', label: 'Iteration 1 dirty memory time' },
    args: ['-g', '-i', '2', '-w', `${writes}`, ...PML],
    scale,
    scaling:
      scale.memoryPerVcpu === '1G'
        ? `${vcpus} vCPUs x 1 GiB 1G-hugetlb, as published (assumed); seconds still do not carry over (2 cores)`
        : `${vcpus} vCPUs x 1 GiB -> ${vcpus} vCPUs x ${scale.memoryPerVcpu} 1G-hugetlb (a 4 GiB guest; ${vcpus} threads on 2 cores)`,
    variants: [
      { id: 'lazy-zap', label: 'eps=N before (pre-6.2 zap on fault)', args: LAZY_ZAP, published: before },
      { id: 'lazy', label: 'eps=N after (6.2+ split on fault)', args: LAZY, published: after },
      { id: 'eager', label: 'eps=Y (eager, 5.18-6.10 allocation)', args: EAGER_5_18, published: eager },
    ],
    ratios: [
      { num: 'lazy-zap', den: 'eager' },
      { num: 'lazy', den: 'eager' },
    ],
    judgement: judged ? { kind: 'ordering-and-factor', factor: 2 } : { kind: 'print-only', why: `${vcpus} vCPUs on 2 cores: printed without a verdict` },
    calibration,
    repeats: 1,
    ...(vcpus === 2 && writes === 5 ? { quick: { scale: QUICK_SCALE, repeats: 1 } } : {}),
    ...(calibration ? { note: 'its per-page costs (0.22 / 0.91 / 1.21 us) calibrated the host costs: calibration point, not counted as reproduced' } : {}),
  };
  return row;
}

const SOF_ROWS: readonly ReproduceRow[] = ([5, 100] as const).flatMap((w) => [2, 8, 16, 32].map((v) => sofRow(w, v)));

// ---------------------------------------------------------------------------------------------
// The 6.11 cover (reference kvm-eager-split.md §6): uncontended, dropping mmu_lock for every
// allocation "does not regress the time it takes to perform eager page splitting".

const V3_ROW: ReproduceRow = {
  id: 'v3-drop-always',
  title: 'uncontended split time: drop-always (6.11) against nowait-retry (5.18-6.10), "does not regress"',
  source: '6.11 change "drop mmu_lock when allocating for eager page splitting", v3 cover 20240509181133.837001-1',
  publishedSetup: 'dirty_log_perf_test (no vCPUs run during splitting); size not stated; no figures, only "does not regress"',
  publishedVcpus: null,
  metric: { phase: 'iteration 1 clear', field: 'splitSeconds', label: 'split walk inside the first CLEAR' },
  args: ['-i', '2'],
  scale: { vcpus: 2, memoryPerVcpu: '2G', backing: HUGE_1G },
  scaling: 'a 4 GiB 1G-hugetlb guest (2 vCPUs x 2G), split in the first CLEAR under mmu_lock for write, vCPUs idle',
  variants: [
    { id: 'drop-always', label: '6.11+: drop mmu_lock for every allocation', args: ['--split-alloc', 'drop-always'], published: null },
    { id: 'nowait-retry', label: '5.18-6.10: GFP_NOWAIT under mmu_lock', args: ['--split-alloc', 'nowait-retry'], published: null },
  ],
  ratios: [{ num: 'drop-always', den: 'nowait-retry', published: 1, publishedNote: '"does not regress"' }],
  judgement: { kind: 'within-spread' },
  calibration: false,
  repeats: 9,
  quick: { scale: { vcpus: 1, memoryPerVcpu: '64M', backing: 'anonymous_hugetlb_2mb' }, repeats: 2 },
  note: 'dirty tracking is left at its default: the split walk does not depend on it',
};

/** Every row, in print order. */
export const REPRODUCE_ROWS: readonly ReproduceRow[] = Object.freeze([...V1_ROWS, ...SOF_ROWS, V3_ROW]);

/** What `--quick` ran a row at, for the printout. */
export function quickScalingNote(row: ReproduceRow): string {
  const s = row.quick?.scale ?? row.scale;
  return `--quick: ${s.vcpus} vCPU(s) x ${s.memoryPerVcpu} of ${s.backing} (a smoke test of the harness; its figures mean nothing)`;
}

/** `-v N -b SIZE -s BACKING` for a scale. */
function scaleArgs(scale: Scale): string[] {
  return ['-v', `${scale.vcpus}`, '-b', scale.memoryPerVcpu, '-s', scale.backing];
}

/** The emulator arguments of one run (without the `--json FILE -q` the harness adds). */
export function runArgs(row: ReproduceRow, variant: VariantSpec, column: ColumnSpec, quick: boolean): string[] {
  const scale = quick && row.quick !== undefined ? row.quick.scale : row.scale;
  return [...scaleArgs(scale), ...row.args, ...variant.args, ...column.args];
}

// ---------------------------------------------------------------------------------------------
// The run plan: which emulator runs the selected rows need, in what order.

/** One emulator run; rows that need the same arguments and repeat share it. */
export interface PlannedRun {
  /** The arguments and the repeat index, as one string (the dedup key). */
  readonly key: string;
  readonly args: readonly string[];
  readonly repeat: number;
  /** Every (row, variant, column) this run serves, first one first. */
  readonly uses: readonly { readonly rowId: string; readonly variantId: string; readonly columnId: ColumnSpec['id'] }[];
}

/** The dedup key of a run: its arguments and its repeat index. */
export function runKey(args: readonly string[], repeat: number): string {
  return `${repeat}\u0000${args.join('\u0000')}`;
}

/** The repeats a row gets: its own (or its quick one), raised to `minRepeats`. */
export function rowRepeats(row: ReproduceRow, quick: boolean, minRepeats: number): number {
  const own = quick && row.quick !== undefined ? row.quick.repeats : row.repeats;
  return Math.max(own, minRepeats);
}

/**
 * The runs of `rows`, sequential and interleaved: repeat 0 of every row (each column, each
 * variant), then repeat 1 of the rows that have one, and so on, so that the variants a
 * within-spread row compares alternate and share whatever the host was doing. Identical
 * arguments at the same repeat run once.
 */
export function planRuns(rows: readonly ReproduceRow[], columns: readonly ColumnSpec[], quick: boolean, minRepeats: number): PlannedRun[] {
  const byKey = new Map<string, { args: string[]; repeat: number; uses: PlannedRun['uses'][number][] }>();
  const maxRepeats = Math.max(0, ...rows.map((r) => rowRepeats(r, quick, minRepeats)));
  for (let repeat = 0; repeat < maxRepeats; repeat++) {
    for (const row of rows) {
      if (repeat >= rowRepeats(row, quick, minRepeats)) continue;
      for (const column of columns) {
        for (const variant of row.variants) {
          const args = runArgs(row, variant, column, quick);
          const key = runKey(args, repeat);
          let run = byKey.get(key);
          if (run === undefined) {
            run = { args, repeat, uses: [] };
            byKey.set(key, run);
          }
          run.uses.push({ rowId: row.id, variantId: variant.id, columnId: column.id });
        }
      }
    }
  }
  return [...byKey.entries()].map(([key, r]) => ({ key, args: r.args, repeat: r.repeat, uses: r.uses }));
}

/** Select rows by id prefix (`--rows v1,sof-w5`); every row when `prefixes` is empty. */
export function selectRows(rows: readonly ReproduceRow[], prefixes: readonly string[], quick: boolean): ReproduceRow[] {
  return rows.filter((r) => (!quick || r.quick !== undefined) && (prefixes.length === 0 || prefixes.some((p) => r.id.startsWith(p))));
}
