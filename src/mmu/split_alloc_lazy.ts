/**
 * `lazy` and `lazy-zap`: eager page splitting off (kvm.eager_page_split=N, kvm-eager-split.md
 * §3.3, §3.5; kvm-faults-and-dirty-tracking.md §2).
 *
 * Huge pages stay mapped when dirty logging is enabled (and when CLEAR_DIRTY_LOG runs); they are
 * write-protected instead, and the first vCPU write to one faults on the slow path (the fast path
 * refuses huge SPTEs in dirty-logged slots; with PML too, since the huge page is write-protected).
 * What that fault does depends on the kernel, and is the VM's `hugePageFault` (tdp_mmu_fault.ts):
 *   - `lazy` (6.2+, split on fault): the fault splits the huge page under mmu_lock for read, with a
 *     table from the vCPU's cache; the 4K children inherit the write-protected SPTE, so the other
 *     pages of the region take lockless fast faults (or hit, for reads);
 *   - `lazy-zap` (before 6.2): the fault zaps the huge SPTE (frozen, remote TLB flush,
 *     non-present), links an EMPTY table from the vCPU's cache and maps only the faulting 4K page;
 *     every other 4K page of the region then takes its own slow fault (read lock) when touched.
 * The cost moves from the splitter to the vCPUs' first writes: the question "If eager splitting
 * takes n% longer ... but vCPUs aren't impacted, do we care?" needs these baselines.
 *
 * There is no allocation design to run: `eager` is false and the caller skips the split walk
 * altogether (exactly --eager-split off). Running the walk with it is a caller bug and throws.
 */
import { EmulatorError } from '../errors.js';
import type { HugePageFaultMode } from '../vm.js';
import { registerSplitAllocDesign } from './split_alloc.js';
import type { SplitAllocDesign } from './split_alloc.js';

const LAZY_DESIGN_NAME = 'lazy';
const LAZY_ZAP_DESIGN_NAME = 'lazy-zap';

function notEager(): never {
  throw new EmulatorError('ERR_INVALID_ARG', 'split-alloc lazy: eager splitting is off, the caller must not run the split walk (see splitIsEager)');
}

export const lazySplit: SplitAllocDesign & { readonly eager: false } = Object.freeze({
  name: LAZY_DESIGN_NAME,
  eager: false as const,
  begin: notEager,
  allocSp: notEager,
  end: notEager,
});

export const lazyZapSplit: SplitAllocDesign & { readonly eager: false } = Object.freeze({
  name: LAZY_ZAP_DESIGN_NAME,
  eager: false as const,
  begin: notEager,
  allocSp: notEager,
  end: notEager,
});

registerSplitAllocDesign({
  name: lazySplit.name,
  summary: 'no eager splitting: huge pages stay until vCPU writes fault on them and split there (= --eager-split off)',
  origin: 'eager_page_split=N, 6.2+',
  compareOrder: 50,
  create: () => lazySplit,
});

registerSplitAllocDesign({
  name: lazyZapSplit.name,
  summary: 'no eager splitting, pre-6.2 faults: a write zaps the huge page and maps 4K; every other page faults on its own',
  origin: 'eager_page_split=N, before 6.2',
  compareOrder: 60,
  create: () => lazyZapSplit,
});

/** The fault path's behaviour for a huge SPTE that a design name implies ('zap' only for lazy-zap). */
export function hugePageFaultFor(designName: string): HugePageFaultMode {
  return designName === LAZY_ZAP_DESIGN_NAME ? 'zap' : 'split';
}
