/**
 * Turn what a run collected (phase records with counter snapshots, the workers' per-phase
 * samples, final VM state) into the Report. Pure: no threads, no clocks, so it is unit-tested
 * on synthetic input.
 */
import { availableParallelism, cpus, totalmem } from 'node:os';
import { Histogram } from '../stats/histogram.js';
import type { HistogramData } from '../stats/histogram.js';
import type { PageStats } from '../vm.js';
import { splitCounterDeltas } from '../stats/worker_stats.js';
import type { RunConfig } from './config.js';
import { HOST_COSTS_CALIBRATION } from '../mmu/host_costs.js';
import { GUEST_PAGE_BYTES } from './options.js';
import { OP_CHECK } from './control.js';
import type { HostEventsResult, SplitterResult, TimingData, VcpuResult } from './messages.js';
import { formatKernel, kernelBehaviour } from '../kernel_version.js';
import { FAULT_KIND_PREFIX } from './messages.js';
import type { TimelineReport } from './timeline.js';
import { REPORT_SCHEMA_VERSION, summarize } from './report_model.js';
import { summarizeHoldPreemption } from './hold_preemption.js';
import type { IterationReport, LatencySummary, LockTimes, PageCounts, PhaseKind, PhaseReport, Report, SteadyWindow, VcpuPhaseReport } from './report_model.js';

/** What the orchestrator records per phase: counters and page stats AFTER the phase. */
export interface PhaseRecord {
  readonly name: string;
  readonly kind: PhaseKind;
  readonly iteration: number | null;
  readonly seconds: number;
  /** The phase's window as the main thread saw it (free-running vCPUs' samples fall in it). */
  readonly wallSeconds: number;
  /** vm.sumStats() after the phase (all workers). */
  readonly stats: Readonly<Record<string, number>>;
  /** The splitter's own stat slot after the phase. */
  readonly splitterStats: Readonly<Record<string, number>>;
  readonly pages: PageStats;
  readonly dirtyPages: number | null;
}

export interface BuildInput {
  readonly config: RunConfig;
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly phases: readonly PhaseRecord[];
  /** Snapshot when every worker was attached, before populate. */
  readonly baseline: Pick<PhaseRecord, 'stats' | 'splitterStats' | 'pages'>;
  readonly vcpuResults: readonly VcpuResult[];
  readonly splitter: SplitterResult;
  /** The host-events thread's result (null or absent when it did not run). */
  readonly hostEvents?: HostEventsResult | null;
  readonly finalStats: Readonly<Record<string, number>>;
  readonly rcu: { readonly gracePeriods: number; readonly callbacksQueued: number; readonly callbacksRun: number };
  readonly pool: Readonly<Record<string, number>>;
  readonly pages: PageStats;
  readonly poolTables: number;
  /** Host facts (injectable for tests). */
  readonly host?: Report['host'];
  /** The run's timeline (engine.ts samples it); absent in synthetic inputs. */
  readonly timeline?: TimelineReport;
}

/** Split counter deltas (after - before), by the counter table's JSON keys. */
const counters = splitCounterDeltas;

/** Sum of the named worker counters' deltas between two snapshots. */
function statDelta(after: Readonly<Record<string, number>>, before: Readonly<Record<string, number>>, keys: readonly string[]): number {
  let n = 0;
  for (const k of keys) n += (after[k] ?? 0) - (before[k] ?? 0);
  return n;
}

function pageCounts(p: PageStats): PageCounts {
  return { '4k': p.pages4k, '2m': p.pages2m, '1g': p.pages1g };
}

/** Merge the histogram `name` of many timing records. */
function mergeNamed(records: readonly TimingData[], name: string): Histogram {
  const h = new Histogram();
  for (const r of records) {
    const d: HistogramData | undefined = r[name];
    if (d !== undefined) h.merge(d);
  }
  return h;
}

