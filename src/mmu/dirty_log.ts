/**
 * Dirty logging, as the dirty_log_perf_test flow drives it (kvm-eager-split.md §1.1, §1.8, §4.2):
 *
 *   enableDirtyLogging   KVM_SET_USER_MEMORY_REGION with KVM_MEM_LOG_DIRTY_PAGES
 *   getDirtyLog          KVM_GET_DIRTY_LOG (kvm_get_dirty_log_protect)
 *   clearDirtyLog        KVM_CLEAR_DIRTY_LOG (kvm_clear_dirty_log_protect)
 *   disableDirtyLogging  clearing the flag: recover huge pages (zap collapsible SPTEs)
 *
 * Each function takes the locks it needs itself (they are ioctls); none may be called with
 * mmu_lock or RCU held. Each returns the durations of its pieces (ms) as the emulator reports them.
 *
 * Dirty tracking is the VM's `dirtyTrack` (kvm-faults-and-dirty-tracking.md §1):
 *   wrprot  write protection (AMD, or PML off): 4K leaves lose W, the first write per pass takes
 *           the lockless fast fault, which marks the page;
 *   pml     Intel PML: 4K leaves lose D (huge leaves still lose W), a write sets D in the hardware
 *           walk and is logged in the vCPU's PML buffer, flushed into the bitmap at VM exits;
 *           GET first kicks every vCPU so that each flushes (pml.ts).
 * The guarantee (dirty_log_test's): every write a vCPU completes while the slot logs dirty pages
 * is reported by the harvest in progress or the next one. Writing without a fault needs a
 * writable SPTE; with wrprot each one's pages carry their dirty bit until a harvest clears the bit
 * and write-protects them before it returns; with pml a write through a writable SPTE whose D is
 * clear is logged, and one whose D is set has its page's bit set (or in a PML buffer) until a
 * harvest clears the bit and then D. Harvests that changed SPTEs end with a remote TLB flush
 * after mmu_lock is released (host_costs.ts: only its cost is modelled).
 */
import type { Vm } from '../vm.js';
import { invalidArg } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import type { SplitAllocDesign } from './split_alloc.js';
import { splitLockShared } from './split_alloc_designs.js';
import type { ReschedOptions } from './mmu_resched.js';
import { splitHugePagesYieldSafe } from './tdp_mmu_split.js';
import type { SplitResult } from './tdp_mmu_split.js';
import { clearDirtyGfnRangeYieldSafe, clearDirtyMaskedLocked, wrprotGfnRangeYieldSafe, wrprotMaskedLocked } from './tdp_mmu_wrprot.js';
import { syncDirtyLogKick, usesPml } from './pml.js';
import { flushRemoteTlbs } from './host_costs.js';
import { recoverHugePagesYieldSafe } from './tdp_mmu_zap.js';
import { reclaimFreedTables } from './tdp_mmu.js';
import { SLOT_FLAG_INITIALLY_SET, SLOT_FLAG_LOG_DIRTY, setSlotFlags, slotFlags } from './slot_flags.js';
import { PG_LEVEL_2M, PG_LEVEL_4K } from './spte.js';

export interface DirtyLogSplitOptions extends ReschedOptions {
  /** kvm.eager_page_split. */
  readonly eagerSplit: boolean;
  /** The allocation design for eager splitting (drop-always ships in 6.11). */
  readonly design: SplitAllocDesign;
  /** Split down to this level (default 4K). */
  readonly targetLevel?: number;
}

/** How CLEAR_DIRTY_LOG holds mmu_lock: across the whole call (every release) or per 64-page word (the dropped 2023-24 change). */
export type ClearLockMode = 'whole' | 'per-word';

export interface ClearDirtyLogOptions extends DirtyLogSplitOptions {
  /** Default 'whole'. */
  readonly clearLock?: ClearLockMode;
}

export interface EnableDirtyLogOptions extends DirtyLogSplitOptions {
  /** Manual protect + KVM_DIRTY_LOG_INITIALLY_SET: all bits set, no split, no write protection now. */
  readonly initiallySet: boolean;
}

/** Merged counters of the splits one call made (null if it split nothing at all). */
export type SplitTotals = Omit<SplitResult, 'code'>;

export interface EnableDirtyLogResult {
  readonly ms: number;
  /** Eager splitting under the read lock (0 if not done). */
  readonly splitMs: number;
  /** Write protection (and, with PML, clearing D) of the slot under the read lock (0 if not done). */
  readonly wrprotMs: number;
  readonly split: SplitResult | null;
  readonly wrprotected: number;
  /** Leaves whose D bit was cleared (PML only; 0 with wrprot). */
  readonly dirtyCleared: number;
}

