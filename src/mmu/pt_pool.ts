/**
 * The page-table page pool: every TDP page table lives in one SharedArrayBuffer (`spt`, a
 * BigInt64Array), table t being spt[t*512 .. t*512+511]. A table index plays the role of the
 * kernel's struct page / sp->spt pointer; a non-leaf SPTE stores its child's index in the PFN field.
 *
 * Memory: SharedArrayBuffer pages are committed by the OS on first touch (V8 maps large buffers
 * zero-filled and lazily), so a pool sized for the worst case (all guest memory mapped at 4K)
 * costs only the tables actually used. Free tables are handed out lowest-index-first from a
 * fresh pool, so the touched prefix stays compact.
 *
 * Free list: a Treiber stack of table indices linked through `next[]` (in the poolMeta SAB), with
 * a 64-bit head word {tag:32 | top+1:32} in the control SAB updated by Atomics.compareExchange on a
 * BigUint64Array. The tag is bumped by every push and pop, so a thread that read head=(tag,A) and
 * next[A]=B, was preempted while A was popped, B popped, A pushed back, cannot CAS (tag,A)->(tag+1,B)
 * and hand out B twice (the ABA problem). 32 tag bits wrap only after 4 billion list operations
 * during one preemption. We chose lock-free over a small lock because allocation and RCU-deferred
 * frees run from every worker, including while mmu_lock is held for read; a preempted lock holder
 * (32 workers on 2 cores) would stall all of them, which is not what a kernel page allocator does.
 *
 * Per-table state byte (poolMeta): FREE / IN_USE / IN_CACHE / RCU_WAIT, plus a DIRTY flag meaning
 * "contents are not all SHADOW_NONPRESENT_VALUE". Every transition is a compareExchange from the
 * expected state, so a double free or double allocation is caught at once (invariantViolation),
 * and the counts of the states are the accounting counters' ground truth (auditStates()).
 *
 * Contents contract: allocRaw() returns a table whose 512 SPTEs are SHADOW_NONPRESENT_VALUE (0),
 * like the kernel's __GFP_ZERO: fresh tables are zero already; recycled ones are zeroed at
 * allocation (not at free, so a stale walker of a table freed without a grace period reads
 * POISON_SPTE, which is how the control is caught). Zeroing a recycled table costs about 200 ns
 * (BigInt64Array.fill of 4 KiB, measured here), half of an alloc+free pair (~400 ns single-threaded).
 *
 * Accounting is a partition: free + inUse + inCaches + rcuWaiting = capacity (when quiescent).
 *
 * Reclaimable by anyone: a table freed after a grace period records a polled grace-period cookie
 * (rcu getStateSynchronize) and an odd generation, so once its grace period has ended any thread
 * may reclaim it (reapExpired, the pressure path of pool_reclaim.ts), not only the thread whose
 * callRcu callback would. Whoever moves the generation from odd to even owns the final free, so a
 * table is never freed twice, and a stale callback can never free a later life of the table.
 */

import type { RcuReader } from 'epoch-rcu';
import { invariantViolation, invalidArg } from '../errors.js';
import { PT_ENTRIES, POISON_SPTE, SHADOW_NONPRESENT_VALUE } from './spte.js';
import {
  POOL_ALLOCATED,
  POOL_CAPACITY,
  POOL_EARLY_FREES,
  POOL_EMPTY_HITS,
  POOL_FREE,
  POOL_FREED,
  POOL_HEAD,
  POOL_IN_CACHES,
  POOL_IN_USE,
  POOL_PRESSURE_ALLOCS,
  POOL_PRESSURE_FAIL_FAST,
  POOL_PRESSURE_GPS,
  POOL_RCU_WAITING,
  POOL_REAP_SEQ,
  POOL_REAPED,
} from '../layout.js';

/** Table states (low 7 bits of the state byte). FREE is 0 so a fresh poolMeta SAB is all free. */
export const TS_FREE = 0;
export const TS_IN_USE = 1;
export const TS_IN_CACHE = 2;
export const TS_RCU_WAIT = 3;
/** Flag: the table's contents are not all zero (it was used); allocRaw zeroes it before reuse. */
const TS_DIRTY = 0x80;
const TS_STATE_MASK = 0x7f;