function lockTimes(records: readonly TimingData[]): LockTimes {
  return {
    readWaitNs: summarize(mergeNamed(records, 'readWait')),
    readHoldNs: summarize(mergeNamed(records, 'readHold')),
    writeWaitNs: summarize(mergeNamed(records, 'writeWait')),
    writeHoldNs: summarize(mergeNamed(records, 'writeHold')),
  };
}

function sumOf(records: readonly TimingData[], name: string): number {
  let s = 0;
  for (const r of records) s += r[name]?.sum ?? 0;
  return s;
}

/**
 * Huge pages split between two page-stat snapshots: a 1G->2M split is pages_1g - 1 (+512 2M), a
 * 2M->4K split pages_4k + 512. Valid where leaves change only by splitting.
 */
function splitsBetween(before: PageStats, after: PageStats): { s1g: number; s2m: number } {
  return { s1g: Math.max(0, before.pages1g - after.pages1g), s2m: Math.max(0, after.pages4k - before.pages4k) / 512 };
}

/** The worker counter that counts each fault kind (guest_access.ts FaultKind; 'pml' is not a fault). */
const FAULT_KIND_COUNTERS: Readonly<Record<string, string>> = Object.freeze({
  'wp-fast': 'faultWpFast',
  'wp-slow': 'faultWpSlow',
  exec: 'faultExec',
  'first-touch': 'faultFirstTouch',
  read: 'faultRead',
});

/**
 * Fault latency by kind: the vCPUs' `fault:KIND` histograms (messages.ts FAULT_KIND_PREFIX), kinds
 * that occurred. The latencies are samples (guest_access.ts FAULT_TIMING_SAMPLE); each kind's
 * `count` is the exact number of accesses that took it, from its counter.
 */
function faultKinds(records: readonly TimingData[], counted: (key: string) => number): Record<string, LatencySummary> {
  const kinds = new Set<string>();
  for (const r of records) for (const k of Object.keys(r)) if (k.startsWith(FAULT_KIND_PREFIX)) kinds.add(k);
  const out: Record<string, LatencySummary> = {};
  for (const k of [...kinds].sort()) {
    const h = mergeNamed(records, k);
    if (h.count === 0) continue;
    const kind = k.slice(FAULT_KIND_PREFIX.length);
    const counter = FAULT_KIND_COUNTERS[kind];
    out[kind] = { ...summarize(h), count: counter === undefined ? h.count : counted(counter) };
  }
  return out;
}

function rate(n: number, seconds: number): number {
  return seconds > 0 ? n / seconds : 0;
}

function defaultHost(vcpus: number): Report['host'] {
  const cores = availableParallelism();
  return {
    cores,
    nodeVersion: process.version,
    platform: process.platform,
    arch: process.arch,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    totalMemoryBytes: totalmem(),
    vcpusPerCore: vcpus / cores,
  };
}