function slotRange(vm: Vm, slot: number): [number, number] {
  const s = vm.config.memslots[slot];
  if (s === undefined) throw invalidArg('dirty log', `memslot ${slot} does not exist (there are ${vm.config.memslots.length})`);
  return [s.baseGfn, s.baseGfn + s.npages];
}

/**
 * Enable dirty logging on `slot`:
 *   1. initialise the bitmap: all ones with initially-set, else zeroes (a fresh bitmap);
 *   2. publish the flags, then rcu.synchronize(): every fault that read the old flags (faults
 *      read them inside the RCU section that covers their SPTE update) has finished, as KVM's
 *      synchronize_srcu on a memslot update guarantees;
 *   3. initially-set: done (kvm_mmu_slot_apply_flags returns early);
 *   4. eager split: split every huge page of the slot under mmu_lock for READ (best effort);
 *   5. wrprot: write-protect every leaf of the slot under mmu_lock for READ;
 *      pml: clear D on every leaf (kvm_mmu_slot_leaf_clear_dirty), then write-protect the leaves
 *      of 2M and above (kvm_mmu_slot_remove_write_access(PG_LEVEL_2M)), both under the read lock;
 *   6. one remote TLB flush if any SPTE changed, after the lock (the split itself needs none: §1.8).
 */
export function enableDirtyLogging(vm: Vm, slot: number, opts: EnableDirtyLogOptions): EnableDirtyLogResult {
  const t0 = performance.now();
  const [start, end] = slotRange(vm, slot);
  const bitmap = vm.dirtyBitmap(slot);
  const npages = end - start;
  if (opts.initiallySet) {
    for (let w = 0; w < bitmap.length; w++) {
      const lowPage = w * 32;
      const bits = npages - lowPage >= 32 ? -1 : npages > lowPage ? (1 << (npages - lowPage)) - 1 : 0;
      Atomics.store(bitmap, w, bits);
    }
  } else {
    for (let w = 0; w < bitmap.length; w++) Atomics.store(bitmap, w, 0);
  }
  setSlotFlags(vm, slot, SLOT_FLAG_LOG_DIRTY | (opts.initiallySet ? SLOT_FLAG_INITIALLY_SET : 0));
  vm.rcu.synchronize();
  if (opts.initiallySet) return { ms: performance.now() - t0, splitMs: 0, wrprotMs: 0, split: null, wrprotected: 0, dirtyCleared: 0 };

  let split: SplitResult | null = null;
  let splitMs = 0;
  if (opts.eagerSplit) {
    const s0 = performance.now();
    // x86 splits here under the read lock; a design may insist on the write lock (arm64's chunked cache).
    const shared = splitLockShared(opts.design, true);
    if (shared) vm.mmuLock.readLock();
    else vm.mmuLock.writeLock();
    split = splitHugePagesYieldSafe(vm, start, end, {
      shared,
      design: opts.design,
      targetLevel: opts.targetLevel ?? PG_LEVEL_4K,
      ...reschedOf(opts),
    });
    if (shared) vm.mmuLock.readUnlock();
    else vm.mmuLock.writeUnlock();
    splitMs = performance.now() - s0;
  }
  const w0 = performance.now();
  let dirtyCleared = 0;
  vm.mmuLock.readLock();
  if (usesPml(vm)) {
    dirtyCleared = clearDirtyGfnRangeYieldSafe(vm, start, end, { shared: true, minLevel: PG_LEVEL_4K, ...reschedOf(opts) }).changed;
  }
  const minLevel = usesPml(vm) ? PG_LEVEL_2M : PG_LEVEL_4K;
  const wr = wrprotGfnRangeYieldSafe(vm, start, end, { shared: true, minLevel, ...reschedOf(opts) });
  vm.mmuLock.readUnlock();
  if (wr.changed + dirtyCleared > 0) flushRemoteTlbs(vm);
  const wrprotMs = performance.now() - w0;
  return { ms: performance.now() - t0, splitMs, wrprotMs, split, wrprotected: wr.changed, dirtyCleared };
}

function reschedOf(o: ReschedOptions): ReschedOptions {
  return {
    ...(o.reschedMs !== undefined ? { reschedMs: o.reschedMs } : {}),
    ...(o.yieldOnContention !== undefined ? { yieldOnContention: o.yieldOnContention } : {}),
  };
}

