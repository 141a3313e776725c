/**
 * Split allocation designs: how the eager-split walk gets one page table per huge SPTE it splits.
 * This is the question of the 2021 debate (kvm-eager-split.md §0-§2, §6), so the walk
 * (tdp_mmu_split.ts) is shared and only this small interface varies.
 *
 * The contract between the walk and a design:
 *   - `begin(ctx)` runs once per splitHugePagesYieldSafe call, with mmu_lock held (mode ctx.shared)
 *     and no RCU read side and no iterator yet: a design may drop and retake the lock here (e.g.
 *     the RFC cache tops up outside the lock before walking).
 *   - `beginChunk(ctx, start, end)` (optional, with `chunkPages`): the walk is cut into chunks of
 *     `chunkPages` gfns and this runs before each, with the lock held and no walk in progress
 *     (arm64's chunked cache tops up to what one chunk needs). Returns false for ENOMEM.
 *   - `allocSp(ctx, it)` runs with mmu_lock and RCU held, at a present huge SPTE the walk wants to
 *     split. It returns a table (zeroed or not: the split writes all 512 entries) or -1 for ENOMEM.
 *     It may drop the locks ONLY through ctx.dropLocks()/ctx.retakeLocks() and must return with
 *     them held; if it dropped them, the walk restarts from the root (iter.yielded) and uses the
 *     table at the next huge SPTE it finds (the one it was at may have changed meanwhile).
 *     Allocations made while the lock is held must be counted with ctx.countAllocUnderLock().
 *   - `end(ctx, leftover)` runs with the lock held after the walk: `leftover` is a table the walk
 *     got but did not use (-1 if none; e.g. a vCPU splitting on fault won the race), which the
 *     design frees or keeps; a cache design frees its leftovers here too.
 *
 * The designs fit this: `cache` (begin + allocSp pops, dry → drop, topup, retake),
 * `nowait-retry` (allocSp: nowait under the lock, else drop + blocking), `blocking-under-lock`
 * (allocSp: blocking under the lock), `chunked-cache` (chunkPages + beginChunk tops up under
 * the write lock's drop), `lazy` (no split at all: the emulator does not call the walk).
 *
 * Registration: each design's file registers itself at module load with
 * registerSplitAllocDesign({ name, summary, origin, compareOrder, create }); its traits (lock
 * mode, eagerness, per-ioctl and per-memslot cleanup) are optional members of SplitAllocDesign.
 * split_alloc_designs.ts imports every design file (one line each), so adding a design is one
 * file plus one import line there.
 */
import type { Vm } from '../vm.js';
import type { TdpIter } from './tdp_iter.js';

/** What a design sees of the split call in progress. */
export interface SplitCtx {
  readonly vm: Vm;
  /** mmu_lock held for read (true: the enable path) or write (false: the CLEAR path). */
  readonly shared: boolean;
  /**
   * Release RCU (if the walk holds it) and mmu_lock, in that order (KVM: rcu_read_unlock, then
   * read_unlock/write_unlock). Counts one WS.lockDrops. After this the walk restarts.
   */
  dropLocks(): void;
  /** Retake mmu_lock in the same mode, then RCU; restarts the need_resched time slice. */
  retakeLocks(): void;
  /** Count one allocation made while holding mmu_lock (WS.allocUnderLock). */
  countAllocUnderLock(): void;
  /** need_resched() || rwlock_needbreak() now (mmu_resched.ts): for designs that yield on their own terms. */
  shouldYield(): boolean;
  /** Drop and retake mmu_lock as a cond_resched yield (counted in WORKER_STAT_YIELDS, not as a lock drop). */
  yieldLocks(): void;
  /** cond_resched yields of this split call so far. */
  readonly yields: number;
}

