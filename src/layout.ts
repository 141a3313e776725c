/**
 * The shared-memory layout: every region of the VM's CONTROL SharedArrayBuffer, with named
 * Int32 index constants, a size per region, who writes and who reads each field, and load-time
 * checks that regions neither overlap nor straddle cache lines (liburcu's
 * `struct urcu_gp`, piscina's `kRequestCountField`).
 *
 * A VM uses three SharedArrayBuffers:
 *
 *   control  (this file)  locks, RCU, pool control, page stats, per-worker stats,
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
 *   |                        [1] accounting and pressure-reclaim counters                |
 *   +-----------------------------------------------------------------------------------+
 *   | PAGE_STATS    1 line: pages_4k, pages_2m, pages_1g                                 |
 *   +-----------------------------------------------------------------------------------+
 *   | WORKER_STATS  workers x WORKER_STAT_SLOT_INT32S (384 B each, Float64 fields)       |
 *   |               slot w = worker w (0 = main thread)                                  |
 *   +-----------------------------------------------------------------------------------+
 *   | DIRTY[0]      ceil(npages/32) Int32 words, rounded up to a 64-B line              |
 *   | DIRTY[1] ...  one bitmap per memslot                                              |
 *   +-----------------------------------------------------------------------------------+
 *   | MEMSLOT_CTRL  1 line per memslot: dirty-logging flags (dirty_log.ts)              |
 *   +-----------------------------------------------------------------------------------+
 *   | PML_KICK      1 line (kick generation) + 1 line per worker (in guest, ack): pml.ts |
 *   +-----------------------------------------------------------------------------------+
 *   | SCHED         1 line: runnable threads (need_resched, mmu_resched.ts)              |
 *   +-----------------------------------------------------------------------------------+
 *   | MMU_NOTIFIER  1 line: invalidation in progress, sequence, range (mmu_notifier.ts)  |
 *   +-----------------------------------------------------------------------------------+
 *   total = ControlLayout.totalInt32s
 *
 * Every region starts on a 64-byte boundary (16 Int32s): hot words of different regions never
 * share a cache line, and per-worker stat slots (single writer each) never false-share.
 */

import { RWLOCK_INT32S } from 'atomics-lock';
import { rcuInt32s } from 'epoch-rcu';

/** A cache line, in bytes and in Int32 slots. */
const CACHE_LINE_BYTES = 64;
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
/**
 * Pressure reclamation (pool_reclaim.ts), cumulative counters written with Atomics.add by any
 * thread that found the free list empty; read by accounting(). Cold: touched only under pressure.
 * POOL_PRESSURE_ALLOCS: allocations that entered the pressure path.
 */
export const POOL_PRESSURE_ALLOCS = LINE_INT32S + 8;
/** Grace periods pushed by pressure (synchronize() from an allocation that may sleep: "expedited"). */
export const POOL_PRESSURE_GPS = LINE_INT32S + 9;
/** Tables whose grace period had ended, reclaimed by the pressure path instead of their freer's callback. */
export const POOL_REAPED = LINE_INT32S + 10;
/** Pressure paths that could not wait (nowait, inside RCU or under mmu_lock) and found nothing to reap. */
export const POOL_PRESSURE_FAIL_FAST = LINE_INT32S + 11;
/**
 * The RCU grace-period sequence at which the last reap scan began (PtPool.reapExpired): a scan at
 * the same sequence could find nothing new, so it is skipped. Written and read by reapers only.
 */
export const POOL_REAP_SEQ = LINE_INT32S + 12;
/**
 * Tables that became reusable (went to the free list) before the grace period that began when
 * they were unlinked had ended: a reuse-before-grace-period bug, reported by audit(). Cumulative;
 * writers: the pool's RCU free path on any thread.
 */
export const POOL_EARLY_FREES = LINE_INT32S + 15;
const POOL_CTRL_INT32S = 2 * LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// PAGE_STATS: offsets relative to ControlLayout.pageStatsBase. Index = level - 1.
// Writers: page_stats.ts with Atomics.add from any thread (like kvm_update_page_stats);
// readers: the invariant checker and the emulator's reports.
// ---------------------------------------------------------------------------------------------

export const PAGE_STATS_4K = 0;
export const PAGE_STATS_2M = 1;
export const PAGE_STATS_1G = 2;
const PAGE_STATS_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// MEMSLOT_CTRL (dirty logging): one cache line per memslot, at
// ControlLayout.memslotCtrlBases[slot]. Writers: dirty_log.ts (enable/disable/get/clear, on
// whichever thread runs them); readers: vCPU fault paths (guest_access.ts, tdp_mmu_fault.ts).
// ---------------------------------------------------------------------------------------------

