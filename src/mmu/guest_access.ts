/**
 * guestAccess: one guest memory access by a vCPU, emulating what the hardware and KVM do.
 *
 * The access kind is what the guest instruction does: 'read', 'write' or 'exec' (an instruction
 * fetch). An exec needs X: every 4K leaf has it, huge leaves lack it when the VM runs with NX huge
 * pages (spte.ts), so an exec from a huge page is an EPT violation that the fast path cannot fix:
 * the slow fault splits the page (6.2+) or zaps it (before 6.2) and maps an executable 4K page.
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
 * out.faultKind: what the access met (FaultKind), counted per kind in the WS fault rows;
 * out.faultNs: time from the first fault to the successful access, for a sampled fault only
 * (out.timed; FAULT_TIMING_SAMPLE says why). Sampled latencies also go into this worker's
 * histograms (faultFast / faultSlow).
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
  SPTE_X_MASK,
  spteHex,
  spteSetLowBits,
  lowFlagBits,
} from './spte.js';
import { pmlFlush, pmlLogWrite } from './pml.js';
import { payHostCost } from './host_costs.js';
import { slotLogsDirty } from './slot_flags.js';
import { faultMustRetry } from './mmu_notifier.js';
import { TK, traceRing } from '../stats/trace_ring.js';

import type { AccessKind } from './access_kind.js';

export type { AccessKind };

/** How an access was satisfied: no fault, only lockless fast faults, or at least one slow fault. */
export type FaultOutcome = 'hit' | 'fast' | 'slow';

/**
 * What the access met, one value per access (the first fault decides; a retried access keeps it):
 *   'none'         a TLB-walk hit, no fault;
 *   'pml'          no fault, but a write the hardware logged with PML (D set by the walk);
 *   'wp-fast'      a write to a write-protected 4K leaf, fixed by the lockless fast fault;
 *   'wp-slow'      a write that needed mmu_lock: to a write-protected huge page (split or zap on
 *                  fault), or a fast fault that gave up after lost races;
 *   'exec'         an instruction fetch from a leaf without X (a huge page with NX huge pages);
 *   'first-touch'  no translation at all (never mapped, or zapped);
 *   'read'         any other fault of a read, e.g. one that met an SPTE frozen by a zap (a write
 *                  or an execute meeting a frozen SPTE is 'wp-slow' or 'exec' respectively).
 */
export type FaultKind = 'none' | 'pml' | 'wp-fast' | 'wp-slow' | 'exec' | 'first-touch' | 'read';

export interface AccessResult {
  outcome: FaultOutcome;
  /** The access's fault kind (see FaultKind). */
  faultKind: FaultKind;
  /**
   * Fault handling time (ns) from the first fault to the successful access, when this access's
   * fault was timed (`timed`); 0 otherwise, and for a hit. Faults are timed one in
   * FAULT_TIMING_SAMPLE per kind (see below), so latency percentiles come from samples.
   */
  faultNs: number;
  /** This access's fault was timed (faultNs is meaningful). */
  timed: boolean;
  /** Faults taken by this access (0 for a hit). */
  faults: number;
}

export function createAccessResult(): AccessResult {
  return { outcome: 'hit', faultKind: 'none', faultNs: 0, timed: false, faults: 0 };
}

/**
 * Fault timing is sampled: one fault in FAULT_TIMING_SAMPLE of each kind class (first-touch,
 * exec, write-protection, other) reads the clock twice; every fault is still counted (the WS
 * fault-kind rows). Two performance.now() calls (about 2 x 40 ns here) cost more than a lockless
 * fast fault itself, so timing every fault slowed exactly the path being measured. The first
 * fault of each class is always timed, so a rare kind still gets a sample. The worker histograms
 * (faultFast / faultSlow) therefore hold samples: their percentiles estimate the latency
 * distribution, their counts are about 1/FAULT_TIMING_SAMPLE of the faults.
 */
const FAULT_TIMING_SAMPLE = 16;
const SAMPLE_MASK = FAULT_TIMING_SAMPLE - 1;
/** Per-thread fault counters per timing class: 0 first-touch, 1 exec, 2 write-protection, 3 other. */
const sampleCounters = new Int32Array(4);

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

/** The D bit as a low-word mask (spteSetLowBits: no BigInt allocated per write). */
const D_LO = lowFlagBits(SPTE_D_MASK);