export interface SplitAllocDesign {
  /** The --split-alloc name. */
  readonly name: string;
  /** If set, the walk runs chunk by chunk and calls beginChunk before each (arm64); it then yields only between chunks. */
  readonly chunkPages?: number;
  /** 'write': split under mmu_lock held for write on every path (arm64). Default 'caller'. */
  readonly lockMode?: 'caller' | 'write';
  /** false: no eager splitting at all (lazy). Default true. */
  readonly eager?: boolean;
  begin(ctx: SplitCtx): void;
  beginChunk?(ctx: SplitCtx, start: number, end: number): boolean;
  allocSp(ctx: SplitCtx, it: TdpIter): number;
  end(ctx: SplitCtx, leftover: number): void;
  /** The ioctl (enable, one CLEAR_DIRTY_LOG) finished its split calls: free per-ioctl state; returns tables freed. */
  endIoctl?(): number;
  /** The memslot changed (dirty logging disabled) or the thread exits: free everything kept; returns tables freed. */
  release?(): number;
}

/** Knobs some designs take: cache capacity (RFC cache), chunk size (arm64). */
export interface SplitAllocParams {
  readonly cacheCapacity?: number;
  readonly chunkPages?: number;
}

/** Builds a design for one splitter thread (designs with caches keep per-thread state). */
export type SplitAllocDesignFactory = (vm: Vm, params: SplitAllocParams) => SplitAllocDesign;

/** What a design registers: its name, its one-line description, and how to build it. */
export interface SplitAllocDesignRegistration {
  /** The --split-alloc value. */
  readonly name: string;
  /** One line for --help and the report. */
  readonly summary: string;
  /** The kernel version or proposal it models. */
  readonly origin: string;
  /** Position in compare order (lower runs first; drop-always, the shipped baseline, is 0). */
  readonly compareOrder: number;
  readonly create: SplitAllocDesignFactory;
}

const registry = new Map<string, SplitAllocDesignRegistration>();

/** Make a design available by name; each design's file calls this once at module load. */
export function registerSplitAllocDesign(reg: SplitAllocDesignRegistration): void {
  if (registry.has(reg.name)) throw new Error(`split-alloc design ${reg.name} registered twice`);
  registry.set(reg.name, Object.freeze({ ...reg }));
}

/** Every registered design, in compare order. */
export function splitAllocDesignRegistrations(): SplitAllocDesignRegistration[] {
  return [...registry.values()].sort((a, b) => a.compareOrder - b.compareOrder);
}

/** Names with an implementation, in compare order. */
export function splitAllocDesignImplNames(): string[] {
  return splitAllocDesignRegistrations().map((r) => r.name);
}

/** A design instance for this thread's `vm`, or undefined if `name` has no implementation. */
export function createSplitAllocDesign(name: string, vm: Vm, params: SplitAllocParams = {}): SplitAllocDesign | undefined {
  return registry.get(name)?.create(vm, params);
}

/**
 * `drop-always`, the shipped design since Linux 6.11 (tdp_mmu_alloc_sp_for_split, §1.3-1.4):
 * for every huge SPTE, drop RCU and mmu_lock, allocate one sp (header and table) with GFP_KERNEL
 * (may reclaim: legal because no lock is held), retake the lock, restart the walk at the root.
 * One allocation, one lock drop and one root-to-level re-walk per split; nothing is ever
 * allocated under the lock; no magic capacity. A leftover (the walk found nothing left to split)
 * is freed at once.
 */
export const dropAlways: SplitAllocDesign = Object.freeze({
  name: 'drop-always',
  begin(): void {},
  allocSp(ctx: SplitCtx): number {
    ctx.dropLocks();
    const t = ctx.vm.alloc.allocBlocking();
    // KVM does not retake RCU after a failed allocation; we retake both so every design returns
    // with the same lock state (the walk then stops at once: the difference is not observable).
    ctx.retakeLocks();
    return t;
  },
  end(ctx: SplitCtx, leftover: number): void {
    if (leftover >= 0) ctx.vm.pool.freeUnpublished(leftover);
  },
});

registerSplitAllocDesign({
  name: dropAlways.name,
  summary: 'drop mmu_lock for every page-table allocation (blocking), retake it, restart the walk at the root',
  origin: 'Linux 6.11+',
  compareOrder: 0,
  create: () => dropAlways,
});
