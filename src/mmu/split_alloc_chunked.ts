/**
 * `chunked-cache`: arm64's eager page splitting, Linux 6.5 (kvm-eager-split.md §3.4; Ricardo
 * Koller's series, KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE).
 *
 * mmu_lock is held for WRITE for the whole split (lockMode 'write': the caller takes the write
 * lock even on the enable path, where x86 takes it for read). The range is cut into chunks of the
 * chunk size (2M or 1G); before each chunk, if the cache holds fewer tables than one chunk can
 * need, the design
 *   1. drops mmu_lock (write_unlock; cond_resched),
 *   2. tops the cache up to exactly that many (__kvm_mmu_topup_memory_cache(cache, cap, cap):
 *      all or nothing; failing to get them all is ENOMEM even if this chunk needs fewer: the
 *      "thermal shock" Marc Zyngier objected to, and Sean's false-positive OOM),
 *   3. retakes the write lock.
 * Inside a chunk the walk only pops (an empty cache is "a guaranteed KVM bug": it throws) and
 * never yields: kvm_pgtable_stage2_split has no cond_resched. Between chunks the lock is dropped
 * when the cache is short (a top-up, counted as a lock drop) or, with a full cache, when
 * need_resched() || rwlock_needbreak() (a yield).
 *
 * Capacity = kvm_mmu_split_nr_page_tables(chunk) = ceil(chunk / 1G) + ceil(chunk / 2M):
 * 2 for a 2M chunk, 513 for a 1G chunk (one table for the 1G page, 512 for its 2M children).
 *
 * The cache survives across split calls (each CLEAR_DIRTY_LOG word is one call), as arm64 keeps
 * kvm->arch.mmu.split_page_cache until the memslot changes: call release() when dirty logging is
 * disabled (or the splitter exits); it frees the leftovers and counts them as LEFTOVER_FREED.
 *
 * Counting rule: one lock drop per chunk that starts with fewer than `capacity` tables (with 2M
 * pages and 2M chunks: every chunk; with 1G chunks: every chunk after one that consumed a table).
 * The walk starts afresh at each chunk (a walk start, not a restart: arm64 walks each chunk from
 * the root too). Nothing is allocated under the lock.
 */
import type { Vm } from '../vm.js';
import { invalidArg, invariantViolation } from '../errors.js';
import { MmuMemoryCache } from './mmu_cache.js';
import { registerSplitAllocDesign } from './split_alloc.js';
import type { SplitAllocDesign, SplitAllocParams, SplitCtx } from './split_alloc.js';
import { PG_LEVEL_1G, PG_LEVEL_2M, pagesPerHpage } from './spte.js';

const CHUNKED_CACHE_DESIGN_NAME = 'chunked-cache';

/** Chunk sizes arm64 accepts above the page size (4K granule): 2M and 1G, in 4K pages. */
export const CHUNK_PAGES_2M = pagesPerHpage(PG_LEVEL_2M);
export const CHUNK_PAGES_1G = pagesPerHpage(PG_LEVEL_1G);
const DEFAULT_CHUNK_PAGES = CHUNK_PAGES_1G;

/** kvm_mmu_split_nr_page_tables: tables needed to split one chunk of `chunkPages` to 4K. */
export function splitNrPageTables(chunkPages: number): number {
  return Math.ceil(chunkPages / CHUNK_PAGES_1G) + Math.ceil(chunkPages / CHUNK_PAGES_2M);
}

/** Regions of `span` pages that [start, end) overlaps. */
function regionsOverlapped(start: number, end: number, span: number): number {
  return Math.floor((end - 1) / span) - Math.floor(start / span) + 1;
}

export class ChunkedCacheSplitDesign implements SplitAllocDesign {
  readonly name = CHUNKED_CACHE_DESIGN_NAME;
  readonly lockMode = 'write' as const;
  readonly chunkPages: number;
  readonly cache: MmuMemoryCache;
  readonly #backingLevel: number;
  /** Top-ups done (each one dropped mmu_lock), since construction. */
  topups = 0;

  constructor(vm: Vm, chunkPages: number = DEFAULT_CHUNK_PAGES) {
    if (chunkPages !== CHUNK_PAGES_2M && chunkPages !== CHUNK_PAGES_1G) {
      throw invalidArg('chunked-cache', `chunk of ${chunkPages} pages: must be 2M (${CHUNK_PAGES_2M}) or 1G (${CHUNK_PAGES_1G})`);
    }
    this.chunkPages = chunkPages;
    this.cache = new MmuMemoryCache(vm.alloc, splitNrPageTables(chunkPages), { stats: vm.stats });
    this.#backingLevel = vm.config.backingLevel;
  }

  begin(ctx: SplitCtx): void {
    if (ctx.shared) {
      throw invariantViolation('chunked-cache splits under mmu_lock held for write, the caller holds it for read (see splitLockShared)', {
        design: this.name,
      });
    }
  }

  /** need_split_memcache_topup_or_resched + the top-up, before the chunk [start, end). */
  beginChunk(ctx: SplitCtx, start: number, end: number): boolean {
    const cap = this.cache.capacity;
    // The most this chunk can consume (huge pages exist only up to the backing's size). A walk
    // that cut chunks off the chunk grid could exceed the capacity: that is a walk bug, not ENOMEM.
    const want =
      (this.#backingLevel >= PG_LEVEL_1G ? regionsOverlapped(start, end, CHUNK_PAGES_1G) : 0) +
      (this.#backingLevel >= PG_LEVEL_2M ? regionsOverlapped(start, end, CHUNK_PAGES_2M) : 0);
    if (want > cap) {
      throw invariantViolation('chunked-cache: a chunk needs more tables than the cache holds (chunk not aligned?)', { start, end, want, cap });
    }
    if (this.cache.nobjs >= cap) {
      // A full cache: drop only to reschedule (need_resched() || rwlock_needbreak()).
      if (ctx.shouldYield()) ctx.yieldLocks();
      return true;
    }
    ctx.dropLocks();
    const ok = this.cache.topup(cap);
    ctx.retakeLocks();
    this.topups++;
    return ok;
  }

  allocSp(): number {
    return this.cache.pop();
  }

  end(ctx: SplitCtx, leftover: number): void {
    // Only if a vCPU split the page meanwhile (cannot happen under the write lock, but stay safe).
    if (leftover >= 0) ctx.vm.pool.freeUnpublished(leftover);
  }

  /** Free the persistent cache (memslot change / splitter exit); returns the tables freed. */
  release(): number {
    return this.cache.freeAll();
  }
}

function createChunkedCacheDesign(vm: Vm, params: SplitAllocParams): SplitAllocDesign {
  return new ChunkedCacheSplitDesign(vm, params.chunkPages ?? DEFAULT_CHUNK_PAGES);
}

registerSplitAllocDesign({
  name: CHUNKED_CACHE_DESIGN_NAME,
  summary: 'mmu_lock for write; before each --chunk-size chunk top a cache up outside the lock (513 tables per 1G)',
  origin: 'arm64, Linux 6.5+',
  compareOrder: 30,
  create: createChunkedCacheDesign,
});
