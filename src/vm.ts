/**
 * The VM object every thread attaches: KVM's `struct kvm` for our purposes.
 *
 *   main thread:  vmFootprint(config)  -> tables and bytes BEFORE allocating (refuse sizes that won't fit)
 *                 createVm(config)     -> VmShared: allocates and initialises the three SABs (layout.ts):
 *                                         mmu_lock, RCU domain, pool (free list), root table, dirty bitmaps
 *                 attachVm(shared, 0)  -> the main thread's own handles (workerId 0)
 *   each worker:  attachVm(shared, id) -> Vm: RwLock attach, RcuReader for slot id, PtPool attach,
 *                                         PageAllocator seeded with seed+id, vCPU cache, stat slot, histograms
 *
 * VmShared is plain data plus SharedArrayBuffers: structured-clonable, so it travels to workers in
 * the piscina task. Everything a worker creates in attachVm is private to that worker.
 *
 * Guest physical layout: memslots are gfn ranges [baseGfn, baseGfn + npages). The backing maps
 * gfn -> pfn = gfn + BACKING_PFN_OFFSET, an offset that is a multiple of every huge page size, so
 * a huge-aligned gfn range maps to a huge-aligned pfn range (what a THP/hugetlb backing gives KVM).
 * With 4 levels the root translates gfns below 2^36 (256 TiB); a 5-level root maps the same gfns
 * with one more level on top (they all sit under its entry 0), so the same memslots serve both.
 */

import { DEBUG_MAX_HOLDERS, RwLock } from 'atomics-lock';
import { RcuDomain } from 'epoch-rcu';
import type { RcuReader } from 'epoch-rcu';
import { EmulatorError, invalidArg } from './errors.js';
import { computeLayout, PAGE_STATS_1G, PAGE_STATS_2M, PAGE_STATS_4K } from './layout.js';
import type { ControlLayout } from './layout.js';
import { PtPool } from './mmu/pt_pool.js';
import { NxSpTracking } from './mmu/nx_sp_tracking.js';
import type { PoolAccounting } from './mmu/pt_pool.js';
import { PageAllocator, validatePressure } from './mmu/allocator.js';
import type { PressureParams } from './mmu/allocator.js';
import { DEFAULT_CACHE_CAPACITY, MmuMemoryCache } from './mmu/mmu_cache.js';
import { MmuLock } from './mmu/mmu_lock.js';
import { PoolReclaim } from './mmu/pool_reclaim.js';
import type { HostCosts } from './mmu/host_costs.js';
import { maxGfnForRoot, pagesPerHpage, PT_ENTRIES } from './mmu/spte.js';
import { resetStatSlots, sumStatSlots, WorkerStats } from './stats/worker_slot.js';
import { WorkerTiming } from './stats/worker_timing.js';
import type { WorkerTimingData } from './stats/worker_timing.js';

export interface Memslot {
  readonly baseGfn: number;
  readonly npages: number;
}

export interface VmConfig {
  readonly levels: 4 | 5;
  readonly memslots: readonly Memslot[];
  /** PG_LEVEL_4K / 2M / 1G page size of the backing. */
  readonly backingLevel: 1 | 2 | 3;
  /** Attachable threads incl. the main thread (workerId 0 = main). */
  readonly workers: number;
  readonly pressure: PressureParams;
  readonly seed: number;
  /** vCPU fault cache capacity (default 40). */
  readonly cacheCapacity?: number;
  /** Host cores need_resched() compares runnable threads against (default os.availableParallelism()). */
  readonly hostCores?: number;
  /** Override the pool capacity in tables (tests shrink it). */
  readonly poolTables?: number;
  /** Controls only (deliberately broken variants that tests must catch). */
  readonly unsafe?: {
    readonly freeWithoutGracePeriod?: boolean;
    readonly nonAtomicFreeList?: boolean;
    /** Pool pressure: an empty free list is ENOMEM at once, with no reaping or grace period pushed (pool_reclaim.ts). */
    readonly noPressureReclaim?: boolean;
    /** Pool pressure: a blocking allocation pushes grace periods even inside RCU or under mmu_lock. */
    readonly pressureWaitAnywhere?: boolean;
    /** PML: a flush discards the buffer instead of marking the bitmap (pml.ts). */
    readonly pmlDropBuffer?: boolean;
    /** NX huge pages: a torn-down table stays on the possible-NX list (tdp_mmu.ts handleRemovedPt). */
    readonly nxKeepRemovedTables?: boolean;
  };
  /** Dirty tracking (pml.ts, dirty_log.ts): Intel PML or write protection. Default 'wrprot'. */
  readonly dirtyTrack?: DirtyTrackMode;
  /**
   * What a vCPU fault does with a huge SPTE above its goal level (tdp_mmu_fault.ts): 'split'
   * (6.2+: split on fault) or 'zap' (before 6.2: zap it, map only the faulting 4K page). Default 'split'.
   */
  readonly hugePageFault?: HugePageFaultMode;
  /** Host costs spent as real time (host_costs.ts). Default: none. */
  readonly hostCosts?: HostCosts;
  /**
   * kvm.nx_huge_pages (nx_huge_pages.ts): huge leaves are never executable, so an execute access
   * to one faults and splits it (or zaps it before 6.2). Default false.
   */
  readonly nxHugePages?: boolean;
  /** Which lock each fault kind takes (tdp_mmu_fault.ts FaultModel). Default 'tdp'. */
  readonly faultModel?: FaultModel;
}

