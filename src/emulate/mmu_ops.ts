/**
 * The emulator's one doorway into the MMU (src/mmu/): the vCPU access, the dirty-log "ioctls"
 * over every memslot, and the invariant checker, as the workers use them. Keeping every call
 * here means the workers read like the selftest and an MMU API change touches one file.
 */
import { createAccessResult, guestAccess } from '../mmu/guest_access.js';
import type { AccessKind, AccessResult } from '../mmu/guest_access.js';
import { vcpuCheckKick, vcpuEnterGuest, vcpuExitGuest } from '../mmu/pml.js';
import { clearDirtyLog, disableDirtyLogging, enableDirtyLogging, getDirtyLog } from '../mmu/dirty_log.js';
import type { ClearLockMode } from '../mmu/dirty_log.js';
import { checkInvariants } from '../mmu/invariants.js';
import { createSplitAllocDesign } from '../mmu/split_alloc.js';
import { endSplitIoctl, releaseSplitAllocDesign } from '../mmu/split_alloc_designs.js';
import type { SplitAllocDesign } from '../mmu/split_alloc.js';
import { invalidOption } from '../errors.js';
import type { Vm } from '../vm.js';
import type { DirtyLogMode, InvariantVerdict, SplitTuning } from './messages.js';

export type { DirtyLogMode };

export type { AccessKind, AccessResult };

export function newAccessResult(): AccessResult {
  return createAccessResult();
}

/** One guest access (a workload's read, write or exec of one page): hardware walk plus fault handling. */
export function vcpuAccess(vm: Vm, gfn: number, kind: AccessKind, out: AccessResult): void {
  guestAccess(vm, gfn, kind, out);
}

/** The vCPU enters guest code (a pass starts): PML kick bookkeeping (pml.ts). */
export function vcpuRunBegin(vm: Vm): void {
  vcpuEnterGuest(vm);
}

/** The vCPU leaves guest code (pass end, parking, exit): the exit flushes its PML buffer. */
export function vcpuRunEnd(vm: Vm): void {
  vcpuExitGuest(vm);
}

/** At a batch boundary: answer a GET_DIRTY_LOG kick (flush the PML buffer) if one came. */
export function vcpuPollKick(vm: Vm): void {
  vcpuCheckKick(vm);
}

/**
 * One design instance per thread, VM and name (designs with caches keep per-thread state, bound to
 * the VM whose allocator fills them: jit_warmup.ts runs the same calls on a scratch VM first, and
 * its designs must never serve the real VM).
 */
const designs = new WeakMap<Vm, Map<string, SplitAllocDesign>>();

function designsOf(vm: Vm): Map<string, SplitAllocDesign> {
  let m = designs.get(vm);
  if (m === undefined) {
    m = new Map();
    designs.set(vm, m);
  }
  return m;
}

function designFor(vm: Vm, name: string, tuning: SplitTuning | undefined): SplitAllocDesign {
  const mine = designsOf(vm);
  let d = mine.get(name);
  if (d === undefined) {
    d = createSplitAllocDesign(name, vm, tuning === undefined ? {} : { cacheCapacity: tuning.cacheCapacity, chunkPages: tuning.chunkPages });
    if (d === undefined) throw invalidOption('--split-alloc', `no implementation of design ${JSON.stringify(name)}`);
    mine.set(name, d);
  }
  return d;
}

/** Where an op's time went, in ms: the split walk and the write protection inside it. */
export interface OpBreakdown {
  splitMs: number;
  wrprotMs: number;
}

/** KVM_SET_USER_MEMORY_REGION with KVM_MEM_LOG_DIRTY_PAGES, on every memslot. */
/** The split walk's cond_resched options from the tuning (ReschedOptions). */
function reschedOf(mode: DirtyLogMode): { reschedMs?: number; yieldOnContention?: boolean } {
  return mode.split === undefined ? {} : { reschedMs: mode.split.reschedMs, yieldOnContention: mode.split.yieldOnContention };
}

export function enableAll(vm: Vm, mode: DirtyLogMode): OpBreakdown {
  const design = designFor(vm, mode.splitAlloc, mode.split);
  const out = { splitMs: 0, wrprotMs: 0 };
  for (let slot = 0; slot < vm.config.memslots.length; slot++) {
    const r = enableDirtyLogging(vm, slot, { initiallySet: mode.manualProtect, eagerSplit: mode.eagerSplit, design, ...reschedOf(mode) });
    out.splitMs += r.splitMs;
    out.wrprotMs += r.wrprotMs;
    endSplitIoctl(design); // one ioctl per memslot
  }
  return out;
}

/** The GET_DIRTY_LOG user buffers, one per memslot, sized as the kernel-side bitmaps. */
export function newDirtyBitmaps(vm: Vm): Int32Array[] {
  return vm.config.memslots.map((_s, slot) => new Int32Array(vm.dirtyBitmap(slot).length));
}

/** KVM_GET_DIRTY_LOG on every memslot into `bitmaps`; returns the dirty pages reported. */
export function getAll(vm: Vm, mode: DirtyLogMode, bitmaps: readonly Int32Array[]): number {
  let dirty = 0;
  for (let slot = 0; slot < vm.config.memslots.length; slot++) {
    dirty += getDirtyLog(vm, slot, bitmaps[slot]!, { manualProtect: mode.manualProtect }).dirtyPages;
  }
  return dirty;
}

/**
 * One KVM_CLEAR_DIRTY_LOG call (-k cuts a memslot into several): pages [firstPage, firstPage +
 * npages) of `slot` (firstPage a multiple of 64; the call is clipped to the slot's words) with the
 * bitmap GET returned, holding mmu_lock as `clearLock` says. Its own ioctl for the designs.
 */
export function clearCall(
  vm: Vm,
  mode: DirtyLogMode,
  bitmaps: readonly Int32Array[],
  slot: number,
  firstPage: number,
  npages: number,
  clearLock: ClearLockMode,
): OpBreakdown {
  const design = designFor(vm, mode.splitAlloc, mode.split);
  const slotWords = Math.ceil(vm.config.memslots[slot]!.npages / 64) * 2;
  const w0 = firstPage >> 5;
  const w1 = Math.min(slotWords, w0 + Math.ceil(npages / 64) * 2);
  const r = clearDirtyLog(vm, slot, firstPage, bitmaps[slot]!.subarray(w0, w1), { eagerSplit: mode.eagerSplit, design, clearLock, ...reschedOf(mode) });
  endSplitIoctl(design);
  return { splitMs: r.splitMs, wrprotMs: 0 };
}

/** Clear KVM_MEM_LOG_DIRTY_PAGES on every memslot (recovering huge pages). */
export function disableAll(vm: Vm): void {
  for (let slot = 0; slot < vm.config.memslots.length; slot++) disableDirtyLogging(vm, slot);
  // The memslot changed: designs that keep a cache across CLEARs (arm64's chunked cache) free it now.
  for (const d of designsOf(vm).values()) releaseSplitAllocDesign(d);
}

/** The invariant checker (everything quiescent), reduced to plain data (the list is capped). */
export function checkAll(vm: Vm): InvariantVerdict {
  const t0 = performance.now();
  const r = checkInvariants(vm, { maxViolations: 20 });
  const violations = r.violations.map((v) => `${v.kind}: ${v.message}`);
  return { ok: r.ok, violationCount: r.count, violations, seconds: (performance.now() - t0) / 1000 };
}
