/**
 * The Report: everything one emulation run measured, as plain data. report_build.ts builds it
 * from what the engine collected; the report sinks (report_sink.ts) print it as text
 * (report.ts), write it as JSON (report_json.ts; schema: REPORT_SCHEMA.md) and as CSV (csv.ts).
 * Times in `seconds` are doubles; latencies are integers of nanoseconds.
 */
import type { Histogram, Percentiles } from '../stats/histogram.js';
import type { SplitCounters } from '../stats/worker_stats.js';
import type { TimelineReport } from './timeline.js';

export const REPORT_SCHEMA_VERSION = 2;

/** How many of the splitter's mmu_lock holds the host preempted (computed by hold_preemption.ts). */
export interface HoldPreemption {
  /** Holds long enough to tell (>= minClassifiedNs wall) and, of those, preempted ones. */
  readonly classified: number;
  readonly preempted: number;
  readonly minClassifiedNs: number;
  readonly preemptedCpuFraction: number;
  /** Wall and on-CPU seconds of the preempted holds. */
  readonly preemptedWallSeconds: number;
  readonly preemptedCpuSeconds: number;
  /** The splitter's hold times without the preempted holds (with them: split.splitterReadHoldNs / WriteHoldNs). */
  readonly readHoldNotPreemptedNs: LatencySummary;
  readonly writeHoldNotPreemptedNs: LatencySummary;
  /** /proc/thread-self/schedstat reads the measurement made (its own cost, about 2.6 us each). */
  readonly cpuReads: number;
}

/** Percentiles of a latency histogram, rounded to whole ns (all 0 when count is 0). */
export type LatencySummary = Percentiles;

export function summarize(h: Histogram): LatencySummary {
  const p = h.percentiles();
  const r = (x: number): number => Math.round(x);
  return { count: p.count, p50: r(p.p50), p90: r(p.p90), p99: r(p.p99), p999: r(p.p999), max: r(p.max), mean: r(p.mean) };
}

export interface PageCounts {
  readonly '4k': number;
  readonly '2m': number;
  readonly '1g': number;
}

export type PhaseKind = 'populate' | 'enable' | 'dirty' | 'get' | 'clear' | 'disable' | 'steady';

export interface VcpuPhaseReport {
  readonly accesses: number;
  readonly writes: number;
  /** Guest accesses per second, all vCPUs together (accesses / phase seconds). */
  readonly accessesPerSecond: number;
  readonly fastFaults: number;
  readonly slowFaults: number;
  readonly faultLatencyNs: { readonly all: LatencySummary; readonly fast: LatencySummary; readonly slow: LatencySummary };
  /**
   * Fault count and latency by kind (guest_access.ts FaultKind: 'wp-fast', 'wp-slow', 'exec',
   * 'first-touch', 'read', ...), only the kinds that occurred. Absent in reports before it existed.
   */
  readonly faultKinds?: Readonly<Record<string, LatencySummary>>;
  /** vCPU time in the phase: vCPUs x the phase's window (the accessesPerSecond denominator), seconds. */
  readonly vcpuSeconds?: number;
  /** Time the vCPUs spent waiting for mmu_lock (sum of their read and write waits), seconds. */
  readonly lockWaitSeconds?: number;
  /** lockWaitSeconds / vcpuSeconds: the share of vCPU time lost waiting for mmu_lock. */
  readonly lockWaitShare?: number;
  /** The vCPU threads' on-CPU time (schedstat), seconds; null where the OS does not give it. */
  readonly cpuSeconds?: number | null;
  /** cpuSeconds / vcpuSeconds: the share of vCPU time the threads were on a CPU (below 1: sharing cores, or parked). */
  readonly onCpuShare?: number | null;
}

export interface LockTimes {
  readonly readWaitNs: LatencySummary;
  readonly readHoldNs: LatencySummary;
  readonly writeWaitNs: LatencySummary;
  readonly writeHoldNs: LatencySummary;
}

/**
 * Split walk and allocation counters, one field per 'split' row of the counter table
 * (src/stats/worker_stats.ts), named by the row's JSON key.
 */
export type { SplitCounters } from '../stats/worker_stats.js';

