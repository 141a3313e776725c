/**
 * guestAccess: one guest memory access by a vCPU, emulating what the hardware and KVM do.
 *
 *   1. The hardware walk (the "TLB miss"; we model no TLB): inside an RCU read-side section, look
 *      the gfn up from the root. A present leaf that permits the access is a hit: the translation is
 *      checked against the backing (XLATE_ERRORS) and any POISON_SPTE seen counts (POISON_READS):
 *      both must stay 0 unless a control breaks the MMU on purpose.
 *   2. Otherwise an EPT violation: a write to a write-protected, MMU-writable 4K leaf tries the
 *      lockless fast fault (RCU only); anything else, or a fast fault that gives up, takes the slow
 *      fault: top up the vCPU's cache (may allocate, so before any lock), mmu_lock for read, RCU,
 *      kvmTdpMmuMapAtomic, unlock. Then the access is retried from step 1, as the guest re-executes
 *      the faulting instruction, until it succeeds.
 *
 * out.kind: 'hit' (no fault), 'fast' (only fast faults), 'slow' (at least one slow fault);
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
import { PG_LEVEL_4K, SPTE_LARGE_MASK, SPTE_MMU_PRESENT_MASK, SPTE_MMU_WRITABLE_MASK, SPTE_W_MASK, spteHex } from './spte.js';

export type AccessKind = 'hit' | 'fast' | 'slow';

export interface AccessResult {
  kind: AccessKind;
  /** Fault handling time (ns) from the first fault to the successful access; 0 for a hit. */
  faultNs: number;
  /** Faults taken by this access (0 for a hit). */
  faults: number;
}

export function createAccessResult(): AccessResult {
  return { kind: 'hit', faultNs: 0, faults: 0 };
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
 * Perform one guest access to `gfn` (inside a memslot). Lock context: none held; takes RCU for
 * each walk and mmu_lock (read) for slow faults. Never throws on lost races; throws ERR_ENOMEM if
 * the vCPU cache cannot be topped up (the guest cannot fault memory in), ERR_INVALID_ARG for a gfn
 * outside every memslot, ERR_INVARIANT if faults never make progress.
 */
export function guestAccess(vm: Vm, gfn: number, isWrite: boolean, out: AccessResult): void {
  const spt = vm.spt;
  const rcu = vm.rcu;
  const stats = vm.stats;
  stats.add(WS.accesses, 1);
  let faults = 0;
  let slow = false;
  let t0 = 0;
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
      if (!isWrite || (spte & SPTE_W_MASK) !== 0n) break;
    }
    // EPT violation.
    if (faults === 0) t0 = performance.now();
    if (++faults > MAX_FAULTS_PER_ACCESS) {
      throw invariantViolation('guestAccess: the fault never resolves', { gfn, isWrite, level, spte: spteHex(spte), faults });
    }
    const slot = vm.slotOf(gfn);
    if (slot < 0) throw new EmulatorError('ERR_INVALID_ARG', `guestAccess: gfn 0x${gfn.toString(16)} is outside every memslot`);
    if (
      leaf &&
      isWrite &&
      level === PG_LEVEL_4K &&
      (spte & SPTE_MMU_WRITABLE_MASK) !== 0n
    ) {
      rcu.readLock();
      const r = fastPageFaultRcu(vm, slot, gfn);
      rcu.readUnlock();
      stats.add(WS.spteReads, walkOut.reads);
      if (r === 'fixed') stats.add(WS.fastFaults, 1);
      if (r !== 'slow') continue;
    }
    slowFault(vm, slot, gfn, isWrite);
    slow = true;
  }
  if (faults === 0) {
    out.kind = 'hit';
    out.faultNs = 0;
    out.faults = 0;
    return;
  }
  const ns = (performance.now() - t0) * 1e6;
  out.kind = slow ? 'slow' : 'fast';
  out.faultNs = ns;
  out.faults = faults;
  if (faults > 1) stats.add(WS.faultRetries, faults - 1);
  if (slow) vm.timing.faultSlow.record(ns);
  else vm.timing.faultFast.record(ns);
}

/**
 * The slow fault: kvm_tdp_mmu_page_fault steps 3-7 (§1.11): top up the cache before any lock,
 * mmu_lock for read, RCU, map, unlock. The result ('retry' included) does not matter to the caller:
 * it re-runs the access either way. Then run this thread's ripe RCU callbacks (a fault that
 * replaced a table queued its free), outside every read-side section.
 */
function slowFault(vm: Vm, slot: number, gfn: number, isWrite: boolean): void {
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
  kvmTdpMmuMapAtomic(vm, it, slot, gfn, isWrite);
  vm.rcu.readUnlock();
  vm.mmuLock.readUnlock();
  vm.stats.add(WS.slowFaults, 1);
  vm.stats.add(WS.walks, 1);
  vm.stats.add(WS.spteReads, it.spteReads - reads0);
  // A fault that replaced a table (a huge leaf over a split region) freed it through RCU; drive
  // the grace periods now (rare: only such faults free), so the tables return to the pool.
  if (vm.rcu.pendingCallbacks() > 0) reclaimFreedTables(vm);
}
