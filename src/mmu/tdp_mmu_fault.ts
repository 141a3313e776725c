/**
 * The vCPU fault paths (KVM `kvm_tdp_mmu_map`, `fast_page_fault`, kvm-eager-split.md §1.11):
 *
 *   - walkGfn: the lookup of one gfn from the root to its last SPTE, one load per level. It is
 *     what the hardware page walker does, and what the fast fault uses to find its leaf.
 *   - fastPageFaultRcu: RCU only, no mmu_lock. A write to a present, write-protected, MMU-writable
 *     4K leaf is fixed with one cmpxchg that sets W and D, then the page is marked in the slot's
 *     dirty bitmap. This is why, after eager splitting, x86 dirty-logging write faults never touch
 *     mmu_lock.
 *   - kvmTdpMmuMapAtomic: mmu_lock held for read, inside RCU. Walk toward the gfn, link missing
 *     tables (from the vCPU's pre-filled MmuMemoryCache), deal with a huge SPTE above the goal
 *     level on the way (e.g. a write to a huge page of a dirty-logged slot), and install the leaf
 *     with cmpxchg. Lost races and frozen SPTEs return 'retry', never throw. The huge SPTE is
 *     handled as the VM's `hugePageFault` says (kvm-faults-and-dirty-tracking.md §2):
 *       'split' (6.2+, c4b33d28ea51): split it into a table from the vCPU cache; the children
 *               inherit its bits, so sibling reads hit and sibling writes take the fast fault;
 *       'zap'   (before 6.2): zap it (frozen, remote TLB flush, non-present), link an EMPTY table
 *               from the vCPU cache and map only the faulting 4K page: every other page of the
 *               region is now non-present and takes its own slow fault on its next access.
 *
 * NX huge pages (vm.nx, kvm.nx_huge_pages=Y; kvm-faults-and-dirty-tracking.md §3): huge leaves
 * are built without X, so an execute access to one faults; the fast path never fixes it (it only
 * fixes writes). kvmTdpMmuMapAtomic then maps 4K (fault->huge_page_disallowed): it splits the huge
 * SPTE (6.2+) or zaps it (before 6.2) into a table marked nx_huge_page_disallowed and records it
 * as a possible NX huge page (nx_sp_tracking.ts); the 4K children are executable
 * (hugePageSplitBase). Later read or write faults must not map a huge leaf over such a table
 * (disallowed_hugepage_adjust); the NX recovery worker (nx_huge_pages.ts) zaps recorded tables so
 * the region can be mapped huge again.
 *
 * Which pages are writable: a write fault installs W|D; a read fault installs a read-only but
 * MMU-writable leaf, so that the first write takes the fast path (and, when the slot logs dirty
 * pages, marks the page). With write protection a writable SPTE in a dirty-logged slot therefore
 * always has its page's dirty bit set, or a harvest that cleared the bit has not yet
 * write-protected it; with PML the same holds of a writable SPTE whose D bit is set.
 *
 * Memslot flags are read INSIDE the RCU read-side section that also covers the SPTE update, so
 * enableDirtyLogging's rcu.synchronize() after setting LOG_DIRTY waits out every fault that may
 * have seen the old flags (our stand-in for KVM's synchronize_srcu on a memslot update).
 */
import type { Vm } from '../vm.js';
import type { TdpIter } from './tdp_iter.js';
import { WS } from '../stats/worker_stats.js';
import { invariantViolation } from '../errors.js';
import { linkSp, setSpteAtomic, zapSpteAtomic } from './tdp_mmu.js';
import { splitHugePage } from './tdp_mmu_split.js';
import { markPageDirty, slotLogsDirty } from './slot_flags.js';
import type { AccessKind } from './access_kind.js';
import {
  FROZEN_SPTE,
  PG_LEVEL_4K,
  POISON_SPTE,
  SPTE_A_MASK,
  SPTE_D_MASK,
  SPTE_LARGE_MASK,
  SPTE_MMU_PRESENT_MASK,
  SPTE_MMU_WRITABLE_MASK,
  SPTE_W_MASK,
  makeLeafSpte,
  pagesPerHpage,
  spteHex,
  spteSetLowBits,
  lowFlagBits,
} from './spte.js';

