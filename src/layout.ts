/**
 * The shared-memory layout: every region of the VM's CONTROL SharedArrayBuffer, with named
 * Int32 index constants, a size per region, who writes and who reads each field, and load-time
 * checks that regions neither overlap nor straddle cache lines (STYLE.md practice 2; liburcu's
 * `struct urcu_gp`, piscina's `kRequestCountField`).
 *
 * A VM uses three SharedArrayBuffers:
 *
 *   control  (this file)  locks, RCU, pool control, page stats, run control, per-worker stats,
 *                         dirty bitmaps. Int32Array view; the worker-stats region also has a
 *                         Float64Array view (counters that may pass 2^31) and the pool head a
 *                         BigInt64Array view (a tagged 64-bit CAS word).
 *   spt                   the page tables themselves: BigInt64Array, table t = spt[t*512 .. t*512+511].
 *                         Sized by the pool capacity; committed lazily by the OS (see pt_pool.ts).
 *   poolMeta              per-table free-list links (Int32) and state bytes (Uint8): pt_pool.ts.
 *
 * Region bases depend on the worker count (RCU reader slots, stat slots) and on the memslots
 * (dirty bitmaps), so they are computed once by `computeLayout()` in the main thread and shipped
 * to workers as plain data inside VmShared. Field offsets WITHIN a region are fixed constants.
 *
 *   Int32 index 0
 *   +-----------------------------------------------------------------------------------+
 *   | MMU_LOCK      RWLOCK_INT32S (atomics-lock)          the VM's mmu_lock (qrwlock)   |
 *   +-----------------------------------------------------------------------------------+
 *   | RCU           rcuInt32s(workers) (rcu)              epoch word + reader slots     |
 *   +-----------------------------------------------------------------------------------+
 *   | POOL_CTRL     2 lines: [0] tagged free-list head (BigInt64)                         |
 *   |                        [1] accounting counters                                     |
 *   +-----------------------------------------------------------------------------------+
 *   | PAGE_STATS    1 line: pages_4k, pages_2m, pages_1g                                 |
 *   +-----------------------------------------------------------------------------------+
 *   | RUN_CTRL      4 lines: phase, abort, iteration, progress counters (emulator)       |
 *   +-----------------------------------------------------------------------------------+
 *   | WORKER_STATS  workers x WORKER_STAT_SLOT_INT32S (256 B each, Float64 fields)       |
 *   |               slot w = worker w (0 = main thread)                                  |
 *   +-----------------------------------------------------------------------------------+
 *   | DIRTY[0]      ceil(npages/32) Int32 words, rounded up to a 64-B line              |
 *   | DIRTY[1] ...  one bitmap per memslot                                              |
 *   +-----------------------------------------------------------------------------------+
 *   | MEMSLOT_CTRL  1 line per memslot: dirty-logging flags (C1, dirty_log.ts)          |
 *   +-----------------------------------------------------------------------------------+
 *   | SCHED         1 line: runnable threads (need_resched, mmu_resched.ts)              |
 *   +-----------------------------------------------------------------------------------+
 *   total = ControlLayout.totalInt32s
 *
 * Every region starts on a 64-byte boundary (16 Int32s): hot words of different regions never
 * share a cache line, and per-worker stat slots (single writer each) never false-share.
 */

import { RWLOCK_INT32S } from './atomics-lock/index.js';
import { rcuInt32s } from './rcu/index.js';

/** A cache line, in bytes and in Int32 slots. */
export const CACHE_LINE_BYTES = 64;
export const LINE_INT32S = CACHE_LINE_BYTES / 4;

// ---------------------------------------------------------------------------------------------
// POOL_CTRL: offsets relative to ControlLayout.poolCtrlBase (Int32 units)
// ---------------------------------------------------------------------------------------------

/**
 * The free-list head, a 64-bit word at Int32 offsets 0..1 (BigInt64 index poolCtrlBase/2):
 * low 32 bits = top table index (or -1 when the list is empty), high 32 bits = a tag bumped by
 * every successful push/pop so a stale CAS can never succeed (ABA). Written by allocRaw/free from
 * any thread with Atomics.compareExchange; read by the same.
 */
