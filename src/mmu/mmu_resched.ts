/**
 * Holding mmu_lock (+ RCU) across a long walk, with KVM's tdp_mmu_iter_cond_resched (§1.9).
 *
 * A YieldSafe walk (split, zap, recover, write-protect) owns one MmuLockHolder. The caller already
 * holds mmu_lock in `shared` (read) or exclusive (write) mode; the walk takes RCU inside it. The
 * holder drops and retakes both in KVM's order (RCU is always nested inside mmu_lock).
 *
 * need_resched(): the kernel sets TIF_NEED_RESCHED only when another task wants this CPU, at the
 * scheduler tick that finds the holder's slice used up. We model both halves:
 *   - another thread of the run is runnable and waiting for a core: the threads that are runnable
 *     (SCHED_RUNNABLE in the VM's control memory: every worker thread counts itself while it runs,
 *     see setRunnable; the walk's own thread counts whether or not it registered) exceed the
 *     host's cores (VmConfig.hostCores, else os.availableParallelism());
 *   - the time slice ran out: the lock has been held `reschedMs` (a tick) since it was (re)taken.
 * So a splitter on an idle host (vCPUs parked) never yields, and with 8 busy vCPUs on 2 cores it
 * yields once per tick. rwlock_needbreak() (`yieldOnContention`, a preemptible kernel) is apart:
 * someone is queued on mmu_lock.
 */
import { availableParallelism } from 'node:os';
import type { Vm } from '../vm.js';
import { invariantViolation } from '../errors.js';
import { SCHED_RUNNABLE } from '../layout.js';
import type { TdpIter } from './tdp_iter.js';
import { TK, traceRing } from '../stats/trace_ring.js';

/** A scheduler-tick-like time slice: need_resched() after holding the lock this long (ms) on a busy host. */
export const DEFAULT_RESCHED_MS = 1;

export interface ReschedOptions {
  /** need_resched(): the time slice, in ms since mmu_lock was (re)taken. Default DEFAULT_RESCHED_MS. */
  readonly reschedMs?: number;
  /** rwlock_needbreak() on a preemptible kernel: also yield when someone queues on mmu_lock. */
  readonly yieldOnContention?: boolean;
}

/** Vm handles whose thread counts itself in SCHED_RUNNABLE now (one handle per thread). */
const runnableHandles = new WeakSet<Vm>();

/**
 * This thread starts (true) or stops (false) being runnable: a worker calls it as it leaves its
 * park and as it parks again (and on exit). Idempotent per handle, so a first park or a second
 * exit path does not unbalance the count. Atomics.add/sub pair with the Atomics.load in
 * runnableThreads().
 */
export function setRunnable(vm: Vm, runnable: boolean): void {
  if (runnableHandles.has(vm) === runnable) return;
  if (runnable) runnableHandles.add(vm);
  else runnableHandles.delete(vm);
  Atomics.add(vm.control, vm.layout.schedBase + SCHED_RUNNABLE, runnable ? 1 : -1);
}

/** Threads of the run that count themselves runnable now. */
export function runnableThreads(vm: Vm): number {
  return Atomics.load(vm.control, vm.layout.schedBase + SCHED_RUNNABLE);
}

/** The host's cores need_resched() compares against. */
function hostCoresOf(vm: Vm): number {
  return vm.config.hostCores ?? hostCores();
}

/**
 * os.availableParallelism(), read once per thread: it is a system call (sched_getaffinity), and a
 * holder is built per walk, which CLEAR starts once per 64-page word (4,096 per GiB).
 */
let hostCoresCached = 0;
function hostCores(): number {
  if (hostCoresCached === 0) hostCoresCached = availableParallelism();
  return hostCoresCached;
}

