/**
 * The worker protocol: two discriminated unions (on `type`), WorkerTask for every task the main
 * thread sends and WorkerResult for every result a worker returns (as piscina's
 * RequestMessage/ResponseMessage). Everything here is plain data: it crosses threads by structured clone, and
 * the SharedArrayBuffers inside `vm` and `control` arrive shared, not copied.
 *
 * Phase-by-phase coordination does not use messages: it runs over the shared control block
 * (control.ts), so vCPUs can keep running while the splitter works. A task's result comes back
 * once, when the run ends; a task that throws rejects, and the run aborts with that error.
 *
 * Errors: a worker throws `workerError(label, err)` (errors.ts, the one wire format for errors
 * crossing threads); the main thread turns it back into an EmulatorError with `errorFromWorker`.
 */
import type { HistogramData } from '../stats/histogram.js';
import type { VmShared } from '../vm.js';
import type { HoldCpuData } from '../mmu/hold_cpu.js';
import type { ControlShared } from './control.js';
import type { TraceRingData } from '../stats/trace_ring.js';

/** Test-only failure injection (env EMULATE_FAULT_INJECT), so the failure paths can be tested. */
export type FaultInjection =
  | 'vcpu-throw' // vCPU 0 throws during iteration 1's dirty pass
  | 'vcpu-exit' // vCPU 0's thread exits (process.exit in a worker ends only that thread)
  | 'vcpu-hang' // vCPU 0 parks forever during iteration 1: the watchdog must fire
  | 'splitter-throw' // the splitter throws while enabling dirty logging
  | 'splitter-hang' // the splitter parks forever while enabling dirty logging
  | 'splitter-exit' // the splitter's thread exits while enabling dirty logging (process.exit in a worker)
  | 'poison-read' // the splitter's walk counts a read of POISON_SPTE while enabling dirty logging
  | 'xlate-error' // the splitter counts a translation that disagrees with the backing while enabling
  | 'lost-dirty' // the splitter clears one dirty bit of memslot 0 just before the first GET_DIRTY_LOG
  | 'spurious-dirty' // the splitter sets the dirty bit of page 0 of memslot 0 just before the second GET_DIRTY_LOG
  | 'notifier-ignored'; // vCPU faults ignore MMU-notifier invalidations (the stale-translation detector's control)

export const FAULT_INJECTIONS: readonly FaultInjection[] = [
  'vcpu-throw',
  'vcpu-exit',
  'vcpu-hang',
  'splitter-throw',
  'splitter-hang',
  'splitter-exit',
  'poison-read',
  'xlate-error',
  'lost-dirty',
  'spurious-dirty',
  'notifier-ignored',
];

/** The region one vCPU dirties: `npages` 4K guest pages from `firstGfn` (memstress partitions). */
export interface VcpuRegion {
  readonly firstGfn: number;
  readonly npages: number;
}

export interface VcpuTask {
  readonly type: 'vcpu-task';
  readonly vcpuId: number;
  /** The Vm worker id and the run-control slot, from the run plan (run_plan.ts). */
  readonly workerId: number;
  readonly controlSlot: number;
  readonly vm: VmShared;
  readonly control: ControlShared;
  readonly region: VcpuRegion;
  /** The guest workload's name (src/workloads/workload.ts). */
  readonly workload: string;
  readonly writePercent: number;
  readonly randomAccess: boolean;
  readonly seed: number;
  readonly faultInject: FaultInjection | null;
  /** Warm the JIT on a scratch VM set up like the run before reporting ready (jit_warmup.ts); null = --jit-warmup off. */
  readonly jitWarmup: DirtyLogMode | null;
  /** --trace: this thread's trace ring capacity in records (trace_ring.ts); absent = off. */
  readonly trace?: number;
}

export interface SplitterTask {
  readonly type: 'splitter-task';
  /** The Vm worker id and the run-control slot, from the run plan (run_plan.ts). */
  readonly workerId: number;
  readonly controlSlot: number;
  readonly vm: VmShared;
  readonly control: ControlShared;
  /** MANUAL_DIRTY_LOG_PROTECT2 + INITIALLY_SET (the selftest's default; -g turns it off). */
  readonly manualProtect: boolean;
  readonly eagerSplit: boolean;
  /** A name from split_designs.ts. */
  readonly splitAlloc: string;
  /** The designs' knobs and tdp_mmu_iter_cond_resched's: see options.ts. */
  readonly split: SplitTuning;
  readonly faultInject: FaultInjection | null;
  /** As VcpuTask.jitWarmup. */
  readonly jitWarmup: DirtyLogMode | null;
  /** -k: CLEAR calls of this many pages (0: one call per memslot); -l: ms between calls; --clear-lock. */
  readonly clearChunkPages?: number;
  readonly clearDelayMs?: number;
  readonly clearLock?: 'whole' | 'per-word';
  /** As VcpuTask.trace. */
  readonly trace?: number;
}

