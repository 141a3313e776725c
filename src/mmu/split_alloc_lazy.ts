/**
 * `lazy`: eager page splitting off (kvm.eager_page_split=N, kvm-eager-split.md §3.3, §3.5).
 *
 * Huge pages stay mapped when dirty logging is enabled (and when CLEAR_DIRTY_LOG runs); they are
 * write-protected instead, and each vCPU write to one faults on the slow path (mmu_lock for read),
 * which splits it there (split-on-fault, 6.2) or maps the written page at 4K. The cost moves from
 * the splitter to the vCPUs' first writes: the question "If eager splitting takes n% longer ...
 * but vCPUs aren't impacted, do we care?" needs this baseline.
 *
 * There is no allocation design to run: `eager` is false and the caller skips the split walk
 * altogether (exactly --eager-split off). Running the walk with it is a caller bug and throws.
 */
import { EmulatorError } from '../errors.js';
import type { SplitAllocDesign } from './split_alloc.js';

export const LAZY_DESIGN_NAME = 'lazy';

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