export interface PhaseReport {
  readonly index: number;
  /** Unique within the run: "populate", "enable", "iteration 1 dirty", "iteration 1 get", ... */
  readonly name: string;
  readonly kind: PhaseKind;
  readonly iteration: number | null;
  readonly seconds: number;
  /** The phase's window on the main thread's clock (the op plus the hand-off to the splitter). */
  readonly wallSeconds: number;
  /** null when no vCPU ran in the phase. */
  readonly vcpu: VcpuPhaseReport | null;
  /** mmu_lock wait and hold times of every thread, in this phase. */
  readonly mmuLock: LockTimes;
  /** Counter deltas over the phase, all threads. */
  readonly counters: SplitCounters;
  readonly pagesAfter: PageCounts;
  /** Huge pages split in this phase (from page stats: splits on vCPU faults included). */
  readonly hugePagesSplit: number;
  /** Enable and CLEAR phases: seconds inside the op spent in the split walk and in write protection. */
  readonly splitSeconds: number | null;
  readonly wrprotSeconds: number | null;
  /** GET_DIRTY_LOG phases: dirty pages returned. */
  readonly dirtyPages: number | null;
}

export interface IterationReport {
  readonly iteration: number;
  readonly dirtyMemorySeconds: number;
  readonly getDirtyLogSeconds: number;
  /** null without manual-protect (-g): GET clears, there is no CLEAR. */
  readonly clearDirtyLogSeconds: number | null;
  readonly dirtyPages: number;
  /** Distinct pages the vCPUs wrote in this iteration's pass. */
  readonly pagesWritten: number;
  /** What the dirty log must report: pagesWritten, or every page on iteration 1 with initially-set. */
  readonly expectedDirtyPages: number | null;
  readonly dirtyPagesOk: boolean | null;
}

export interface HostReport {
  readonly cores: number;
  readonly nodeVersion: string;
  readonly platform: string;
  readonly arch: string;
  readonly cpuModel: string;
  readonly totalMemoryBytes: number;
  readonly vcpusPerCore: number;
}

export interface GuestReport {
  readonly memoryBytes: number;
  readonly pages4k: number;
  readonly backingPageBytes: number;
  readonly backingLevel: 1 | 2 | 3;
  readonly memslots: readonly { readonly baseGfn: number; readonly npages: number }[];
  readonly firstGpa: number;
  readonly endGpa: number;
  readonly poolTables: number;
  readonly footprintBytes: number;
}

export interface SplitReport extends SplitCounters {
  /** 2M->4K splits (each produces 512 4K SPTEs) and 1G->2M splits (512 2M SPTEs). */
  readonly splits2mTo4k: number;
  readonly splits1gTo2m: number;
  /** Splits the splitter's walk made (its WS.hugePagesSplit). */
  readonly splitterHugePagesSplit: number;
  /** The same counters for the splitter thread alone (the totals include vCPU faults and cache top-ups). */
  readonly splitter: SplitCounters;
  /** Seconds the splitter spent in the split walk (lock drops and re-walks included). */
  readonly splitterSplitSeconds: number;
  /** Whole duration of the ops in which it split (enable, or the CLEARs), wrprot included. */
  readonly splitterOpSeconds: number;
  /** 4K SPTEs the splitter produced in those ops. */
  readonly sptes4kProduced: number;
  readonly nsPer4kSpte: number | null;
  /** Total time the splitter held mmu_lock (read + write), seconds. */
  readonly splitterLockHoldSeconds: number;
  readonly splitterReadHoldNs: LatencySummary;
  readonly splitterWriteHoldNs: LatencySummary;
  /** Splitter holds the host preempted (on a CPU < 1/2 their wall time) and the hold figures without them. */
  readonly splitterHoldPreemption?: HoldPreemption | null;
  /** Where splitting happened: the splitter (eager) or vCPU faults (lazy/split-on-fault). */
  readonly splitByVcpus: number;
}

export interface MmuLockReport extends LockTimes {
  readonly contendedReads: number;
  readonly contendedWrites: number;
}

export interface SteadyWindow {
  readonly phase: string;
  /** The window's length (wallSeconds of the phase). */
  readonly seconds: number;
  readonly accessesPerSecond: number;
  /** Change against the "steady before" window, percent. */
  readonly throughputChangePct: number | null;
  readonly faultP99Ns: number;
  readonly faultMaxNs: number;
  readonly slowFaultP99Ns: number;
  readonly readWaitP99Ns: number;
  readonly hugePagesSplit: number;
}

/** The release the run models (kernel_version.ts) and its version-dependent behaviours. */
export interface KernelReport {
  readonly version: string;
  readonly behaviour: Readonly<Record<string, unknown>>;
  /** Options that contradict the release without being impossible. */
  readonly anachronisms: readonly string[];
}

/** One CLEAR pass (a plan op) as -k cut it into ioctl calls. */
export interface ClearCallsReport {
  readonly phase: string;
  readonly calls: number;
  readonly totalSeconds: number;
  readonly maxCallSeconds: number;
  readonly pauses: number;
  /** CLEAR_DIRTY_LOG CPU time: the splitter's on-CPU time inside the calls (null off Linux). */
  readonly cpuSeconds: number | null;
}