export type DirtyTrackMode = 'pml' | 'wrprot';
export type HugePageFaultMode = 'split' | 'zap';
/**
 * The three configurations of the April 2024 CLEAR_DIRTY_LOG measurement
 * (kvm-faults-and-dirty-tracking.md §5): 'tdp' (lockless fast path, slow faults under mmu_lock
 * for read), 'tdp-locked-fast' (the same with the fast path under the read lock, as KVM/arm64
 * takes it for write-protection faults) and 'shadow' (the shadow MMU: lockless fast path, slow
 * faults under mmu_lock for write).
 */
export type FaultModel = 'tdp' | 'tdp-locked-fast' | 'shadow';
export const FAULT_MODELS: readonly FaultModel[] = Object.freeze(['tdp', 'tdp-locked-fast', 'shadow']);

/** What createVm hands to workers. Plain data + SharedArrayBuffers (structured-clonable). */
export interface VmShared {
  readonly config: VmConfig;
  readonly layout: ControlLayout;
  /** The control SAB (layout.ts). */
  readonly control: SharedArrayBuffer;
  /** Page tables: BigInt64, table t at [t*512, t*512+512). */
  readonly spt: SharedArrayBuffer;
  /** Pool free-list links and state bytes. */
  readonly poolMeta: SharedArrayBuffer;
  readonly poolTables: number;
  /** Root table index. */
  readonly root: number;
  /** NX huge page tracking (nx_sp_tracking.ts); only when config.nxHugePages. */
  readonly nx?: SharedArrayBuffer;
}

/** gfn -> pfn offset of the emulated backing: 2^28, a multiple of 512^2 (1G) so huge pages stay aligned. */
export const BACKING_PFN_OFFSET = 2 ** 28;

/** First gfn of the default guest layout: 4 GiB, 1G-aligned (real VMs keep the low 4 GiB for MMIO holes). */
export const DEFAULT_FIRST_GFN = 2 ** 20;

/** Extra tables for the splitter's caches and tables waiting for a grace period (513 = SPLIT_DESC_CACHE_MIN_NR_OBJECTS, twice). */
const POOL_SLACK_FIXED = 1026;
/** Plus 1/64 (1.6 %) of the tree: RCU-waiting tables during zap/recover while faults rebuild. */
const POOL_SLACK_DIVISOR = 64;

// ---------------------------------------------------------------------------------------------
// Config checks and sizing
// ---------------------------------------------------------------------------------------------

/**
 * Split `totalPages` of guest memory into `count` memslots, each starting on a 1G boundary from
 * DEFAULT_FIRST_GFN (so every backing can map them huge), as dirty_log_perf_test gives each vCPU
 * its own slot-sized region. Pages are split as evenly as possible in whole 2M units where possible.
 */
