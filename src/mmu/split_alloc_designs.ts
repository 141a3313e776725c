/**
 * Every split allocation design, registered by name (issue 5), plus what a caller needs to run
 * one: which lock mode it splits under, whether it splits eagerly at all, and how to free what it
 * keeps between calls.
 *
 * Importing this module registers the designs with split_alloc.ts's registry, so anything that
 * creates designs by name (createSplitAllocDesign) or lists them must import it (directly, or by
 * using one of the helpers below, which is the point of keeping them here).
 *
 *   name                 origin              allocation                          lock
 *   drop-always          Linux 6.11+         blocking, lock dropped for each     caller's mode
 *   cache                RFC, Nov 2021       cache (capacity C) refilled outside caller's mode
 *   nowait-retry         Linux 5.18-6.10     nowait under lock, else drop+block  caller's mode
 *   chunked-cache        arm64, Linux 6.5    cache topped up per chunk outside   write, always
 *   blocking-under-lock  (hypothetical)      blocking under the lock             caller's mode
 *   lazy                 eager_page_split=N  none: vCPU write faults split        -
 *   lazy-zap             eager_page_split=N  none: vCPU faults zap (before 6.2)   -
 *
 * Lifecycle (for the splitter thread): create ONE instance per thread with createSplitAllocDesign
 * (designs with caches keep per-thread state), reuse it for every split call of the run, call
 * endSplitIoctl after each ioctl's split calls (the RFC cache frees its leftovers there) and
 * releaseSplitAllocDesign when dirty logging is disabled or the thread exits (arm64's chunked
 * cache lives that long).
 */
import { createCacheDesign } from './split_alloc_cache.js';
import { createChunkedCacheDesign, CHUNK_PAGES_1G, CHUNK_PAGES_2M } from './split_alloc_chunked.js';
import { blockingUnderLock } from './split_alloc_blocking.js';
import { lazySplit, lazyZapSplit } from './split_alloc_lazy.js';
import { nowaitRetry } from './split_alloc_nowait.js';
import { dropAlways, registerSplitAllocDesignImpl, splitAllocDesignImplNames } from './split_alloc.js';
import type { SplitAllocDesign } from './split_alloc.js';

/** Optional traits a design may carry beyond SplitAllocDesign (read through the helpers below). */
export interface SplitAllocDesignTraits {
  /** 'write': split under mmu_lock held for write on every path (arm64). Default 'caller'. */
  readonly lockMode?: 'caller' | 'write';
  /** false: no eager splitting at all (lazy). Default true. */
  readonly eager?: boolean;
  /** The ioctl (enable, one CLEAR_DIRTY_LOG) finished its split calls: free per-ioctl state. */
  endIoctl?(): number;
  /** The memslot changed (dirty logging disabled) or the thread exits: free everything kept. */
  release?(): number;
}

type WithTraits = SplitAllocDesign & SplitAllocDesignTraits;

/**
 * The lock mode a split path must take for this design: `pathShared` is the x86 choice (true on
 * the enable path, mmu_lock for read; false on CLEAR_DIRTY_LOG, for write). Returns the `shared`
 * flag to pass to splitHugePagesYieldSafe, after taking the lock in that mode.
 */
export function splitLockShared(design: SplitAllocDesign, pathShared: boolean): boolean {
  return (design as WithTraits).lockMode === 'write' ? false : pathShared;
}

/** False for `lazy`: skip eager splitting (as --eager-split off). */
export function splitIsEager(design: SplitAllocDesign): boolean {
  return (design as WithTraits).eager !== false;
}

/** End of one ioctl's split calls (enable, or one whole CLEAR_DIRTY_LOG); mmu_lock NOT held. Returns tables freed. */
export function endSplitIoctl(design: SplitAllocDesign): number {
  return (design as WithTraits).endIoctl?.() ?? 0;
}

/** Free whatever the design keeps between ioctls (memslot change, thread exit); mmu_lock NOT held. */
export function releaseSplitAllocDesign(design: SplitAllocDesign): number {
  return (design as WithTraits).release?.() ?? 0;
}

/** One line per design for --help and the compare table; in the order compare runs them. */
export interface SplitAllocDesignSummary {
  readonly name: string;
  readonly summary: string;
  readonly origin: string;
}

export const SPLIT_ALLOC_DESIGN_SUMMARIES: readonly SplitAllocDesignSummary[] = Object.freeze([
  {
    name: 'drop-always',
    summary: 'drop mmu_lock for every page-table allocation (blocking), retake it, restart the walk at the root',
    origin: 'Linux 6.11+',
  },
  {
    name: 'cache',
    summary: 'pop from a cache filled outside mmu_lock (--cache-capacity); when dry drop the lock, refill, restart',
    origin: 'RFC, Nov 2021',
  },
  {
    name: 'nowait-retry',
    summary: 'GFP_NOWAIT under mmu_lock; only if that fails drop the lock, allocate blocking, restart',
    origin: 'Linux 5.18-6.10',
  },
  {
    name: 'chunked-cache',
    summary: 'mmu_lock for write; before each --chunk-size chunk top a cache up outside the lock (513 tables per 1G)',
    origin: 'arm64, Linux 6.5+',
  },
  {
    name: 'blocking-under-lock',
    summary: 'blocking allocation (with reclaim) while holding mmu_lock; never drops it (the kernel cannot)',
    origin: 'hypothetical',
  },
  {
    name: 'lazy',
    summary: 'no eager splitting: huge pages stay until vCPU writes fault on them (= --eager-split off)',
    origin: 'eager_page_split=N',
  },
  {
    name: 'lazy-zap',
    summary: 'no eager splitting, pre-6.2 faults: a write zaps the huge page and maps 4K; every other page faults on its own',
    origin: 'eager_page_split=N, before 6.2',
  },
]);

/** Design names in compare order (drop-always, the shipped baseline, first). */
export const SPLIT_ALLOC_DESIGN_ORDER: readonly string[] = Object.freeze(SPLIT_ALLOC_DESIGN_SUMMARIES.map((s) => s.name));

/** --chunk-size in bytes -> 4K pages, or undefined if arm64 would refuse it (not 2M or 1G). */
export function chunkSizeToPages(bytes: number): number | undefined {
  const pages = bytes / 4096;
  return pages === CHUNK_PAGES_2M || pages === CHUNK_PAGES_1G ? pages : undefined;
}

// Registration (once per thread: module evaluation). drop-always is registered by split_alloc.ts.
if (!splitAllocDesignImplNames().includes('cache')) {
  registerSplitAllocDesignImpl('cache', createCacheDesign);
  registerSplitAllocDesignImpl('nowait-retry', () => nowaitRetry);
  registerSplitAllocDesignImpl('chunked-cache', createChunkedCacheDesign);
  registerSplitAllocDesignImpl('blocking-under-lock', () => blockingUnderLock);
  registerSplitAllocDesignImpl('lazy', () => lazySplit);
  registerSplitAllocDesignImpl('lazy-zap', () => lazyZapSplit);
}

export { dropAlways, nowaitRetry, blockingUnderLock, lazySplit, lazyZapSplit };
