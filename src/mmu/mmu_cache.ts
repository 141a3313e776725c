/**
 * MmuMemoryCache: KVM's `kvm_mmu_memory_cache` (kvm-eager-split.md §5), a per-user prefetch buffer
 * of page tables. Objects are allocated ahead (topup, where sleeping is allowed: before taking
 * mmu_lock) and consumed under the lock (pop, which cannot fail). Objects are never returned to
 * the cache on free; leftovers are freed by freeAll().
 *
 * Single-threaded by design (one per vCPU, or per splitter): plain fields, no atomics. The pool
 * counts cached tables as `inCaches` (PtPool.markCached / markUncached).
 *
 * Counting into the owner's stat slot: pop() adds WS.allocFromCache, freeAll() adds
 * WS.leftoverFreed; the allocations made by topup are counted by PageAllocator
 * (ALLOC_BLOCKING / ALLOC_FAILED). Callers must not count these again.
 */

import { invalidArg, invariantViolation } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import type { WorkerStats } from '../stats/worker_slot.js';
import type { PageAllocator } from './allocator.js';

/** KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE on x86. */
export const DEFAULT_CACHE_CAPACITY = 40;
/** mmu_shadow_page_cache minimum for a vCPU fault (mmu_topup_memory_caches): one table per level below a 5-level root. */
export const FAULT_CACHE_MIN = 5;

export interface MmuMemoryCacheOptions {
  /** Where pop() counts ALLOC_FROM_CACHE and freeAll() counts LEFTOVER_FREED (default: nowhere). */
  readonly stats?: WorkerStats;
  /** Count freeAll()'s tables as LEFTOVER_FREED (default true; the vCPU cache says false, so
   * LEFTOVER_FREED measures the splitter designs' waste only). */
  readonly countLeftovers?: boolean;
}

export class MmuMemoryCache {
  readonly capacity: number;
  readonly alloc: PageAllocator;
  readonly #objects: Int32Array;
  readonly #stats: WorkerStats | undefined;
  readonly #countLeftovers: boolean;
  #nobjs = 0;

  constructor(alloc: PageAllocator, capacity: number = DEFAULT_CACHE_CAPACITY, opts: MmuMemoryCacheOptions = {}) {
    if (!Number.isInteger(capacity) || capacity < 1) throw invalidArg('MmuMemoryCache', `capacity ${capacity} must be a positive integer`);
    this.alloc = alloc;
    this.capacity = capacity;
    this.#objects = new Int32Array(capacity);
    this.#stats = opts.stats;
    this.#countLeftovers = opts.countLeftovers !== false;
  }

  get nobjs(): number {
    return this.#nobjs;
  }

  /**
   * __kvm_mmu_topup_memory_cache(mc, capacity, min):
   *   1. nobjs >= min: return true at once (no allocation: most faults take this path);
   *   2. otherwise allocate with GFP_KERNEL (allocBlocking, may sleep a reclaim latency) until
   *      nobjs == capacity;
   *   3. if an allocation fails midway, stop: return nobjs >= min (true = enough for this use).
   * May sleep: call without mmu_lock (a design that calls it under the lock pays the sleeps as hold time).
   */
  topup(min: number): boolean {
    if (!Number.isInteger(min) || min < 0 || min > this.capacity) {
      throw invalidArg('MmuMemoryCache.topup', `min ${min} must be an integer in [0, capacity ${this.capacity}]`);
    }
    if (this.#nobjs >= min) return true;
    const pool = this.alloc.pool;
    while (this.#nobjs < this.capacity) {
      const t = this.alloc.allocBlocking();
      if (t < 0) break;
      pool.markCached(t);
      this.#objects[this.#nobjs++] = t;
    }
    return this.#nobjs >= min;
  }

  /**
   * kvm_mmu_memory_cache_alloc: take one table (zeroed, state IN_USE). An empty cache means the
   * caller under-topped: "a guaranteed KVM bug" (Sean), so it throws invariantViolation.
   */
  pop(): number {
    if (this.#nobjs === 0) {
      throw invariantViolation('mmu_cache: pop from an empty kvm_mmu_memory_cache', { capacity: this.capacity, nobjs: 0 });
    }
    const t = this.#objects[--this.#nobjs]!;
    this.alloc.pool.markUncached(t);
    this.#stats?.add(WS.allocFromCache, 1);
    return t;
  }

  /** kvm_mmu_free_memory_cache: free every leftover (never published) table; returns how many. */
  freeAll(): number {
    const n = this.#nobjs;
    const pool = this.alloc.pool;
    while (this.#nobjs > 0) {
      const t = this.#objects[--this.#nobjs]!;
      pool.markUncached(t);
      pool.freeUnpublished(t);
    }
    if (n > 0 && this.#countLeftovers) this.#stats?.add(WS.leftoverFreed, n);
    return n;
  }
}
