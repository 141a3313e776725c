/**
 * Write protection and dirty-bit clearing over ranges (KVM `wrprot_gfn_range`,
 * `clear_dirty_gfn_range`, `clear_dirty_pt_masked`): what dirty logging does to the SPTEs.
 *
 * Two dirty-tracking modes (the VM's dirtyTrack): WRITE PROTECTION clears W, so the next write
 * faults and the fault that sets W again marks the page in the dirty bitmap; PML (pml.ts) clears
 * D on 4K leaves, so the next write sets D in the hardware walk and is logged without a fault
 * (huge leaves are write-protected in both modes).
 *
 * Lock contexts: the range walkers run under the read lock (cmpxchg, retry in place on a lost
 * race) or the write lock (stores); the masked variant runs under the write lock, as
 * kvm_get_dirty_log_protect and KVM_CLEAR_DIRTY_LOG hold it.
 */
import type { Vm } from '../vm.js';
import { WS } from '../stats/worker_stats.js';
import { TdpIter, TdpIterSlot } from './tdp_iter.js';
import { setSpte, setSpteAtomic } from './tdp_mmu.js';
import { MmuLockHolder } from './mmu_resched.js';
import type { ReschedOptions } from './mmu_resched.js';
import { lowFlagBits, PG_LEVEL_4K, SPTE_D_MASK, SPTE_LARGE_MASK, SPTE_MMU_PRESENT_MASK, SPTE_W_MASK, spteClearLowBits } from './spte.js';

/** W as a low-word mask (spteClearLowBits: no BigInt allocated per changed SPTE). */
const W_LO = lowFlagBits(SPTE_W_MASK);

export interface RangeOptions extends ReschedOptions {
  /** mmu_lock held for read (true) or write (false) by the caller. */
  readonly shared: boolean;
  /** Lowest level whose leaves are changed (KVM's min_level). Default PG_LEVEL_4K. */
  readonly minLevel?: number;
}

export interface RangeResult {
  /** SPTEs changed. */
  readonly changed: number;
  readonly yields: number;
  readonly spteReads: number;
}

/**
 * Clear `bit` in every present leaf at or above minLevel in [start, end) that has it set.
 * Lock context: mmu_lock held in mode opts.shared, no RCU. Steps per SPTE: cond_resched; skip
 * unless a present leaf with `bit`; store old & ~bit (cmpxchg under the read lock, retrying at the
 * same position with the refreshed SPTE when a fast fault or another updater got there first).
 */
function clearLeafBitYieldSafe(vm: Vm, start: number, end: number, opts: RangeOptions, bit: bigint): RangeResult {
  const holder = new MmuLockHolder(vm, opts.shared, opts);
  const it = new TdpIter(vm.spt);
  const bitLo = lowFlagBits(bit);
  let changed = 0;
  holder.rcuLock();
  walk: for (it.start(vm.root, vm.rootLevel, opts.minLevel ?? PG_LEVEL_4K, start); it.valid && it.gfn < end; it.next()) {
    for (;;) {
      if (holder.condResched(it)) continue walk;
      const old = it.oldSpte;
      if ((old & SPTE_MMU_PRESENT_MASK) === 0n || (it.level !== PG_LEVEL_4K && (old & SPTE_LARGE_MASK) === 0n) || (old & bit) === 0n) continue walk;
      if (opts.shared) {
        if (!setSpteAtomic(vm, it, spteClearLowBits(old, bitLo))) continue;
      } else {
        setSpte(vm, it, spteClearLowBits(old, bitLo));
      }
      changed++;
      continue walk;
    }
  }
  holder.rcuUnlock();
  vm.stats.add(WS.spteReads, it.spteReads);
  vm.stats.add(WS.restarts, it.restarts);
  vm.stats.add(WS.yields, holder.yields);
  vm.stats.add(WS.walks, 1);
  return { changed, yields: holder.yields, spteReads: it.spteReads };
}

