/**
 * A small single-memslot VM of 2M-backed pages for single-threaded MMU tests (worker 0, no
 * pressure, seed 1): one place for the configuration every such test starts from; `extra`
 * overrides any field (dirty tracking, fault path, NX huge pages, ...).
 */
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm, VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { pagesPerHpage } from '../src/mmu/spte.js';

export function smallVm(hugePages: number, extra: Partial<VmConfig> = {}): Vm {
  return attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(hugePages * pagesPerHpage(2), 1),
      backingLevel: 2,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      ...extra,
    }),
    0,
  );
}