export function layoutMemslots(totalPages: number, count = 1): Memslot[] {
  if (!Number.isInteger(totalPages) || totalPages < 1) throw invalidArg('layoutMemslots', `totalPages ${totalPages} must be a positive integer`);
  if (!Number.isInteger(count) || count < 1 || count > totalPages) throw invalidArg('layoutMemslots', `count ${count} must be in [1, totalPages]`);
  const out: Memslot[] = [];
  const per = Math.floor(totalPages / count);
  const oneG = pagesPerHpage(3);
  let base = DEFAULT_FIRST_GFN;
  for (let i = 0; i < count; i++) {
    const npages = i === count - 1 ? totalPages - per * (count - 1) : per;
    out.push({ baseGfn: base, npages });
    base += Math.ceil(npages / oneG) * oneG;
  }
  return out;
}

/** Validate a VmConfig; throws ERR_INVALID_ARG naming the field. */
function checkVmConfig(config: VmConfig): void {
  const bad = (why: string): never => {
    throw invalidArg('VmConfig', why);
  };
  if (config.levels !== 4 && config.levels !== 5) bad(`levels ${String(config.levels)} must be 4 or 5`);
  if (config.backingLevel !== 1 && config.backingLevel !== 2 && config.backingLevel !== 3) bad(`backingLevel ${String(config.backingLevel)} must be 1, 2 or 3`);
  if (!Number.isInteger(config.workers) || config.workers < 1) bad(`workers ${config.workers} must be a positive integer`);
  if (!Number.isInteger(config.seed)) bad(`seed ${config.seed} must be an integer`);
  if (config.cacheCapacity !== undefined && (!Number.isInteger(config.cacheCapacity) || config.cacheCapacity < 1)) {
    bad(`cacheCapacity ${config.cacheCapacity} must be a positive integer`);
  }
  if (config.hostCores !== undefined && (!Number.isInteger(config.hostCores) || config.hostCores < 1))
    bad(`hostCores ${config.hostCores} must be a positive integer`);
  if (config.poolTables !== undefined && (!Number.isInteger(config.poolTables) || config.poolTables < 1 || config.poolTables >= 2 ** 31 - 1)) {
    bad(`poolTables ${config.poolTables} must be a positive integer below 2^31-1`);
  }
  if (config.memslots.length < 1) bad('at least one memslot is needed');
  // Both 4 and 5 levels must map every gfn: use the 4-level limit.
  const maxGfn = maxGfnForRoot(4);
  const sorted = [...config.memslots].sort((a, b) => a.baseGfn - b.baseGfn);
  let end = 0;
  for (const s of sorted) {
    if (!Number.isInteger(s.baseGfn) || s.baseGfn < 0) bad(`memslot baseGfn ${s.baseGfn} must be a non-negative integer`);
    if (!Number.isInteger(s.npages) || s.npages < 1) bad(`memslot npages ${s.npages} must be a positive integer`);
    if (s.baseGfn + s.npages > maxGfn) bad(`memslot [${s.baseGfn}, ${s.baseGfn + s.npages}) goes past gfn 2^36 (what a 4-level root maps)`);
    if (s.baseGfn < end) bad(`memslot at gfn ${s.baseGfn} overlaps the previous one (ends at ${end})`);
    end = s.baseGfn + s.npages;
  }
  if (config.dirtyTrack !== undefined && config.dirtyTrack !== 'pml' && config.dirtyTrack !== 'wrprot')
    bad(`dirtyTrack ${String(config.dirtyTrack)} must be pml or wrprot`);
  if (config.hugePageFault !== undefined && config.hugePageFault !== 'split' && config.hugePageFault !== 'zap')
    bad(`hugePageFault ${String(config.hugePageFault)} must be split or zap`);
  if (config.faultModel !== undefined && !FAULT_MODELS.includes(config.faultModel))
    bad(`faultModel ${String(config.faultModel)} must be one of ${FAULT_MODELS.join(', ')}`);
  validatePressure(config.pressure);
}

/** Tables at `level` (1 = leaf tables) that [base, base+npages) touches. */
function tablesTouched(baseGfn: number, npages: number, level: number): number {
  const span = pagesPerHpage(level + 1); // gfns one table at `level` covers
  return Math.floor((baseGfn + npages - 1) / span) - Math.floor(baseGfn / span) + 1;
}

/**
 * Tables needed to map every memslot entirely at 4K (the worst case), root included: leaf tables
 * (pages/512 per slot, plus partial tables at unaligned edges) and every upper level up to the root.
 */
