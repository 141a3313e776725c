/**
 * `nowait-retry`: design (b), shipped from Linux 5.18 to 6.10 (kvm-eager-split.md §1.5, §2:
 * Sean's proposal of 2021-12-01, adopted in v1 of the TDP MMU series).
 *
 * tdp_mmu_alloc_sp_for_split(kvm, iter, shared):
 *   1. try GFP_NOWAIT while holding mmu_lock and RCU (allocNowait: no reclaim, never sleeps, so it
 *      is legal here); on success split in place: no lock drop, no restart (counted as
 *      WS.allocUnderLock);
 *   2. only if that fails: drop RCU and mmu_lock, allocate with GFP_KERNEL (allocBlocking: may
 *      reclaim), retake both, and let the walk restart at the root (iter->yielded).
 * The cost Sean accepted: the lock is held across the nowait allocation's latency tail (allocator
 * pressure profiles model it). The cost that made 6.11 drop it (§6): under the WRITE lock of
 * CLEAR_DIRTY_LOG those in-lock allocations plus long holds stalled vCPUs.
 */
import { registerSplitAllocDesign } from './split_alloc.js';
import type { SplitAllocDesign, SplitCtx } from './split_alloc.js';

const nowaitRetry: SplitAllocDesign = Object.freeze({
  name: 'nowait-retry',
  begin(): void {},
  allocSp(ctx: SplitCtx): number {
    const t = ctx.vm.alloc.allocNowait();
    if (t >= 0) {
      ctx.countAllocUnderLock();
      return t;
    }
    ctx.dropLocks();
    const b = ctx.vm.alloc.allocBlocking();
    ctx.retakeLocks();
    return b;
  },
  end(ctx: SplitCtx, leftover: number): void {
    if (leftover >= 0) ctx.vm.pool.freeUnpublished(leftover);
  },
});

registerSplitAllocDesign({
  name: nowaitRetry.name,
  summary: 'GFP_NOWAIT under mmu_lock; only if that fails drop the lock, allocate blocking, restart',
  origin: 'Linux 5.18-6.10',
  compareOrder: 20,
  create: () => nowaitRetry,
});