export const POOL_HEAD = 0;
/** Tables handed out by the pool since creation (cumulative, wraps at 2^32; writers: allocRaw on any thread). */
export const POOL_ALLOCATED = LINE_INT32S + 0;
/** Tables returned to the free list since creation (cumulative, wraps; writers: free paths and RCU callbacks). */
export const POOL_FREED = LINE_INT32S + 1;
/** Gauge: tables allocated and not in a cache, RCU wait or free list (writers: any; readers: accounting()). */
export const POOL_IN_USE = LINE_INT32S + 2;
/** Gauge: tables freed with freeAfterGracePeriod whose grace period has not yet ended. */
export const POOL_RCU_WAITING = LINE_INT32S + 3;
/** Gauge: tables held in MmuMemoryCaches (allocated, not yet popped). */
export const POOL_IN_CACHES = LINE_INT32S + 4;
/**
 * Gauge: tables on the free list. The allocator's watermark compares against it (readers: every
 * allocNowait/allocBlocking; writers: alloc/free). Kept as a counter rather than walking the list.
 */
export const POOL_FREE = LINE_INT32S + 5;
/** Capacity in tables; written once by createVm, read by accounting(). */
export const POOL_CAPACITY = LINE_INT32S + 6;
/** allocRaw calls that found the list empty (ENOMEM seen by the pool). */
export const POOL_EMPTY_HITS = LINE_INT32S + 7;
export const POOL_CTRL_INT32S = 2 * LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// PAGE_STATS: offsets relative to ControlLayout.pageStatsBase. Index = level - 1.
// Writers: C1's page_stats.ts with Atomics.add from any thread (like kvm_update_page_stats);
// readers: the invariant checker and the emulator's reports.
// ---------------------------------------------------------------------------------------------

export const PAGE_STATS_4K = 0;
export const PAGE_STATS_2M = 1;
export const PAGE_STATS_1G = 2;
export const PAGE_STATS_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// RUN_CTRL: offsets relative to ControlLayout.runCtrlBase. Owned by the emulator (D).
// ---------------------------------------------------------------------------------------------

/** Current phase number (writer: main thread / coordinator; readers: all workers, Atomics.wait on it). */
export const RUN_PHASE = 0;
/** Non-zero = stop now (writer: main thread on Ctrl-C or any worker on failure; readers: every loop). */
export const RUN_ABORT = 1;
/** Iteration number of the dirty-log loop (writer: coordinator; readers: vCPU workers). */
export const RUN_ITERATION = 2;
/** Workers that reached the current phase barrier (writers: all workers, Atomics.add; reader: coordinator). */
export const RUN_ARRIVED = 3;
/** Progress: guest accesses performed (writers: vCPUs, batched Atomics.add; reader: watchdog). */
export const RUN_PROGRESS_ACCESSES = 4;
/** Progress: huge pages split (writer: splitter; reader: watchdog). */
export const RUN_PROGRESS_SPLITS = 5;
/** Progress heartbeat of any kind (writers: all; reader: watchdog). */
export const RUN_PROGRESS_TICKS = 6;
// ---- D: append RUN_* fields here, below RUN_CTRL_INT32S (offsets 7..63 are free). ----
export const RUN_CTRL_INT32S = 4 * LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// MEMSLOT_CTRL (added by C1 for dirty logging): one cache line per memslot, at
// ControlLayout.memslotCtrlBases[slot]. Writers: C1's dirty_log.ts (enable/disable/get/clear, on
// whichever thread runs them); readers: vCPU fault paths (guest_access.ts, tdp_mmu_fault.ts).
// ---------------------------------------------------------------------------------------------

/** Slot flags (Atomics): SLOT_FLAG_* below. */
export const SLOT_FLAGS = 0;
/** KVM_MEM_LOG_DIRTY_PAGES: faults map at 4K, writable SPTEs mark the dirty bitmap. */
export const SLOT_FLAG_LOG_DIRTY = 1;
/** Dirty logging with manual protect + initially-set (KVM_DIRTY_LOG_INITIALLY_SET). */
export const SLOT_FLAG_INITIALLY_SET = 2;
export const MEMSLOT_CTRL_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// SCHED: one line at ControlLayout.schedBase, the host scheduler facts need_resched() reads
// (mmu_resched.ts). Writers: every worker thread of a run, with Atomics.add/sub, as it starts
// running (leaves its park) and stops (parks); readers: lock holders deciding whether to yield.
// ---------------------------------------------------------------------------------------------