export interface Report {
  /** Additive: the modelled kernel release. */
  readonly kernel?: KernelReport;
  /** Additive: per CLEAR pass, its calls (-k), pauses (-l) and CPU time. */
  readonly clearCalls?: readonly ClearCallsReport[];
  /** Additive: the host-events thread's result (null when it did not run). */
  readonly hostEvents?: {
    readonly invalidations: number;
    readonly agings: number;
    readonly staleLeaves: number;
    /** Leaf SPTEs zapped by invalidations; leaves whose A bit aging cleared. */
    readonly zappedLeaves: number;
    readonly agedLeaves: number;
    /** vCPU slow faults that retried because of an invalidation (mmu_notifier.ts). */
    readonly notifierRetries: number;
    /** The host-events thread's own mmu_lock waits and holds. */
    readonly lock: LockTimes;
  } | null;
  readonly schemaVersion: typeof REPORT_SCHEMA_VERSION;
  readonly tool: 'kvm-eager-split-emu emulate';
  readonly startedAt: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly host: HostReport;
  readonly guest: GuestReport;
  readonly phases: readonly PhaseReport[];
  readonly iterations: readonly IterationReport[];
  readonly totals: {
    readonly populateSeconds: number;
    readonly enableSeconds: number;
    readonly disableSeconds: number;
    readonly getDirtyLogSeconds: number;
    readonly clearDirtyLogSeconds: number | null;
    readonly wallSeconds: number;
  };
  readonly vcpu: {
    /** Per phase name: all faults, with fast/slow breakdowns. Only phases where vCPUs ran. */
    readonly faultLatencyNs: Readonly<Record<string, LatencySummary & { readonly fast: LatencySummary; readonly slow: LatencySummary }>>;
    readonly accessesPerSecond: Readonly<Record<string, number>>;
  };
  readonly mmuLock: MmuLockReport;
  readonly split: SplitReport;
  readonly rcu: { readonly gracePeriods: number; readonly deferredFrees: number; readonly callbacksQueued: number };
  readonly pool: Readonly<Record<string, number>>;
  readonly pages: PageCounts;
  readonly dirtyLog: {
    readonly ok: boolean | null;
    /** Pages written but missing from the dirty log (report_build.ts lostDirtyPages). */
    readonly lostDirty: number;
  };
  readonly invariants: {
    readonly ok: boolean;
    readonly violationCount: number;
    readonly violations: readonly string[];
    readonly seconds: number;
    readonly poisonReads: number;
    readonly xlateErrors: number;
  };
  readonly steady: { readonly windows: readonly SteadyWindow[] } | null;
  /** The host costs spent as real time (src/mmu/host_costs.ts), their calibration and the total spent. */
  readonly hostCosts?: HostCostsReport;
  /** Dirty tracking mode and its exits (src/mmu/pml.ts). */
  readonly dirtyTracking?: DirtyTrackingReport;
  /** Samples taken while the run went on, phase edges, and the deepest dip per phase (timeline.ts). */
  readonly timeline?: TimelineReport;
}

export interface HostCostsReport {
  readonly wpfaultNs: number;
  readonly slowfaultNs: number;
  readonly pmlfullNs: number;
  readonly tlbflushNs: number;
  readonly calibration: string;
  /** Host cost spent by every thread over the run, seconds. */
  readonly spentSeconds: number;
  /** Remote TLB flushes issued (each costs tlbflushNs). */
  readonly tlbFlushes: number;
}

export interface DirtyTrackingReport {
  readonly mode: 'pml' | 'wrprot';
  /** Guest writes logged by PML without a fault. */
  readonly pmlWrites: number;
  /** PML-full VM exits (one per 512 logged writes per vCPU, less the buffers flushed at other exits). */
  readonly pmlFullExits: number;
}

/**
 * Evidence of a corrupted MMU besides the invariant checker's own list: a walk read a freed
 * table (poison reads), a translation disagreed with the backing, a written page's dirty mark
 * never reached the bitmap. Each is an invariant violation: the run fails (exit 1) and the
 * report names it. Empty = none.
 */
export function corruptionFound(r: Report): string[] {
  const out: string[] = [];
  if (r.invariants.poisonReads > 0) out.push(`${r.invariants.poisonReads} poison read(s)`);
  if (r.invariants.xlateErrors > 0) out.push(`${r.invariants.xlateErrors} translation error(s)`);
  if (r.dirtyLog.lostDirty > 0) out.push(`${r.dirtyLog.lostDirty} lost dirty page(s)`);
  return out;
}
