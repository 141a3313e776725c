/**
 * `cache`: the RFC design (a), Nov 2021 (kvm-eager-split.md §0, §2; RFC PATCH 12/15).
 *
 * The splitter owns a kvm_mmu_memory_cache of page tables, filled OUTSIDE mmu_lock (GFP_KERNEL:
 * may reclaim) to its capacity (`--cache-capacity`, default 40 = KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE).
 * Under the lock the walk only pops. When the cache runs dry at a huge SPTE:
 *   1. drop RCU and mmu_lock (ctx.dropLocks);
 *   2. top up with min = 1, as the RFC did: fill toward capacity, succeed if at least one table came;
 *   3. retake the lock and RCU; the walk restarts at the root (everything above may have changed);
 *   4. pop one table for the huge SPTE found there.
 * The leftovers are freed when the ioctl's split work ends (endIoctl: the RFC tore its caches down
 * after every memslot split, Sean's "pile of unused objects it needs to free"), counted as
 * WS.leftoverFreed. Within one ioctl the cache carries over between split calls: the
 * enable path makes one call per memslot, but CLEAR_DIRTY_LOG makes one per 64-page bitmap word,
 * and refilling 40 tables to use one per word would only measure waste (the shadow-MMU series made
 * the same choice: "Re-use split cache across calls to CLEAR_DIRTY_LOG").
 *
 * Counting rule (what the tests check): with T tables needed, capacity C and no failures,
 * refills = lock drops = restarts-to-allocate = ceil(T / C), and leftovers = refills * C - T.
 *
 * The RFC flushed remote TLBs on every lock drop; we do not (the flush is not needed, §1.8) but
 * count the flushes it would have made (WS.rfcDropTlbFlushes: one per refill drop and
 * one per cond_resched yield).
 *
 * Difference from the RFC, on purpose: the RFC also topped the cache up once BEFORE taking
 * mmu_lock. Here the caller already holds the lock when the walk begins (every design gets the
 * same entry), so that first fill is the first in-walk refill: one extra drop and root re-walk
 * per split call (a few SPTE reads), and a call with nothing to split allocates nothing. The RFC
 * also checked for an empty cache at every visited SPTE; we check when a table is needed, which
 * frees fewer leftovers (never a refill that nothing consumes).
 */
import type { Vm } from '../vm.js';
import { MmuMemoryCache, DEFAULT_CACHE_CAPACITY } from './mmu_cache.js';
import { WS } from '../stats/worker_stats.js';
import { registerSplitAllocDesign } from './split_alloc.js';
import type { SplitAllocDesign, SplitAllocParams, SplitCtx } from './split_alloc.js';

const CACHE_DESIGN_NAME = 'cache';

export class CacheSplitDesign implements SplitAllocDesign {
  readonly name = CACHE_DESIGN_NAME;
  readonly cache: MmuMemoryCache;
  /** Top-ups done (each one dropped mmu_lock), since construction: tests and traces. */
  refills = 0;

  constructor(vm: Vm, capacity: number = DEFAULT_CACHE_CAPACITY) {
    this.cache = new MmuMemoryCache(vm.alloc, capacity, { stats: vm.stats });
  }

  begin(): void {}

  /** Pop; an empty cache is refilled outside the lock (the walk then restarts). -1 = ENOMEM. */
  allocSp(ctx: SplitCtx): number {
    if (this.cache.nobjs === 0) {
      ctx.dropLocks();
      // The RFC flushed remote TLBs whenever it dropped mmu_lock; v1 stopped (§1.8: split SPTEs
      // keep W and D, so nothing needs flushing before the ioctl ends). Counted, not spent.
      ctx.vm.stats.add(WS.rfcDropTlbFlushes, 1);
      const ok = this.cache.topup(1);
      ctx.retakeLocks();
      this.refills++;
      // Not a single table: stop (best effort, as the RFC's pr_warn bail-out).
      if (!ok) return -1;
    }
    return this.cache.pop();
  }

  end(ctx: SplitCtx, leftover: number): void {
    // The RFC's cond_resched yields flushed too (flush=true; v1 passed false).
    if (ctx.yields > 0) ctx.vm.stats.add(WS.rfcDropTlbFlushes, ctx.yields);
    // A table popped but not used (nothing left to split after the restart) was never published.
    if (leftover >= 0) ctx.vm.pool.freeUnpublished(leftover);
  }

  /** The ioctl's split work is over: free the leftovers (call without mmu_lock). */
  endIoctl(): number {
    return this.cache.freeAll();
  }

  release(): number {
    return this.cache.freeAll();
  }
}

function createCacheDesign(vm: Vm, params: SplitAllocParams): SplitAllocDesign {
  return new CacheSplitDesign(vm, params.cacheCapacity ?? DEFAULT_CACHE_CAPACITY);
}

registerSplitAllocDesign({
  name: CACHE_DESIGN_NAME,
  summary: 'pop from a cache filled outside mmu_lock (--cache-capacity); when dry drop the lock, refill, restart',
  origin: 'RFC, Nov 2021',
  compareOrder: 10,
  create: createCacheDesign,
});
