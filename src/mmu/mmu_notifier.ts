/**
 * MMU notifiers on the TDP MMU (kvm-faults-and-dirty-tracking.md §4): what the host's mm does to
 * a guest's page tables when it changes the host mapping under them, and how a racing vCPU fault
 * notices.
 *
 *   invalidateRangeStart  kvm_mmu_notifier_invalidate_range_start: mmu_lock for WRITE,
 *                         mmu_invalidate_in_progress++ and the range widened (kvm_mmu_invalidate_begin),
 *                         zap every leaf SPTE of any level that intersects [start, end)
 *                         (tdp_mmu_zap_leafs: tables stay), remote TLB flush BEFORE the unlock
 *                         (flush_on_ret), unlock. No yielding: the range is small (a backing page).
 *   invalidateRangeEnd    mmu_lock for WRITE, in_progress--, mmu_invalidate_seq++, unlock.
 *   ageGfnRange           clear_young / clear_flush_young: clear A on the range's leaves; mmu_lock
 *                         for WRITE with no yielding through 6.14, only RCU from 6.15.
 *   faultMustRetry        the fault side: mmu_invalidate_retry_gfn under the read lock in every
 *                         release, and from 6.8 (d02c357e5bfa) mmu_invalidate_retry_gfn_unsafe
 *                         before taking it, so faults inside an invalidation spin through guest
 *                         re-entry without touching the lock.
 *
 * The sequence protocol (kvm_faultin_pfn / is_page_fault_stale): a fault snapshots the sequence
 * before it looks at the host mapping; under the read lock it retries if an invalidation covering
 * its gfn is in progress or the sequence moved since the snapshot. invalidate_range_start and
 * _end change the words only under the write lock, so the check under the read lock is exact;
 * the check before the lock is a racy read that only saves work (a miss is caught under the lock).
 *
 * Emulator detector: invalidateRangeEnd walks the range before ending it; a present leaf there is
 * a stale translation (a fault mapped the range while it was being invalidated: the host page may
 * be gone). It is counted in `staleTranslations` and in the `xlateErrors` corruption channel.
 */
import type { Vm } from '../vm.js';
import {
  MMU_NOTIFIER_IN_PROGRESS,
  MMU_NOTIFIER_RANGE_END_HI,
  MMU_NOTIFIER_RANGE_END_LO,
  MMU_NOTIFIER_RANGE_START_HI,
  MMU_NOTIFIER_RANGE_START_LO,
  MMU_NOTIFIER_RETRY_MODE,
  MMU_NOTIFIER_SEQ,
} from '../layout.js';
import { WS } from '../stats/worker_stats.js';
import { invalidArg } from '../errors.js';
import { TdpIter } from './tdp_iter.js';
import { setSpte } from './tdp_mmu.js';
import { flushRemoteTlbs, payHostCost } from './host_costs.js';
import { PG_LEVEL_4K, SHADOW_NONPRESENT_VALUE, SPTE_A_MASK, SPTE_LARGE_MASK, SPTE_MMU_PRESENT_MASK } from './spte.js';
import type { HostLockMode, NotifierRetryPoint } from '../kernel_version.js';

/** MMU_NOTIFIER_RETRY_MODE values. */
const RETRY_MODE_UNDER_LOCK = 0; // before 6.8: only is_page_fault_stale, under the read lock
const RETRY_MODE_BEFORE_LOCK = 1; // 6.8+: also mmu_invalidate_retry_gfn_unsafe before the lock
const RETRY_MODE_NEVER = 2; // tests only: a broken fault path that ignores the notifier (the control)

const TWO32 = 2 ** 32;

function base(vm: Vm): number {
  return vm.layout.mmuNotifierBase;
}

/** Main thread, before any worker runs: where faults check (the kernel's retry point, or the broken control). */
export function configureMmuNotifier(vm: Vm, point: NotifierRetryPoint | 'never'): void {
  const mode = point === 'before-lock' ? RETRY_MODE_BEFORE_LOCK : point === 'after-lock' ? RETRY_MODE_UNDER_LOCK : RETRY_MODE_NEVER;
  Atomics.store(vm.control, base(vm) + MMU_NOTIFIER_RETRY_MODE, mode);
}

function loadGfn(c: Int32Array, lo: number, hi: number): number {
  return (Atomics.load(c, lo) >>> 0) + Atomics.load(c, hi) * TWO32;
}

function storeGfn(c: Int32Array, lo: number, hi: number, gfn: number): void {
  Atomics.store(c, lo, (gfn % TWO32) | 0);
  Atomics.store(c, hi, Math.floor(gfn / TWO32));
}

