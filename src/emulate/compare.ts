/**
 * `--compare`: the split allocation designs side by side (the question of the 2021
 * thread: "if eager splitting takes n% longer under heavy memory pressure, but vCPUs aren't
 * impacted, do we care?").
 *
 * Pure functions over the Reports of finished runs (one per design, or one per sweep combination):
 *   compareRow(report, swept)   what the table shows of one run
 *   formatCompareTables(rows)   two tables, one row per run: time and vCPU impact; lock and walk work
 *   verdictLines(rows)          one line per run against drop-always (the 6.11 design) run with the
 *                               same values of every other swept option
 *
 * Where the numbers come from (all from the Report, nothing re-measured):
 *   - split times: the split walk's seconds inside the enable op and the first CLEAR op, and in
 *     all the splitter's ops together (Report.split.splitterSplitSeconds);
 *   - "split phase": the phase in which the most huge pages were split (enable with -g, the first
 *     CLEAR with manual-protect; for lazy, the vCPU phase whose faults split the most). vCPU fault
 *     latency "during" and the lock times are that phase's; "before" is the steady-before window
 *     (vCPUs running on huge pages before dirty logging: usually no faults at all, shown as "-").
 *   - throughput change: vCPU accesses/s in the split phase against the steady-before window.
 *   - lock drops, restarts, yields, allocations under the lock: summed over the splitter's ops
 *     (enable and CLEAR phases); allocation failures and leftovers freed: the whole run (caches are
 *     released at disable).
 *   - extra SPTE reads per split: each restart re-walks from the root to the level it left,
 *     1 + 2 x (levels - level) reads (tdp_iter.ts: 1 read at the root, 2 per step down). The level
 *     is that of the splits (2M pages: 2; 1G pages: 513 splits per page, 1 at level 3 and 512 at
 *     level 2), so this is exact for allocation restarts and an estimate for cond_resched yields
 *     (which may restart from a higher level). FINDINGS.md checks it against a measured re-walk.
 */
import { corruptionFound } from './report_model.js';
import type { LatencySummary, PhaseReport, Report } from './report_model.js';
import { formatCount, formatNs, table } from './report.js';
import type { TableData } from './report.js';

/** The design every verdict compares against: the one Linux ships since 6.11. */
const BASELINE_DESIGN = 'drop-always';

