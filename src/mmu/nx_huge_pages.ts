/**
 * NX huge pages: the iTLB multihit mitigation (kvm.nx_huge_pages, kvm-faults-and-dirty-tracking.md
 * §3) and its recovery worker.
 *
 * With NX huge pages on, huge leaves are never executable (spte.ts makeLeafSpte `nxHuge`), so an
 * instruction fetch from a huge page takes an EPT violation that only the slow fault can handle:
 * it splits the page on fault (6.2+) or zaps it (before 6.2), maps an executable 4K page, and
 * records the new table as a possible NX huge page (tdp_mmu_fault.ts; the shared state is
 * nx_sp_tracking.ts). Those tables stay 4K for as long as they are recorded: faults do not map a
 * huge page over them (disallowed_hugepage_adjust).
 *
 * The recovery worker (kvm_nx_huge_page_recovery_worker, one kthread per VM, every
 * nx_huge_pages_recovery_period_ms) zaps a fraction of the recorded tables, so that regions the
 * guest stopped executing from can be mapped huge again; a later execute from them faults again.
 * recoverNxHugePagesYieldSafe is one batch of it; the host-events actor decides when it runs.
 */
import type { Vm } from '../vm.js';
import { invalidArg } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import { flushRemoteTlbs } from './host_costs.js';
import { MmuLockHolder } from './mmu_resched.js';
import type { ReschedOptions } from './mmu_resched.js';
import { slotLogsDirty } from './slot_flags.js';
import { TdpIter } from './tdp_iter.js';
import { setSpte, zapSpteAtomic } from './tdp_mmu.js';
import { PG_LEVEL_4K, SHADOW_NONPRESENT_VALUE, SPTE_LARGE_MASK, SPTE_MMU_PRESENT_MASK, spteToChildTable } from './spte.js';

/** kvm.nx_huge_pages_recovery_ratio's default: each batch zaps 1/60 of the recorded tables. */
const DEFAULT_NX_RECOVERY_RATIO = 60;

export interface NxRecoveryOptions extends ReschedOptions {
  /**
   * mmu_lock mode of the batch: 'write' through 6.17, 'read' from 6.18 (the recovery worker then
   * zaps with tdp_mmu_zap_spte_atomic and the list lock keeps it apart from faults).
   */
  readonly lockMode: 'read' | 'write';
  /** nx_huge_pages_recovery_ratio: zap DIV_ROUND_UP(count, ratio); 0 disables. Default 60. */
  readonly ratio?: number;
  /**
   * Since 6.2 a recorded table in a dirty-logged memslot is only unaccounted (taken off the list
   * and its disallowed mark cleared), not zapped: zapping it would only make the guest fault in
   * 4K pages again while logging. Before 6.2 it was zapped like any other. Default true (6.2+).
   */
  readonly skipDirtyLogged?: boolean;
}

export interface NxRecoveryResult {
  /** Tables the batch meant to process: DIV_ROUND_UP(count, ratio) when it started. */
  readonly toZap: number;
  /** Tables whose parent SPTE was zapped. */
  readonly zapped: number;
  /** Tables in dirty-logged memslots only unaccounted (6.2+). */
  readonly unaccounted: number;
  /** Tables that were already gone or replaced when the batch reached them (only unaccounted). */
  readonly stale: number;
  /** cond_resched yields of mmu_lock. */
  readonly yields: number;
}

/**
 * One batch of the NX recovery worker (kvm_recover_nx_huge_pages). Lock context: none held on
 * entry or exit; takes mmu_lock in `opts.lockMode` and drops it to yield on need_resched
 * (YieldSafe). For each of DIV_ROUND_UP(count, ratio) tables, oldest first:
 *   1. take the oldest recorded table off the list (under the list lock, nested inside mmu_lock);
 *   2. in a dirty-logged memslot (6.2+): leave it mapped, only unaccounted;
 *   3. otherwise zap the SPTE that points at it: the table is torn down (handle_removed_pt) and
 *      freed after a grace period; the region faults in again, huge where the backing allows;
 *   4. on need_resched: flush the TLBs for what was zapped, drop mmu_lock, retake it.
 * One remote TLB flush at the end if anything was zapped and not yet flushed.
 */
