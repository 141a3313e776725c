/**
 * Core TDP MMU SPTE updates (KVM `tdp_mmu.c`: tdp_mmu_set_spte_atomic, tdp_mmu_set_spte,
 * tdp_mmu_zap_spte_atomic, tdp_mmu_link_sp, handle_changed_spte, handle_removed_pt).
 *
 * Two update disciplines, named by the concurrency contract (STYLE.md practice 6):
 *   - `*Atomic` runs with mmu_lock held for READ (and inside RCU): other threads may change the
 *     same SPTE at any moment, so every update is a cmpxchg against the iterator's snapshot
 *     `it.oldSpte`. A lost race returns false and refreshes `it.oldSpte` with the value that won,
 *     so the caller can re-evaluate the same position ("goto retry" in KVM).
 *   - the plain names run with mmu_lock held for WRITE: no other MMU writer exists, but the
 *     lockless fast fault may still set W/D on a write-protected leaf, so a store over such a
 *     "volatile" SPTE is an exchange (kvm_tdp_mmu_write_spte), everything else a plain store.
 *
 * Teardown: replacing a present non-leaf SPTE hands its table to handleRemovedPt, which freezes
 * every child (so concurrent walkers that already hold a pointer into the table fail their
 * cmpxchg or see FROZEN and retry), recurses into child tables, updates the page stats, and frees
 * the table after an RCU grace period (readers may still be walking it).
 *
 * Publication order: a new table is filled with plain stores and published by the cmpxchg (or
 * 64-bit store) of its parent SPTE. Readers load the parent with a plain load and then load the
 * child at an address computed from it; x86-64's TSO and the address dependency order the two
 * loads (KVM relies on the same: rcu_dereference is READ_ONCE plus dependency ordering).
 */
import type { Vm } from '../vm.js';
import { invariantViolation } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import type { TdpIter } from './tdp_iter.js';
import { updatePageStats } from './page_stats.js';
import { flushRemoteTlbs } from './host_costs.js';
import {
  FROZEN_SPTE,
  PG_LEVEL_4K,
  PT_ENTRIES,
  SHADOW_NONPRESENT_VALUE,
  SPTE_D_MASK,
  SPTE_LARGE_MASK,
  SPTE_MMU_PRESENT_MASK,
  SPTE_MMU_WRITABLE_MASK,
  SPTE_W_MASK,
  makeNonLeafSpte,
  pagesPerHpage,
  spteHex,
  spteToChildTable,
} from './spte.js';

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the MMU files
// ---------------------------------------------------------------------------------------------

/** Leaf test without a function call per level: present && (4K || large). */
function isLeaf(spte: bigint, level: number): boolean {
  return (spte & SPTE_MMU_PRESENT_MASK) !== 0n && (level === PG_LEVEL_4K || (spte & SPTE_LARGE_MASK) !== 0n);
}

/**
 * spte_has_volatile_bits: can the SPTE change outside mmu_lock? Yes when it is a write-protected,
 * MMU-writable leaf (the lockless fast fault may set W and D on it at any moment), or a writable
 * leaf whose D bit is clear (the hardware walk sets D on the next write: guest_access.ts, PML).
 */
function hasVolatileBits(spte: bigint): boolean {
  return (
    (spte & (SPTE_MMU_PRESENT_MASK | SPTE_W_MASK | SPTE_MMU_WRITABLE_MASK)) === (SPTE_MMU_PRESENT_MASK | SPTE_MMU_WRITABLE_MASK) ||
    // MMU-writable marks a leaf: non-leaf SPTEs carry W but never D, and must not count here.
    (spte & (SPTE_MMU_PRESENT_MASK | SPTE_W_MASK | SPTE_D_MASK | SPTE_MMU_WRITABLE_MASK)) === (SPTE_MMU_PRESENT_MASK | SPTE_W_MASK | SPTE_MMU_WRITABLE_MASK)
  );
}