/** hardwareSetDirty results. */
const DIRTY_LOST = 0;
const DIRTY_SET = 1;
const DIRTY_LOGGED = 2;

/**
 * Perform one guest access of `kind` to `gfn` (inside a memslot). Lock context: none held; takes
 * RCU for each walk and mmu_lock for faults as the VM's fault model says (tdp: slow faults for
 * read; tdp-locked-fast: the fast fault for read as well; shadow: slow faults for write). Never
 * throws on lost races; throws ERR_ENOMEM if the vCPU cache cannot be topped up (the guest cannot
 * fault memory in), ERR_INVALID_ARG for a gfn outside every memslot, ERR_INVARIANT if faults
 * never make progress.
 */
export function guestAccess(vm: Vm, gfn: number, kind: AccessKind, out: AccessResult): void {
  const spt = vm.spt;
  const rcu = vm.rcu;
  const stats = vm.stats;
  const isWrite = kind === 'write';
  const isExec = kind === 'exec';
  stats.add(WS.accesses, 1);
  let faults = 0;
  let slow = false;
  let timed = false;
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
      if (isWrite) {
        if ((spte & SPTE_W_MASK) !== 0n) {
          if ((spte & SPTE_D_MASK) !== 0n) break;
          const d = hardwareSetDirty(vm, gfn, spte);
          if (d === DIRTY_LOGGED && faults === 0) faultKind = 'pml';
          if (d !== DIRTY_LOST) break;
          continue; // the SPTE changed under the walk: walk again
        }
      } else if (!isExec || (spte & SPTE_X_MASK) !== 0n) {
        break;
      }
    }
    // EPT violation: a VM exit, which flushes the PML buffer first.
    if (faults === 0) {
      // The first fault decides the access's kind (the fast-path candidate may still become wp-slow).
      let cls: number;
      if (spte === SHADOW_NONPRESENT_VALUE) {
        faultKind = 'first-touch';
        cls = 0;
      } else if (isExec) {
        faultKind = 'exec';
        cls = 1;
      } else if (isWrite) {
        faultKind = leaf && level === PG_LEVEL_4K && (spte & SPTE_MMU_WRITABLE_MASK) !== 0n ? 'wp-fast' : 'wp-slow';
        cls = 2;
      } else {
        faultKind = 'read';
        cls = 3;
      }
      const n = sampleCounters[cls]!;
      sampleCounters[cls] = n + 1;
      if ((n & SAMPLE_MASK) === 0) {
        timed = true;
        t0 = performance.now();
      }
    }
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
      const r = fastFault(vm, slot, gfn);
      stats.add(WS.spteReads, walkOut.reads);
      if (r === 'fixed') stats.add(WS.fastFaults, 1);
      if (faultKind === 'none') faultKind = 'wp-fast';
      if (r !== 'slow') {
        payHostCost(vm, vm.config.hostCosts?.wpfaultNs ?? 0);
        continue;
      }
      // The fast fault gave up (lost races): the write needs mmu_lock after all.
      if (faultKind === 'wp-fast') faultKind = 'wp-slow';
    }
    payHostCost(vm, vm.config.hostCosts?.slowfaultNs ?? 0);
    if (faultKind === 'none' || faultKind === 'wp-fast') faultKind = isWrite ? 'wp-slow' : kind === 'exec' ? 'exec' : 'read';
    slowFault(vm, slot, gfn, kind);
    slow = true;
  }
  // An access that needed mmu_lock after all (a race sent a later fault to the slow path) is never
  // wp-fast: so wp-fast accesses are exactly the 'fast' outcomes, the other fault kinds the 'slow'.
  if (slow && faultKind === 'wp-fast') faultKind = 'wp-slow';
  out.faultKind = faultKind;
  if (faults === 0) {
    out.outcome = 'hit';
    out.faultNs = 0;
    out.timed = false;
    out.faults = 0;
    return;
  }
  const row = KIND_ROW[faultKind];
  if (row >= 0) stats.add(row, 1);
  out.outcome = slow ? 'slow' : 'fast';
  out.faults = faults;
  out.timed = timed;
  if (faults > 1) stats.add(WS.faultRetries, faults - 1);
  if (!timed) {
    out.faultNs = 0;
    return;
  }
  const t1 = performance.now();
  const ns = (t1 - t0) * 1e6;
  out.faultNs = ns;
  if (slow) {
    vm.timing.faultSlow.record(ns);
    // --trace: the sampled slow faults above the kind's threshold (trace_ring.ts), no extra clock read.
    if (traceRing !== null) traceRing.span(TK.slowFault, t0, t1);
  } else vm.timing.faultFast.record(ns);
}