/** wrprot_gfn_range: clear W on every writable leaf in [start, end) (MMU-writable is kept). */
export function wrprotGfnRangeYieldSafe(vm: Vm, start: number, end: number, opts: RangeOptions): RangeResult {
  return clearLeafBitYieldSafe(vm, start, end, opts, SPTE_W_MASK);
}

/** clear_dirty_gfn_range: clear D on every dirty leaf in [start, end) (the PML-style mode). */
export function clearDirtyGfnRangeYieldSafe(vm: Vm, start: number, end: number, opts: RangeOptions): RangeResult {
  return clearLeafBitYieldSafe(vm, start, end, opts, SPTE_D_MASK);
}

/**
 * Write-protect the pages of one 64-page bitmap word: `baseGfn` is the gfn of the word's bit 0,
 * `lo`/`hi` its two Int32 halves (pages 0-31 and 32-63). Lock context: mmu_lock held for WRITE
 * (get/clear dirty log), no RCU. As kvm_arch_mmu_enable_log_dirty_pt_masked does without PML:
 *   1. a huge leaf overlapping the masked range is write-protected whole
 *      (kvm_mmu_slot_gfn_write_protect at 2M and up: it had not been split);
 *   2. each 4K leaf whose bit is in the mask gets W cleared (clear_dirty_pt_masked, wrprot mode).
 * No yielding: one word is at most 64 pages. Returns SPTEs changed.
 */
export function wrprotMaskedLocked(vm: Vm, baseGfn: number, lo: number, hi: number): number {
  return enableLogDirtyMaskedLocked(vm, baseGfn, lo, hi, SPTE_W_MASK);
}

/**
 * The PML flavour of wrprotMaskedLocked (kvm_mmu_clear_dirty_pt_masked): huge leaves overlapping
 * the masked range are still write-protected whole, but each masked 4K leaf gets D cleared instead
 * of W, so its next write is logged by PML without a fault. Same lock context. Returns SPTEs changed.
 */
export function clearDirtyMaskedLocked(vm: Vm, baseGfn: number, lo: number, hi: number): number {
  return enableLogDirtyMaskedLocked(vm, baseGfn, lo, hi, SPTE_D_MASK);
}

/**
 * The masked walk's iterator, reused: GET and CLEAR call it once per 64-page word (a 1 GiB slot
 * has 4,096 words), and a fresh TdpIter is two typed arrays to allocate and collect each time.
 */
const maskedIter = new TdpIterSlot();

/** Both masked variants: W on huge leaves, `bit4k` (W or D) on the masked 4K leaves. */
function enableLogDirtyMaskedLocked(vm: Vm, baseGfn: number, lo: number, hi: number, bit4k: bigint): number {
  vm.mmuLock.assertHeldWrite();
  if ((lo | hi) === 0) return 0;
  const first = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 32 + 31 - Math.clz32(hi & -hi);
  const last = hi !== 0 ? 32 + 31 - Math.clz32(hi) : 31 - Math.clz32(lo);
  const it = maskedIter.take(vm.spt);
  const bit4kLo = lowFlagBits(bit4k);
  let changed = 0;
  vm.rcu.readLock();
  for (it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, baseGfn + first); it.valid && it.gfn < baseGfn + last + 1; it.next()) {
    const old = it.oldSpte;
    if ((old & SPTE_MMU_PRESENT_MASK) === 0n) continue;
    let bit = SPTE_W_MASK;
    let bitLo = W_LO;
    if (it.level !== PG_LEVEL_4K) {
      if ((old & SPTE_LARGE_MASK) === 0n) continue;
    } else {
      const p = it.gfn - baseGfn;
      const word = p < 32 ? lo : hi;
      if ((word & (1 << (p & 31))) === 0) continue;
      bit = bit4k;
      bitLo = bit4kLo;
    }
    if ((old & bit) === 0n) continue;
    setSpte(vm, it, spteClearLowBits(old, bitLo));
    changed++;
  }
  vm.rcu.readUnlock();
  vm.stats.add(WS.spteReads, it.spteReads);
  vm.stats.add(WS.walks, 1);
  return changed;
}