const TABLE_BYTES = PT_ENTRIES * 8;
/**
 * Scratch for the free-list head word: the tagged 64-bit value is taken apart and built in Uint32
 * halves (little-endian: [0] = top+1, [1] = tag) instead of with BigInt shifts and masks, which
 * allocate a BigInt each (about half of an alloc+free pair's cost outside the zeroing, measured).
 */
const HEAD64 = new BigUint64Array(1);
const HEAD32 = new Uint32Array(HEAD64.buffer);

/** Sink for the unsafe control's pause loop (keeps it from being optimised away). */
let unsafePauseSink = 0;

export interface PoolAccounting {
  readonly capacity: number;
  /** Cumulative tables handed out by allocRaw. */
  readonly allocated: number;
  /** Cumulative tables returned to the free list. */
  readonly freed: number;
  readonly inUse: number;
  readonly rcuWaiting: number;
  readonly inCaches: number;
  readonly free: number;
  /** allocRaw calls that found the pool empty. */
  readonly emptyHits: number;
  /** Allocations that found the free list empty and entered the pressure path (pool_reclaim.ts). */
  readonly pressureAllocs: number;
  /** Grace periods pushed by allocations under pressure (expedited). */
  readonly pressureGracePeriods: number;
  /** Tables reclaimed by the pressure path after their grace period, instead of by their freer's callback. */
  readonly reapedTables: number;
  /** Pressure paths that could not wait (nowait, inside RCU, under mmu_lock) and found nothing to reap. */
  readonly pressureFailFast: number;
}

/** What the pressure path counts (pool_reclaim.ts). */
type PressureEvent = 'alloc' | 'gracePeriod' | 'failFast';
const PRESSURE_EVENT_FIELD: Readonly<Record<PressureEvent, number>> = Object.freeze({
  alloc: POOL_PRESSURE_ALLOCS,
  gracePeriod: POOL_PRESSURE_GPS,
  failFast: POOL_PRESSURE_FAIL_FAST,
});

/** Byte offset of the generation array in the poolMeta SAB (after next[] and the state bytes, 4-aligned). */
function genOffset(capacity: number): number {
  return Math.ceil((capacity * 5) / 4) * 4;
}

export interface PtPoolOptions {
  /**
   * CONTROL ONLY (a deliberately broken variant): freeAfterGracePeriod poisons and frees at once,
   * without waiting for a grace period, so stale walkers can read a reused table.
   */
  readonly unsafeFreeWithoutGracePeriod?: boolean;
  /**
   * CONTROL ONLY (the concurrency test's broken variant): allocRaw pops with a plain load and
   * store of the head instead of a compareExchange, with a short pause in between to widen the
   * race window, so two threads can pop the same table.
   */
  readonly unsafeNonAtomicFreeList?: boolean;
}

export class PtPool {
  /** Table t holds SPTEs spt[t*512 .. t*512+511]. */
  readonly spt: BigInt64Array;
  /** Tables in the pool. */
  readonly capacity: number;
  readonly unsafeFreeWithoutGracePeriod: boolean;
  readonly unsafeNonAtomicFreeList: boolean;
  readonly #ctrl: Int32Array;
  readonly #base: number;
  /** The free-list head word: a one-element BigUint64Array over the control SAB (layout POOL_HEAD). */
  readonly #head: BigUint64Array;
  readonly #next: Int32Array;
  readonly #state: Uint8Array;
  /**
   * Per table: a generation, odd while the table waits for its grace period and may be reclaimed
   * by whoever moves it to even first (its freer's callback or reapExpired). Zero (even) in a
   * fresh buffer. Written by freeAfterGracePeriod and the claimers; read by reapExpired.
   */
  readonly #rcuGen: Int32Array;
  /** Per table: the grace-period cookie taken when it was freed (valid while #rcuGen is odd). */
  readonly #rcuCookie: Int32Array;

  /** Bytes of the spt SAB for `capacity` tables. */
  static sptBytes(capacity: number): number {
    return capacity * TABLE_BYTES;
  }

  /** Bytes of the poolMeta SAB: next links (Int32), state bytes, then generations and cookies (Int32), rounded to 8. */
  static metaBytes(capacity: number): number {
    return Math.ceil((genOffset(capacity) + capacity * 8) / 8) * 8;
  }

