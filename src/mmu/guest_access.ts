/**
 * guestAccess: one guest memory access by a vCPU, emulating what the hardware and KVM do.
 *
 * The access kind is what the guest instruction does: 'read', 'write' or 'exec' (an instruction
 * fetch). Every present SPTE we build is executable (NX huge pages are not modelled), so an exec
 * access needs what a read needs.
 *
 *   1. The hardware walk (the "TLB miss"; we model no TLB): inside an RCU read-side section, look
 *      the gfn up from the root. A present leaf that permits the access is a hit: the translation is
 *      checked against the backing (XLATE_ERRORS) and any POISON_SPTE seen counts (POISON_READS):
 *      both must stay 0 unless a control breaks the MMU on purpose. A write through a writable leaf
 *      whose D bit is clear makes the walk set D (cmpxchg; a lost race re-walks) and, with PML
 *      (pml.ts) in a dirty-logged slot, log the gfn in the vCPU's PML buffer: no fault.
 *   2. Otherwise an EPT violation, a VM exit: the PML buffer is flushed first (vmx_handle_exit).
 *      An access to a gfn with no translation (memory the guest never touched, or a zapped
 *      region) is a first-touch fault: the slow path maps it (4K in a dirty-logged slot, else as
 *      large as the backing allows) with tables from the vCPU cache, as for any other access.
 *      A write to a write-protected, MMU-writable 4K leaf tries the lockless fast fault (RCU only);
 *      anything else, or a fast fault that gives up, takes the slow fault: top up the vCPU's cache
 *      (may allocate, so before any lock), mmu_lock for read, RCU, kvmTdpMmuMapAtomic, unlock.
 *      Each violation pays its host cost (host_costs.ts: wpfault or slowfault) as real time. Then
 *      the access is retried from step 1, as the guest re-executes the faulting instruction.
 *
 * out.outcome: 'hit' (no fault), 'fast' (only fast faults), 'slow' (at least one slow fault);
 * out.faultNs: time from the first fault to the successful access (0 for a hit). Fault latencies
 * also go into this worker's histograms (faultFast / faultSlow).
 *
 * RCU: each walk is its own read-side section (readLock/readUnlock), as KVM brackets every TDP MMU
 * walk with rcu_read_lock. With a QSBR reader these calls only count nesting; the worker must then
 * report quiescent states itself between accesses (see bench/fast-fault.bench.ts for the costs).
 */
import type { Vm } from '../vm.js';
import { EmulatorError, invariantViolation } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import { FAULT_CACHE_MIN } from './mmu_cache.js';
import { TdpIter } from './tdp_iter.js';
import { reclaimFreedTables } from './tdp_mmu.js';
import { fastPageFaultRcu, kvmTdpMmuMapAtomic, walkGfn, walkOut, walkOutSpte } from './tdp_mmu_fault.js';
import {
  PG_LEVEL_4K,
  SHADOW_NONPRESENT_VALUE,
  SPTE_D_MASK,
  SPTE_LARGE_MASK,
  SPTE_MMU_PRESENT_MASK,
  SPTE_MMU_WRITABLE_MASK,
  SPTE_W_MASK,
  spteHex,
} from './spte.js';
import { pmlFlush, pmlLogWrite } from './pml.js';
import { payHostCost } from './host_costs.js';
import { slotLogsDirty } from './slot_flags.js';

import type { AccessKind } from './access_kind.js';

export type { AccessKind };

/** How an access was satisfied: no fault, only lockless fast faults, or at least one slow fault. */
export type FaultOutcome = 'hit' | 'fast' | 'slow';

/**
 * Which fault an access took, for the per-kind reports: 'none' (a hit), 'pml' (reserved: a
 * PML-full exit), 'wp-fast' (a write-protection fault the lockless fast path fixed), 'wp-slow'
 * (a write that needed the slow path under mmu_lock for read), 'exec' (an instruction fetch the
 * slow path had to fix), 'first-touch' (no translation at all), 'read' (a read that faulted on a
 * present but non-leaf or otherwise unusable translation). The first fault of the access names
 * it, except that a later slow fault turns a 'wp-fast' into 'wp-slow' (the fast path gave up).
 */