/** Slot flags (Atomics): SLOT_FLAG_* below. */
export const SLOT_FLAGS = 0;
/** KVM_MEM_LOG_DIRTY_PAGES: faults map at 4K, writable SPTEs mark the dirty bitmap. */
export const SLOT_FLAG_LOG_DIRTY = 1;
/** Dirty logging with manual protect + initially-set (KVM_DIRTY_LOG_INITIALLY_SET). */
export const SLOT_FLAG_INITIALLY_SET = 2;
const MEMSLOT_CTRL_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// PML_KICK (pml.ts): the kick KVM_GET_DIRTY_LOG sends every vCPU so that each flushes its PML
// buffer before the bitmap is read. Line 0 holds the generation word; then one line per worker.
// Writers/readers: see each field.
// ---------------------------------------------------------------------------------------------

/** Kick generation (line 0). Writer: GET_DIRTY_LOG (Atomics.add); readers: vCPUs at batch boundaries. */
export const PML_KICK_GEN = 0;
/** Per-worker line, offset PML_KICK_LINE + w * LINE_INT32S: 1 while the worker runs guest code (writer: that vCPU). */
export const PML_VCPU_IN_GUEST = 0;
/** Per-worker: the last kick generation the vCPU acknowledged after flushing (writer: that vCPU; reader: GET). */
export const PML_VCPU_ACK = 1;
/** Int32 offset of worker 0's line within the region. */
export const PML_KICK_LINE = LINE_INT32S;
function pmlKickInt32s(workers: number): number {
  return LINE_INT32S + workers * LINE_INT32S;
}

// SCHED: one line at ControlLayout.schedBase, the host scheduler facts need_resched() reads
// (mmu_resched.ts). Writers: every worker thread of a run, with Atomics.add/sub, as it starts
// running (leaves its park) and stops (parks); readers: lock holders deciding whether to yield.
// ---------------------------------------------------------------------------------------------

/** Threads of the run that are runnable now (running or woken and waiting for a core). */
export const SCHED_RUNNABLE = 0;
const SCHED_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// MMU_NOTIFIER: one line at ControlLayout.mmuNotifierBase, KVM's mmu_invalidate_in_progress,
// mmu_invalidate_seq and mmu_invalidate_range_start/end (mmu_notifier.ts). Writers: the host-events
// thread, under mmu_lock for WRITE (invalidate_range_start / _end); readers: vCPU slow faults,
// once before the lock (from 6.8, an unlocked read) and once under the read lock.
// ---------------------------------------------------------------------------------------------

/** Invalidations begun and not yet ended (mmu_invalidate_in_progress). */
export const MMU_NOTIFIER_IN_PROGRESS = 0;
/** Bumped by every invalidate_range_end (mmu_invalidate_seq). */
export const MMU_NOTIFIER_SEQ = 1;
/** The union of the ranges in progress, [start, end) in gfns; each gfn as low and high 32 bits. */
export const MMU_NOTIFIER_RANGE_START_LO = 2;
export const MMU_NOTIFIER_RANGE_START_HI = 3;
export const MMU_NOTIFIER_RANGE_END_LO = 4;
export const MMU_NOTIFIER_RANGE_END_HI = 5;
/** Where faults check (mmu_notifier.ts RETRY_MODE_*). Written once by the main thread before the workers start. */
export const MMU_NOTIFIER_RETRY_MODE = 6;
const MMU_NOTIFIER_INT32S = LINE_INT32S;

// ---------------------------------------------------------------------------------------------
// WORKER_STATS: one slot per worker of WORKER_STAT_FIELDS Float64 counters (SPTE reads pass 2^31
// in long runs; doubles count exactly to 2^53). Which counter sits at which index, who writes and
// who reads it, and why the main thread's reads are safe: src/stats/worker_stats.ts, the table
// every counter is defined in.
// ---------------------------------------------------------------------------------------------

/** Float64 fields per slot (48 x 8 B = 384 B: six cache lines, a multiple of 64 B). */
export const WORKER_STAT_FIELDS = 48;
const WORKER_STAT_SLOT_INT32S = WORKER_STAT_FIELDS * 2;

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
  /** Int32 base of worker 0's stat slot; the Float64 index of field f of worker w is
   * workerStatsBase/2 + w*WORKER_STAT_FIELDS + f. */
  readonly workerStatsBase: number;
  readonly dirtyBases: readonly number[];
  readonly dirtyWords: readonly number[];
  /** One MEMSLOT_CTRL line per memslot (dirty logging). */
  readonly memslotCtrlBases: readonly number[];
  /** PML_KICK region (pml.ts): kick generation + one line per worker. */
  readonly pmlKickBase: number;
  /** The SCHED line (runnable threads, for need_resched). */
  readonly schedBase: number;
  /** The MMU_NOTIFIER line (mmu_notifier.ts). */
  readonly mmuNotifierBase: number;
  readonly totalInt32s: number;
  readonly totalBytes: number;
}

