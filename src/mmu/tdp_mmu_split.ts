/**
 * Eager page splitting (KVM 6.11 `tdp_mmu_split_huge_pages_root`, `tdp_mmu_split_huge_page`,
 * `tdp_mmu_iter_cond_resched`; kvm-eager-split.md §1.2-§1.9).
 *
 * splitHugePage turns one huge SPTE into a table of 512 children that map the same memory
 * (children inherit every bit, so no TLB flush is needed: the translation is the same either way).
 * splitHugePagesYieldSafe walks a gfn range and splits every huge SPTE above the target level,
 * parents before children (pre-order), so a 1G page becomes 512 x 2M and each new 2M child is
 * visited next and becomes 512 x 4K. The walk may drop mmu_lock: to reschedule (cond_resched) and
 * when the allocation design drops it to allocate; either way it restarts from the root.
 */
import type { Vm } from '../vm.js';
import { invariantViolation } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import { TK, traceRing } from '../stats/trace_ring.js';
import { TdpIterSlot } from './tdp_iter.js';
import type { TdpIter } from './tdp_iter.js';
import { linkSp } from './tdp_mmu.js';
import { updatePageStats } from './page_stats.js';
import type { SplitAllocDesign, SplitCtx } from './split_alloc.js';
import { MmuLockHolder } from './mmu_resched.js';
import type { ReschedOptions } from './mmu_resched.js';
import { PG_LEVEL_4K, PT_ENTRIES, PT_LEVEL_BITS, hugePageSplitBase, isPresentLarge, spteHex } from './spte.js';

/** Test-only fault injection (controls that the invariant checker must catch). */
export interface SplitFaultInjection {
  /** CONTROL: leave child `dropChildIndex` of every split table non-present (a lost mapping). */
  readonly dropChildIndex?: number;
  /**
   * CONTROL: with dropChildIndex, count only the children really mapped in the page stats, so the
   * statistics stay consistent with the tree and only the lost mapping itself is wrong.
   */
  readonly keepStatsConsistent?: boolean;
}

// Scratch for splitting a BigInt SPTE into Int32 halves without Number(bigint) (see spte.ts).
const SCRATCH64 = new BigInt64Array(1);
const SCRATCH32 = new Int32Array(SCRATCH64.buffer);

/** Int32 views of the pool's spt, per SharedArrayBuffer (the split fill writes 32-bit halves). */
const spt32Cache = new WeakMap<ArrayBufferLike, Int32Array>();
function spt32Of(spt: BigInt64Array): Int32Array {
  let v = spt32Cache.get(spt.buffer);
  if (v === undefined) {
    v = new Int32Array(spt.buffer, spt.byteOffset, spt.length * 2);
    spt32Cache.set(spt.buffer, v);
  }
  return v;
}

/**
 * tdp_mmu_split_huge_page: split the present huge SPTE at the iterator (snapshot it.oldSpte) into
 * `table`, which the caller owns and which is not reachable by anyone.
 *   1. fill the 512 children with plain stores: child i = the huge SPTE (large bit cleared for 4K
 *      children) | i * pagesPerHpage(childLevel) << 12. The huge page is aligned to its size, so
 *      each offset lands in zero PFN bits of the low word: we write 32-bit halves, no BigInt math;
 *   2. link the table: cmpxchg under the read lock (`shared`), a store under the write lock;
 *   3. page stats: +512 at childLevel (the huge leaf's -1 comes from handleChangedSpte), and one
 *      WS.hugePagesSplit (whether eager or on fault).
 * No TLB flush (§1.6). Returns false only in shared mode on a lost race: it.oldSpte is then
 * refreshed and `table` still belongs to the caller (never published, so it can be freed or reused).
 */
