/**
 * Holding mmu_lock (+ RCU) across a long walk, with KVM's tdp_mmu_iter_cond_resched (§1.9).
 *
 * A YieldSafe walk (split, zap, recover, write-protect) owns one MmuLockHolder. The caller already
 * holds mmu_lock in `shared` (read) or exclusive (write) mode; the walk takes RCU inside it. The
 * holder drops and retakes both in KVM's order (RCU is always nested inside mmu_lock) and keeps
 * the time the lock was last taken, which is our need_resched(): a time slice of `reschedMs`.
 */
import type { Vm } from '../vm.js';
import { invariantViolation } from '../errors.js';
import type { TdpIter } from './tdp_iter.js';

/** A scheduler-tick-like time slice: need_resched() after holding the lock this long (ms). */
export const DEFAULT_RESCHED_MS = 1;

export interface ReschedOptions {
  /** need_resched(): the time slice, in ms since mmu_lock was (re)taken. Default DEFAULT_RESCHED_MS. */
  readonly reschedMs?: number;
  /** rwlock_needbreak() on a preemptible kernel: also yield when someone queues on mmu_lock. */
  readonly yieldOnContention?: boolean;
}

export class MmuLockHolder {
  readonly vm: Vm;
  /** mmu_lock held for read (true) or write (false) by the caller. */
  readonly shared: boolean;
  readonly reschedMs: number;
  readonly yieldOnContention: boolean;
  /** RCU read side held by the walk right now. */
  rcuHeld = false;
  /** When mmu_lock was last (re)taken: performance.now() ms (the walk's start counts as taken). */
  lockTakenAt: number;
  /** cond_resched yields so far. */
  yields = 0;

  constructor(vm: Vm, shared: boolean, opts: ReschedOptions = {}) {
    this.vm = vm;
    this.shared = shared;
    this.reschedMs = opts.reschedMs ?? DEFAULT_RESCHED_MS;
    this.yieldOnContention = opts.yieldOnContention === true;
    this.lockTakenAt = performance.now();
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
    this.lockTakenAt = performance.now();
  }

  /**
   * tdp_mmu_iter_cond_resched(flush=false):
   *   0. forward-progress guard: never yield twice at the same nextLastLevelGfn (yieldedGfn), so
   *      a walk under constant contention still advances by at least one SPTE per yield;
   *   1. yield if the time slice ran out (need_resched) or, with yieldOnContention, if someone is
   *      queued on mmu_lock (rwlock_needbreak);
   *   2. drop RCU and mmu_lock, retake mmu_lock in the same mode, retake RCU;
   *   3. mark the iterator yielded: its next() restarts from the root at nextLastLevelGfn.
   * Returns true if it yielded: the caller must `continue` so that next() restarts.
   */
  condResched(it: TdpIter): boolean {
    if (it.nextLastLevelGfn === it.yieldedGfn) return false;
    const needResched = performance.now() - this.lockTakenAt >= this.reschedMs;
    if (!needResched && !(this.yieldOnContention && this.vm.mmuLock.isContended())) return false;
    this.release();
    this.acquire();
    if (it.gfn > it.nextLastLevelGfn) {
      throw invariantViolation('cond_resched: iterator gfn past nextLastLevelGfn', { gfn: it.gfn, nextLastLevelGfn: it.nextLastLevelGfn });
    }
    it.yielded = true;
    this.yields++;
    return true;
  }
}