/** An invalidation covering `gfn` is in progress (mmu_invalidate_retry_gfn's range test). Racy without the lock. */
function inProgressOver(vm: Vm, gfn: number): boolean {
  const c = vm.control;
  const b = base(vm);
  if (Atomics.load(c, b + MMU_NOTIFIER_IN_PROGRESS) === 0) return false;
  const start = loadGfn(c, b + MMU_NOTIFIER_RANGE_START_LO, b + MMU_NOTIFIER_RANGE_START_HI);
  const end = loadGfn(c, b + MMU_NOTIFIER_RANGE_END_LO, b + MMU_NOTIFIER_RANGE_END_HI);
  return gfn >= start && gfn < end;
}

/** This thread's fault snapshot of mmu_invalidate_seq (fault->mmu_seq); one fault at a time per vCPU thread. */
let faultSeq = 0;

/**
 * The fault side, called twice by the slow fault: at 'before-lock' (after the cache top-up, before
 * mmu_lock) it snapshots the sequence and, from 6.8, returns true if an invalidation covers `gfn`;
 * at 'under-lock' (mmu_lock held for read, before mapping) it returns true if an invalidation
 * covers `gfn` or the sequence moved. True means RET_PF_RETRY: map nothing, re-enter the guest.
 * While the invalidation lasts the guest re-faults; each re-entry costs a VM exit and entry
 * (host_costs.ts `slowfault`) and, before 6.8, a read-lock acquisition: the loop below spins in
 * that way until the range is no longer in progress, so one retry counts once however long it spins.
 * Called at 'under-lock' with mmu_lock held for read, or for write when `exclusive` (the shadow
 * fault model's slow faults), and returns with it held in the same mode.
 */
export function faultMustRetry(vm: Vm, gfn: number, point: 'before-lock' | 'under-lock', exclusive = false): boolean {
  const c = vm.control;
  const b = base(vm);
  const mode = Atomics.load(c, b + MMU_NOTIFIER_RETRY_MODE);
  if (point === 'before-lock') {
    // Pairs with invalidateRangeEnd's Atomics.add on SEQ (under the write lock): smp_rmb() in kvm_faultin_pfn.
    faultSeq = Atomics.load(c, b + MMU_NOTIFIER_SEQ);
    if (mode !== RETRY_MODE_BEFORE_LOCK || !inProgressOver(vm, gfn)) return false;
    vm.stats.add(WS.notifierRetries, 1);
    const exitNs = vm.config.hostCosts?.slowfaultNs ?? 0;
    do payHostCost(vm, exitNs);
    while (inProgressOver(vm, gfn));
    return true;
  }
  if (mode === RETRY_MODE_NEVER) return false;
  if (exclusive) vm.mmuLock.assertHeldWrite();
  else vm.mmuLock.assertHeldRead();
  const stale = inProgressOver(vm, gfn) || Atomics.load(c, b + MMU_NOTIFIER_SEQ) !== faultSeq;
  if (!stale) return false;
  vm.stats.add(WS.notifierRetries, 1);
  const exitNs = vm.config.hostCosts?.slowfaultNs ?? 0;
  // Before 6.8: take the lock, detect, drop it, re-enter the guest, fault again.
  while (inProgressOver(vm, gfn)) {
    if (exclusive) vm.mmuLock.writeUnlock();
    else vm.mmuLock.readUnlock();
    payHostCost(vm, exitNs);
    if (exclusive) vm.mmuLock.writeLock();
    else vm.mmuLock.readLock();
  }
  return true;
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start) {
    throw invalidArg('mmu notifier', `bad gfn range [${start}, ${end})`);
  }
}

/** Per-thread iterator for host-event walks. */
let iter: TdpIter | undefined;
let iterVm: Vm | undefined;
function iterFor(vm: Vm): TdpIter {
  if (iter === undefined || iterVm !== vm) {
    iter = new TdpIter(vm.spt);
    iterVm = vm;
  }
  return iter;
}

function isLeaf(spte: bigint, level: number): boolean {
  return (spte & SPTE_MMU_PRESENT_MASK) !== 0n && (level === PG_LEVEL_4K || (spte & SPTE_LARGE_MASK) !== 0n);
}

/**
 * invalidate_range_start for [start, end) (gfns). Lock context: none held; takes mmu_lock for
 * WRITE. Returns the leaves zapped.
 */
