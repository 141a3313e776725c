/**
 * Every split allocation design, loaded by importing its file (each file registers itself with
 * split_alloc.ts's registry: name, summary, origin, compare order, factory), plus what a caller
 * needs to run one: which lock mode it splits under, whether it splits eagerly at all, and how to
 * free what it keeps between calls. Adding a design is one file plus one import line below.
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
 * Anything that creates designs by name (createSplitAllocDesign) or lists them must import this
 * module (directly, or by using one of the helpers below, which is the point of keeping them here).
 *
 * Lifecycle (for the splitter thread): create ONE instance per thread with createSplitAllocDesign
 * (designs with caches keep per-thread state), reuse it for every split call of the run, call
 * endSplitIoctl after each ioctl's split calls (the RFC cache frees its leftovers there) and
 * releaseSplitAllocDesign when dirty logging is disabled or the thread exits (arm64's chunked
 * cache lives that long).
 */
import './split_alloc_cache.js';
import './split_alloc_nowait.js';
import './split_alloc_chunked.js';
import './split_alloc_blocking.js';
import { CHUNK_PAGES_1G, CHUNK_PAGES_2M } from './split_alloc_chunked.js';
import './split_alloc_lazy.js';
import { splitAllocDesignRegistrations } from './split_alloc.js';
import type { SplitAllocDesign } from './split_alloc.js';

/**
 * The lock mode a split path must take for this design: `pathShared` is the x86 choice (true on
 * the enable path, mmu_lock for read; false on CLEAR_DIRTY_LOG, for write). Returns the `shared`
 * flag to pass to splitHugePagesYieldSafe, after taking the lock in that mode.
 */
export function splitLockShared(design: SplitAllocDesign, pathShared: boolean): boolean {
  return design.lockMode === 'write' ? false : pathShared;
}

/** False for `lazy`: skip eager splitting (as --eager-split off). */
export function splitIsEager(design: SplitAllocDesign): boolean {
  return design.eager !== false;
}

/** End of one ioctl's split calls (enable, or one whole CLEAR_DIRTY_LOG); mmu_lock NOT held. Returns tables freed. */
export function endSplitIoctl(design: SplitAllocDesign): number {
  return design.endIoctl?.() ?? 0;
}

/** Free whatever the design keeps between ioctls (memslot change, thread exit); mmu_lock NOT held. Returns tables freed. */
export function releaseSplitAllocDesign(design: SplitAllocDesign): number {
  return design.release?.() ?? 0;
}

/** One line per design for --help and the compare table; in the order compare runs them. */
export interface SplitAllocDesignSummary {
  readonly name: string;
  readonly summary: string;
  readonly origin: string;
}

/** Every registered design's summary, in compare order (read from the registry: no second list). */
const SPLIT_ALLOC_DESIGN_SUMMARIES: readonly SplitAllocDesignSummary[] = Object.freeze(
  splitAllocDesignRegistrations().map((r) => Object.freeze({ name: r.name, summary: r.summary, origin: r.origin })),
);

/** Design names in compare order (drop-always, the shipped baseline, first). */
export const SPLIT_ALLOC_DESIGN_ORDER: readonly string[] = Object.freeze(SPLIT_ALLOC_DESIGN_SUMMARIES.map((s) => s.name));

/** --chunk-size in bytes -> 4K pages, or undefined if arm64 would refuse it (not 2M or 1G). */
export function chunkSizeToPages(bytes: number): number | undefined {
  const pages = bytes / 4096;
  return pages === CHUNK_PAGES_2M || pages === CHUNK_PAGES_1G ? pages : undefined;
}

export { createSplitAllocDesign, splitAllocDesignRegistrations } from './split_alloc.js';