/**
 * Free a table that walkers may still hold (it has just been unlinked): call_rcu freeing. The pool
 * keeps the table intact until the grace period ends, then poisons it and makes it reusable; the
 * unsafe control (pool.unsafeFreeWithoutGracePeriod) poisons and frees at once, so stale walkers
 * read poison or a reused table, which is what the stress test must catch.
 */
function freeTableAfterGracePeriod(vm: Vm, table: number): void {
  vm.stats.add(WS.zappedTables, 1);
  vm.pool.freeAfterGracePeriod(table, vm.rcu);
}

/**
 * Let this thread's deferred table frees finish: wait out grace periods (rcu.synchronize) and run
 * the ripe callbacks until none is left (a synchronize() that shares a grace period already in
 * progress may ripen only the older callbacks), bounded by `maxRounds`. Nothing else drives grace periods for us
 * (there is no RCU kthread), so a thread that frees tables must call this now and then, outside
 * RCU and mmu_lock. Returns the callbacks still pending.
 */
export function reclaimFreedTables(vm: Vm, maxRounds = 8): number {
  for (let round = 0; round < maxRounds && vm.rcu.pendingCallbacks() > 0; round++) {
    vm.rcu.synchronize(); // runs this reader's ripe callbacks afterwards
  }
  return vm.rcu.pendingCallbacks();
}

// ---------------------------------------------------------------------------------------------
// Write-lock stores
// ---------------------------------------------------------------------------------------------

/**
 * kvm_tdp_mmu_write_spte: store `newSpte` at `idx` with mmu_lock held for write. Returns the value
 * actually replaced: an exchange when the old value has volatile bits (a concurrent fast fault may
 * have set W since it was read), a plain 64-bit store otherwise.
 */
function writeSpteLocked(spt: BigInt64Array, idx: number, oldSpte: bigint, newSpte: bigint): bigint {
  if (hasVolatileBits(oldSpte)) return Atomics.exchange(spt, idx, newSpte);
  spt[idx] = newSpte;
  return oldSpte;
}

/**
 * tdp_mmu_iter_set_spte: replace the iterator's SPTE with mmu_lock held for WRITE, then process the
 * change (stats, teardown of a replaced table with plain stores). Never fails.
 */
export function setSpte(vm: Vm, it: TdpIter, newSpte: bigint): void {
  vm.mmuLock.assertHeldWrite();
  vm.rcu.assertInReadSide();
  if (it.yielded) throw invariantViolation('setSpte on a yielded iterator', { gfn: it.gfn, level: it.level });
  const old = writeSpteLocked(vm.spt, it.sptIndex, it.oldSpte, newSpte);
  it.oldSpte = newSpte;
  handleChangedSpte(vm, it.gfn, old, newSpte, it.level, false);
}

// ---------------------------------------------------------------------------------------------
// Read-lock (atomic) updates
// ---------------------------------------------------------------------------------------------

/**
 * tdp_mmu_set_spte_atomic: cmpxchg the iterator's SPTE from `it.oldSpte` to `newSpte` with mmu_lock
 * held for READ and inside RCU.
 *
 * Returns true on success (and processes the change: stats, teardown in shared mode); false on a
 * lost race, with `it.oldSpte` refreshed to the current value (the caller re-evaluates it: retry at
 * the same position, or RET_PF_RETRY on the fault path). Calling it on a frozen snapshot or a
 * yielded iterator is a caller bug (KVM WARNs): callers must check isFrozen first.
 */
export function setSpteAtomic(vm: Vm, it: TdpIter, newSpte: bigint): boolean {
  // Read, or write for the shadow fault model's slow faults (tdp_mmu_fault.ts): a cmpxchg under
  // the write lock cannot lose to another MMU writer, but still orders against the fast fault.
  vm.mmuLock.assertHeld();
  vm.rcu.assertInReadSide();
  const old = it.oldSpte;
  if (old === FROZEN_SPTE || it.yielded) {
    throw invariantViolation('setSpteAtomic on a frozen SPTE or a yielded iterator', {
      gfn: it.gfn,
      level: it.level,
      oldSpte: spteHex(old),
      newSpte: spteHex(newSpte),
      yielded: it.yielded,
    });
  }
  // The cmpxchg is the linearisation point against every other *Atomic updater, the fast fault's
  // cmpxchg and the hardware walk's plain loads of this SPTE.
  const cur = Atomics.compareExchange(vm.spt, it.sptIndex, old, newSpte);
  if (cur !== old) {
    it.oldSpte = cur;
    return false;
  }
  it.oldSpte = newSpte;
  handleChangedSpte(vm, it.gfn, old, newSpte, it.level, true);
  return true;
}