export function invalidateRangeStart(vm: Vm, start: number, end: number): number {
  checkRange(start, end);
  const c = vm.control;
  const b = base(vm);
  vm.mmuLock.writeLock();
  // kvm_mmu_invalidate_begin: widen the range in progress (the union, as KVM keeps min/max).
  const n = Atomics.load(c, b + MMU_NOTIFIER_IN_PROGRESS);
  const oldStart = loadGfn(c, b + MMU_NOTIFIER_RANGE_START_LO, b + MMU_NOTIFIER_RANGE_START_HI);
  const oldEnd = loadGfn(c, b + MMU_NOTIFIER_RANGE_END_LO, b + MMU_NOTIFIER_RANGE_END_HI);
  storeGfn(c, b + MMU_NOTIFIER_RANGE_START_LO, b + MMU_NOTIFIER_RANGE_START_HI, n === 0 ? start : Math.min(start, oldStart));
  storeGfn(c, b + MMU_NOTIFIER_RANGE_END_LO, b + MMU_NOTIFIER_RANGE_END_HI, n === 0 ? end : Math.max(end, oldEnd));
  // Publish the range before in_progress: a racy reader that sees in_progress sees the range
  // (pairs with inProgressOver's loads; the locked reader is ordered by the lock anyway).
  Atomics.add(c, b + MMU_NOTIFIER_IN_PROGRESS, 1);
  vm.rcu.readLock();
  const it = iterFor(vm);
  let zapped = 0;
  const reads0 = it.spteReads;
  for (it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, start); it.valid && it.gfn < end; it.next()) {
    if (!isLeaf(it.oldSpte, it.level)) continue;
    setSpte(vm, it, SHADOW_NONPRESENT_VALUE);
    zapped++;
  }
  vm.rcu.readUnlock();
  vm.stats.add(WS.spteReads, it.spteReads - reads0);
  // flush_on_ret: the remote TLB flush happens before mmu_lock is released.
  if (zapped > 0) flushRemoteTlbs(vm);
  vm.mmuLock.writeUnlock();
  vm.stats.add(WS.hostInvalidations, 1);
  vm.stats.add(WS.hostZappedLeaves, zapped);
  return zapped;
}

/**
 * invalidate_range_end for the same [start, end). Lock context: none held; takes mmu_lock for
 * WRITE. Returns the stale leaves the detector found (0 unless a fault path is broken).
 */
export function invalidateRangeEnd(vm: Vm, start: number, end: number): number {
  checkRange(start, end);
  const c = vm.control;
  const b = base(vm);
  vm.mmuLock.writeLock();
  vm.rcu.readLock();
  const it = iterFor(vm);
  let stale = 0;
  for (it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, start); it.valid && it.gfn < end; it.next()) {
    if (isLeaf(it.oldSpte, it.level)) stale++;
  }
  vm.rcu.readUnlock();
  if (Atomics.load(c, b + MMU_NOTIFIER_IN_PROGRESS) <= 0) {
    vm.mmuLock.writeUnlock();
    throw invalidArg('mmu notifier', `invalidate_range_end [${start}, ${end}) without a range in progress`);
  }
  // kvm_mmu_invalidate_end: seq first, then in_progress (a fault that sees in_progress drop sees the new seq).
  Atomics.add(c, b + MMU_NOTIFIER_SEQ, 1);
  Atomics.sub(c, b + MMU_NOTIFIER_IN_PROGRESS, 1);
  vm.mmuLock.writeUnlock();
  if (stale > 0) {
    vm.stats.add(WS.staleTranslations, stale);
    vm.stats.add(WS.xlateErrors, stale);
  }
  return stale;
}

export interface AgeOptions {
  /** write: kvm_tdp_mmu_age_gfn_range under mmu_lock for WRITE, no yielding (through 6.14); rcu: lockless (6.15+). */
  readonly lock: HostLockMode;
  /** clear_flush_young: flush remote TLBs if any A bit was cleared. */
  readonly flush?: boolean;
}

/**
 * clear_young over [start, end): clear the accessed bit of every leaf. The bit is cleared with an
 * atomic AND (a cmpxchg loop) in both modes: vCPU fast paths update the same SPTEs with cmpxchg
 * under RCU only, and from 6.15 so does aging. Returns the leaves whose A bit was set.
 */
export function ageGfnRange(vm: Vm, start: number, end: number, opts: AgeOptions): number {
  checkRange(start, end);
  if (opts.lock === 'read') throw invalidArg('ageGfnRange', 'aging runs under the write lock or under RCU only');
  const locked = opts.lock === 'write';
  if (locked) vm.mmuLock.writeLock();
  vm.rcu.readLock();
  const it = iterFor(vm);
  const spt = vm.spt;
  let young = 0;
  const reads0 = it.spteReads;
  for (it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, start); it.valid && it.gfn < end; it.next()) {
    let old = it.oldSpte;
    if (!isLeaf(old, it.level) || (old & SPTE_A_MASK) === 0n) continue;
    // Pairs with the cmpxchg of the fast fault, hardwareSetDirty and the *Atomic updaters.
    for (;;) {
      const seen = Atomics.compareExchange(spt, it.sptIndex, old, old & ~SPTE_A_MASK);
      if (seen === old) {
        young++;
        break;
      }
      if (!isLeaf(seen, it.level) || (seen & SPTE_A_MASK) === 0n) break;
      old = seen;
    }
  }
  vm.rcu.readUnlock();
  vm.stats.add(WS.spteReads, it.spteReads - reads0);
  if (opts.flush === true && young > 0) flushRemoteTlbs(vm);
  if (locked) vm.mmuLock.writeUnlock();
  vm.stats.add(WS.hostAgingRuns, 1);
  vm.stats.add(WS.hostAgedLeaves, young);
  return young;
}