/** The worker counter of each fault kind; -1 for 'none' and 'pml', which are not faults (pmlWrites counts PML). */
const KIND_ROW: Readonly<Record<FaultKind, number>> = Object.freeze({
  none: -1,
  pml: -1,
  'wp-fast': WS.faultWpFast,
  'wp-slow': WS.faultWpSlow,
  exec: WS.faultExec,
  'first-touch': WS.faultFirstTouch,
  read: WS.faultRead,
});

/**
 * The lockless fast fault, RCU only; with the 'tdp-locked-fast' fault model also under mmu_lock
 * for read, as KVM/arm64 takes it for write-protection faults (kvm-faults-and-dirty-tracking.md §5).
 */
function fastFault(vm: Vm, slot: number, gfn: number): 'fixed' | 'spurious' | 'slow' {
  const locked = vm.config.faultModel === 'tdp-locked-fast';
  if (locked) vm.mmuLock.readLock();
  vm.rcu.readLock();
  const r = fastPageFaultRcu(vm, slot, gfn);
  vm.rcu.readUnlock();
  if (locked) vm.mmuLock.readUnlock();
  return r;
}

/**
 * The hardware walk's A/D update for a write through the writable leaf `spte` (at walkOut.idx)
 * whose D bit is clear: cmpxchg D in (pairs with KVM's cmpxchg/exchange that clears D or W, so
 * either the walk sets D on the SPTE KVM left, or it sees KVM's value and walks again). With PML
 * the gfn is then logged, if its slot logs dirty pages (PML logs the 4K gfn of the write).
 * Returns DIRTY_LOST if the SPTE changed first (the caller walks again), DIRTY_LOGGED if PML
 * logged the write, DIRTY_SET otherwise.
 */
function hardwareSetDirty(vm: Vm, gfn: number, spte: bigint): number {
  if (Atomics.compareExchange(vm.spt, walkOut.idx, spte, spteSetLowBits(spte, D_LO)) !== spte) return DIRTY_LOST;
  if (vm.config.dirtyTrack === 'pml') {
    const slot = vm.slotOf(gfn);
    if (slot >= 0 && slotLogsDirty(vm, slot)) {
      pmlLogWrite(vm, gfn);
      return DIRTY_LOGGED;
    }
  }
  return DIRTY_SET;
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
        `capacity ${a.capacity}, in use ${a.inUse}, cached ${a.inCaches}, waiting for RCU ${a.rcuWaiting}, free ${a.free}; ` +
        `grace periods pushed by pressure ${a.pressureGracePeriods}, tables reaped ${a.reapedTables})`,
      { ...a },
    );
  }
  const it = iterFor(vm);
  const reads0 = it.spteReads;
  // MMU notifier (mmu_notifier.ts): snapshot the sequence; from 6.8 retry before the lock.
  if (faultMustRetry(vm, gfn, 'before-lock')) return;
  // The shadow MMU (fault model 'shadow') handles every slow fault under mmu_lock for write.
  const exclusive = vm.config.faultModel === 'shadow';
  if (exclusive) vm.mmuLock.writeLock();
  else vm.mmuLock.readLock();
  if (!faultMustRetry(vm, gfn, 'under-lock', exclusive)) {
    vm.rcu.readLock();
    kvmTdpMmuMapAtomic(vm, it, slot, gfn, kind);
    vm.rcu.readUnlock();
  }
  if (exclusive) vm.mmuLock.writeUnlock();
  else vm.mmuLock.readUnlock();
  vm.stats.add(WS.slowFaults, 1);
  vm.stats.add(WS.walks, 1);
  vm.stats.add(WS.spteReads, it.spteReads - reads0);
  // A fault that replaced a table (a huge leaf over a split region) freed it through RCU; drive
  // the grace periods now (rare: only such faults free), so the tables return to the pool.
  if (vm.rcu.pendingCallbacks() > 0) reclaimFreedTables(vm);
}