/** Threads of the run that are runnable now (running or woken and waiting for a core). */
export const SCHED_RUNNABLE = 0;
export const SCHED_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// WORKER_STATS: one slot per worker; fields are FLOAT64 indices within the slot (counters of
// SPTE reads pass 2^31 in long runs; doubles count exactly to 2^53). Single writer per slot:
// the worker itself, with plain stores (no atomics). Readers: the main thread after the phase
// (sumStats), so no torn reads matter.
// ---------------------------------------------------------------------------------------------

/** SPTE loads made by walks (tdp_iter spteReads). */
export const WORKER_STAT_SPTE_READS = 0;
/** Walks started (iterator starts). */
export const WORKER_STAT_WALKS = 1;
/** Restarts from the root (lost races, yields, frozen SPTEs). */
export const WORKER_STAT_RESTARTS = 2;
/** tdp_mmu_iter_cond_resched yields. */
export const WORKER_STAT_YIELDS = 3;
/** mmu_lock drops for allocation (the 6.11 drop-always path). */
export const WORKER_STAT_LOCK_DROPS = 4;
/** Huge SPTEs split. */
export const WORKER_STAT_HUGE_PAGES_SPLIT = 5;
/** Page tables installed in the tree. */
export const WORKER_STAT_TABLES_ALLOCATED = 6;
/** Tables taken from an MmuMemoryCache (counted by MmuMemoryCache.pop). */
export const WORKER_STAT_ALLOC_FROM_CACHE = 7;
/** Successful GFP_NOWAIT allocations (counted by PageAllocator.allocNowait). */
export const WORKER_STAT_ALLOC_NOWAIT = 8;
/** Successful GFP_KERNEL allocations (counted by PageAllocator.allocBlocking). */
export const WORKER_STAT_ALLOC_BLOCKING = 9;
/** Failed allocations of either kind (counted by PageAllocator). */
export const WORKER_STAT_ALLOC_FAILED = 10;
/** Allocations made while holding mmu_lock (counted by the caller, C1's split designs). */
export const WORKER_STAT_ALLOC_UNDER_LOCK = 11;
/** Cache leftovers freed unused (counted by MmuMemoryCache.freeAll). */
export const WORKER_STAT_LEFTOVER_FREED = 12;
export const WORKER_STAT_FAST_FAULTS = 13;
export const WORKER_STAT_SLOW_FAULTS = 14;
export const WORKER_STAT_FAULT_RETRIES = 15;
export const WORKER_STAT_ACCESSES = 16;
/** Walker reads of POISON_SPTE: a use-after-free; must stay 0 unless a control breaks RCU. */
export const WORKER_STAT_POISON_READS = 17;
/** Translations that disagreed with backingPfn. */
export const WORKER_STAT_XLATE_ERRORS = 18;
/** Writes missing from the dirty log. */
export const WORKER_STAT_LOST_DIRTY = 19;
export const WORKER_STAT_ZAPPED_TABLES = 20;
export const WORKER_STAT_SPLIT_ENOMEM = 21;
/** mmu_lock acquisitions that had to wait (counted by MmuLock). */
export const WORKER_STAT_LOCK_READ_CONTENDED = 22;
export const WORKER_STAT_LOCK_WRITE_CONTENDED = 23;
/** kvm_mmu_page headers allocated (one per sp, besides its page table; counted by PageAllocator). */
export const WORKER_STAT_SP_HEADER_ALLOCS = 24;
/** Draws of GFP_KERNEL allocations whose fast path failed, so they reclaimed (counted by PageAllocator). */
export const WORKER_STAT_RECLAIMS = 25;
/** Remote TLB flushes the RFC `cache` design made on every lock drop, counted, not spent (split_alloc_cache.ts). */
export const WORKER_STAT_RFC_DROP_TLB_FLUSHES = 26;
// ---- C1 (and others): append WORKER_STAT_* fields here, from 24 up to WORKER_STAT_FIELDS-1,
// ---- and add the name to WORKER_STAT_NAMES below. ----
/** Float64 fields per slot (32 x 8 B = 256 B: four cache lines, a multiple of 64 B). */
export const WORKER_STAT_FIELDS = 32;
export const WORKER_STAT_SLOT_INT32S = WORKER_STAT_FIELDS * 2;

