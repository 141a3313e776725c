/**
 * Zapping (KVM `tdp_mmu_zap_leafs`, `tdp_mmu_zap_spte_atomic`, `zap_collapsible_spte_range`).
 *
 *   - zapGfnRangeYieldSafe: remove every mapping of [start, end): leaves that intersect it, and
 *     whole subtrees whose region lies inside it (their tables are torn down and freed after an
 *     RCU grace period). Under the read lock each SPTE goes FROZEN -> non-present by cmpxchg
 *     (tdp_mmu_zap_spte_atomic); under the write lock by plain/exchange stores.
 *   - recoverHugePagesYieldSafe: what disabling dirty logging does (kvm_mmu_zap_collapsible_sptes):
 *     zap every non-leaf SPTE at 2M or 1G whose region the backing could map with one huge page,
 *     so that the next fault maps it huge again. Read lock, as KVM.
 *
 * Both walk with cond_resched (MmuLockHolder) and return with the caller's lock still held (it
 * may have been dropped and retaken). Tables freed here go through callRcu on THIS thread; the
 * functions poll ripe callbacks before returning, and a long-lived zapper must keep polling.
 */
import type { Vm } from '../vm.js';
import { WS } from '../stats/worker_stats.js';
import { TdpIter } from './tdp_iter.js';
import { setSpte, zapSpteAtomic } from './tdp_mmu.js';
import { MmuLockHolder } from './mmu_resched.js';
import type { ReschedOptions } from './mmu_resched.js';
import { maxMappingLevel } from './tdp_mmu_fault.js';
import { MAX_HUGE_LEVEL, PG_LEVEL_2M, SHADOW_NONPRESENT_VALUE, SPTE_LARGE_MASK, SPTE_MMU_PRESENT_MASK, pagesPerHpage } from './spte.js';

export interface ZapOptions extends ReschedOptions {
  /** mmu_lock held for read (true) or write (false) by the caller. */
  readonly shared: boolean;
}

export interface ZapResult {
  /** SPTEs zapped (leaves and subtree roots). */
  readonly zapped: number;
  readonly yields: number;
  readonly restarts: number;
  readonly spteReads: number;
}

function finish(vm: Vm, it: TdpIter, holder: MmuLockHolder, zapped: number): ZapResult {
  vm.stats.add(WS.spteReads, it.spteReads);
  vm.stats.add(WS.restarts, it.restarts);
  vm.stats.add(WS.yields, holder.yields);
  vm.stats.add(WS.walks, 1);
  // Outside the read-side section now: run the frees whose grace period has already passed.
  vm.rcu.pollCallbacks();
  return { zapped, yields: holder.yields, restarts: it.restarts, spteReads: it.spteReads };
}

/**
 * Zap [start, end). Lock context: mmu_lock held by the caller in mode opts.shared, no RCU.
 * Per visited SPTE (all levels down to 4K):
 *   1. cond_resched;
 *   2. skip non-present (FROZEN included: someone else is zapping it);
 *   3. a non-leaf whose region is not entirely inside the range: step down into it;
 *   4. zap it (a leaf, even a huge one only partly in the range, or a whole subtree); a lost
 *      cmpxchg re-evaluates the refreshed SPTE at the same position.
 */
export function zapGfnRangeYieldSafe(vm: Vm, start: number, end: number, opts: ZapOptions): ZapResult {
  const holder = new MmuLockHolder(vm, opts.shared, opts);
  const it = new TdpIter(vm.spt);
  let zapped = 0;
  holder.rcuLock();
  walk: for (it.start(vm.root, vm.rootLevel, 1, start); it.valid && it.gfn < end; it.next()) {
    for (;;) {
      if (holder.condResched(it)) continue walk;
      const old = it.oldSpte;
      if ((old & SPTE_MMU_PRESENT_MASK) === 0n) continue walk;
      const leaf = it.level === 1 || (old & SPTE_LARGE_MASK) !== 0n;
      if (!leaf && (it.gfn < start || it.gfn + pagesPerHpage(it.level) > end)) continue walk;
      if (opts.shared) {
        if (!zapSpteAtomic(vm, it)) continue; // lost a race: it.oldSpte refreshed
      } else {
        setSpte(vm, it, SHADOW_NONPRESENT_VALUE);
      }
      zapped++;
      continue walk;
    }
  }
  holder.rcuUnlock();
  return finish(vm, it, holder, zapped);
}

/**
 * Recover huge pages in memslot `slot` after dirty logging was disabled (zap collapsible SPTEs).
 * Lock context: mmu_lock held for READ by the caller (KVM's choice), no RCU. Per visited SPTE at
 * 2M and above: skip levels above 1G, non-present SPTEs and leaves (already as large as they get);
 * zap a table whose whole region the backing can map at this level (maxMappingLevel); a lost
 * cmpxchg retries the same position. Faults then map the region huge again.
 */
export function recoverHugePagesYieldSafe(vm: Vm, slot: number, opts: ReschedOptions = {}): ZapResult {
  const s = vm.config.memslots[slot]!;
  const holder = new MmuLockHolder(vm, true, opts);
  const it = new TdpIter(vm.spt);
  const end = s.baseGfn + s.npages;
  let zapped = 0;
  holder.rcuLock();
  walk: for (it.start(vm.root, vm.rootLevel, PG_LEVEL_2M, s.baseGfn); it.valid && it.gfn < end; it.next()) {
    for (;;) {
      if (holder.condResched(it)) continue walk;
      const old = it.oldSpte;
      if (it.level > MAX_HUGE_LEVEL || (old & SPTE_MMU_PRESENT_MASK) === 0n || (old & SPTE_LARGE_MASK) !== 0n) continue walk;
      if (maxMappingLevel(vm, slot, Math.max(it.gfn, s.baseGfn), false) < it.level) continue walk;
      if (!zapSpteAtomic(vm, it)) continue;
      zapped++;
      continue walk;
    }
  }
  holder.rcuUnlock();
  return finish(vm, it, holder, zapped);
}