export interface LatencyTriple {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface CompareRow {
  /** Unique, short: the design plus the swept values that differ between runs. */
  readonly label: string;
  readonly design: string;
  /** Swept option values of this run (long option name -> value as given), design included. */
  readonly swept: Readonly<Record<string, string>>;
  /** Seconds of the split walk inside the enable op, and inside the first CLEAR (null without manual-protect). */
  readonly enableSeconds: number;
  readonly firstClearSeconds: number | null;
  /** Seconds of the splitter ops that split (Report.split.splitterSplitSeconds). */
  readonly splitterSeconds: number;
  readonly splitPhase: string | null;
  readonly faultBefore: LatencyTriple | null;
  readonly faultDuring: LatencyTriple | null;
  readonly throughputChangePct: number | null;
  /** The splitter's hold mode in the split phase and that phase's hold percentiles. */
  readonly holdMode: 'write' | 'read' | null;
  readonly holdP99Ns: number | null;
  readonly holdMaxNs: number | null;
  readonly readWaitP99Ns: number | null;
  /** The split phase's share of vCPU time spent waiting for mmu_lock, % (null when no vCPU ran in it or the report predates it). */
  readonly lockWaitSharePct: number | null;
  /** The deepest vCPU throughput dip in the split phase, % below the baseline (the report's timeline; null without one). */
  readonly dipPct: number | null;
  readonly lockDrops: number;
  readonly restarts: number;
  readonly yields: number;
  readonly extraReadsPerSplit: number | null;
  readonly allocUnderLock: number;
  readonly allocFailures: number;
  readonly leftoverFreed: number;
  readonly splitBySplitter: number;
  readonly splitByVcpus: number;
  readonly splitEnomem: number;
  readonly invariantsOk: boolean;
  /** Runs this row summarises (medians when > 1; --repeat). */
  readonly runs: number;
  /** Run-to-run spread, (max - min) / median in %, of the split time and the vCPU fault p99 (null for one run). */
  readonly splitSpreadPct: number | null;
  readonly faultP99SpreadPct: number | null;
}

/** Reads one restart costs: back to the root, then down to `level` (1 + 2 per level). */
export function restartRewalkReads(levels: number, level: number): number {
  return 1 + 2 * (levels - level);
}

function triple(s: LatencySummary | undefined): LatencyTriple | null {
  if (s === undefined || s.count === 0) return null;
  return { count: s.count, p50: s.p50, p99: s.p99, max: s.max };
}

/** The phase that split the most huge pages (null if nothing was split), populate and disable excluded. */
function splitPhaseOf(r: Report): PhaseReport | null {
  let best: PhaseReport | null = null;
  for (const p of r.phases) {
    if (p.kind === 'populate' || p.kind === 'disable') continue;
    if (p.hugePagesSplit > 0 && (best === null || p.hugePagesSplit > best.hugePagesSplit)) best = p;
  }
  return best;
}

/** The split walk's share of an op phase (the whole op when the breakdown is missing). */
function splitSecondsOf(p: PhaseReport | undefined): number | null {
  if (p === undefined) return null;
  return p.splitSeconds ?? p.seconds;
}

export function compareRow(r: Report, swept: Readonly<Record<string, string>> = {}, label?: string): CompareRow {
  const design = String(r.config['splitAlloc'] ?? '?');
  const levels = Number(r.config['levels'] ?? 4);
  const sp = splitPhaseOf(r);
  const before = r.phases.find((p) => p.name === 'steady before' && p.vcpu !== null) ?? null;
  const ops = r.phases.filter((p) => p.kind === 'enable' || p.kind === 'clear');
  const sum = (k: 'lockDrops' | 'restarts' | 'yields' | 'allocUnderLock'): number => ops.reduce((a, p) => a + p.counters[k], 0);
  const restarts = sum('restarts');
  const splitBySplitter = r.split.splitterHugePagesSplit;
  const n2m = r.split.splits2mTo4k;
  const n1g = r.split.splits1gTo2m;
  const perRestart = n2m + n1g > 0 ? (n2m * restartRewalkReads(levels, 2) + n1g * restartRewalkReads(levels, 3)) / (n2m + n1g) : restartRewalkReads(levels, 2);
  const writeHold = sp?.mmuLock.writeHoldNs;
  const holdMode = sp === null ? null : writeHold !== undefined && writeHold.count > 0 ? 'write' : 'read';
  const hold = holdMode === 'write' ? writeHold : sp?.mmuLock.readHoldNs;
  const rateBefore = before?.vcpu?.accessesPerSecond ?? 0;
  const rateDuring = sp?.vcpu?.accessesPerSecond;
  return {
    label: label ?? design,
    design,
    swept: { 'split-alloc': design, ...swept },
    enableSeconds: splitSecondsOf(r.phases.find((p) => p.kind === 'enable')) ?? 0,
    firstClearSeconds: splitSecondsOf(r.phases.find((p) => p.kind === 'clear')),
    splitterSeconds: r.split.splitterSplitSeconds,
    splitPhase: sp?.name ?? null,
    faultBefore: triple(before?.vcpu?.faultLatencyNs.all),
    faultDuring: triple(sp?.vcpu?.faultLatencyNs.all),
    throughputChangePct: rateBefore > 0 && rateDuring !== undefined ? (rateDuring / rateBefore - 1) * 100 : null,
    holdMode,
    holdP99Ns: hold !== undefined && hold.count > 0 ? hold.p99 : null,
    holdMaxNs: hold !== undefined && hold.count > 0 ? hold.max : null,
    readWaitP99Ns: sp !== null && sp.mmuLock.readWaitNs.count > 0 ? sp.mmuLock.readWaitNs.p99 : null,
    lockWaitSharePct: sp?.vcpu?.lockWaitShare === undefined ? null : sp.vcpu.lockWaitShare * 100,
    dipPct: r.timeline?.dips.find((d) => d.phase === sp?.index)?.depthPct ?? null,
    lockDrops: sum('lockDrops'),
    restarts,
    yields: sum('yields'),
    extraReadsPerSplit: splitBySplitter > 0 ? (restarts * perRestart) / splitBySplitter : null,
    allocUnderLock: sum('allocUnderLock'),
    allocFailures: r.split.allocFailures,
    leftoverFreed: r.split.leftoverFreed,
    splitBySplitter,
    splitByVcpus: r.split.splitByVcpus,
    splitEnomem: r.split.splitEnomem,
    // Poison reads, translation errors and lost dirty pages are invariant violations too.
    invariantsOk: r.invariants.ok && corruptionFound(r).length === 0,
    runs: 1,
    splitSpreadPct: null,
    faultP99SpreadPct: null,
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** (max - min) / median, in %; null for fewer than two values or a zero median. */
export function spreadPct(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = median(xs);
  return m === 0 ? null : ((Math.max(...xs) - Math.min(...xs)) / m) * 100;
}

/**
 * One row from repeats of the same run (--repeat): every number is the median over the runs
 * (latencies percentile by percentile; a missing value counts only if all are missing), plus the
 * run-to-run spread of the split time and of the vCPU fault p99.
 */
export function medianRow(rows: readonly CompareRow[]): CompareRow {
  const first = rows[0];
  if (first === undefined) throw new Error('medianRow: no rows');
  if (rows.length === 1) return first;
  const med = (f: (r: CompareRow) => number): number => median(rows.map(f));
  const medN = (f: (r: CompareRow) => number | null): number | null => {
    const xs = rows.map(f).filter((x): x is number => x !== null);
    return xs.length === 0 ? null : median(xs);
  };
  const medLat = (f: (r: CompareRow) => LatencyTriple | null): LatencyTriple | null => {
    const xs = rows.map(f).filter((x): x is LatencyTriple => x !== null);
    if (xs.length === 0) return null;
    return { count: median(xs.map((x) => x.count)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), max: median(xs.map((x) => x.max)) };
  };
  const p99s = rows.map((r) => r.faultDuring?.p99).filter((x): x is number => x !== undefined);
  return {
    ...first,
    enableSeconds: med((r) => r.enableSeconds),
    firstClearSeconds: medN((r) => r.firstClearSeconds),
    splitterSeconds: med((r) => r.splitterSeconds),
    faultBefore: medLat((r) => r.faultBefore),
    faultDuring: medLat((r) => r.faultDuring),
    throughputChangePct: medN((r) => r.throughputChangePct),
    holdP99Ns: medN((r) => r.holdP99Ns),
    holdMaxNs: medN((r) => r.holdMaxNs),
    readWaitP99Ns: medN((r) => r.readWaitP99Ns),
    lockWaitSharePct: medN((r) => r.lockWaitSharePct),
    dipPct: medN((r) => r.dipPct),
    lockDrops: med((r) => r.lockDrops),
    restarts: med((r) => r.restarts),
    yields: med((r) => r.yields),
    extraReadsPerSplit: medN((r) => r.extraReadsPerSplit),
    allocUnderLock: med((r) => r.allocUnderLock),
    allocFailures: med((r) => r.allocFailures),
    leftoverFreed: med((r) => r.leftoverFreed),
    splitBySplitter: med((r) => r.splitBySplitter),
    splitByVcpus: med((r) => r.splitByVcpus),
    splitEnomem: med((r) => r.splitEnomem),
    invariantsOk: rows.every((r) => r.invariantsOk),
    runs: rows.length,
    splitSpreadPct: spreadPct(rows.map((r) => r.splitterSeconds)),
    faultP99SpreadPct: spreadPct(p99s),
  };
}

/**
 * Labels for a set of runs: the design, plus `key=value` for every swept option (other than the
 * design) whose value differs between runs.
 */
export function labelRows(sweptPerRun: readonly Readonly<Record<string, string>>[]): string[] {
  const keys = new Set<string>();
  for (const s of sweptPerRun) for (const k of Object.keys(s)) keys.add(k);
  const varying = [...keys].filter((k) => k !== 'split-alloc' && new Set(sweptPerRun.map((s) => s[k])).size > 1);
  return sweptPerRun.map((s) => [s['split-alloc'] ?? '?', ...varying.map((k) => `${SHORT_KEY[k] ?? k}=${s[k] ?? '-'}`)].join(' '));
}

const SHORT_KEY: Readonly<Record<string, string>> = { 'cache-capacity': 'cap', levels: 'L', vcpus: 'v', pressure: 'p', 'chunk-size': 'chunk' };

function secs(s: number | null): string {
  return s === null ? '-' : s.toFixed(4);
}

function lat(t: LatencyTriple | null): string {
  return t === null ? '-' : `${formatNs(t.p50)}/${formatNs(t.p99)}/${formatNs(t.max)}`;
}

function pct(p: number | null): string {
  return p === null ? '-' : `${p >= 0 ? '+' : ''}${p.toFixed(1)}%`;
}

function ns(n: number | null): string {
  return n === null ? '-' : formatNs(n);
}

/** The two tables as data (title, header, rows), one row per run: compare text and the HTML report. */
export function compareTablesData(rows: readonly CompareRow[]): { readonly title: string; readonly table: TableData }[] {
  const t1: TableData = {
    header: [
      'run',
      'enable split s',
      '1st clear split s',
      'all splits s',
      'split phase',
      'vCPU fault p50/p99/max before',
      'during split',
      'vCPU rate during',
      'lock wait',
      'dip',
    ],
    rows: rows.map((r) => [
      r.label,
      secs(r.enableSeconds),
      secs(r.firstClearSeconds),
      secs(r.splitterSeconds),
      r.splitPhase ?? '-',
      lat(r.faultBefore),
      lat(r.faultDuring),
      pct(r.throughputChangePct),
      r.lockWaitSharePct === null ? '-' : `${r.lockWaitSharePct.toFixed(2)}%`,
      r.dipPct === null ? '-' : `${r.dipPct.toFixed(1)}%`,
    ]),
  };
  const t2: TableData = {
    header: [
      'run',
      'lock hold p99',
      'hold max',
      'rd wait p99',
      'drops',
      'restarts',
      'yields',
      'extra reads/split',
      'alloc under lock',
      'alloc fail',
      'leftovers',
      'split (eager/vCPU)',
      'ENOMEM',
      'invariants',
    ],
    rows: rows.map((r) => [
      r.label,
      r.holdP99Ns === null ? '-' : `${formatNs(r.holdP99Ns)} (${r.holdMode === 'write' ? 'w' : 'r'})`,
      ns(r.holdMaxNs),
      ns(r.readWaitP99Ns),
      formatCount(r.lockDrops),
      formatCount(r.restarts),
      formatCount(r.yields),
      r.extraReadsPerSplit === null ? '-' : r.extraReadsPerSplit.toFixed(2),
      formatCount(r.allocUnderLock),
      formatCount(r.allocFailures),
      formatCount(r.leftoverFreed),
      `${formatCount(r.splitBySplitter)}/${formatCount(r.splitByVcpus)}`,
      formatCount(r.splitEnomem),
      r.invariantsOk ? 'ok' : 'VIOLATED',
    ]),
  };
  return [
    {
      title:
        'Time and vCPU impact (split phase = the phase that split the most; before = the steady-before window; rate = vCPU accesses/s against before; ' +
        'lock wait = share of vCPU time waiting for mmu_lock in the split phase; dip = its deepest throughput dip on the timeline)',
      table: t1,
    },
    {
      title:
        'mmu_lock and walk work (lock times of the split phase, w = write hold, r = read hold; counts over the splitter ops; extra reads/split = restarts x re-walk depth / splits)',
      table: t2,
    },
  ];
}

/** The two tables as text, one row per run. */
export function formatCompareTables(rows: readonly CompareRow[]): string[] {
  return compareTablesData(rows).flatMap((t, i) => [...(i > 0 ? [''] : []), t.title, ...table(t.table.header, t.table.rows)]);
}

/** Percent change of `x` against `base` (null when base is 0 or either is missing). */
function changePct(x: number | null, base: number | null): number | null {
  if (x === null || base === null || base === 0) return null;
  return (x / base - 1) * 100;
}

/** "; run-to-run spread 9 % and 6 %" when both rows are medians of repeats. */
function spreadNote(a: number | null, b: number | null): string {
  return a === null || b === null ? '' : `; spread ${a.toFixed(0)} % and ${b.toFixed(0)} %`;
}

/** "; vCPUs waited for mmu_lock 4.10 % of their time vs 0.20 % (dip 35.0 % vs 2.0 %)" when both runs measured it. */
function lockWaitPart(r: CompareRow, base: CompareRow): string {
  if (r.lockWaitSharePct === null || base.lockWaitSharePct === null) return '';
  const dip = r.dipPct === null || base.dipPct === null ? '' : ` (deepest dip ${r.dipPct.toFixed(1)} % vs ${base.dipPct.toFixed(1)} %)`;
  return `; vCPUs waited for mmu_lock ${r.lockWaitSharePct.toFixed(2)} % of their time in the split phase vs ${base.lockWaitSharePct.toFixed(2)} %${dip}`;
}

/** The key a run is compared within: every swept value except the design. */
function groupKey(r: CompareRow): string {
  return JSON.stringify(
    Object.entries(r.swept)
      .filter(([k]) => k !== 'split-alloc')
      .sort(),
  );
}

/**
 * One line per run against drop-always run with the same other values:
 * "cache: split took 12.3 % longer than drop-always (0.0412 s vs 0.0367 s); vCPU fault p99 changed by -4.0 % (12.1us vs 12.6us)".
 */
export function verdictLines(rows: readonly CompareRow[]): string[] {
  const baselines = new Map<string, CompareRow>();
  for (const r of rows) if (r.design === BASELINE_DESIGN && !baselines.has(groupKey(r))) baselines.set(groupKey(r), r);
  return rows.map((r) => {
    const base = baselines.get(groupKey(r));
    if (r === base) return `${r.label}: baseline (the design Linux ships since 6.11)`;
    if (base === undefined) return `${r.label}: no ${BASELINE_DESIGN} run with the same configuration to compare against`;
    const p99 = r.faultDuring?.p99 ?? null;
    const baseP99 = base.faultDuring?.p99 ?? null;
    const faultPart =
      p99 === null && baseP99 === null
        ? 'vCPU impact not measured (no vCPU faulted during splitting: --steady or --compare keeps vCPUs running)'
        : p99 === null || baseP99 === null
          ? `vCPU fault p99 not comparable (${p99 === null ? 'no vCPU faults during its split' : formatNs(p99)} vs ${baseP99 === null ? 'none' : formatNs(baseP99)})`
          : `vCPU fault p99 changed by ${pct(changePct(p99, baseP99))} (${formatNs(p99)} vs ${formatNs(baseP99)}${spreadNote(r.faultP99SpreadPct, base.faultP99SpreadPct)})`;
    if (r.splitBySplitter === 0) {
      return `${r.label}: no eager split (vCPU faults split ${formatCount(r.splitByVcpus)} huge pages); ${faultPart}`;
    }
    const d = changePct(r.splitterSeconds, base.splitterSeconds);
    const timePart =
      d === null
        ? `split took ${r.splitterSeconds.toFixed(4)} s (${BASELINE_DESIGN} split nothing)`
        : `split took ${Math.abs(d).toFixed(1)} % ${d >= 0 ? 'longer' : 'shorter'} than ${BASELINE_DESIGN} (${r.splitterSeconds.toFixed(4)} s vs ${base.splitterSeconds.toFixed(4)} s${spreadNote(r.splitSpreadPct, base.splitSpreadPct)})`;
    const medians = r.runs > 1 ? ` [medians of ${r.runs} runs]` : '';
    return `${r.label}: ${timePart}; ${faultPart}${lockWaitPart(r, base)}${medians}`;
  });
}