/** Field names by index, for reports and sumStats(). Keep in step with the constants above. */
export const WORKER_STAT_NAMES: readonly string[] = [
  'spteReads',
  'walks',
  'restarts',
  'yields',
  'lockDrops',
  'hugePagesSplit',
  'tablesAllocated',
  'allocFromCache',
  'allocNowait',
  'allocBlocking',
  'allocFailed',
  'allocUnderLock',
  'leftoverFreed',
  'fastFaults',
  'slowFaults',
  'faultRetries',
  'accesses',
  'poisonReads',
  'xlateErrors',
  'lostDirty',
  'zappedTables',
  'splitEnomem',
  'lockReadContended',
  'lockWriteContended',
  'spHeaderAllocs',
  'reclaims',
  'rfcDropTlbFlushes',
];

// ---------------------------------------------------------------------------------------------
// The computed layout
// ---------------------------------------------------------------------------------------------

export interface LayoutSpec {
  /** Attachable threads including the main thread (RCU reader slots and stat slots). */
  readonly workers: number;
  /** Pages of each memslot (one dirty bitmap each). */
  readonly memslotPages: readonly number[];
}

/** Absolute Int32 bases of every region of the control SAB. Plain data (structured-clonable). */
export interface ControlLayout {
  readonly workers: number;
  readonly mmuLockBase: number;
  readonly mmuLockInt32s: number;
  readonly rcuBase: number;
  readonly rcuInt32s: number;
  readonly poolCtrlBase: number;
  readonly pageStatsBase: number;
  readonly runCtrlBase: number;
  /** Int32 base of worker 0's stat slot; the Float64 index of field f of worker w is
   * workerStatsBase/2 + w*WORKER_STAT_FIELDS + f. */
  readonly workerStatsBase: number;
  readonly dirtyBases: readonly number[];
  readonly dirtyWords: readonly number[];
  /** One MEMSLOT_CTRL line per memslot (added by C1 for dirty logging). */
  readonly memslotCtrlBases: readonly number[];
  /** The SCHED line (runnable threads, for need_resched). */
  readonly schedBase: number;
  readonly totalInt32s: number;
  readonly totalBytes: number;
}

function roundUpToLine(int32s: number): number {
  return Math.ceil(int32s / LINE_INT32S) * LINE_INT32S;
}

/** Int32 words of a dirty bitmap for `npages` pages (one bit per page), rounded to a line. */
export function dirtyBitmapInt32s(npages: number): number {
  return roundUpToLine(Math.ceil(npages / 32));
}

/**
 * Lay the control SAB out for `spec`. Throws invalidArg-style Errors on bad input; checks the
 * result (no overlap, 64-B alignment) before returning.
 */
export function computeLayout(spec: LayoutSpec): ControlLayout {
  if (!Number.isInteger(spec.workers) || spec.workers < 1) {
    throw new RangeError(`layout: workers must be a positive integer (got ${spec.workers})`);
  }
  let at = 0;
  const place = (int32s: number): number => {
    const base = at;
    at += roundUpToLine(int32s);
    return base;
  };
  const mmuLockInt32s = RWLOCK_INT32S;
  const mmuLockBase = place(mmuLockInt32s);
  const rcuN = rcuInt32s(spec.workers);
  const rcuBase = place(rcuN);
  const poolCtrlBase = place(POOL_CTRL_INT32S);
  const pageStatsBase = place(PAGE_STATS_INT32S);
  const runCtrlBase = place(RUN_CTRL_INT32S);
  const workerStatsBase = place(spec.workers * WORKER_STAT_SLOT_INT32S);
  const dirtyBases: number[] = [];
  const dirtyWords: number[] = [];
  for (const npages of spec.memslotPages) {
    if (!Number.isInteger(npages) || npages < 1) throw new RangeError(`layout: memslot pages must be a positive integer (got ${npages})`);
    const words = dirtyBitmapInt32s(npages);
    dirtyWords.push(words);
    dirtyBases.push(place(words));
  }
  // MEMSLOT_CTRL (C1): after the bitmaps so no earlier base moves.
  const memslotCtrlBases = spec.memslotPages.map(() => place(MEMSLOT_CTRL_INT32S));
  // SCHED: last, so no earlier base moves.
  const schedBase = place(SCHED_INT32S);
  const layout: ControlLayout = {
    workers: spec.workers,
    mmuLockBase,
    mmuLockInt32s,
    rcuBase,
    rcuInt32s: rcuN,
    poolCtrlBase,
    pageStatsBase,
    runCtrlBase,
    workerStatsBase,
    dirtyBases,
    dirtyWords,
    memslotCtrlBases,
    schedBase,
    totalInt32s: at,
    totalBytes: at * 4,
  };
  checkLayout(layout);
  return layout;
}