export class MmuLockHolder {
  readonly vm: Vm;
  /** mmu_lock held for read (true) or write (false) by the caller. */
  readonly shared: boolean;
  readonly reschedMs: number;
  readonly yieldOnContention: boolean;
  /** RCU read side held by the walk right now. */
  rcuHeld = false;
  /**
   * When this thread's time slice began: performance.now() ms, or NaN until need_resched() first
   * finds the host busy after the lock was (re)taken (the slice is timed from there: on an idle
   * host no clock is read at all, and a drop + retake reads none).
   */
  lockTakenAt = Number.NaN;
  /** cond_resched yields so far. */
  yields = 0;
  readonly #cores: number;
  readonly #runnableIdx: number;

  constructor(vm: Vm, shared: boolean, opts: ReschedOptions = {}) {
    this.vm = vm;
    this.shared = shared;
    this.reschedMs = opts.reschedMs ?? DEFAULT_RESCHED_MS;
    this.yieldOnContention = opts.yieldOnContention === true;
    this.#cores = hostCoresOf(vm);
    this.#runnableIdx = vm.layout.schedBase + SCHED_RUNNABLE;
    if (shared) vm.mmuLock.assertHeldRead();
    else vm.mmuLock.assertHeldWrite();
  }

  rcuLock(): void {
    this.vm.rcu.readLock();
    this.rcuHeld = true;
  }

  rcuUnlock(): void {
    this.vm.rcu.readUnlock();
    this.rcuHeld = false;
  }

  /** Drop RCU (if held), then mmu_lock. */
  release(): void {
    if (this.rcuHeld) this.vm.rcu.readUnlock();
    if (this.shared) this.vm.mmuLock.readUnlock();
    else this.vm.mmuLock.writeUnlock();
  }

  /** Retake mmu_lock in the same mode, then RCU (if the walk held it); restart the time slice. */
  acquire(): void {
    if (this.shared) this.vm.mmuLock.readLock();
    else this.vm.mmuLock.writeLock();
    if (this.rcuHeld) this.vm.rcu.readLock();
    this.lockTakenAt = Number.NaN;
  }

  /**
   * need_resched(): another thread wants a core (runnable threads, this one included, exceed the
   * cores) and this thread's slice is used up (the lock held reschedMs). The count is read first:
   * on an idle host this costs one Atomics.load and no clock read.
   */
  needResched(): boolean {
    const others = Atomics.load(this.vm.control, this.#runnableIdx) - (runnableHandles.has(this.vm) ? 1 : 0);
    if (others + 1 <= this.#cores) return false;
    const now = performance.now();
    if (Number.isNaN(this.lockTakenAt)) this.lockTakenAt = now;
    return now - this.lockTakenAt >= this.reschedMs;
  }

  /** need_resched() || rwlock_needbreak() (the latter only with yieldOnContention). */
  shouldYield(): boolean {
    return this.needResched() || (this.yieldOnContention && this.vm.mmuLock.isContended());
  }

  /**
   * tdp_mmu_iter_cond_resched(flush=false):
   *   0. forward-progress guard: never yield twice at the same nextLastLevelGfn (yieldedGfn), so
   *      a walk under constant contention still advances by at least one SPTE per yield;
   *   1. yield if need_resched() or, with yieldOnContention, if someone is queued on mmu_lock
   *      (rwlock_needbreak);
   *   2. drop RCU and mmu_lock, retake mmu_lock in the same mode, retake RCU;
   *   3. mark the iterator yielded: its next() restarts from the root at nextLastLevelGfn.
   * Returns true if it yielded: the caller must `continue` so that next() restarts.
   */
  condResched(it: TdpIter): boolean {
    if (it.nextLastLevelGfn === it.yieldedGfn) return false;
    if (!this.shouldYield()) return false;
    this.release();
    // --trace: an instant between the hold that ended and the one about to begin (trace_ring.ts).
    if (traceRing !== null) traceRing.instant(TK.yield, performance.now());
    this.acquire();
    if (it.gfn > it.nextLastLevelGfn) {
      throw invariantViolation('cond_resched: iterator gfn past nextLastLevelGfn', { gfn: it.gfn, nextLastLevelGfn: it.nextLastLevelGfn });
    }
    it.yielded = true;
    this.yields++;
    return true;
  }
}