export type FaultKind = 'none' | 'pml' | 'wp-fast' | 'wp-slow' | 'exec' | 'first-touch' | 'read';

export interface AccessResult {
  outcome: FaultOutcome;
  /** Fault handling time (ns) from the first fault to the successful access; 0 for a hit. */
  faultNs: number;
  /** Faults taken by this access (0 for a hit). */
  faults: number;
  /** The kind of fault the access took ('none' for a hit). */
  faultKind: FaultKind;
}

export function createAccessResult(): AccessResult {
  return { outcome: 'hit', faultNs: 0, faults: 0, faultKind: 'none' };
}

/** A fault loop that never succeeds means the MMU is broken; stop with a state dump instead of hanging. */
const MAX_FAULTS_PER_ACCESS = 10_000;

/** 4K pages per SPTE by level. */
const PAGES: readonly number[] = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4, 512 ** 5];

// Scratch for pfn extraction without Number(bigint) (see spte.ts).
const SCRATCH64 = new BigInt64Array(1);
const SCRATCH32 = new Int32Array(SCRATCH64.buffer);

/** Per-thread state: the vCPU's iterator for slow faults. One Vm per worker, so a one-entry cache. */
let lastVm: Vm | undefined;
let lastIter: TdpIter | undefined;
function iterFor(vm: Vm): TdpIter {
  if (vm !== lastVm || lastIter === undefined) {
    lastVm = vm;
    lastIter = new TdpIter(vm.spt);
  }
  return lastIter;
}

/**
 * Perform one guest access of `kind` to `gfn` (inside a memslot). Lock context: none held; takes
 * RCU for each walk and mmu_lock (read) for slow faults. Never throws on lost races; throws
 * ERR_ENOMEM if the vCPU cache cannot be topped up (the guest cannot fault memory in),
 * ERR_INVALID_ARG for a gfn outside every memslot, ERR_INVARIANT if faults never make progress.
 */
export function guestAccess(vm: Vm, gfn: number, kind: AccessKind, out: AccessResult): void {
  const spt = vm.spt;
  const rcu = vm.rcu;
  const stats = vm.stats;
  const isWrite = kind === 'write';
  stats.add(WS.accesses, 1);
  let faults = 0;
  let slow = false;
  let t0 = 0;
  let faultKind: FaultKind = 'none';
  for (;;) {
    rcu.readLock();
    const level = walkGfn(spt, vm.root, vm.rootLevel, gfn);
    rcu.readUnlock();
    const spte = walkOutSpte[0]!;
    if (walkOut.poison) stats.add(WS.poisonReads, 1);
    const leaf = (spte & SPTE_MMU_PRESENT_MASK) !== 0n && (level === PG_LEVEL_4K || (spte & SPTE_LARGE_MASK) !== 0n);
    if (leaf) {
      SCRATCH64[0] = spte;
      const pfn = (SCRATCH32[0]! >>> 12) + (SCRATCH32[1]! & 0xfffff) * 1048576 + (gfn % PAGES[level]!);
      if (pfn !== vm.backingPfn(gfn)) {
        // The hardware would have accessed the wrong page: count it and treat the access as done.
        stats.add(WS.xlateErrors, 1);
        break;
      }
      if (!isWrite) break;
      if ((spte & SPTE_W_MASK) !== 0n) {
        if ((spte & SPTE_D_MASK) !== 0n || hardwareSetDirty(vm, gfn, spte)) break;
        continue; // the SPTE changed under the walk: walk again
      }
    }
    // EPT violation: a VM exit, which flushes the PML buffer first.
    if (faults === 0) t0 = performance.now();
    if (++faults > MAX_FAULTS_PER_ACCESS) {
      throw invariantViolation('guestAccess: the fault never resolves', { gfn, kind, level, spte: spteHex(spte), faults });
    }
    pmlFlush(vm);
    // No translation at all (never mapped, or zapped): a first-touch fault, always the slow path.
    if (spte === SHADOW_NONPRESENT_VALUE) {
      stats.add(WS.firstTouchFaults, 1);
      if (faultKind === 'none') faultKind = 'first-touch';
    }
    const slot = vm.slotOf(gfn);
    if (slot < 0) throw new EmulatorError('ERR_INVALID_ARG', `guestAccess: gfn 0x${gfn.toString(16)} is outside every memslot`);
    if (leaf && isWrite && level === PG_LEVEL_4K && (spte & SPTE_MMU_WRITABLE_MASK) !== 0n) {
      rcu.readLock();
      const r = fastPageFaultRcu(vm, slot, gfn);
      rcu.readUnlock();
      stats.add(WS.spteReads, walkOut.reads);
      if (r === 'fixed') stats.add(WS.fastFaults, 1);
      if (faultKind === 'none') faultKind = 'wp-fast';
      if (r !== 'slow') {
        payHostCost(vm, vm.config.hostCosts?.wpfaultNs ?? 0);
        continue;
      }
    }
    payHostCost(vm, vm.config.hostCosts?.slowfaultNs ?? 0);
    if (faultKind === 'none' || faultKind === 'wp-fast') faultKind = isWrite ? 'wp-slow' : kind === 'exec' ? 'exec' : 'read';
    slowFault(vm, slot, gfn, kind);
    slow = true;
  }
  if (faults === 0) {
    out.outcome = 'hit';
    out.faultNs = 0;
    out.faults = 0;
    out.faultKind = 'none';
    return;
  }
  const ns = (performance.now() - t0) * 1e6;
  out.outcome = slow ? 'slow' : 'fast';
  out.faultNs = ns;
  out.faults = faults;
  out.faultKind = faultKind;
  if (faults > 1) stats.add(WS.faultRetries, faults - 1);
  if (slow) vm.timing.faultSlow.record(ns);
  else vm.timing.faultFast.record(ns);
}