export function worstCaseTreeTables(config: Pick<VmConfig, 'levels' | 'memslots'>): number {
  let n = 1; // root
  for (const s of config.memslots) {
    for (let level = 1; level < config.levels; level++) n += tablesTouched(s.baseGfn, s.npages, level);
  }
  return n;
}

/** Tables needed to map every memslot at 4K, with no partial tables: pages/512 leaves plus upper levels. The ideal. */
export function idealTables4k(pages: number, levels: 4 | 5): number {
  let n = 0;
  let t = pages;
  for (let level = 1; level < levels; level++) {
    t = Math.ceil(t / PT_ENTRIES);
    n += t;
  }
  return n + 1;
}

/**
 * Pool capacity for `config`: the worst-case tree (everything at 4K) plus every worker's vCPU cache
 * plus slack (POOL_SLACK_FIXED for splitter caches, 1/POOL_SLACK_DIVISOR of the tree for tables
 * waiting out a grace period). `config.poolTables` overrides it.
 */
function poolCapacityFor(config: VmConfig): number {
  if (config.poolTables !== undefined) return config.poolTables;
  const tree = worstCaseTreeTables(config);
  const caches = config.workers * (config.cacheCapacity ?? DEFAULT_CACHE_CAPACITY);
  return tree + caches + POOL_SLACK_FIXED + Math.ceil(tree / POOL_SLACK_DIVISOR);
}

export interface VmFootprint {
  /** Pool capacity in tables. */
  readonly tables: number;
  /** Bytes reserved (page tables + pool metadata + control SAB). Committed lazily, but it all may be touched. */
  readonly bytes: number;
  readonly sptBytes: number;
  readonly poolMetaBytes: number;
  readonly controlBytes: number;
  /** Tables of a fully 4K-mapped guest (the tree alone) and the ideal (pages/512 plus upper levels). */
  readonly worstCaseTreeTables: number;
  readonly idealTables: number;
  readonly guestPages: number;
}

/** What createVm(config) would allocate, computed without allocating anything. */
export function vmFootprint(config: VmConfig): VmFootprint {
  checkVmConfig(config);
  const tables = poolCapacityFor(config);
  const guestPages = config.memslots.reduce((a, s) => a + s.npages, 0);
  const layout = computeLayout({ workers: config.workers, memslotPages: config.memslots.map((s) => s.npages) });
  const sptBytes = PtPool.sptBytes(tables);
  const poolMetaBytes = PtPool.metaBytes(tables) + (config.nxHugePages === true ? NxSpTracking.bytes(tables) : 0);
  return {
    tables,
    bytes: sptBytes + poolMetaBytes + layout.totalBytes,
    sptBytes,
    poolMetaBytes,
    controlBytes: layout.totalBytes,
    worstCaseTreeTables: worstCaseTreeTables(config),
    idealTables: idealTables4k(guestPages, config.levels),
    guestPages,
  };
}

/**
 * Throws ERR_TOO_BIG if the VM's footprint exceeds `availableBytes` (e.g. os.totalmem() minus a
 * reserve, decided by the CLI). Returns the footprint otherwise.
 */
export function checkFootprint(config: VmConfig, availableBytes: number): VmFootprint {
  const fp = vmFootprint(config);
  if (fp.bytes > availableBytes) {
    const gib = (b: number): string => (b / 2 ** 30).toFixed(2);
    throw new EmulatorError(
      'ERR_TOO_BIG',
      `the guest needs ${gib(fp.bytes)} GiB of page-table pool and control memory (${fp.tables} tables), more than the ${gib(availableBytes)} GiB available`,
      { tables: fp.tables, bytes: fp.bytes, availableBytes },
    );
  }
  return fp;
}

// ---------------------------------------------------------------------------------------------
// createVm (main thread)
// ---------------------------------------------------------------------------------------------