/**
 * tdp_mmu_zap_spte_atomic, mmu_lock held for READ, inside RCU:
 *   1. cmpxchg old -> FROZEN_SPTE: from here no other thread installs anything here (faults see
 *      FROZEN and retry; setSpteAtomic callers fail their cmpxchg);
 *   2. KVM flushes the TLB for the range here; we model no TLB, so only with `flushCost` the
 *      remote flush's host cost is paid here, while the SPTE is frozen (the fault path's zap,
 *      where other vCPUs faulting on the region spin on FROZEN meanwhile);
 *   3. store SHADOW_NONPRESENT_VALUE (nobody else writes a frozen SPTE, so a store suffices);
 *   4. process old -> non-present: stats, and teardown of a child table (shared mode).
 * Returns false on a lost race with it.oldSpte refreshed.
 */
export function zapSpteAtomic(vm: Vm, it: TdpIter, flushCost = false): boolean {
  vm.mmuLock.assertHeld(); // read, or write (see setSpteAtomic)
  vm.rcu.assertInReadSide();
  const old = it.oldSpte;
  if (old === FROZEN_SPTE || it.yielded) {
    throw invariantViolation('zapSpteAtomic on a frozen SPTE or a yielded iterator', { gfn: it.gfn, level: it.level, oldSpte: spteHex(old) });
  }
  const cur = Atomics.compareExchange(vm.spt, it.sptIndex, old, FROZEN_SPTE);
  if (cur !== old) {
    it.oldSpte = cur;
    return false;
  }
  if (flushCost) flushRemoteTlbs(vm);
  Atomics.store(vm.spt, it.sptIndex, SHADOW_NONPRESENT_VALUE);
  it.oldSpte = SHADOW_NONPRESENT_VALUE;
  handleChangedSpte(vm, it.gfn, old, SHADOW_NONPRESENT_VALUE, it.level, true);
  return true;
}

/**
 * tdp_mmu_link_sp: point the iterator's SPTE at `table` (already filled). Shared: cmpxchg
 * (false = lost race, it.oldSpte refreshed; the caller still owns `table`, unpublished). Exclusive:
 * a store that cannot fail. On success counts one table installed.
 */