export function buildReport(input: BuildInput): Report {
  const cfg = input.config;
  const o = cfg.options;
  const nPhases = input.phases.length;

  // Worker samples by phase id.
  const vcpuByPhase: { accesses: number; writes: number; pagesWritten: number; timing: TimingData[]; cpuNs: number | null }[] = Array.from(
    { length: nPhases },
    () => ({
      accesses: 0,
      writes: 0,
      pagesWritten: 0,
      timing: [],
      cpuNs: 0,
    }),
  );
  const vcpuRan = new Array<boolean>(nPhases).fill(false);
  for (const r of input.vcpuResults) {
    for (const s of r.samples) {
      const b = vcpuByPhase[s.phase];
      if (b === undefined) continue; // samples after the last phase (stopping) are dropped
      b.accesses += s.accesses;
      b.writes += s.writes;
      b.pagesWritten += s.pagesWritten;
      b.timing.push(s.timing);
      b.cpuNs = b.cpuNs === null || s.cpuNs === undefined || s.cpuNs === null ? null : b.cpuNs + s.cpuNs;
      if (s.accesses > 0) vcpuRan[s.phase] = true;
    }
  }
  const splitterByPhase: TimingData[][] = Array.from({ length: nPhases }, () => []);
  const opBreakdown: { splitMs: number | null; wrprotMs: number | null }[] = Array.from({ length: nPhases }, () => ({ splitMs: null, wrprotMs: null }));
  for (const s of input.splitter.samples) {
    if (s.op !== OP_CHECK && opBreakdown[s.phase] !== undefined) opBreakdown[s.phase] = { splitMs: s.splitMs, wrprotMs: s.wrprotMs };
  }
  // The invariant check runs after the last phase (its phase id is past the end): not workload.
  for (const s of input.splitter.samples) if (s.op !== OP_CHECK) splitterByPhase[s.phase]?.push(s.timing);

  // Leaves change only by splits between populate and disable (disable zaps; faults after it map huge).
  const disableAt = input.phases.findIndex((p) => p.kind === 'disable');
  const phaseSplits = input.phases.map((p, i) => {
    const before = i === 0 ? input.baseline : input.phases[i - 1]!;
    if (p.kind === 'populate' || (disableAt >= 0 && i >= disableAt)) return { s1g: 0, s2m: 0 };
    return splitsBetween(before.pages, p.pages);
  });

  const phases: PhaseReport[] = input.phases.map((p, i) => {
    const before = i === 0 ? input.baseline : input.phases[i - 1]!;
    const v = vcpuByPhase[i]!;
    const allTiming = [...v.timing, ...splitterByPhase[i]!];
    let vcpu: VcpuPhaseReport | null = null;
    if (vcpuRan[i] === true) {
      const fast = mergeNamed(v.timing, 'faultFast');
      const slow = mergeNamed(v.timing, 'faultSlow');
      const all = new Histogram();
      all.merge(fast);
      all.merge(slow);
      // A vCPU pass is timed by the vCPUs themselves; free-running vCPUs (steady, -e) ran for
      // the phase's whole window, splitter hand-off included.
      const window = p.kind === 'populate' || (p.kind === 'dirty' && !o.steady) ? p.seconds : p.wallSeconds;
      const vcpuSeconds = window * o.vcpus;
      const lockWaitSeconds = (sumOf(v.timing, 'readWait') + sumOf(v.timing, 'writeWait')) / 1e9;
      const cpuSeconds = v.cpuNs === null ? null : v.cpuNs / 1e9;
      vcpu = {
        accesses: v.accesses,
        writes: v.writes,
        accessesPerSecond: rate(v.accesses, window),
        // Counted, not sampled (fault latencies are sampled: guest_access.ts FAULT_TIMING_SAMPLE):
        // the 'fast' accesses are the wp-fast ones, every other faulting access took a slow fault.
        fastFaults: statDelta(p.stats, before.stats, ['faultWpFast']),
        slowFaults: statDelta(p.stats, before.stats, ['faultWpSlow', 'faultExec', 'faultFirstTouch', 'faultRead']),
        faultLatencyNs: { all: summarize(all), fast: summarize(fast), slow: summarize(slow) },
        faultKinds: faultKinds(v.timing, (key) => statDelta(p.stats, before.stats, [key])),
        vcpuSeconds,
        lockWaitSeconds,
        lockWaitShare: vcpuSeconds > 0 ? lockWaitSeconds / vcpuSeconds : 0,
        cpuSeconds,
        onCpuShare: cpuSeconds === null || vcpuSeconds <= 0 ? null : cpuSeconds / vcpuSeconds,
      };
    }
    return {
      index: i,
      name: p.name,
      kind: p.kind,
      iteration: p.iteration,
      seconds: p.seconds,
      wallSeconds: p.wallSeconds,
      vcpu,
      mmuLock: lockTimes(allTiming),
      counters: counters(p.stats, before.stats),
      hugePagesSplit: phaseSplits[i]!.s1g + phaseSplits[i]!.s2m,
      splitSeconds: opBreakdown[i]!.splitMs === null ? null : opBreakdown[i]!.splitMs! / 1000,
      wrprotSeconds: opBreakdown[i]!.wrprotMs === null ? null : opBreakdown[i]!.wrprotMs! / 1000,
      pagesAfter: pageCounts(p.pages),
      dirtyPages: p.dirtyPages,
    };
  });

  // Iterations, with the dirty-log oracle.
  const byName = new Map(phases.map((p) => [p.name, p]));
  const iterations: IterationReport[] = [];
  for (let k = 1; k <= o.iterations; k++) {
    const dirtyPhase = byName.get(`iteration ${k} dirty`);
    const get = byName.get(`iteration ${k} get`);
    const clear = byName.get(`iteration ${k} clear`);
    const pagesWritten = vcpuByPhase[dirtyPhase?.index ?? -1]?.pagesWritten ?? 0;
    const dirtyPages = get?.dirtyPages ?? 0;
    // Steady vCPUs write during GET/CLEAR too: no exact oracle then.
    const expected = o.steady ? null : o.manualProtect && k === 1 ? cfg.totalPages : pagesWritten;
    iterations.push({
      iteration: k,
      dirtyMemorySeconds: dirtyPhase?.seconds ?? 0,
      getDirtyLogSeconds: get?.seconds ?? 0,
      clearDirtyLogSeconds: clear === undefined ? null : clear.seconds,
      dirtyPages,
      pagesWritten,
      expectedDirtyPages: expected,
      dirtyPagesOk: expected === null ? null : expected === dirtyPages,
    });
  }

  const secondsOf = (kind: PhaseKind): number => phases.filter((p) => p.kind === kind).reduce((a, p) => a + p.seconds, 0);
  const getTotal = secondsOf('get');
  const clearTotal = o.manualProtect ? secondsOf('clear') : null;

  // vCPU latency by phase name (JSON's vcpu.faultLatencyNs).
  const faultLatencyNs: Record<string, LatencySummary & { fast: LatencySummary; slow: LatencySummary }> = {};
  const accessesPerSecond: Record<string, number> = {};
  for (const p of phases) {
    if (p.vcpu === null) continue;
    faultLatencyNs[p.name] = { ...p.vcpu.faultLatencyNs.all, fast: p.vcpu.faultLatencyNs.fast, slow: p.vcpu.faultLatencyNs.slow };
    accessesPerSecond[p.name] = p.vcpu.accessesPerSecond;
  }

  // Whole-run lock times over every thread and phase.
  const hostTiming = input.hostEvents?.timing === undefined ? [] : [input.hostEvents.timing];
  const everyTiming = [
    ...vcpuByPhase.flatMap((b) => b.timing),
    ...input.splitter.samples.filter((s) => s.op !== OP_CHECK).map((s) => s.timing),
    ...hostTiming, // the host-events thread's holds (whole run only: it is not sampled per phase)
  ];
  const fs = input.finalStats;
  const bs = input.baseline.stats;

  // Splitting by level, from KVM's page stats (splits made on vCPU faults included), and the
  // splitter's own cost per 4K SPTE produced.
  let splits1g = 0;
  let splits2m = 0;
  let splitterSplitSeconds = 0;
  let splitterOpSeconds = 0;
  let sptes4k = 0;
  input.phases.forEach((p, i) => {
    const before = i === 0 ? input.baseline : input.phases[i - 1]!;
    const s = phaseSplits[i]!;
    splits1g += s.s1g;
    splits2m += s.s2m;
    const bySplitter = (p.splitterStats['hugePagesSplit'] ?? 0) - (before.splitterStats['hugePagesSplit'] ?? 0);
    if (bySplitter > 0) {
      splitterOpSeconds += p.seconds;
      splitterSplitSeconds += (opBreakdown[i]!.splitMs ?? p.seconds * 1000) / 1000;
      sptes4k += s.s2m * 512;
    }
  });
  const splitterSplits = (input.phases.at(-1)?.splitterStats['hugePagesSplit'] ?? 0) - (input.baseline.splitterStats['hugePagesSplit'] ?? 0);
  // The dirty-log ops' lock holds (the invariant check at the end is not part of the workload).
  const splitterTiming = input.splitter.samples.filter((s) => s.op !== OP_CHECK).map((s) => s.timing);
  const holdNs = sumOf(splitterTiming, 'readHold') + sumOf(splitterTiming, 'writeHold');

  const steady = o.steady ? steadyWindows(phases) : null;
  const totalBytes = o.vcpus * o.memoryPerVcpuBytes;
  const firstGpa = (cfg.vm.memslots[0]?.baseGfn ?? 0) * GUEST_PAGE_BYTES;
  const inv = input.splitter.invariants;

  return {
    kernel: { version: formatKernel(o.kernel), behaviour: { ...kernelBehaviour(o.kernel) }, anachronisms: o.anachronisms },
    clearCalls: input.splitter.samples.flatMap((smp) =>
      smp.clear === undefined
        ? []
        : [
            {
              phase: phases[smp.phase]?.name ?? `phase ${smp.phase}`,
              calls: smp.clear.calls,
              totalSeconds: smp.clear.totalNs / 1e9,
              maxCallSeconds: smp.clear.maxNs / 1e9,
              pauses: smp.clear.pauses,
              cpuSeconds: smp.clear.cpuNs === null ? null : smp.clear.cpuNs / 1e9,
            },
          ],
    ),
    hostEvents:
      input.hostEvents === undefined || input.hostEvents === null
        ? null
        : {
            invalidations: input.hostEvents.invalidations,
            agings: input.hostEvents.agings,
            staleLeaves: input.hostEvents.staleLeaves,
            zappedLeaves: (fs['hostZappedLeaves'] ?? 0) - (bs['hostZappedLeaves'] ?? 0),
            agedLeaves: (fs['hostAgedLeaves'] ?? 0) - (bs['hostAgedLeaves'] ?? 0),
            notifierRetries: (fs['notifierRetries'] ?? 0) - (bs['notifierRetries'] ?? 0),
            lock: lockTimes(hostTiming),
          },
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: 'kvm-eager-split-emu emulate',
    startedAt: input.startedAt,
    config: { ...o, faultInject: cfg.faultInject },
    host: input.host ?? defaultHost(o.vcpus),
    guest: {
      memoryBytes: totalBytes,
      pages4k: cfg.totalPages,
      backingPageBytes: cfg.backingPageBytes,
      backingLevel: cfg.backingLevel,
      memslots: cfg.vm.memslots,
      firstGpa,
      endGpa: firstGpa + totalBytes,
      poolTables: input.poolTables,
      footprintBytes: cfg.footprint.bytes,
    },
    phases,
    iterations,
    totals: {
      populateSeconds: secondsOf('populate'),
      enableSeconds: secondsOf('enable'),
      disableSeconds: secondsOf('disable'),
      getDirtyLogSeconds: getTotal,
      clearDirtyLogSeconds: clearTotal,
      wallSeconds: input.wallSeconds,
    },
    vcpu: { faultLatencyNs, accessesPerSecond },
    mmuLock: {
      ...lockTimes(everyTiming),
      contendedReads: (fs['lockReadContended'] ?? 0) - (bs['lockReadContended'] ?? 0),
      contendedWrites: (fs['lockWriteContended'] ?? 0) - (bs['lockWriteContended'] ?? 0),
    },
    split: {
      ...counters(fs, bs),
      hugePagesSplit: splits1g + splits2m,
      splits2mTo4k: splits2m,
      splits1gTo2m: splits1g,
      splitterHugePagesSplit: splitterSplits,
      splitter: counters(input.phases.at(-1)?.splitterStats ?? {}, input.baseline.splitterStats),
      splitterSplitSeconds,
      splitterOpSeconds,
      sptes4kProduced: sptes4k,
      nsPer4kSpte: sptes4k > 0 ? (splitterSplitSeconds * 1e9) / sptes4k : null,
      splitterLockHoldSeconds: holdNs / 1e9,
      splitterReadHoldNs: summarize(mergeNamed(splitterTiming, 'readHold')),
      splitterWriteHoldNs: summarize(mergeNamed(splitterTiming, 'writeHold')),
      splitterHoldPreemption: summarizeHoldPreemption(input.splitter.samples),
      splitByVcpus: Math.max(0, splits1g + splits2m - splitterSplits),
    },
    rcu: { gracePeriods: input.rcu.gracePeriods, deferredFrees: input.rcu.callbacksRun, callbacksQueued: input.rcu.callbacksQueued },
    pool: input.pool,
    pages: pageCounts(input.pages),
    dirtyLog: {
      ok: o.steady ? null : iterations.every((it) => it.dirtyPagesOk !== false),
      lostDirty: lostDirtyPages(iterations),
    },
    invariants: {
      ok: inv?.ok ?? false,
      violationCount: inv?.violationCount ?? 0,
      violations: inv?.violations ?? ['the invariant checker did not run'],
      seconds: inv?.seconds ?? 0,
      poisonReads: (fs['poisonReads'] ?? 0) - (bs['poisonReads'] ?? 0),
      xlateErrors: (fs['xlateErrors'] ?? 0) - (bs['xlateErrors'] ?? 0),
    },
    steady,
    hostCosts: {
      ...o.hostCosts,
      calibration: HOST_COSTS_CALIBRATION,
      spentSeconds: ((fs['hostCostNs'] ?? 0) - (bs['hostCostNs'] ?? 0)) / 1e9,
      tlbFlushes: (fs['tlbFlushes'] ?? 0) - (bs['tlbFlushes'] ?? 0),
    },
    dirtyTracking: {
      mode: o.dirtyTrack,
      pmlWrites: (fs['pmlWrites'] ?? 0) - (bs['pmlWrites'] ?? 0),
      pmlFullExits: (fs['pmlFullExits'] ?? 0) - (bs['pmlFullExits'] ?? 0),
    },
    ...(input.timeline === undefined ? {} : { timeline: input.timeline }),
  };
}