  /**
   * Main thread, once, on a FRESH (all-zero) `meta` buffer: build the free list 0 -> 1 -> ... -> capacity-1 and zero the counters.
   * `control` is the control SAB's Int32Array, `base` the pool control region (layout.poolCtrlBase).
   */
  static initialize(control: Int32Array, base: number, meta: SharedArrayBuffer, capacity: number): void {
    checkArgs(control, base, meta, capacity);
    const next = new Int32Array(meta, 0, capacity);
    for (let t = 0; t < capacity - 1; t++) next[t] = t + 1;
    next[capacity - 1] = -1;
    // State bytes: a fresh SharedArrayBuffer is zero = TS_FREE everywhere; not filling them keeps
    // those pages uncommitted until tables are used.
    const head = new BigUint64Array(control.buffer, control.byteOffset + (base + POOL_HEAD) * 4, 1);
    // top+1 = 1 (table 0), tag 0. Published to workers by the postMessage that ships the SABs.
    Atomics.store(head, 0, 1n);
    for (const f of [
      POOL_ALLOCATED,
      POOL_FREED,
      POOL_IN_USE,
      POOL_RCU_WAITING,
      POOL_IN_CACHES,
      POOL_EMPTY_HITS,
      POOL_PRESSURE_ALLOCS,
      POOL_PRESSURE_GPS,
      POOL_REAPED,
      POOL_PRESSURE_FAIL_FAST,
      POOL_REAP_SEQ,
      POOL_EARLY_FREES,
    ]) {
      Atomics.store(control, base + f, 0);
    }
    Atomics.store(control, base + POOL_FREE, capacity);
    Atomics.store(control, base + POOL_CAPACITY, capacity);
  }

  /** Attach (any thread). */
  constructor(control: Int32Array, base: number, spt: SharedArrayBuffer, meta: SharedArrayBuffer, opts: PtPoolOptions = {}) {
    const capacity = Atomics.load(control, base + POOL_CAPACITY);
    checkArgs(control, base, meta, capacity);
    if (spt.byteLength < PtPool.sptBytes(capacity)) {
      throw invalidArg('PtPool', `spt buffer of ${spt.byteLength} bytes is smaller than ${capacity} tables`);
    }
    this.capacity = capacity;
    this.spt = new BigInt64Array(spt, 0, capacity * PT_ENTRIES);
    this.#ctrl = control;
    this.#base = base;
    this.#head = new BigUint64Array(control.buffer, control.byteOffset + (base + POOL_HEAD) * 4, 1);
    this.#next = new Int32Array(meta, 0, capacity);
    this.#state = new Uint8Array(meta, capacity * 4, capacity);
    this.#rcuGen = new Int32Array(meta, genOffset(capacity), capacity);
    this.#rcuCookie = new Int32Array(meta, genOffset(capacity) + capacity * 4, capacity);
    this.unsafeFreeWithoutGracePeriod = opts.unsafeFreeWithoutGracePeriod === true;
    this.unsafeNonAtomicFreeList = opts.unsafeNonAtomicFreeList === true;
  }

