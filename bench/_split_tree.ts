/**
 * The tree the split benchmarks split: one memslot of `hugePages` 2M pages on a private VM
 * (worker 0, no pressure). `populate` maps every page huge (first-touch faults, outside any timed
 * part); `teardown` zaps the range and waits out the grace periods, so the next round starts from
 * the same pool. Shared by split.bench.ts and instrumentation.bench.ts.
 */
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm, VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { zapGfnRangeYieldSafe } from '../src/mmu/tdp_mmu_zap.js';
import { reclaimFreedTables } from '../src/mmu/tdp_mmu.js';
import { pagesPerHpage } from '../src/mmu/spte.js';

export interface SplitTree {
  readonly vm: Vm;
  /** The memslot's gfns: [start, end). */
  readonly start: number;
  readonly end: number;
  populate(): void;
  teardown(): void;
}

export function createSplitTree(hugePages: number, extra: Partial<VmConfig> = {}): SplitTree {
  const M = pagesPerHpage(2);
  const vm = attachVm(
    createVm({ levels: 4, memslots: layoutMemslots(hugePages * M, 1), backingLevel: 2, workers: 1, pressure: PRESSURE_PROFILES.none, seed: 1, ...extra }),
    0,
  );
  const slot = vm.config.memslots[0]!;
  const start = slot.baseGfn;
  const end = slot.baseGfn + slot.npages;
  const out = createAccessResult();
  return {
    vm,
    start,
    end,
    populate(): void {
      for (let g = start; g < end; g += M) guestAccess(vm, g, 'write', out);
      if (vm.pageStats().pages2m !== hugePages) throw new Error('populate did not map every 2M page');
    },
    teardown(): void {
      vm.mmuLock.writeLock();
      zapGfnRangeYieldSafe(vm, start, end, { shared: false });
      vm.mmuLock.writeUnlock();
      reclaimFreedTables(vm);
      vm.takeTiming();
    },
  };
}