/** 4K pages per SPTE by level (index 0 unused). */
const PAGES: readonly number[] = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4, 512 ** 5];

// Scratch for the child-pointer extraction (see spte.ts: avoids Number(bigint)).
const SCRATCH64 = new BigInt64Array(1);
const SCRATCH32 = new Int32Array(SCRATCH64.buffer);

/**
 * The value of the last SPTE walkGfn read. A typed-array slot rather than an object field: a
 * BigInt stored into a field escapes and is heap-allocated on every walk (measured: a third of
 * the fast-fault path went to GC), while a BigInt64Array store is lowered to a plain 64-bit store.
 */
export const walkOutSpte = new BigInt64Array(1);

/** Results of walkGfn (module fields rather than an object per call: the walk is the hot path). */
export const walkOut = {
  /** Absolute spt index of the last SPTE read (its value is walkOutSpte[0]). */
  idx: 0,
  /** Loads made by the walk. */
  reads: 0,
  /** A POISON_SPTE was read at some level (a use-after-free). */
  poison: false,
};

/**
 * Walk from `root` toward `gfn`, one load per level, stopping at the first non-present SPTE or leaf.
 * Returns that SPTE's level; walkOut holds its index, walkOutSpte[0] its value. Lock context: RCU read side (the
 * tables it passes through may be unlinked concurrently, never reused while it runs).
 */
export function walkGfn(spt: BigInt64Array, root: number, rootLevel: number, gfn: number): number {
  let table = root;
  let reads = 0;
  for (let level = rootLevel; ; level--) {
    // `& 511` is exact for any integer below 2^53 (ToInt32 keeps the low 32 bits).
    const idx = table * 512 + (Math.floor(gfn / PAGES[level]!) & 511);
    const spte = spt[idx]!;
    reads++;
    if ((spte & SPTE_MMU_PRESENT_MASK) === 0n || level === PG_LEVEL_4K || (spte & SPTE_LARGE_MASK) !== 0n) {
      walkOut.idx = idx;
      walkOutSpte[0] = spte;
      walkOut.reads = reads;
      walkOut.poison = spte === POISON_SPTE;
      return level;
    }
    SCRATCH64[0] = spte;
    table = (SCRATCH32[0]! >>> 12) + (SCRATCH32[1]! & 0xfffff) * 1048576;
    // Only a corrupt tree (a control, or a bug) points outside the pool.
    if (table * 512 >= spt.length) throw invariantViolation('walkGfn: child table index out of the pool', { gfn, level, spte: spteHex(spte), table });
  }
}

/**
 * kvm_mmu_max_mapping_level: the backing's page size, 4K while the slot logs dirty pages, and no
 * larger than what fits inside the memslot around `gfn` (a huge page must not cross its edges).
 */
export function maxMappingLevel(vm: Vm, slot: number, gfn: number, logging: boolean): number {
  let level: number = logging ? PG_LEVEL_4K : vm.config.backingLevel;
  const s = vm.config.memslots[slot]!;
  while (level > PG_LEVEL_4K) {
    const n = pagesPerHpage(level);
    const base = gfn - (gfn % n);
    if (base >= s.baseGfn && base + n <= s.baseGfn + s.npages) break;
    level--;
  }
  return level;
}

export type FastFaultResult = 'fixed' | 'spurious' | 'slow';

/** W and D as a low-word mask (spteSetLowBits: no BigInt allocated per fast fault). */
const W_D_LO = lowFlagBits(SPTE_W_MASK | SPTE_D_MASK);

/** fast_page_fault gives up after this many lost cmpxchg races (KVM: 4). */
const FAST_FAULT_RETRIES = 4;

/**
 * fast_page_fault for a write to `gfn` of `slot`. Lock context: RCU read side only (caller holds
 * it; asserted in RCU debug mode). Steps:
 *   1. look the gfn up (walkGfn);
 *   2. not present, not a 4K leaf, or not MMU-writable: 'slow' (needs mmu_lock);
 *      already writable: 'spurious' (another vCPU fixed it);
 *   3. cmpxchg W|D into it; on success mark the page dirty if the slot logs dirty pages (after the
 *      cmpxchg, as fast_pf_fix_direct_spte does; a harvest in between still finds the bit set later
 *      or write-protects the SPTE again); on a lost race retry from 1 a few times.
 * `reads` of the walks are added to walkOut.reads.
 */