/** The host-events thread's task (workers/host_events.worker.ts). */
export interface HostEventsTask {
  readonly type: 'host-events-task';
  readonly workerId: number;
  readonly controlSlot: number;
  readonly vm: VmShared;
  readonly control: ControlShared;
  readonly seed: number;
  /** Events per second and sizes (host_events.ts). */
  readonly invalidatePerSec: number;
  readonly invalidatePages: number;
  readonly invalidateUs: number;
  readonly agePerSec: number;
  readonly agePages: number;
  /** Lock mode of kvm_age_gfn (--kernel, or the profile's override). */
  readonly agingLock: 'write' | 'rcu';
  /** The NX huge page recovery worker, for its event-table entry (host_events.worker.ts): its period
   * (kvm.nx_huge_pages_recovery_period_ms, 0 meaning 3,600,000 / ratio 60 = 60 s), its lock mode
   * (write through 6.17, read from 6.18) and whether it skips dirty-logged memslots (6.2+). */
  readonly nxRecoveryPeriodMs: number;
  readonly nxRecoveryLock: 'write' | 'read';
  readonly nxRecoverySkipsDirtyLogged: boolean;
  /** Guest memory [firstGfn, firstGfn + totalPages) and the backing page, in 4K pages. */
  readonly firstGfn: number;
  readonly totalPages: number;
  readonly backingPages: number;
  /** As VcpuTask.trace. */
  readonly trace?: number;
}

export interface HostEventsResult {
  readonly type: 'host-events-result';
  readonly invalidations: number;
  readonly agings: number;
  /** Stale leaves found when invalidations ended (must be 0). */
  readonly staleLeaves: number;
  /** Its mmu_lock waits and holds over the whole run. */
  readonly timing: TimingData;
  /** --trace: what the thread recorded (trace_ring.ts). */
  readonly trace?: TraceRingData;
}

/** One CLEAR_DIRTY_LOG pass (one CLEAR op of the plan) as -k cut it into calls. */
export interface ClearCallFigures {
  /** Ioctl calls made (ceil(slot pages / chunk) per memslot). */
  readonly calls: number;
  readonly totalNs: number;
  readonly maxNs: number;
  /** -l pauses taken (between calls, never after the last). */
  readonly pauses: number;
  /** The splitter's on-CPU time inside the calls (schedstat), ns; null where the OS gives none. */
  readonly cpuNs: number | null;
}

/** How a worker's dirty-logging calls are set up (jit_warmup.ts runs them on a scratch VM). */
export interface DirtyLogMode {
  /** MANUAL_DIRTY_LOG_PROTECT2 + INITIALLY_SET (the selftest's default; -g turns it off). */
  readonly manualProtect: boolean;
  readonly eagerSplit: boolean;
  readonly splitAlloc: string;
  /** Design knobs and cond_resched; the designs' defaults when absent. */
  readonly split?: SplitTuning;
}

/** How the splitter runs the split walk: design parameters and cond_resched. */
export interface SplitTuning {
  readonly cacheCapacity: number;
  readonly chunkPages: number;
  readonly reschedMs: number;
  readonly yieldOnContention: boolean;
}

/** Histograms (ns) a worker recorded in one phase, by name: faultFast, faultSlow, readWait, ... */
export type TimingData = Readonly<Record<string, HistogramData>>;

/** A vCPU's fault latency of one kind (guest_access.ts FaultKind) is the timing entry `fault:KIND`. */
export const FAULT_KIND_PREFIX = 'fault:';

/** What one vCPU did in one phase. */
export interface VcpuPhaseSample {
  readonly phase: number;
  readonly accesses: number;
  readonly writes: number;
  /** Distinct pages written in this phase's passes (the oracle for the dirty log). */
  readonly pagesWritten: number;
  /** Complete passes over the region finished in this phase. */
  readonly passes: number;
  readonly timing: TimingData;
  /** The vCPU thread's on-CPU ns over the phase (schedstat); null or absent where unknown. */
  readonly cpuNs?: number | null;
}

export interface VcpuResult {
  readonly type: 'vcpu-result';
  readonly vcpuId: number;
  readonly samples: readonly VcpuPhaseSample[];
  /** --trace: what the thread recorded (trace_ring.ts). */
  readonly trace?: TraceRingData;
}

/** One splitter op (an "ioctl"), timed by the splitter itself. */
export interface SplitterOpSample {
  readonly phase: number;
  readonly op: number;
  readonly ns: number;
  /** GET_DIRTY_LOG: dirty pages returned over all memslots. */
  readonly dirtyPages: number | null;
  /** Enable and CLEAR: ms spent in the split walk (lock drops included) and in write protection. */
  readonly splitMs: number | null;
  readonly wrprotMs: number | null;
  readonly timing: TimingData;
  /** The op's mmu_lock holds: on-CPU vs wall time, preempted ones flagged (null where the OS gives no thread CPU time). */
  readonly holdCpu?: HoldCpuData | null;
  /** CLEAR: its calls (-k), pauses (-l) and CPU time. */
  readonly clear?: ClearCallFigures;
}

export interface InvariantVerdict {
  readonly ok: boolean;
  /** Total violations found (the list below is capped). */
  readonly violationCount: number;
  readonly violations: readonly string[];
  readonly seconds: number;
}

export interface SplitterResult {
  readonly type: 'splitter-result';
  readonly samples: readonly SplitterOpSample[];
  readonly invariants: InvariantVerdict | null;
  /** --trace: what the thread recorded (trace_ring.ts). */
  readonly trace?: TraceRingData;
}

export type WorkerTask = VcpuTask | SplitterTask | HostEventsTask;
export type WorkerResult = VcpuResult | SplitterResult | HostEventsResult;

/** Re-exported for the worker files: the format itself lives in errors.ts. */
export { workerError } from '../errors.js';

export function parseFaultInjection(raw: string | undefined): FaultInjection | null {
  if (raw === undefined || raw === '') return null;
  if ((FAULT_INJECTIONS as readonly string[]).includes(raw)) return raw as FaultInjection;
  throw new Error(`EMULATE_FAULT_INJECT must be one of ${FAULT_INJECTIONS.join(', ')}, got ${JSON.stringify(raw)}`);
}