/**
 * Writes whose dirty mark never reached the bitmap: per iteration with an exact oracle, the
 * pages GET_DIRTY_LOG should have returned (the pages the vCPUs wrote in the pass, or every page
 * on iteration 1 with initially-set) minus the pages it returned, when short. A count, not a
 * page-by-page match: a spurious mark elsewhere in the same iteration would hide a lost one from
 * this figure, but not from the iteration's dirtyPagesOk. 0 where there is no oracle (steady).
 */
function lostDirtyPages(iterations: readonly IterationReport[]): number {
  let lost = 0;
  for (const it of iterations) if (it.expectedDirtyPages !== null) lost += Math.max(0, it.expectedDirtyPages - it.dirtyPages);
  return lost;
}

/**
 * Steady mode's before/during/after table: every phase in which vCPUs ran, with throughput
 * against the "steady before" window (the 2024 MySQL-dip question: do vCPUs stall while the
 * splitter holds mmu_lock?).
 */
function steadyWindows(phases: readonly PhaseReport[]): { windows: SteadyWindow[] } {
  const before = phases.find((p) => p.name === 'steady before');
  const base = before?.vcpu?.accessesPerSecond ?? 0;
  const windows = phases
    .filter((p) => p.vcpu !== null && p.kind !== 'populate')
    .map((p) => {
      const v = p.vcpu!;
      return {
        phase: p.name,
        seconds: p.wallSeconds,
        accessesPerSecond: v.accessesPerSecond,
        throughputChangePct: base > 0 ? (v.accessesPerSecond / base - 1) * 100 : null,
        faultP99Ns: v.faultLatencyNs.all.p99,
        faultMaxNs: v.faultLatencyNs.all.max,
        slowFaultP99Ns: v.faultLatencyNs.slow.p99,
        readWaitP99Ns: p.mmuLock.readWaitNs.p99,
        hugePagesSplit: p.hugePagesSplit,
      };
    });
  return { windows };
}
