/**
 * tdp_iter: the pre-order walker over a TDP root (KVM `tdp_iter.[ch]`, kvm-eager-split.md §1.10).
 *
 * The walk visits every SPTE at or above `minLevel` whose region intersects [start, end), parents
 * before children, in gfn order. It holds no lock and pins nothing: callers hold RCU (and mmu_lock
 * in the mode their operation needs). Every load of an SPTE is counted in `spteReads`, because the
 * memory traffic of walks and restarts is exactly what the 2021 cache-vs-drop debate is about.
 *
 * Reads per step (as KVM does them):
 *   restart / start  1 read (the root-level SPTE covering nextLastLevelGfn)
 *   step down        1 re-read of the current SPTE (do not follow a stale snapshot) and, if it is a
 *                    present non-leaf, 1 read of the child SPTE
 *   step side        1 read of the neighbour
 *   step up          1 re-read of the parent SPTE
 *
 * Usage, as the kernel's for_each_tdp_pte_min_level:
 *   for (it.start(root, rootLevel, minLevel, start); it.valid && it.gfn < end; it.next()) { ... }
 *
 * A caller that drops its locks mid-walk sets `yielded = true` (tdp_mmu_iter_cond_resched, or an
 * allocation that had to drop mmu_lock); the next `next()` then restarts from the root at
 * `nextLastLevelGfn`, re-validating every level, and records that gfn in `yieldedGfn` so the caller
 * never yields twice at the same place (the forward-progress guard).
 *
 * SPTE reads are plain typed-array loads, KVM's READ_ONCE: the ECMAScript memory model permits
 * tearing of non-atomic BigInt64 accesses, but V8 on x86-64 emits one aligned 64-bit load for
 * them (and writers use Atomics or aligned 64-bit stores); a torn read would show up as a
 * translation error in the stress test.
 */
import { invariantViolation } from '../errors.js';
import { TK, traceRing } from '../stats/trace_ring.js';
import { PT64_ROOT_MAX_LEVEL, PT_ENTRIES, SPTE_LARGE_MASK, SPTE_MMU_PRESENT_MASK } from './spte.js';

/** The present and large bits, both in the SPTE's low 32 bits (checked without BigInt arithmetic). */
const PRESENT_LO = Number(SPTE_MMU_PRESENT_MASK);
const PRESENT_OR_LARGE_LO = Number(SPTE_MMU_PRESENT_MASK | SPTE_LARGE_MASK);
// The step-down snapshot, split into Int32 halves: one 64-bit store, two 32-bit loads of OUR copy
// (never of the shared table, which could tear), so no BigInt is masked or shifted per step.
const STEP64 = new BigInt64Array(1);
const STEP32 = new Int32Array(STEP64.buffer);

/**
 * gfn rounded down to a multiple of n (a power of two). Not `gfn - gfn % n`: `%` on doubles is an
 * fmod call in V8, about 10 ns, three of them per restart. Dividing an integer below 2^53 by a
 * power of two is exact, so floor-and-multiply gives the same value.
 */
function alignDown(gfn: number, n: number): number {
  return Math.floor(gfn / n) * n;
}

/** 4K pages per SPTE, by level (index 0 unused): KVM_PAGES_PER_HPAGE. */
const PAGES: readonly number[] = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4, 512 ** 5];

export class TdpIter {
  /** The pool's SPTE array: table t is spt[t*512 .. t*512+511]. */
  readonly spt: BigInt64Array;
  /** The gfn the walk is heading to: advanced by step side, kept across a restart. */
  nextLastLevelGfn = 0;
  /** nextLastLevelGfn at the last restart: the forward-progress guard of cond_resched. */
  yieldedGfn = 0;
  /** Table index per level (ptPath[level], level 1..rootLevel; index 0 unused). */
  readonly ptPath = new Int32Array(PT64_ROOT_MAX_LEVEL + 1);
  /** Absolute index into `spt` of the current SPTE (KVM's sptep). */
  sptIndex = 0;
  /** Lowest gfn mapped by the current SPTE. */
  gfn = 0;
  /** Levels of the root (4 or 5). */
  rootLevel = 4;
  /** The walk does not step below this level. */
  minLevel = 1;
  /** Level of the current SPTE. */
  level = 4;
  /**
   * Snapshot of the current SPTE (READ_ONCE); refreshed by a failed cmpxchg (setSpteAtomic).
   * Kept in a one-slot BigInt64Array behind an accessor: a BigInt stored in an object field
   * escapes and is heap-allocated on every SPTE read (half the walk's cost, measured in
   * bench/walk.bench.ts), a typed-array store is a plain 64-bit store.
   */
  get oldSpte(): bigint {
    return this.#old[0]!;
  }
  set oldSpte(v: bigint) {
    this.#old[0] = v;
  }
  readonly #old = new BigInt64Array(1);
  /** False once the walk ran off the end of the root. */
  valid = false;
  /** Set by whoever dropped the locks; the next next() restarts from the root. */
  yielded = false;
  /** Every SPTE load made by this iterator since construction (caller resets if it wants per-op counts). */
  spteReads = 0;
  /** Restarts from the root (by yielded), since construction. */
  restarts = 0;

  constructor(spt: BigInt64Array) {
    this.spt = spt;
  }