export function fastPageFaultRcu(vm: Vm, slot: number, gfn: number): FastFaultResult {
  vm.rcu.assertInReadSide();
  const spt = vm.spt;
  let reads = 0;
  for (let retry = 0; ; retry++) {
    const level = walkGfn(spt, vm.root, vm.rootLevel, gfn);
    reads += walkOut.reads;
    const spte = walkOutSpte[0]!;
    if (walkOut.poison) vm.stats.add(WS.poisonReads, 1); // a use-after-free (emulator detector)
    if ((spte & SPTE_W_MASK) !== 0n && (spte & SPTE_MMU_PRESENT_MASK) !== 0n) {
      walkOut.reads = reads;
      return 'spurious';
    }
    if (level !== PG_LEVEL_4K || (spte & (SPTE_MMU_PRESENT_MASK | SPTE_MMU_WRITABLE_MASK)) !== (SPTE_MMU_PRESENT_MASK | SPTE_MMU_WRITABLE_MASK)) {
      walkOut.reads = reads;
      return 'slow';
    }
    // Pairs with every *Atomic updater's cmpxchg and with the write-lock exchange of
    // writeSpteLocked (wrprot / zap under the write lock): exactly one of us wins.
    if (Atomics.compareExchange(spt, walkOut.idx, spte, spteSetLowBits(spte, W_D_LO)) === spte) {
      if (slotLogsDirty(vm, slot)) markPageDirty(vm, slot, gfn);
      walkOut.reads = reads;
      return 'fixed';
    }
    if (retry + 1 >= FAST_FAULT_RETRIES) {
      walkOut.reads = reads;
      return 'slow';
    }
  }
}

export type MapResult = 'fixed' | 'spurious' | 'retry';

/**
 * kvm_tdp_mmu_map for an access of `kind` to `gfn` of `slot`. Lock context: mmu_lock held for
 * read and RCU read side (asserted in debug mode); the vCPU cache must hold enough tables for
 * every level below the root (topped up before taking the lock). Per visited SPTE:
 *   1. FROZEN: someone is zapping it: 'retry';
 *   2. at the goal level: install the leaf (or make a write-protected leaf writable);
 *   3. present non-leaf: step down;
 *   4. otherwise a table is needed: pop one from the cache, then split the huge SPTE into it
 *      (split on fault), or zap the huge SPTE first ('zap': a lost race returns 'retry' before the
 *      pop) and link it as an empty table; a lost cmpxchg frees the unpublished table at once and
 *      returns 'retry'.
 * `it` is the vCPU's iterator (its spteReads grow).
 */