/** Main thread, once: allocate and initialise the lock, RCU domain, pool, root table and dirty bitmaps. */
export function createVm(config: VmConfig): VmShared {
  checkVmConfig(config);
  const layout = computeLayout({ workers: config.workers, memslotPages: config.memslots.map((s) => s.npages) });
  const poolTables = poolCapacityFor(config);
  const control = new SharedArrayBuffer(layout.totalBytes);
  const spt = new SharedArrayBuffer(PtPool.sptBytes(poolTables));
  const poolMeta = new SharedArrayBuffer(PtPool.metaBytes(poolTables));
  const view = new Int32Array(control);
  RwLock.initialize(view, layout.mmuLockBase);
  RcuDomain.initialize(view, layout.rcuBase, config.workers);
  PtPool.initialize(view, layout.poolCtrlBase, poolMeta, poolTables);
  // The root: the first table off the free list (table 0 of a fresh pool), zeroed, IN_USE forever.
  const root = new PtPool(view, layout.poolCtrlBase, spt, poolMeta).allocRaw();
  if (root < 0) throw invariantRootFailed(poolTables);
  const nx = config.nxHugePages === true ? NxSpTracking.create(poolTables) : undefined;
  return Object.freeze(
    nx === undefined ? { config, layout, control, spt, poolMeta, poolTables, root } : { config, layout, control, spt, poolMeta, poolTables, root, nx },
  );
}

function invariantRootFailed(poolTables: number): EmulatorError {
  return new EmulatorError('ERR_ENOMEM', `createVm: no table for the root in a pool of ${poolTables}`);
}

// ---------------------------------------------------------------------------------------------
// Per-worker pieces
// ---------------------------------------------------------------------------------------------

export interface PageStats {
  readonly pages4k: number;
  readonly pages2m: number;
  readonly pages1g: number;
}

// ---------------------------------------------------------------------------------------------
// The Vm handle (one per thread)
// ---------------------------------------------------------------------------------------------

export class Vm {
  readonly config: VmConfig;
  readonly shared: VmShared;
  readonly layout: ControlLayout;
  readonly workerId: number;
  /** The whole control SAB as Int32 (page stats and the dirty-logging flags use layout bases on it). */
  readonly control: Int32Array;
  readonly mmuLock: MmuLock;
  readonly rcu: RcuReader;
  readonly pool: PtPool;
  readonly alloc: PageAllocator;
  readonly vcpuCache: MmuMemoryCache;
  readonly spt: BigInt64Array;
  readonly root: number;
  readonly rootLevel: 4 | 5;
  readonly stats: WorkerStats;
  readonly timing: WorkerTiming;
  /** NX huge page tracking, when the VM runs with NX huge pages (nx_sp_tracking.ts). */
  readonly nx: NxSpTracking | undefined;
  readonly #slotBase: Float64Array;
  readonly #slotEnd: Float64Array;
  readonly #dirty: Int32Array[];
  #detached = false;

  constructor(shared: VmShared, workerId: number) {
    const { config, layout } = shared;
    if (!Number.isInteger(workerId) || workerId < 0 || workerId >= config.workers) {
      throw invalidArg('attachVm', `workerId ${workerId} must be in [0, ${config.workers})`);
    }
    this.config = config;
    this.shared = shared;
    this.layout = layout;
    this.workerId = workerId;
    this.control = new Int32Array(shared.control);
    this.stats = new WorkerStats(shared.control, layout, workerId);
    this.timing = new WorkerTiming();
    // Debug holder tracking has DEBUG_MAX_HOLDERS ids; past that, workers share ids, which only
    // weakens the "held by me" assertions (another holder with the same id satisfies them).
    this.mmuLock = new MmuLock(new RwLock(this.control, layout.mmuLockBase, { holderId: workerId % DEBUG_MAX_HOLDERS }), this.timing, this.stats);
    this.rcu = new RcuDomain(this.control, layout.rcuBase, config.workers).registerReader(workerId);
    this.pool = new PtPool(this.control, layout.poolCtrlBase, shared.spt, shared.poolMeta, {
      unsafeFreeWithoutGracePeriod: config.unsafe?.freeWithoutGracePeriod === true,
      unsafeNonAtomicFreeList: config.unsafe?.nonAtomicFreeList === true,
    });
    // seed + workerId: independent, reproducible pressure streams per worker.
    const mmuLock = this.mmuLock;
    const reclaim =
      config.unsafe?.noPressureReclaim === true
        ? undefined
        : new PoolReclaim(this.pool, this.rcu, () => mmuLock.isHeldByThisThread(), { unsafeWaitInAnyContext: config.unsafe?.pressureWaitAnywhere === true });
    this.alloc = new PageAllocator(this.pool, config.pressure, (config.seed + workerId) | 0, this.stats, reclaim);
    this.vcpuCache = new MmuMemoryCache(this.alloc, config.cacheCapacity ?? DEFAULT_CACHE_CAPACITY, { stats: this.stats, countLeftovers: false });
    this.spt = this.pool.spt;
    this.root = shared.root;
    this.nx = shared.nx === undefined ? undefined : new NxSpTracking(shared.nx, shared.poolTables);
    this.rootLevel = config.levels;
    const bases = new Float64Array(config.memslots.length);
    const ends = new Float64Array(config.memslots.length);
    config.memslots.forEach((s, i) => {
      bases[i] = s.baseGfn;
      ends[i] = s.baseGfn + s.npages;
    });
    this.#slotBase = bases;
    this.#slotEnd = ends;
    this.#dirty = layout.dirtyBases.map((b, i) => new Int32Array(shared.control, b * 4, layout.dirtyWords[i]!));
  }