export interface GetDirtyLogResult {
  readonly ms: number;
  /** Pages reported dirty. */
  readonly dirtyPages: number;
  /** SPTEs write-protected, or with PML whose D was cleared (0 with manual protect). */
  readonly wrprotected: number;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/**
 * KVM_GET_DIRTY_LOG into `out` (at least as many Int32 words as the slot's bitmap; page p is bit
 * p & 31 of word p >> 5). First, with PML, kick every vCPU and wait until each flushed its PML
 * buffer (kvm_arch_sync_dirty_log; no lock). With manual protect it then only copies the bitmap.
 * Without it (kvm_get_dirty_log_protect), under mmu_lock for WRITE, per 64-page word: fetch-and-
 * clear the bits (Atomics.exchange), copy them out, and write-protect those pages (wrprot) or
 * clear their D bits (pml) before the lock is released, so that their next write faults or is
 * logged and sets the bit again; one remote TLB flush after the unlock if any SPTE changed.
 */
export function getDirtyLog(vm: Vm, slot: number, out: Int32Array, opts: { readonly manualProtect: boolean }): GetDirtyLogResult {
  const t0 = performance.now();
  const [start] = slotRange(vm, slot);
  const bitmap = vm.dirtyBitmap(slot);
  if (out.length < bitmap.length) throw invalidArg('getDirtyLog', `out has ${out.length} words, the slot's bitmap ${bitmap.length}`);
  syncDirtyLogKick(vm);
  const pml = usesPml(vm);
  let dirty = 0;
  if (opts.manualProtect) {
    for (let w = 0; w < bitmap.length; w++) {
      const v = Atomics.load(bitmap, w);
      out[w] = v;
      dirty += popcount(v);
    }
    return { ms: performance.now() - t0, dirtyPages: dirty, wrprotected: 0 };
  }
  let wrprotected = 0;
  vm.mmuLock.writeLock();
  for (let w = 0; w < bitmap.length; w += 2) {
    // Pairs with the Atomics.or of markPageDirty (fast fault, map): a bit set after our exchange
    // stays for the next harvest.
    const lo = Atomics.exchange(bitmap, w, 0);
    const hi = w + 1 < bitmap.length ? Atomics.exchange(bitmap, w + 1, 0) : 0;
    out[w] = lo;
    if (w + 1 < out.length) out[w + 1] = hi;
    if ((lo | hi) === 0) continue;
    dirty += popcount(lo) + popcount(hi);
    wrprotected += pml ? clearDirtyMaskedLocked(vm, start + w * 32, lo, hi) : wrprotMaskedLocked(vm, start + w * 32, lo, hi);
  }
  vm.mmuLock.writeUnlock();
  if (wrprotected > 0) flushRemoteTlbs(vm);
  return { ms: performance.now() - t0, dirtyPages: dirty, wrprotected };
}

export interface ClearDirtyLogResult {
  readonly ms: number;
  /** Time spent in eager splitting inside the loop (lock drops included). */
  readonly splitMs: number;
  /** Pages whose bit was set and is now cleared. */
  readonly cleared: number;
  /** SPTEs write-protected, or with PML whose D was cleared. */
  readonly wrprotected: number;
  /** Merged split counters (zeros if nothing was split). */
  readonly split: SplitTotals;
  /** A split stopped with ENOMEM at least once (those huge pages were write-protected instead). */
  readonly splitEnomem: boolean;
}

/**
 * KVM_CLEAR_DIRTY_LOG for the pages [firstPage, firstPage + mask.length*32) of `slot`; `mask` holds
 * the pages to clear (bit p & 31 of word p >> 5, relative to firstPage, a multiple of 64).
 * kvm_clear_dirty_log_protect holds mmu_lock for WRITE across the whole loop; per 64-page word:
 *   1. clear the masked bits (Atomics.and), keeping in the mask only bits that were set;
 *   2. with initially-set and eager splitting: split the huge pages overlapping
 *      [first set bit, last set bit + 1) under the write lock (shared=false; the design may drop
 *      the write lock to allocate, as 6.11 does);
 *   3. write-protect the masked pages (wrprot), or clear their D bits (pml); huge leaves
 *      overlapping them are write-protected whole in both modes.
 * One remote TLB flush after the unlock if any SPTE changed.
 *
 * `clearLock: 'per-word'` is the change proposed in 2023-24 and dropped ("Aggressively drop and
 * reacquire mmu_lock during CLEAR_DIRTY_LOG"): KVM_MMU_LOCK/UNLOCK moved from around the loop to
 * around each kvm_arch_mmu_enable_log_dirty_pt_masked call, so the lock is taken once per word
 * whose cleared mask is non-empty (steps 2-3), all-zero words are processed unlocked (step 1 is
 * an atomic on the bitmap and needs no lock), and the single TLB flush stays after the loop.
 * Every acquisition is counted in `clearLockHolds`.
 */
export function clearDirtyLog(vm: Vm, slot: number, firstPage: number, mask: Int32Array, opts: ClearDirtyLogOptions): ClearDirtyLogResult {
  const t0 = performance.now();
  const [start, end] = slotRange(vm, slot);
  if (!Number.isInteger(firstPage) || firstPage < 0 || firstPage % 64 !== 0) {
    throw invalidArg('clearDirtyLog', `firstPage ${firstPage} must be a non-negative multiple of 64`);
  }
  if (firstPage + mask.length * 32 > Math.ceil((end - start) / 64) * 64) {
    throw invalidArg('clearDirtyLog', `[${firstPage}, +${mask.length * 32}) runs past the slot's ${end - start} pages`);
  }
  const bitmap = vm.dirtyBitmap(slot);
  const splitting = opts.eagerSplit && (slotFlags(vm, slot) & SLOT_FLAG_INITIALLY_SET) !== 0;
  const pml = usesPml(vm);
  const totals = { ok: true, hugePagesSplit: 0, restarts: 0, yields: 0, lockDrops: 0, spteReads: 0, allocUnderLock: 0, ms: 0 };
  let splitEnomem = false;
  let cleared = 0;
  let wrprotected = 0;
  const perWord = opts.clearLock === 'per-word';
  // One options object for every word's split walk, not two fresh objects per 64-page word.
  const splitOpts = { shared: false, design: opts.design, targetLevel: opts.targetLevel ?? PG_LEVEL_4K, ...reschedOf(opts) };
  let holds = 0;
  if (!perWord) {
    vm.mmuLock.writeLock();
    holds++;
  }
  for (let i = 0; i < mask.length; i += 2) {
    let lo = mask[i]!;
    let hi = i + 1 < mask.length ? mask[i + 1]! : 0;
    if ((lo | hi) === 0) continue;
    const w = (firstPage >> 5) + i;
    // Pairs with markPageDirty's Atomics.or: a bit set after this stays set.
    if (lo !== 0) lo &= Atomics.and(bitmap, w, ~lo);
    if (hi !== 0 && w + 1 < bitmap.length) hi &= Atomics.and(bitmap, w + 1, ~hi);
    if ((lo | hi) === 0) continue;
    cleared += popcount(lo) + popcount(hi);
    if (perWord) {
      vm.mmuLock.writeLock();
      holds++;
    }
    const base = start + w * 32;
    if (splitting) {
      const first = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 32 + 31 - Math.clz32(hi & -hi);
      const last = hi !== 0 ? 32 + 31 - Math.clz32(hi) : 31 - Math.clz32(lo);
      const r = splitHugePagesYieldSafe(vm, base + first, base + last + 1, splitOpts);
      totals.hugePagesSplit += r.hugePagesSplit;
      totals.restarts += r.restarts;
      totals.yields += r.yields;
      totals.lockDrops += r.lockDrops;
      totals.spteReads += r.spteReads;
      totals.allocUnderLock += r.allocUnderLock;
      totals.ms += r.ms;
      if (!r.ok) splitEnomem = true;
    }
    wrprotected += pml ? clearDirtyMaskedLocked(vm, base, lo, hi) : wrprotMaskedLocked(vm, base, lo, hi);
    if (perWord) vm.mmuLock.writeUnlock();
  }
  if (!perWord) vm.mmuLock.writeUnlock();
  vm.stats.add(WS.clearLockHolds, holds);
  if (wrprotected > 0) flushRemoteTlbs(vm);
  return { ms: performance.now() - t0, splitMs: totals.ms, cleared, wrprotected, split: totals, splitEnomem };
}

export interface DisableDirtyLogResult {
  readonly ms: number;
  /** Collapsible tables zapped. */
  readonly zapped: number;
}

/**
 * Disable dirty logging on `slot`: clear the flags (faults map huge again), then recover huge
 * pages by zapping collapsible SPTEs under mmu_lock for READ (recoverHugePagesYieldSafe), then
 * wait for the zapped tables' grace periods (reclaimFreedTables) so they are reusable on return.
 */
export function disableDirtyLogging(vm: Vm, slot: number, opts: ReschedOptions = {}): DisableDirtyLogResult {
  const t0 = performance.now();
  slotRange(vm, slot);
  setSlotFlags(vm, slot, 0);
  vm.mmuLock.readLock();
  const r = recoverHugePagesYieldSafe(vm, slot, opts);
  vm.mmuLock.readUnlock();
  reclaimFreedTables(vm); // the zapped tables go back to the pool after their grace periods
  return { ms: performance.now() - t0, zapped: r.zapped };
}