/** Regions of a layout as [name, base, int32s], in address order. */
export function layoutRegions(l: ControlLayout): [string, number, number][] {
  const r: [string, number, number][] = [
    ['mmu_lock', l.mmuLockBase, l.mmuLockInt32s],
    ['rcu', l.rcuBase, l.rcuInt32s],
    ['pool_ctrl', l.poolCtrlBase, POOL_CTRL_INT32S],
    ['page_stats', l.pageStatsBase, PAGE_STATS_INT32S],
    ['run_ctrl', l.runCtrlBase, RUN_CTRL_INT32S],
    ['worker_stats', l.workerStatsBase, l.workers * WORKER_STAT_SLOT_INT32S],
  ];
  l.dirtyBases.forEach((b, i) => r.push([`dirty[${i}]`, b, l.dirtyWords[i]!]));
  l.memslotCtrlBases.forEach((b, i) => r.push([`memslot_ctrl[${i}]`, b, MEMSLOT_CTRL_INT32S]));
  r.push(['sched', l.schedBase, SCHED_INT32S]);
  return r;
}

/** Regions must be 64-B aligned, in order, non-overlapping, and inside totalInt32s. */
export function checkLayout(l: ControlLayout): void {
  let end = 0;
  for (const [name, base, n] of layoutRegions(l)) {
    if (base % LINE_INT32S !== 0) throw new Error(`layout: region ${name} at Int32 ${base} is not 64-B aligned`);
    if (base < end) throw new Error(`layout: region ${name} at Int32 ${base} overlaps the previous region (ends at ${end})`);
    end = base + n;
  }
  if (end > l.totalInt32s) throw new Error(`layout: regions end at ${end}, past totalInt32s ${l.totalInt32s}`);
}

// Load-time checks of the fixed field offsets (TypeScript has no static_assert).
function checkFieldOffsets(): void {
  const within = (name: string, off: number, size: number): void => {
    if (off < 0 || off >= size) throw new Error(`layout: ${name}=${off} outside its region of ${size} Int32s`);
  };
  if (RWLOCK_INT32S % LINE_INT32S !== 0) throw new Error(`layout: RWLOCK_INT32S ${RWLOCK_INT32S} is not a whole number of lines`);
  // The head is a BigInt64 word: it must sit at an even Int32 offset so its byte offset is 8-aligned.
  if (POOL_HEAD % 2 !== 0) throw new Error('layout: POOL_HEAD must be 8-byte aligned');
  for (const [n, o] of [
    ['POOL_ALLOCATED', POOL_ALLOCATED],
    ['POOL_FREED', POOL_FREED],
    ['POOL_IN_USE', POOL_IN_USE],
    ['POOL_RCU_WAITING', POOL_RCU_WAITING],
    ['POOL_IN_CACHES', POOL_IN_CACHES],
    ['POOL_FREE', POOL_FREE],
    ['POOL_CAPACITY', POOL_CAPACITY],
    ['POOL_EMPTY_HITS', POOL_EMPTY_HITS],
  ] as const) {
    within(n, o, POOL_CTRL_INT32S);
    // The counters live on their own line, away from the CAS'd head.
    if (o < LINE_INT32S) throw new Error(`layout: ${n} shares the free-list head's cache line`);
  }
  for (const o of [PAGE_STATS_4K, PAGE_STATS_2M, PAGE_STATS_1G]) within('PAGE_STATS_*', o, PAGE_STATS_INT32S);
  for (const o of [RUN_PHASE, RUN_ABORT, RUN_ITERATION, RUN_ARRIVED, RUN_PROGRESS_ACCESSES, RUN_PROGRESS_SPLITS, RUN_PROGRESS_TICKS]) {
    within('RUN_*', o, RUN_CTRL_INT32S);
  }
  if (WORKER_STAT_NAMES.length > WORKER_STAT_FIELDS) throw new Error('layout: more WORKER_STAT names than fields');
  if ((WORKER_STAT_SLOT_INT32S * 4) % CACHE_LINE_BYTES !== 0) throw new Error('layout: worker stat slot is not a whole number of lines');
  if (new Set(WORKER_STAT_NAMES).size !== WORKER_STAT_NAMES.length) throw new Error('layout: duplicate WORKER_STAT name');
}
checkFieldOffsets();