export function splitHugePage(vm: Vm, it: TdpIter, table: number, shared: boolean, fi?: SplitFaultInjection): boolean {
  const huge = it.oldSpte;
  const level = it.level;
  if (level <= PG_LEVEL_4K || !isPresentLarge(huge)) {
    throw invariantViolation('splitHugePage of an SPTE that is not a present huge page', { gfn: it.gfn, level, spte: spteHex(huge) });
  }
  const childLevel = level - 1;
  SCRATCH64[0] = hugePageSplitBase(huge, childLevel);
  const lo = SCRATCH32[0]!;
  const hi = SCRATCH32[1]!;
  const shift = 12 + PT_LEVEL_BITS * (childLevel - 1);
  const spt32 = spt32Of(vm.spt);
  let o = table * PT_ENTRIES * 2;
  for (let i = 0; i < PT_ENTRIES; i++, o += 2) {
    spt32[o] = lo | (i << shift);
    spt32[o + 1] = hi;
  }
  if (fi?.dropChildIndex !== undefined) {
    // CONTROL ONLY: a split that loses one child mapping; the invariant checker must notice.
    const d = table * PT_ENTRIES * 2 + fi.dropChildIndex * 2;
    spt32[d] = 0;
    spt32[d + 1] = 0;
  }
  if (!linkSp(vm, it, table, shared)) return false;
  updatePageStats(vm, childLevel, fi?.dropChildIndex !== undefined && fi.keepStatsConsistent === true ? PT_ENTRIES - 1 : PT_ENTRIES);
  // Counted here, not by the walk, so that splits on fault (the lazy design) are counted too.
  vm.stats.add(WS.hugePagesSplit, 1);
  return true;
}

export interface SplitOptions extends ReschedOptions {
  /** mmu_lock is held for read (true: enable-time split) or write (false: CLEAR_DIRTY_LOG split). */
  readonly shared: boolean;
  /** Split down to this level (PG_LEVEL_4K = 1 normally; 2 stops at 2M). Default 1. */
  readonly targetLevel?: number;
  readonly design: SplitAllocDesign;
  /** Test controls only. */
  readonly faultInjection?: SplitFaultInjection;
}

export interface SplitResult {
  /** false: an allocation failed (ENOMEM) and the walk stopped; unsplit huge pages stay mapped. */
  readonly ok: boolean;
  readonly code?: 'ENOMEM';
  readonly hugePagesSplit: number;
  /** Walk restarts from the root (after yields and lock drops). */
  readonly restarts: number;
  /** cond_resched yields (not counting lock drops for allocation). */
  readonly yields: number;
  /** Lock drops made by the allocation design. */
  readonly lockDrops: number;
  /** SPTE loads of the walk. */
  readonly spteReads: number;
  /** Allocations made while holding mmu_lock. */
  readonly allocUnderLock: number;
  /** Wall time of the call (ms), lock drops included. */
  readonly ms: number;
}

/** The split walk's SplitCtx: the lock holder plus what the design reports. */
class SplitCtxImpl extends MmuLockHolder implements SplitCtx {
  /** Set by dropLocks: the walk must restart from the root. */
  lockDropped = false;
  lockDrops = 0;
  allocUnderLock = 0;
  /** --trace: when the current drop began (performance.now() ms, after the release). */
  #droppedAt = 0;

  dropLocks(): void {
    this.release();
    this.lockDropped = true;
    this.lockDrops++;
    if (traceRing !== null) this.#droppedAt = performance.now();
  }