export function linkSp(vm: Vm, it: TdpIter, table: number, shared: boolean): boolean {
  const spte = makeNonLeafSpte(table);
  if (shared) {
    if (!setSpteAtomic(vm, it, spte)) return false;
  } else {
    vm.mmuLock.assertHeldWrite();
    // An exchange rather than a plain store: it publishes the table's contents (written with
    // plain stores) with seq_cst ordering, and returns the true old value should a fast fault
    // have touched it (it cannot for a huge or non-present SPTE, but the cost is one split's noise).
    const old = Atomics.exchange(vm.spt, it.sptIndex, spte);
    it.oldSpte = spte;
    handleChangedSpte(vm, it.gfn, old, spte, it.level, false);
  }
  vm.stats.add(WS.tablesAllocated, 1);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Change processing
// ---------------------------------------------------------------------------------------------

/**
 * handle_changed_spte: bookkeeping after the SPTE of `gfn` at `level` went from `oldSpte` to
 * `newSpte` (already stored).
 *   - page stats: a leaf appearing adds one at `level`, a leaf disappearing (zapped, or replaced by
 *     a table when split) subtracts one;
 *   - a present non-leaf replaced by a leaf or a non-present value: its table is torn down.
 * `shared` says which lock mode the caller holds (teardown uses atomics in shared mode).
 */
function handleChangedSpte(vm: Vm, gfn: number, oldSpte: bigint, newSpte: bigint, level: number, shared: boolean): void {
  if (oldSpte === newSpte) return;
  const wasPresent = (oldSpte & SPTE_MMU_PRESENT_MASK) !== 0n;
  const wasLeaf = wasPresent && isLeaf(oldSpte, level);
  const nowLeaf = isLeaf(newSpte, level);
  if (wasLeaf !== nowLeaf) updatePageStats(vm, level, nowLeaf ? 1 : -1);
  if (wasPresent && !wasLeaf && (nowLeaf || (newSpte & SPTE_MMU_PRESENT_MASK) === 0n)) {
    const child = spteToChildTable(oldSpte);
    handleRemovedPt(vm, child, level - 1, gfn, shared);
  }
}

/** Polls of a frozen child before sleeping briefly (32 workers share 2 cores: never spin unbounded). */
const FROZEN_SPIN_LIMIT = 1000;
/** Sleep per round once the spin limit is reached (ms). Nobody notifies: this is a timed back-off. */
const FROZEN_BACKOFF_MS = 0.05;
/** A child frozen this long (sleeps of FROZEN_BACKOFF_MS) means its zapper died or the tree is corrupt. */
const FROZEN_MAX_SLEEPS = 40_000;

/**
 * handle_removed_pt: `table` (entries at `level`, covering gfns from `baseGfn`) was unlinked.
 *   1. freeze every child: shared mode exchanges each entry with FROZEN_SPTE, waiting while it is
 *      already frozen (another zapper owns it and will soon store non-present); exclusive mode
 *      stores FROZEN over present entries only (exchange if a fast fault could race);
 *   2. process each child's change (stats; recursion into grandchild tables);
 *   3. free the table after a grace period (walkers inside RCU may still be reading it; they see
 *      FROZEN children and retry).
 */
function handleRemovedPt(vm: Vm, table: number, level: number, baseGfn: number, shared: boolean): void {
  // `shared` (atomic teardown) also runs under the write lock for the shadow fault model.
  if (shared) vm.mmuLock.assertHeld();
  else vm.mmuLock.assertHeldWrite();
  const spt = vm.spt;
  const span = pagesPerHpage(level);
  const first = table * PT_ENTRIES;
  for (let i = 0; i < PT_ENTRIES; i++) {
    const idx = first + i;
    let old: bigint;
    if (shared) {
      // Pairs with the cmpxchg of any racing *Atomic updater that still reaches this table: after
      // the exchange their cmpxchg (expecting the pre-freeze value) fails.
      for (let spins = 0; ; spins++) {
        old = Atomics.exchange(spt, idx, FROZEN_SPTE);
        if (old !== FROZEN_SPTE) break;
        if (spins >= FROZEN_SPIN_LIMIT) {
          if (spins - FROZEN_SPIN_LIMIT >= FROZEN_MAX_SLEEPS) {
            throw invariantViolation('handleRemovedPt: a child SPTE stays frozen', { table, index: i, level, gfn: baseGfn + i * span });
          }
          Atomics.wait(spt, idx, FROZEN_SPTE, FROZEN_BACKOFF_MS);
        }
      }
    } else {
      old = spt[idx]!;
      if ((old & SPTE_MMU_PRESENT_MASK) === 0n) continue;
      old = writeSpteLocked(spt, idx, old, FROZEN_SPTE);
    }
    handleChangedSpte(vm, baseGfn + i * span, old, FROZEN_SPTE, level, shared);
  }
  // tdp_mmu_unlink_sp: an NX-split table leaves the possible-NX list (under its own small lock,
  // nested inside mmu_lock) before the pool can hand the table to anyone else.
  if (vm.config.unsafe?.nxKeepRemovedTables !== true) vm.nx?.onTableRemoved(table);
  freeTableAfterGracePeriod(vm, table);
}