  /** Tables on the free list now (the allocator's watermark input). */
  freeCount(): number {
    return Atomics.load(this.#ctrl, this.#base + POOL_FREE);
  }

  /**
   * Pop a free table (no pressure model; allocator.ts adds it). Returns its index, its 512 SPTEs
   * all SHADOW_NONPRESENT_VALUE and its state IN_USE; or -1 if the free list is empty.
   * Lock context: none needed (lock-free; callable under mmu_lock and inside RCU).
   */
  allocRaw(): number {
    const head = this.#head;
    let t: number;
    for (;;) {
      const old = Atomics.load(head, 0);
      HEAD64[0] = old;
      const top1 = HEAD32[0]!;
      if (top1 === 0) {
        Atomics.add(this.#ctrl, this.#base + POOL_EMPTY_HITS, 1);
        return -1;
      }
      t = top1 - 1;
      // May be stale if t was popped and pushed again meanwhile; then the tag differs and the
      // CAS below fails. Pairs with the Atomics.store of next[] in #push().
      const nxt = Atomics.load(this.#next, t);
      HEAD32[0] = nxt + 1;
      HEAD32[1] = (HEAD32[1]! + 1) >>> 0;
      const desired = HEAD64[0]!;
      if (this.unsafeNonAtomicFreeList) {
        // Broken on purpose: another thread can pop t between our load and this store.
        for (let i = 0; i < 200; i++) unsafePauseSink = (unsafePauseSink + i) | 0;
        Atomics.store(head, 0, desired);
        break;
      }
      if (Atomics.compareExchange(head, 0, old, desired) === old) break;
    }
    const s = Atomics.compareExchange(this.#state, t, TS_FREE, TS_IN_USE);
    if (s !== TS_FREE) {
      if (s !== (TS_FREE | TS_DIRTY)) {
        throw invariantViolation('pt_pool: popped a table that is not free (double allocation)', { table: t, state: s });
      }
      Atomics.store(this.#state, t, TS_IN_USE);
      // Recycled: zero it, as __GFP_ZERO would. Safe: its grace period has ended (or the pool is
      // the unsafe control), so no walker holds a reference that the zeroing could confuse.
      this.spt.fill(SHADOW_NONPRESENT_VALUE, t * PT_ENTRIES, (t + 1) * PT_ENTRIES);
    }
    Atomics.sub(this.#ctrl, this.#base + POOL_FREE, 1);
    Atomics.add(this.#ctrl, this.#base + POOL_IN_USE, 1);
    Atomics.add(this.#ctrl, this.#base + POOL_ALLOCATED, 1);
    return t;
  }

  /**
   * Free a table that walkers never could reach (a cache leftover, a table prepared for a split
   * that lost its race): straight back to the free list, no poison, no grace period.
   * The table must be IN_USE (take it out of a cache with markUncached first).
   */
  freeUnpublished(t: number): void {
    this.#transition(t, TS_IN_USE, TS_FREE | TS_DIRTY, 'freeUnpublished');
    Atomics.sub(this.#ctrl, this.#base + POOL_IN_USE, 1);
    this.#push(t);
  }

  /**
   * Free a table that walkers may still be reading (it was unlinked from the tree):
   *   1. state IN_USE -> RCU_WAIT;
   *   2. record the grace-period cookie, then make the generation odd: from here any thread's
   *      reapExpired may reclaim the table once the cookie's grace period has ended;
   *   3. rcu.callRcu: after a full grace period no walker holds it; the callback claims the table
   *      (generation odd -> even) unless a reaper did first, then poisons it, RCU_WAIT -> FREE, push.
   * With unsafeFreeWithoutGracePeriod (control only) the poison and free run immediately.
   * The callback runs on THIS thread (callRcu's contract), when it polls or synchronizes.
   */
  freeAfterGracePeriod(t: number, rcu: RcuReader): void {
    this.#transition(t, TS_IN_USE, TS_RCU_WAIT | TS_DIRTY, 'freeAfterGracePeriod');
    Atomics.sub(this.#ctrl, this.#base + POOL_IN_USE, 1);
    Atomics.add(this.#ctrl, this.#base + POOL_RCU_WAITING, 1);
    // The grace period this table must wait for: the pressure reaper's test and audit()'s.
    const cookie = rcu.getStateSynchronize();
    if (this.unsafeFreeWithoutGracePeriod) {
      this.#noteEarlyFree(rcu, cookie);
      this.#finishRcuFree(t);
      return;
    }
    // The table stays intact until the grace period ends: a walker that loaded the parent
    // pointer before the unlink may still read it legitimately (KVM's walkers see the FROZEN
    // children and retry). Poisoning happens when the table is claimed, when no such walker can
    // remain, so any later read of poison is a true use-after-free.
    // Cookie before generation: pairs with reapExpired(), which loads the generation first, so a
    // reaper that sees this odd generation sees this cookie (or a later life's, never an older one).
    Atomics.store(this.#rcuCookie, t, cookie);
    const gen = (Atomics.load(this.#rcuGen, t) + 1) | 0;
    Atomics.store(this.#rcuGen, t, gen);
    rcu.callRcu(() => {
      this.#claimAndFinish(t, gen, rcu, cookie);
    });
  }

  /**
   * Reclaim every table waiting for RCU whose grace period has ended, whichever thread freed it:
   * the pressure path's reaper (pool_reclaim.ts, step 2). Returns the tables reclaimed.
   * Lock context: any; never blocks. Legal inside a read-side section: a table whose grace period
   * ended was unlinked before a grace period that began after it and has ended, so no section,
   * the caller's included, can hold a pointer into it.
   * At most one scan per grace period: POOL_REAP_SEQ keeps the cookie of the last scan's start,
   * and a scan is skipped until a full grace period has run since (nothing new can be ripe before;
   * a scan during a grace period in progress may thus wait one grace period more). O(capacity).
   */
  reapExpired(rcu: RcuReader): number {
    const c = this.#ctrl;
    const b = this.#base;
    if (Atomics.load(c, b + POOL_RCU_WAITING) === 0) return 0;
    const last = Atomics.load(c, b + POOL_REAP_SEQ);
    if (!rcu.pollStateSynchronize(last)) return 0;
    // One scanner per grace period; a loser returns (the winner frees what it finds).
    if (Atomics.compareExchange(c, b + POOL_REAP_SEQ, last, rcu.getStateSynchronize()) !== last) return 0;
    const gens = this.#rcuGen;
    let reaped = 0;
    for (let t = 0; t < this.capacity; t++) {
      const gen = Atomics.load(gens, t);
      if ((gen & 1) === 0) continue;
      // The cookie of this life, or of a later one (never older: see freeAfterGracePeriod); a
      // later life's cookie only makes us skip, and its claim would fail on the generation.
      const cookie = Atomics.load(this.#rcuCookie, t);
      if (!rcu.pollStateSynchronize(cookie)) continue;
      if (this.#claimAndFinish(t, gen, rcu, cookie)) reaped++;
    }
    if (reaped > 0) Atomics.add(c, b + POOL_REAPED, reaped);
    return reaped;
  }

  /** Tables waiting for their grace period now (the pressure path's "is waiting worth it?"). */
  rcuWaitingCount(): number {
    return Atomics.load(this.#ctrl, this.#base + POOL_RCU_WAITING);
  }

  /** Count a pressure-path event (pool_reclaim.ts) in POOL_PRESSURE_ALLOCS / _GPS / _FAIL_FAST. */
  countPressure(event: PressureEvent): void {
    Atomics.add(this.#ctrl, this.#base + PRESSURE_EVENT_FIELD[event], 1);
  }

  /** A cache took table t (IN_USE -> IN_CACHE); accounting counts it as held in caches. */
  markCached(t: number): void {
    this.#transition(t, TS_IN_USE, TS_IN_CACHE, 'markCached');
    Atomics.sub(this.#ctrl, this.#base + POOL_IN_USE, 1);
    Atomics.add(this.#ctrl, this.#base + POOL_IN_CACHES, 1);
  }

  /** A cache handed table t out (IN_CACHE -> IN_USE). */
  markUncached(t: number): void {
    this.#transition(t, TS_IN_CACHE, TS_IN_USE, 'markUncached');
    Atomics.sub(this.#ctrl, this.#base + POOL_IN_CACHES, 1);
    Atomics.add(this.#ctrl, this.#base + POOL_IN_USE, 1);
  }

  /** The state of table t (TS_* without the DIRTY flag); for checks and tests. */
  stateOf(t: number): number {
    this.#checkIndex(t, 'stateOf');
    return Atomics.load(this.#state, t) & TS_STATE_MASK;
  }

  /** Counters (each read atomically; consistent with each other only when the pool is quiescent). */
  accounting(): PoolAccounting {
    const c = this.#ctrl;
    const b = this.#base;
    return {
      capacity: this.capacity,
      allocated: Atomics.load(c, b + POOL_ALLOCATED) >>> 0,
      freed: Atomics.load(c, b + POOL_FREED) >>> 0,
      inUse: Atomics.load(c, b + POOL_IN_USE),
      rcuWaiting: Atomics.load(c, b + POOL_RCU_WAITING),
      inCaches: Atomics.load(c, b + POOL_IN_CACHES),
      free: Atomics.load(c, b + POOL_FREE),
      emptyHits: Atomics.load(c, b + POOL_EMPTY_HITS),
      pressureAllocs: Atomics.load(c, b + POOL_PRESSURE_ALLOCS),
      pressureGracePeriods: Atomics.load(c, b + POOL_PRESSURE_GPS),
      reapedTables: Atomics.load(c, b + POOL_REAPED),
      pressureFailFast: Atomics.load(c, b + POOL_PRESSURE_FAIL_FAST),
    };
  }

  /**
   * Ground truth for a quiescent pool: counts of the state bytes and the free-list length (walked,
   * with a cycle guard). Returns a list of disagreements with accounting(); empty = balanced.
   * O(capacity): for tests and the end-of-run invariant check, not hot paths.
   */
  audit(): { counts: { free: number; inUse: number; inCaches: number; rcuWaiting: number; listLength: number }; problems: string[] } {
    const counts = { free: 0, inUse: 0, inCaches: 0, rcuWaiting: 0, listLength: 0 };
    const problems: string[] = [];
    for (let t = 0; t < this.capacity; t++) {
      const st = Atomics.load(this.#state, t) & TS_STATE_MASK;
      // A claimable generation (odd) belongs to exactly the tables waiting for RCU (the unsafe
      // control frees without making any table claimable).
      if ((Atomics.load(this.#rcuGen, t) & 1) !== 0 && st !== TS_RCU_WAIT) problems.push(`table ${t} is claimable (odd generation) but not RCU_WAIT`);
      if (st === TS_RCU_WAIT && !this.unsafeFreeWithoutGracePeriod && (Atomics.load(this.#rcuGen, t) & 1) === 0) {
        problems.push(`table ${t} waits for RCU but nobody can claim it (even generation)`);
      }
      switch (st) {
        case TS_FREE:
          counts.free++;
          break;
        case TS_IN_USE:
          counts.inUse++;
          break;
        case TS_IN_CACHE:
          counts.inCaches++;
          break;
        case TS_RCU_WAIT:
          counts.rcuWaiting++;
          break;
        default:
          break;
      }
    }
    const seen = new Uint8Array(this.capacity);
    let top1 = Number(Atomics.load(this.#head, 0) & 0xffffffffn);
    while (top1 !== 0) {
      const t = top1 - 1;
      if (t < 0 || t >= this.capacity) {
        problems.push(`free list holds out-of-range index ${t}`);
        break;
      }
      if (seen[t] === 1) {
        problems.push(`free list has a cycle at table ${t}`);
        break;
      }
      seen[t] = 1;
      if ((Atomics.load(this.#state, t) & TS_STATE_MASK) !== TS_FREE) problems.push(`table ${t} is on the free list but not FREE`);
      counts.listLength++;
      top1 = Atomics.load(this.#next, t) + 1;
    }
    const a = this.accounting();
    if (counts.listLength !== counts.free) problems.push(`free list length ${counts.listLength} != FREE states ${counts.free}`);
    if (a.free !== counts.free) problems.push(`counter free ${a.free} != FREE states ${counts.free}`);
    if (a.inUse !== counts.inUse) problems.push(`counter inUse ${a.inUse} != IN_USE states ${counts.inUse}`);
    if (a.inCaches !== counts.inCaches) problems.push(`counter inCaches ${a.inCaches} != IN_CACHE states ${counts.inCaches}`);
    if (a.rcuWaiting !== counts.rcuWaiting) problems.push(`counter rcuWaiting ${a.rcuWaiting} != RCU_WAIT states ${counts.rcuWaiting}`);
    if (a.free + a.inUse + a.inCaches + a.rcuWaiting !== a.capacity) problems.push('free + inUse + inCaches + rcuWaiting != capacity');
    if (((a.allocated - a.freed) | 0) !== a.inUse + a.inCaches + a.rcuWaiting) problems.push('allocated - freed != inUse + inCaches + rcuWaiting');
    const early = Atomics.load(this.#ctrl, this.#base + POOL_EARLY_FREES);
    if (early !== 0) problems.push(`${early} table(s) became reusable before their grace period ended (reuse before a grace period)`);
    return { counts, problems };
  }

  /**
   * Claim table t's life `gen` (odd) and finish its free; false if someone else claimed it first
   * (its freer's callback or a reaper). The compareExchange pairs with the same one in the other
   * claimer: exactly one of them moves the generation to even.
   */
  #claimAndFinish(t: number, gen: number, rcu: RcuReader, cookie: number): boolean {
    if (Atomics.compareExchange(this.#rcuGen, t, gen, (gen + 1) | 0) !== gen) return false;
    this.#noteEarlyFree(rcu, cookie);
    this.#finishRcuFree(t);
    return true;
  }

  /**
   * Audit hook of the RCU free path: count a table about to go back on the free list although the
   * grace period that began when it was unlinked (`cookie`) has not ended. Independent of how the
   * free was deferred, so a free path that skips or shortens the wait is caught by audit().
   */
  #noteEarlyFree(rcu: RcuReader, cookie: number): void {
    if (!rcu.pollStateSynchronize(cookie)) Atomics.add(this.#ctrl, this.#base + POOL_EARLY_FREES, 1);
  }

  #finishRcuFree(t: number): void {
    // Poison first, then publish on the free list (the push's CAS orders these stores before any
    // allocRaw() that pops t): from here on, a walker reading t holds a dangling pointer.
    this.spt.fill(POISON_SPTE, t * PT_ENTRIES, (t + 1) * PT_ENTRIES);
    this.#transition(t, TS_RCU_WAIT | TS_DIRTY, TS_FREE | TS_DIRTY, 'RCU free callback');
    Atomics.sub(this.#ctrl, this.#base + POOL_RCU_WAITING, 1);
    this.#push(t);
  }

  /** Push t (already in state FREE) onto the free list and count it. */
  #push(t: number): void {
    const head = this.#head;
    for (;;) {
      const old = Atomics.load(head, 0);
      HEAD64[0] = old;
      // Link before publishing: pairs with the Atomics.load of next[] in allocRaw().
      Atomics.store(this.#next, t, HEAD32[0]! - 1);
      HEAD32[0] = t + 1;
      HEAD32[1] = (HEAD32[1]! + 1) >>> 0;
      const desired = HEAD64[0]!;
      if (Atomics.compareExchange(head, 0, old, desired) === old) break;
    }
    Atomics.add(this.#ctrl, this.#base + POOL_FREE, 1);
    Atomics.add(this.#ctrl, this.#base + POOL_FREED, 1);
  }

  #transition(t: number, from: number, to: number, what: string): void {
    this.#checkIndex(t, what);
    let s = Atomics.compareExchange(this.#state, t, from, to);
    if (s === from) return;
    // IN_USE tables may or may not carry DIRTY (a table filled by its user): accept both.
    if ((from & TS_DIRTY) === 0 && s === (from | TS_DIRTY)) {
      s = Atomics.compareExchange(this.#state, t, s, to | TS_DIRTY);
      if (s === (from | TS_DIRTY)) return;
    }
    throw invariantViolation(`pt_pool: ${what} of table in the wrong state (double free, or freeing a cached table?)`, {
      table: t,
      state: s & TS_STATE_MASK,
      dirty: (s & TS_DIRTY) !== 0,
      expected: from & TS_STATE_MASK,
    });
  }

  #checkIndex(t: number, what: string): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.capacity) {
      throw invariantViolation(`pt_pool: ${what} of a table index out of range`, { table: t, capacity: this.capacity });
    }
  }
}

function checkArgs(control: Int32Array, base: number, meta: SharedArrayBuffer, capacity: number): void {
  if (!(control instanceof Int32Array) || !(control.buffer instanceof SharedArrayBuffer)) {
    throw invalidArg('PtPool', 'control must be an Int32Array over a SharedArrayBuffer');
  }
  if (!Number.isInteger(base) || base < 0 || base % 2 !== 0 || base + 32 > control.length) {
    throw invalidArg('PtPool', `pool control base ${base} is not an even index inside the control view`);
  }
  if (!Number.isInteger(capacity) || capacity < 1 || capacity >= 2 ** 31 - 1) {
    throw invalidArg('PtPool', `capacity ${capacity} must be a positive integer below 2^31-1`);
  }
  if (meta.byteLength < PtPool.metaBytes(capacity)) {
    throw invalidArg('PtPool', `poolMeta buffer of ${meta.byteLength} bytes is smaller than ${PtPool.metaBytes(capacity)}`);
  }
}