  retakeLocks(): void {
    // The drop's slice ends before the retake, so that the wait and the next hold follow it (nesting).
    if (traceRing !== null) traceRing.span(TK.lockDrop, this.#droppedAt, performance.now());
    this.acquire();
  }

  yieldLocks(): void {
    this.release();
    this.acquire();
    this.yields++;
  }

  countAllocUnderLock(): void {
    this.allocUnderLock++;
  }
}

/**
 * kvm_tdp_mmu_try_split_huge_pages + tdp_mmu_split_huge_pages_root over [start, end).
 *
 * Lock context: the caller holds mmu_lock for read (opts.shared) or write, and not RCU; the call
 * returns with the lock held in the same mode, but it may have been dropped and retaken any number
 * of times (YieldSafe). Per visited SPTE at or above targetLevel+1:
 *   1. cond_resched (may yield: restart from the root);
 *   2. skip unless present and large;
 *   3. no table in hand: ask the design; if it dropped the lock, restart from the root (the SPTE
 *      may have changed) and keep the table for the next huge SPTE; -1 = ENOMEM: stop (best effort);
 *   4. split; a lost cmpxchg (shared) refreshed it.oldSpte: re-evaluate the same position.
 * After the walk the design gets the unused table (if any) and finishes (design.end).
 */
/** The split walk's iterator, reused: CLEAR runs one split walk per 64-page word (TdpIterSlot says why). */
const splitIter = new TdpIterSlot();

export function splitHugePagesYieldSafe(vm: Vm, start: number, end: number, opts: SplitOptions): SplitResult {
  const t0 = performance.now();
  const shared = opts.shared;
  const targetLevel = opts.targetLevel ?? PG_LEVEL_4K;
  const design = opts.design;
  const fi = opts.faultInjection;
  const ctx = new SplitCtxImpl(vm, shared, opts);
  const it = splitIter.take(vm.spt);
  let split = 0;
  let walks = 0;
  let enomem = false;
  let sp = -1;

  design.begin(ctx);
  const chunked = design.chunkPages !== undefined && design.chunkPages > 0;
  const chunk = chunked ? design.chunkPages : end - start;
  // Chunks are cut on the chunk grid (arm64's stage2_range_addr_end), so an unaligned start does
  // not make one chunk straddle two grid chunks and need more tables than beginChunk provided.
  const chunkEnd = (c: number): number => Math.min(end, design.chunkPages !== undefined && design.chunkPages > 0 ? (Math.floor(c / chunk) + 1) * chunk : end);
  for (let c = start, cEnd = chunkEnd(c); c < end && !enomem; c = cEnd, cEnd = chunkEnd(c)) {
    if (design.beginChunk !== undefined && !design.beginChunk(ctx, c, cEnd)) {
      enomem = true;
      break;
    }
    ctx.rcuLock();
    walks++;
    walk: for (it.start(vm.root, vm.rootLevel, targetLevel + 1, c); it.valid && it.gfn < cEnd; it.next()) {
      for (;;) {
        // Chunked designs (arm64) never yield inside a chunk; they drop between chunks.
        if (!chunked && ctx.condResched(it)) continue walk;
        if (!isPresentLarge(it.oldSpte)) continue walk;
        if (sp < 0) {
          ctx.lockDropped = false;
          sp = design.allocSp(ctx, it);
          if (sp < 0) {
            enomem = true;
            break walk;
          }
          if (ctx.lockDropped) {
            // The lock was dropped to allocate: everything above may have changed. Restart
            // from the root at this gfn and use `sp` for whatever huge SPTE is found there.
            it.yielded = true;
            continue walk;
          }
        }
        const tr = traceRing;
        const ts = tr === null ? 0 : performance.now();
        if (!splitHugePage(vm, it, sp, shared, fi)) continue; // lost a race: re-evaluate it.oldSpte
        if (tr !== null) tr.span(TK.split, ts, performance.now(), it.level);
        sp = -1;
        split++;
        continue walk;
      }
    }
    ctx.rcuUnlock();
  }
  design.end(ctx, sp);

  const st = vm.stats;
  st.add(WS.restarts, it.restarts);
  st.add(WS.yields, ctx.yields);
  st.add(WS.lockDrops, ctx.lockDrops);
  st.add(WS.spteReads, it.spteReads);
  st.add(WS.walks, walks);
  st.add(WS.allocUnderLock, ctx.allocUnderLock);
  if (enomem) st.add(WS.splitEnomem, 1);
  const base = {
    hugePagesSplit: split,
    restarts: it.restarts,
    yields: ctx.yields,
    lockDrops: ctx.lockDrops,
    spteReads: it.spteReads,
    allocUnderLock: ctx.allocUnderLock,
    ms: performance.now() - t0,
  };
  return enomem ? { ok: false, code: 'ENOMEM', ...base } : { ok: true, ...base };
}