  /**
   * Leave the VM (end of a worker's task): free the vCPU cache's leftovers, publish the lock's
   * per-handle counters, and unregister the RCU reader (its barrier runs every pending callback,
   * so this worker's RCU-waiting tables return to the pool). The RCU slot is then free for the
   * next attachVm(shared, workerId). Not inside a read-side section or while holding mmu_lock.
   */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.vcpuCache.freeAll();
    this.mmuLock.rwlock.publishStats();
    this.rcu.unregister();
  }

  /** This worker's histograms as plain data, then fresh ones (per phase). */
  takeTiming(): WorkerTimingData {
    return this.timing.takeData();
  }

  /** The pfn the backing maps gfn to: gfn + BACKING_PFN_OFFSET (huge-aligned for every huge size). */
  backingPfn(gfn: number): number {
    return gfn + BACKING_PFN_OFFSET;
  }

  /** Memslot index holding gfn, or -1. */
  slotOf(gfn: number): number {
    const b = this.#slotBase;
    const e = this.#slotEnd;
    for (let i = 0; i < b.length; i++) {
      if (gfn >= b[i]! && gfn < e[i]!) return i;
    }
    return -1;
  }

  /** Slot `slot`'s dirty bitmap (shared): page p of the slot is bit (p & 31) of word (p >> 5); set with Atomics.or. */
  dirtyBitmap(slot: number): Int32Array {
    const d = this.#dirty[slot];
    if (d === undefined) throw invalidArg('Vm.dirtyBitmap', `slot ${slot} must be in [0, ${this.#dirty.length})`);
    return d;
  }

  /** Mark page `p` of `slot` dirty (mark_page_dirty_in_slot). Atomics.or: many vCPUs share words. */
  markDirty(slot: number, p: number): void {
    Atomics.or(this.dirtyBitmap(slot), p >>> 5, 1 << (p & 31));
  }

  // --- main-thread helpers (valid on any thread; exact when workers are quiescent, see
  // --- stats/worker_stats.ts for what a read while they run returns) ---

  /** Totals over every worker's stat slot, by counter key (stats/worker_stats.ts). */
  sumStats(): Record<string, number> {
    return sumStatSlots(this.shared.control, this.layout);
  }

  /** One worker's stat slot, by name. */
  workerStats(workerId: number): Record<string, number> {
    return new WorkerStats(this.shared.control, this.layout, workerId).snapshot();
  }

  /** Zero every worker's stat slot (between runs, with all workers quiescent). */
  resetAllStats(): void {
    resetStatSlots(this.shared.control, this.layout);
  }

  /** KVM's pages_4k / pages_2m / pages_1g (maintained by page_stats.ts). */
  pageStats(): PageStats {
    const b = this.layout.pageStatsBase;
    return {
      pages4k: Atomics.load(this.control, b + PAGE_STATS_4K),
      pages2m: Atomics.load(this.control, b + PAGE_STATS_2M),
      pages1g: Atomics.load(this.control, b + PAGE_STATS_1G),
    };
  }

  poolAccounting(): PoolAccounting {
    return this.pool.accounting();
  }
}

/** In each worker (and the main thread as workerId 0): build this thread's handles. */
export function attachVm(shared: VmShared, workerId: number): Vm {
  return new Vm(shared, workerId);
}