export function kvmTdpMmuMapAtomic(vm: Vm, it: TdpIter, slot: number, gfn: number, kind: AccessKind): MapResult {
  // Read, or write with the shadow fault model (guest_access.ts): the same cmpxchg discipline
  // serves both, since the lockless fast fault races either way.
  vm.mmuLock.assertHeld();
  vm.rcu.assertInReadSide();
  const isWrite = kind === 'write';
  const zapHuge = vm.config.hugePageFault === 'zap';
  const logging = slotLogsDirty(vm, slot);
  const nx = vm.nx;
  // req_level: what the backing, the memslot and dirty logging allow. An execute fault with NX
  // huge pages (fault->huge_page_disallowed) must map 4K: its goal drops to 4K, and the tables it
  // links are marked nx_huge_page_disallowed (and possible NX huge pages where req_level allowed
  // a huge page at that level), as kvm_tdp_mmu_map does.
  const reqLevel = maxMappingLevel(vm, slot, gfn, logging);
  const hugeDisallowed = nx !== undefined && kind === 'exec';
  let goal = hugeDisallowed ? PG_LEVEL_4K : reqLevel;
  for (it.start(vm.root, vm.rootLevel, goal, gfn); it.valid && it.gfn < gfn + 1; it.next()) {
    const old = it.oldSpte;
    if (old === FROZEN_SPTE) return 'retry';
    if (old === POISON_SPTE) {
      // Emulator-only detector: this walk reached a freed table (a use-after-free; see spte.ts).
      vm.stats.add(WS.poisonReads, 1);
      return 'retry';
    }
    let present = (old & SPTE_MMU_PRESENT_MASK) !== 0n;
    if (it.level === goal) {
      // disallowed_hugepage_adjust: a huge leaf must not replace a table that an execute fault
      // split for NX huge pages; map one level lower instead (under it).
      if (nx !== undefined && goal > PG_LEVEL_4K && present && (old & SPTE_LARGE_MASK) === 0n && nx.isDisallowed(childTableOf(old))) {
        goal--;
        it.minLevel = goal;
        continue;
      }
      return mapTargetLevel(vm, it, slot, gfn, isWrite, logging);
    }
    if (present && (old & SPTE_LARGE_MASK) === 0n) continue;
    const wasHuge = present;
    if (present && zapHuge) {
      // tdp_mmu_zap_spte_atomic: frozen, flushed, non-present; then link an empty table below.
      if (!zapSpteAtomic(vm, it, true)) return 'retry';
      present = false;
    }
    const sp = vm.vcpuCache.pop();
    // sp->nx_huge_page_disallowed is set before the table is published (nx_sp_tracking.ts).
    if (hugeDisallowed) nx.markDisallowed(sp);
    const ok = present ? splitHugePage(vm, it, sp, true) : linkSp(vm, it, sp, true);
    if (!ok) {
      if (hugeDisallowed) nx.clearUnpublished(sp);
      vm.pool.freeUnpublished(sp);
      return 'retry';
    }
    if (hugeDisallowed) {
      if (wasHuge) vm.stats.add(WS.nxHugePagesSplit, 1);
      // track_possible_nx_huge_page: only where a huge page could have been mapped at this level.
      if (reqLevel >= it.level) {
        nx.lock();
        try {
          // The table may already be gone (zapped by another thread since the link): then it
          // was torn down and its flags cleared; tracking it again would leak a list entry.
          if (nx.isDisallowed(sp)) nx.trackLocked(sp, it.gfn, it.level);
        } finally {
          nx.unlock();
        }
      }
    }
  }
  // The walk ran out before the goal level: a table we (or another vCPU) linked was zapped again.
  return 'retry';
}

/** The child table index of a present non-leaf SPTE. */
function childTableOf(spte: bigint): number {
  SCRATCH64[0] = spte;
  return (SCRATCH32[0]! >>> 12) + (SCRATCH32[1]! & 0xfffff) * 1048576;
}

/** tdp_mmu_map_handle_target_level: the SPTE at the goal level becomes the right leaf. */
function mapTargetLevel(vm: Vm, it: TdpIter, slot: number, gfn: number, isWrite: boolean, logging: boolean): MapResult {
  const old = it.oldSpte;
  const level = it.level;
  let spte: bigint;
  if ((old & SPTE_MMU_PRESENT_MASK) !== 0n && (level === PG_LEVEL_4K || (old & SPTE_LARGE_MASK) !== 0n)) {
    // A leaf is there already: spurious unless this is a write to a write-protected one (an
    // execute reaches here only at 4K, where every leaf is executable).
    if (!isWrite || (old & SPTE_W_MASK) !== 0n) return 'spurious';
    spte = old | SPTE_W_MASK | SPTE_D_MASK | SPTE_A_MASK; // make_spte sets A too (aging may have cleared it)
  } else {
    // Non-present, or a table where a huge leaf now fits (it is torn down by handleChangedSpte).
    // With NX huge pages a huge leaf is built without X (make_spte).
    const nxHuge = vm.nx !== undefined;
    spte = makeLeafSpte(vm.backingPfn(it.gfn), level, isWrite ? (nxHuge ? WRITABLE_NX : WRITABLE) : nxHuge ? READ_ONLY_NX : READ_ONLY);
  }
  if (!setSpteAtomic(vm, it, spte)) return 'retry';
  // make_spte marks the page when it creates a writable SPTE in a dirty-logged slot (4K there).
  if (isWrite && logging) markPageDirty(vm, slot, gfn);
  return 'fixed';
}

const WRITABLE = Object.freeze({ writable: true });
const READ_ONLY = Object.freeze({ writable: false });
const WRITABLE_NX = Object.freeze({ writable: true, nxHuge: true });
const READ_ONLY_NX = Object.freeze({ writable: false, nxHuge: true });
