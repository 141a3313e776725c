/**
 * `blocking-under-lock`: the design David Matlack feared (kvm-eager-split.md §2, 2021-12-02:
 * "Is there really no risk of long tail latency in kmem_cache_alloc() or __get_free_page()?").
 *
 * Every table is allocated with GFP_KERNEL (allocBlocking: may enter direct reclaim and sleep)
 * while mmu_lock and RCU are held. The kernel cannot do this (sleeping under an rwlock and inside
 * an RCU read side is forbidden; reclaim can even call back into KVM's MMU notifiers and deadlock).
 * The emulator can, and shows the price: every reclaim latency becomes mmu_lock hold time, which
 * under the CLEAR path's write lock is vCPU stall time. Never drops the lock, never restarts to
 * allocate; each allocation counts as WS.allocUnderLock.
 */
import { registerSplitAllocDesign } from './split_alloc.js';
import type { SplitAllocDesign, SplitCtx } from './split_alloc.js';

const blockingUnderLock: SplitAllocDesign = Object.freeze({
  name: 'blocking-under-lock',
  begin(): void {},
  allocSp(ctx: SplitCtx): number {
    const t = ctx.vm.alloc.allocBlocking();
    if (t >= 0) ctx.countAllocUnderLock();
    return t;
  },
  end(ctx: SplitCtx, leftover: number): void {
    if (leftover >= 0) ctx.vm.pool.freeUnpublished(leftover);
  },
});

registerSplitAllocDesign({
  name: blockingUnderLock.name,
  summary: 'blocking allocation (with reclaim) while holding mmu_lock; never drops it (the kernel cannot)',
  origin: 'hypothetical',
  compareOrder: 40,
  create: () => blockingUnderLock,
});