export function recoverNxHugePagesYieldSafe(vm: Vm, opts: NxRecoveryOptions): NxRecoveryResult {
  const ratio = opts.ratio ?? DEFAULT_NX_RECOVERY_RATIO;
  if (!Number.isInteger(ratio) || ratio < 0) throw invalidArg('recoverNxHugePagesYieldSafe', `ratio ${ratio} must be a non-negative integer`);
  const nx = vm.nx;
  const empty = { toZap: 0, zapped: 0, unaccounted: 0, stale: 0, yields: 0 };
  if (nx === undefined || ratio === 0) return empty;
  const toZap = Math.ceil(nx.count() / ratio);
  if (toZap === 0) return empty;
  const shared = opts.lockMode === 'read';
  const skipDirtyLogged = opts.skipDirtyLogged ?? true;
  if (shared) vm.mmuLock.readLock();
  else vm.mmuLock.writeLock();
  const ctx = new MmuLockHolder(vm, shared, opts);
  const it = new TdpIter(vm.spt);
  let zapped = 0;
  let unaccounted = 0;
  let stale = 0;
  let flush = false;
  try {
    for (let i = 0; i < toZap; i++) {
      nx.lock();
      const table = nx.firstLocked();
      if (table < 0) {
        nx.unlock();
        break;
      }
      const gfn = nx.gfnOf(table);
      const level = nx.levelOf(table);
      const slot = vm.slotOf(gfn);
      const logged = skipDirtyLogged && slot >= 0 && slotLogsDirty(vm, slot);
      // Off the list first (unaccount_nx_huge_page): from 6.18 faults run beside us, and a table
      // already off the list is never picked twice. Its teardown then finds the flags clear.
      nx.untrackLocked(table);
      nx.unlock();
      if (logged) {
        unaccounted++;
      } else if (zapParentYieldSafe(vm, it, shared, table, gfn, level)) {
        zapped++;
        flush = true;
      } else {
        stale++;
      }
      if (ctx.shouldYield()) {
        // kvm_recover_nx_huge_pages flushes before cond_resched_rwlock_*: the zapped tables'
        // translations must be gone before anyone can run with the lock free.
        if (flush) flushRemoteTlbs(vm);
        flush = false;
        ctx.release();
        ctx.acquire();
        ctx.yields++;
      }
    }
    if (flush) flushRemoteTlbs(vm);
  } finally {
    if (shared) vm.mmuLock.readUnlock();
    else vm.mmuLock.writeUnlock();
  }
  vm.stats.add(WS.nxRecoveryZaps, zapped);
  vm.stats.add(WS.spteReads, it.spteReads);
  return { toZap, zapped, unaccounted, stale, yields: ctx.yields };
}

/**
 * Zap the SPTE at `level` over `gfn` if it still points at `table` (kvm_tdp_mmu_zap_possible_nx_huge_page).
 * mmu_lock held (`shared`: read, zap with a cmpxchg that may lose to a fault and is retried on
 * the refreshed value; write: a store). Returns false if the table is no longer linked there.
 */
function zapParentYieldSafe(vm: Vm, it: TdpIter, shared: boolean, table: number, gfn: number, level: number): boolean {
  if (level <= PG_LEVEL_4K) return false;
  vm.rcu.readLock();
  try {
    for (it.start(vm.root, vm.rootLevel, level, gfn); it.valid && it.gfn <= gfn; it.next()) {
      if (it.level !== level) continue;
      for (;;) {
        const old = it.oldSpte;
        const linked = (old & (SPTE_MMU_PRESENT_MASK | SPTE_LARGE_MASK)) === SPTE_MMU_PRESENT_MASK && spteToChildTable(old) === table;
        if (!linked) return false;
        if (!shared) {
          setSpte(vm, it, SHADOW_NONPRESENT_VALUE);
          return true;
        }
        if (zapSpteAtomic(vm, it)) return true;
        // Lost a race: it.oldSpte is the winner's value; re-check whether it is still our table.
      }
    }
    return false;
  } finally {
    vm.rcu.readUnlock();
  }
}

/**
 * Consistency of the NX tracking with the tree (everything quiescent): every table that is marked
 * or listed is linked in the tree, and the list's count equals the listed tables. Returns the
 * violations (empty when consistent), at most `max`.
 */
export function checkNxTracking(vm: Vm, max = 20): string[] {
  const nx = vm.nx;
  if (nx === undefined) return [];
  const linked = new Uint8Array(nx.capacity);
  const walk = (table: number, level: number): void => {
    linked[table] = 1;
    if (level <= PG_LEVEL_4K) return;
    for (let i = 0; i < 512; i++) {
      const spte = vm.spt[table * 512 + i]!;
      if ((spte & (SPTE_MMU_PRESENT_MASK | SPTE_LARGE_MASK)) === SPTE_MMU_PRESENT_MASK) walk(spteToChildTable(spte), level - 1);
    }
  };
  walk(vm.root, vm.rootLevel);
  const out: string[] = [];
  let listed = 0;
  for (let t = 0; t < nx.capacity; t++) {
    const f = Atomics.load(nx.flags, t);
    if (f === 0) continue;
    if (nx.isListed(t)) listed++;
    if (linked[t] !== 1 && out.length < max) out.push(`table ${t} has NX flags ${f} but is not linked in the tree`);
  }
  if (listed !== nx.count() && out.length < max) out.push(`the list counts ${nx.count()} tables but ${listed} are flagged as listed`);
  return out;
}