function roundUpToLine(int32s: number): number {
  return Math.ceil(int32s / LINE_INT32S) * LINE_INT32S;
}

/** Int32 words of a dirty bitmap for `npages` pages (one bit per page), rounded to a line. */
function dirtyBitmapInt32s(npages: number): number {
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
  const workerStatsBase = place(spec.workers * WORKER_STAT_SLOT_INT32S);
  const dirtyBases: number[] = [];
  const dirtyWords: number[] = [];
  for (const npages of spec.memslotPages) {
    if (!Number.isInteger(npages) || npages < 1) throw new RangeError(`layout: memslot pages must be a positive integer (got ${npages})`);
    const words = dirtyBitmapInt32s(npages);
    dirtyWords.push(words);
    dirtyBases.push(place(words));
  }
  // MEMSLOT_CTRL: after the bitmaps so no earlier base moves.
  const memslotCtrlBases = spec.memslotPages.map(() => place(MEMSLOT_CTRL_INT32S));
  // PML_KICK: last, so no earlier base moves.
  const pmlKickBase = place(pmlKickInt32s(spec.workers));
  // SCHED: last, so no earlier base moves.
  const schedBase = place(SCHED_INT32S);
  // MMU_NOTIFIER: last, so no earlier base moves.
  const mmuNotifierBase = place(MMU_NOTIFIER_INT32S);
  const layout: ControlLayout = {
    workers: spec.workers,
    mmuLockBase,
    mmuLockInt32s,
    rcuBase,
    rcuInt32s: rcuN,
    poolCtrlBase,
    pageStatsBase,
    workerStatsBase,
    dirtyBases,
    dirtyWords,
    memslotCtrlBases,
    pmlKickBase,
    schedBase,
    mmuNotifierBase,
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
    ['worker_stats', l.workerStatsBase, l.workers * WORKER_STAT_SLOT_INT32S],
  ];
  for (const [i, b] of l.dirtyBases.entries()) r.push([`dirty[${i}]`, b, l.dirtyWords[i]!]);
  for (const [i, b] of l.memslotCtrlBases.entries()) r.push([`memslot_ctrl[${i}]`, b, MEMSLOT_CTRL_INT32S]);
  r.push(['pml_kick', l.pmlKickBase, pmlKickInt32s(l.workers)]);
  r.push(['sched', l.schedBase, SCHED_INT32S]);
  r.push(['mmu_notifier', l.mmuNotifierBase, MMU_NOTIFIER_INT32S]);
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
    ['POOL_PRESSURE_ALLOCS', POOL_PRESSURE_ALLOCS],
    ['POOL_PRESSURE_GPS', POOL_PRESSURE_GPS],
    ['POOL_REAPED', POOL_REAPED],
    ['POOL_PRESSURE_FAIL_FAST', POOL_PRESSURE_FAIL_FAST],
    ['POOL_REAP_SEQ', POOL_REAP_SEQ],
    ['POOL_EARLY_FREES', POOL_EARLY_FREES],
  ] as const) {
    within(n, o, POOL_CTRL_INT32S);
    // The counters live on their own line, away from the CAS'd head.
    if (o < LINE_INT32S) throw new Error(`layout: ${n} shares the free-list head's cache line`);
  }
  for (const o of [PAGE_STATS_4K, PAGE_STATS_2M, PAGE_STATS_1G]) within('PAGE_STATS_*', o, PAGE_STATS_INT32S);
  for (const o of [
    MMU_NOTIFIER_IN_PROGRESS,
    MMU_NOTIFIER_SEQ,
    MMU_NOTIFIER_RANGE_START_LO,
    MMU_NOTIFIER_RANGE_START_HI,
    MMU_NOTIFIER_RANGE_END_LO,
    MMU_NOTIFIER_RANGE_END_HI,
    MMU_NOTIFIER_RETRY_MODE,
  ]) {
    within('MMU_NOTIFIER_*', o, MMU_NOTIFIER_INT32S);
  }
  if ((WORKER_STAT_SLOT_INT32S * 4) % CACHE_LINE_BYTES !== 0) throw new Error('layout: worker stat slot is not a whole number of lines');
}
checkFieldOffsets();