/**
 * The hardware walk's A/D update for a write through the writable leaf `spte` (at walkOut.idx)
 * whose D bit is clear: cmpxchg D in (pairs with KVM's cmpxchg/exchange that clears D or W, so
 * either the walk sets D on the SPTE KVM left, or it sees KVM's value and walks again). With PML
 * the gfn is then logged, if its slot logs dirty pages (PML logs the 4K gfn of the write).
 * Returns false if the SPTE changed first (the caller walks again).
 */
function hardwareSetDirty(vm: Vm, gfn: number, spte: bigint): boolean {
  if (Atomics.compareExchange(vm.spt, walkOut.idx, spte, spte | SPTE_D_MASK) !== spte) return false;
  if (vm.config.dirtyTrack === 'pml') {
    const slot = vm.slotOf(gfn);
    if (slot >= 0 && slotLogsDirty(vm, slot)) pmlLogWrite(vm, gfn);
  }
  return true;
}

/**
 * The slow fault: kvm_tdp_mmu_page_fault steps 3-7 (§1.11): top up the cache before any lock,
 * mmu_lock for read, RCU, map, unlock. The result ('retry' included) does not matter to the caller:
 * it re-runs the access either way. Then run this thread's ripe RCU callbacks (a fault that
 * replaced a table queued its free), outside every read-side section.
 */
function slowFault(vm: Vm, slot: number, gfn: number, kind: AccessKind): void {
  if (!vm.vcpuCache.topup(FAULT_CACHE_MIN)) {
    const a = vm.pool.accounting();
    throw new EmulatorError(
      'ERR_ENOMEM',
      `vCPU fault on gfn 0x${gfn.toString(16)}: cannot top up the MMU cache (page-table pool exhausted: ` +
        `capacity ${a.capacity}, in use ${a.inUse}, cached ${a.inCaches}, waiting for RCU ${a.rcuWaiting}, free ${a.free})`,
      { ...a },
    );
  }
  const it = iterFor(vm);
  const reads0 = it.spteReads;
  vm.mmuLock.readLock();
  vm.rcu.readLock();
  kvmTdpMmuMapAtomic(vm, it, slot, gfn, kind);
  vm.rcu.readUnlock();
  vm.mmuLock.readUnlock();
  vm.stats.add(WS.slowFaults, 1);
  vm.stats.add(WS.walks, 1);
  vm.stats.add(WS.spteReads, it.spteReads - reads0);
  // A fault that replaced a table (a huge leaf over a split region) freed it through RCU; drive
  // the grace periods now (rare: only such faults free), so the tables return to the pool.
  if (vm.rcu.pendingCallbacks() > 0) reclaimFreedTables(vm);
}