  /** tdp_iter_start: begin a walk of `root` (a table index) at the SPTE covering `startGfn`. */
  start(root: number, rootLevel: number, minLevel: number, startGfn: number): void {
    if (rootLevel < 1 || rootLevel > PT64_ROOT_MAX_LEVEL || minLevel < 1 || minLevel > rootLevel) {
      this.valid = false;
      return;
    }
    this.rootLevel = rootLevel;
    this.minLevel = minLevel;
    this.nextLastLevelGfn = startGfn;
    this.ptPath[rootLevel] = root;
    this.yielded = false;
    this.restartRaw();
  }

  /**
   * tdp_iter_restart: back to the root, at nextLastLevelGfn. Records yieldedGfn (the guard).
   * Public for callers that must re-walk without a yield; normally next() calls it after `yielded`.
   */
  restart(): void {
    this.restarts++;
    if (traceRing !== null) traceRing.instant(TK.restart, performance.now());
    this.restartRaw();
  }

  private restartRaw(): void {
    this.yielded = false;
    this.yieldedGfn = this.nextLastLevelGfn;
    this.level = this.rootLevel;
    const n = PAGES[this.level]!;
    this.gfn = alignDown(this.nextLastLevelGfn, n);
    this.refresh();
    this.valid = true;
  }

  /** Point sptIndex at gfn's entry in ptPath[level] and read it (tdp_iter_refresh_sptep). */
  private refresh(): void {
    const level = this.level;
    // `& 511` rather than `% 512`: exact for any integer gfn below 2^53 (ToInt32 keeps the low bits).
    const idx = Math.floor(this.gfn / PAGES[level]!) & (PT_ENTRIES - 1);
    this.sptIndex = this.ptPath[level]! * PT_ENTRIES + idx;
    this.oldSpte = this.spt[this.sptIndex]!;
    this.spteReads++;
  }

  /**
   * tdp_iter_next, in pre-order:
   *  1. if the caller yielded, restart from the root at nextLastLevelGfn and stop;
   *  2. else step down into the current SPTE's child table if allowed and present;
   *  3. else step to the next SPTE in this table; at the table's end step up and try again;
   *  4. stepping up past the root ends the walk (valid = false).
   */
  next(): void {
    if (this.yielded) {
      this.restart();
      return;
    }
    if (this.tryStepDown()) return;
    do {
      if (this.tryStepSide()) return;
    } while (this.tryStepUp());
    this.valid = false;
  }

  /**
   * Descend into the child table of the current SPTE. Re-reads the SPTE first so the walk never
   * follows a link that was zapped after the snapshot was taken (a frozen or replaced entry).
   */
  private tryStepDown(): boolean {
    if (this.level === this.minLevel) return false;
    const spte = this.spt[this.sptIndex]!;
    this.spteReads++;
    this.oldSpte = spte;
    STEP64[0] = spte;
    const lo = STEP32[0]!;
    // Present and not a leaf (level > minLevel >= 1, so the 4K "every entry is a leaf" case cannot occur).
    if ((lo & PRESENT_OR_LARGE_LO) !== PRESENT_LO) return false;
    // spteToChildTable on the halves: PFN bits 12..51.
    const child = (lo >>> 12) + (STEP32[1]! & 0xfffff) * 1048576;
    // Only a corrupt tree (a control, or a bug) points outside the pool.
    if (child * PT_ENTRIES >= this.spt.length) {
      throw invariantViolation('tdp_iter: child table index out of the pool', {
        gfn: this.gfn,
        level: this.level,
        spte: `0x${BigInt.asUintN(64, spte).toString(16)}`,
        child,
      });
    }
    this.level--;
    this.ptPath[this.level] = child;
    const n = PAGES[this.level]!;
    this.gfn = alignDown(this.nextLastLevelGfn, n);
    this.refresh();
    return true;
  }

  /** Move to the next SPTE of the same table; false at the last entry (index 511). */
  private tryStepSide(): boolean {
    if ((this.sptIndex & (PT_ENTRIES - 1)) === PT_ENTRIES - 1) return false;
    this.gfn += PAGES[this.level]!;
    this.nextLastLevelGfn = this.gfn;
    this.sptIndex++;
    this.oldSpte = this.spt[this.sptIndex]!;
    this.spteReads++;
    return true;
  }

  /** Back to the parent SPTE (re-read); false at the root. */
  private tryStepUp(): boolean {
    if (this.level === this.rootLevel) return false;
    this.level++;
    const n = PAGES[this.level]!;
    this.gfn = alignDown(this.gfn, n);
    this.refresh();
    return true;
  }
}

/**
 * One reusable TdpIter for one call site of a walk that runs often and briefly (a walk per
 * 64-page word of GET/CLEAR, a split walk per word of CLEAR): a new TdpIter allocates two typed
 * arrays, which at tens of thousands of walks per op is allocation and GC the kernel's on-stack
 * iterator does not have. `take` hands back the site's iterator with its counters zeroed, exactly
 * as a fresh one (start() sets everything else). Thread-private (module state is per worker);
 * the site must not re-enter itself while the iterator is in use (none of the users nests).
 */
export class TdpIterSlot {
  #it: TdpIter | undefined;

  take(spt: BigInt64Array): TdpIter {
    let it = this.#it;
    if (it === undefined || it.spt !== spt) {
      it = new TdpIter(spt);
      this.#it = it;
    }
    it.spteReads = 0;
    it.restarts = 0;
    it.valid = false;
    it.yielded = false;
    return it;
  }
}
