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

/**
 * Which number a row reads from each run's JSON report (REPORT_SCHEMA.md): reproduce_metric.ts
 * extracts it.
 *  - `seconds`, `splitSeconds`, `cpuSeconds`: summed over the matched phases (`cpuSeconds` is the
 *    splitter's CPU time inside an op; a report without it makes the row "not runnable");
 *  - `lockWaitShare`, `onCpuShare`: the vCPUs' time waiting for mmu_lock, or on a CPU, over
 *    vCPUs x the matched phases' windows;
 *  - `dipPct`: the deepest throughput dip (timeline.dips) among the matched phases;
 *  - `spanSeconds`: wall time from the start of `enable` to the end of `disable` (phase = '').
 */
export type MetricField = 'seconds' | 'splitSeconds' | 'cpuSeconds' | 'lockWaitShare' | 'onCpuShare' | 'dipPct' | 'spanSeconds';

export interface MetricRef {
  /**
   * A phase name ('enable', 'iteration 1 dirty', 'iteration 1 clear'), a name prefix ending in
   * `*` ('iteration 1 clear*': the first pass's CLEAR calls, however many), or `kind:K` (every
   * phase of kind K: 'kind:clear').
   */
  readonly phase: string;
  readonly field: MetricField;
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
  | { readonly kind: 'within-spread' }
  /**
   * The first variant's median exceeds the second's by more than the run-to-run spread
   * (`expect: true`: the effect is there), or does not (`expect: false`: the effect is absent).
   */
  | { readonly kind: 'excess'; readonly expect: boolean };

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

// ---------------------------------------------------------------------------------------------
// The 2024 stall, scaled (reference kvm-eager-split.md §6, kvm-faults-and-dirty-tracking.md §7):
// a database guest with NX huge pages, manual-protect + initially-set, CLEARs of a stated size
// with a pause between them while the vCPUs run. Under nowait-retry (5.18-6.10) the CLEAR holds
// mmu_lock for write while it splits, dropping it only on need_resched or a failed allocation, so
// the execute faults the guest takes on the huge pages not yet split wait for it; 6.11's
// drop-always releases it for every allocation. Nothing here is tuned to reach the published 20 %:
// the oltp preset is used unchanged and the dip is reported as it comes.

const STALL_SOURCE = '6.11 change "drop mmu_lock when allocating for eager page splitting", v3 cover 20240509181133.837001-1 (20 %+ MySQL dips, 160 vCPUs)';
const STALL_SETUP = '160-vCPU MySQL VM, live migration with 1 GiB and 8 GiB CLEAR_DIRTY_LOG calls, nx_huge_pages=Y, manual-protect + initially-set';
/** The scaled stall run: the oltp preset, NX huge pages, steady vCPUs, 64M CLEAR calls 2 ms apart, three passes. */
const STALL_ARGS = ['--workload', 'oltp', '--nx-huge-pages', 'on', '--steady', '--steady-seconds', '0.5', '-k', '64M', '-l', '2', '-i', '3'] as const;
const STALL_SCALE: Scale = Object.freeze({ vcpus: 2, memoryPerVcpu: '256M', backing: 'anonymous_thp' });
const STALL_SCALING =
  '160 vCPUs -> 2 vCPUs x 256M THP (a 512 MiB guest), CLEARs of 64M (1 GiB published) 2 ms apart, so the first pass takes 8 CLEAR calls; ' +
  'on 2 cores the splitter also takes CPU from the vCPUs: the on-CPU row measures that part apart from the lock';
const STALL_VARIANTS: readonly VariantSpec[] = [
  { id: 'nowait-retry', label: '5.18-6.10: GFP_NOWAIT under mmu_lock held for write', args: EAGER_5_18, published: null },
  { id: 'drop-always', label: '6.11+: drop mmu_lock for every allocation', args: ['--split-alloc', 'drop-always'], published: null },
];
const STALL_RATIO: readonly RatioSpec[] = [{ num: 'nowait-retry', den: 'drop-always' }];

function stallRow(
  id: string,
  title: string,
  metric: MetricRef,
  judgement: Judgement,
  extra: { args?: readonly string[]; note?: string; repeats?: number } = {},
): ReproduceRow {
  return {
    id,
    title,
    source: STALL_SOURCE,
    publishedSetup: STALL_SETUP,
    publishedVcpus: 160,
    metric,
    args: [...STALL_ARGS, ...(extra.args ?? [])],
    scale: STALL_SCALE,
    scaling: STALL_SCALING,
    variants: STALL_VARIANTS,
    ratios: STALL_RATIO,
    judgement,
    calibration: false,
    // Three interleaved runs per design: the fewest that give a spread with a middle value.
    repeats: extra.repeats ?? 3,
    ...(extra.note === undefined ? {} : { note: extra.note }),
  };
}

const STALL_ROWS: readonly ReproduceRow[] = [
  stallRow(
    'stall-wait-pass1',
    'first pass: share of vCPU time waiting for mmu_lock during the CLEARs, nowait-retry above drop-always',
    { phase: 'iteration 1 clear*', field: 'lockWaitShare', label: 'vCPU mmu_lock wait / (vCPUs x CLEAR window), first pass' },
    { kind: 'excess', expect: true },
  ),
  stallRow(
    'stall-dip-pass1',
    'first pass: depth of the deepest vCPU throughput dip during the CLEARs (reported, never tuned)',
    { phase: 'iteration 1 clear*', field: 'dipPct', label: 'deepest dip vs the steady-before level (timeline)' },
    { kind: 'print-only', why: 'the depth is reported as it comes; the published 20 % is at 160 vCPUs on a real host' },
    { note: 'the same runs as stall-wait-pass1; a dip as deep as the wait share says the lock is what the vCPUs lost' },
  ),
  stallRow(
    'stall-oncpu-pass1',
    'first pass: share of vCPU time on a CPU during the CLEARs (the core-sharing part, apart from the lock)',
    { phase: 'iteration 1 clear*', field: 'onCpuShare', label: 'vCPU on-CPU time / (vCPUs x CLEAR window), first pass' },
    { kind: 'print-only', why: "on 2 cores every design shares cores with the splitter; this is that part, the wait share is the lock's" },
    { note: 'the same runs as stall-wait-pass1' },
  ),
  stallRow(
    'stall-wait-pass2',
    'later pass: the lock-wait excess is absent (nothing left to split)',
    { phase: 'iteration 2 clear*', field: 'lockWaitShare', label: 'vCPU mmu_lock wait share, second pass' },
    { kind: 'excess', expect: false },
    { note: 'the same runs as stall-wait-pass1' },
  ),
  stallRow(
    'stall-wait-g',
    'with -g (split when logging is enabled, mmu_lock for read): the lock-wait excess is absent',
    { phase: 'enable', field: 'lockWaitShare', label: 'vCPU mmu_lock wait share while enabling dirty logging' },
    { kind: 'excess', expect: false },
    // Two runs each (a spread, at the least) keep `npm run reproduce` inside its time budget.
    { args: ['-g'], repeats: 2 },
  ),
  stallRow(
    'stall-span',
    'total time from enabling to disabling dirty logging at a fixed -i, per design',
    { phase: '', field: 'spanSeconds', label: 'wall seconds from the start of enable to the end of disable' },
    { kind: 'print-only', why: 'the cost of each design to the migration as a whole, printed' },
    { note: 'the same runs as stall-wait-pass1' },
  ),
];

// ---------------------------------------------------------------------------------------------
// The April 2024 table (reference kvm-eager-split.md §6): what dropping and retaking mmu_lock
// around every 64-page word of a CLEAR (the dropped series) costs in CLEAR_DIRTY_LOG CPU time, on
// three fault models: +6 % (TDP MMU), +123 % (read lock in the fast path, "emulates KVM/arm64"),
// +5200 % (shadow MMU, slow faults under the write lock). The verdict is the same ordering (small,
// large, huge) and the same orders of magnitude; the three rows are read together.

const APR24_SOURCE = 'David Matlack, April 2024, per-word mmu_lock drops in CLEAR_DIRTY_LOG (the dropped series): CPU time table';
const APR24_SETUP = 'dirty_log_perf_test with vCPUs running during CLEARs; CLEAR_DIRTY_LOG CPU time, per-word drops against one hold';
const APR24_SCALE: Scale = Object.freeze({ vcpus: 2, memoryPerVcpu: '128M', backing: 'anonymous_thp' });

function apr24Row(model: 'tdp' | 'tdp-locked-fast' | 'shadow', publishedRatio: number, why: string): ReproduceRow {
  return {
    id: `apr24-${model}`,
    title: `CLEAR_DIRTY_LOG CPU time, --clear-lock per-word vs whole, --fault-model ${model} (published +${Math.round((publishedRatio - 1) * 100)} %)`,
    source: APR24_SOURCE,
    publishedSetup: APR24_SETUP,
    publishedVcpus: null,
    metric: { phase: 'kind:clear', field: 'cpuSeconds', label: 'splitter CPU seconds in every CLEAR_DIRTY_LOG' },
    args: ['--fault-model', model, '--steady', '--steady-seconds', '0.3', '-i', '3', ...PML],
    scale: APR24_SCALE,
    scaling: 'a 256 MiB THP guest (2 vCPUs x 128M), vCPUs running through the CLEARs (--steady); ratios only',
    variants: [
      { id: 'per-word', label: 'drop and retake mmu_lock around every 64-page word', args: ['--clear-lock', 'per-word'], published: null },
      { id: 'whole', label: 'hold mmu_lock for the whole CLEAR', args: ['--clear-lock', 'whole'], published: null },
    ],
    ratios: [{ num: 'per-word', den: 'whole', published: publishedRatio, publishedNote: why }],
    judgement: { kind: 'print-only', why: 'judged across the three fault models together (ordering and orders of magnitude)' },
    calibration: false,
    repeats: 1,
  };
}

const APR24_ROWS: readonly ReproduceRow[] = [
  apr24Row('tdp', 1.06, '(+6 %)'),
  apr24Row('tdp-locked-fast', 2.23, '(+123 %)'),
  apr24Row('shadow', 53, '(+5200 %)'),
];

/**
 * The April 2024 group's verdict: the per-word/whole CPU-time ratios of the three fault models
 * (tdp, tdp-locked-fast, shadow) rank as published (small < large < huge) and each is within an
 * order of magnitude of the published one. `ours` maps a row id to its ratio (null when it did not run).
 */
export function apr24GroupVerdict(ours: Readonly<Record<string, number | null>>): { readonly passed: boolean | null; readonly detail: string } {
  const rows = APR24_ROWS.map((r) => ({ id: r.id, published: r.ratios[0]!.published!, ours: ours[r.id] ?? null }));
  if (rows.some((r) => r.ours === null)) return { passed: null, detail: 'not every fault model ran: no group verdict' };
  const ordered = rows.every((r, i) => i === 0 || r.ours! > rows[i - 1]!.ours!);
  const magnitudes = rows.every((r) => r.ours! > 0 && Math.abs(Math.log10(r.ours!) - Math.log10(r.published)) < 1);
  const text = rows.map((r) => `${r.id} ${r.ours!.toFixed(2)}x (published ${r.published}x)`).join(', ');
  return {
    passed: ordered && magnitudes,
    detail: `${text}; ordering ${ordered ? 'as published' : 'differs'}; orders of magnitude ${magnitudes ? 'match' : 'differ'}`,
  };
}

// ---------------------------------------------------------------------------------------------
// execute_perf_test (reference kvm-faults-and-dirty-tracking.md §3): executing from memory with
// NX huge pages, 6.2's split on fault against the zap on fault before it.

const EXEC_ROW: ReproduceRow = {
  id: 'exec-nx',
  title: 'execute_perf_test: executing from memory with NX huge pages, split on fault (6.2) vs zap on fault (before)',
  source: 'split-on-fault patch (6.2), v3 20221109185905.486172-2: execute_perf_test -s anonymous_hugetlb_1gb -v96',
  publishedSetup: 'execute_perf_test -v 96 -s anonymous_hugetlb_1gb, nx_huge_pages=Y: "Executing from memory" 2.899670885 s before, 0.111965688 s after',
  publishedVcpus: 96,
  metric: { phase: 'iteration 1 dirty', field: 'seconds', label: 'Executing from memory (the first pass after populate)' },
  args: ['--workload', 'exec', '--nx-huge-pages', 'on', '-g', '-i', '2'],
  scale: { vcpus: 2, memoryPerVcpu: '1G', backing: HUGE_1G },
  scaling:
    '96 vCPUs -> 2 vCPUs x 1 GiB 1G-hugetlb (compared at a small vCPU count: the ratio is printed, the ordering judged); dirty logging is on (-g) because every run of the emulator enables it',
  variants: [
    { id: 'lazy-zap', label: 'before 6.2: zap the huge page on an execute fault', args: LAZY_ZAP, published: 2.899670885 },
    { id: 'lazy', label: '6.2+: split the huge page on an execute fault', args: LAZY, published: 0.111965688 },
  ],
  ratios: [{ num: 'lazy-zap', den: 'lazy' }],
  judgement: { kind: 'ordering-only', why: 'published at 96 vCPUs only: the ordering is judged, the ratio printed' },
  calibration: false,
  repeats: 1,
};

/** Every row, in print order. */
export const REPRODUCE_ROWS: readonly ReproduceRow[] = Object.freeze([...V1_ROWS, ...SOF_ROWS, V3_ROW, ...STALL_ROWS, ...APR24_ROWS, EXEC_ROW]);

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
