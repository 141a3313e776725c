/**
 * The per-table NX huge page state, shared by every thread: KVM's `sp->nx_huge_page_disallowed`
 * and the per-VM list of possible NX huge pages (`kvm->arch.possible_nx_huge_pages`, its count,
 * and the `tdp_mmu_pages_lock` spinlock that guards it; kvm-faults-and-dirty-tracking.md §3).
 *
 * A page table ("sp") linked by an execute fault that could not be mapped huge because NX huge
 * pages withhold X from huge leaves is marked DISALLOWED: later faults must not replace it with a
 * huge leaf (disallowed_hugepage_adjust, tdp_mmu_fault.ts). If the fault could otherwise have
 * mapped a huge page at that level it is also put on the list, which the NX recovery worker
 * (nx_huge_pages.ts) drains: zapping such a table lets the region be mapped huge again.
 *
 * Shared memory (one SharedArrayBuffer, created by createVm only when the VM runs with NX huge
 * pages, so the other runs pay nothing):
 *   Int32  [LOCK, COUNT]                 the list lock word (0 free, 1 held) and the list length
 *   Int32  next[capacity + 1]            the doubly linked list; index `capacity` is the head
 *   Int32  prev[capacity + 1]
 *   Float64 gfn[capacity]                first gfn the table maps (sp->gfn)
 *   Uint8  level[capacity]               level of the SPTE that points at the table (the huge
 *                                        page's level: 2 for a table of 4K leaves)
 *   Uint8  flags[capacity]               DISALLOWED | ON_LIST
 *
 * Locking: flags' DISALLOWED bit is written before the table is published (a plain table, then
 * the link cmpxchg publishes it; a reader loads the parent SPTE and then the flag, the same
 * address-dependency order as the table's entries) and cleared when the table is torn down.
 * ON_LIST, the links, gfn/level and COUNT change only under the list lock, which is taken inside
 * mmu_lock (read or write) and never held across anything that blocks: a spinlock, as
 * tdp_mmu_pages_lock is. This file does not import vm.ts (vm.ts holds one of these per thread).
 */
import { invalidArg, invariantViolation } from '../errors.js';

/** sp->nx_huge_page_disallowed. */
const NX_DISALLOWED = 1;
/** On the possible-NX-huge-pages list (track_possible_nx_huge_page). */
const NX_ON_LIST = 2;

const HDR_LOCK = 0;
const HDR_COUNT = 1;
const HDR_INT32S = 2;

/** Spins on the list lock before each short sleep (2 cores are shared by many threads). */
const LOCK_SPINS = 200;
/** Sleep per round once spinning failed, ms (a timed back-off: the holder never notifies). */
const LOCK_BACKOFF_MS = 0.02;

function layoutOf(capacity: number): { next: number; prev: number; gfn: number; level: number; flags: number; bytes: number } {
  const next = HDR_INT32S * 4;
  const prev = next + (capacity + 1) * 4;
  // Float64Array views need 8-byte alignment.
  const gfn = Math.ceil((prev + (capacity + 1) * 4) / 8) * 8;
  const level = gfn + capacity * 8;
  const flags = level + capacity;
  return { next, prev, gfn, level, flags, bytes: flags + capacity };
}

/** One thread's view of the shared NX state of a pool of `capacity` tables. */
export class NxSpTracking {
  readonly capacity: number;
  readonly #hdr: Int32Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #gfn: Float64Array;
  readonly #level: Uint8Array;
  /** Per-table flags; Atomics on it (the DISALLOWED bit is read by faults of other threads). */
  readonly flags: Uint8Array;

  /** Bytes of the shared buffer for a pool of `capacity` tables. */
  static bytes(capacity: number): number {
    return layoutOf(capacity).bytes;
  }

  /** Main thread, once: a fresh buffer with an empty list. */
  static create(capacity: number): SharedArrayBuffer {
    if (!Number.isInteger(capacity) || capacity < 1) throw invalidArg('NxSpTracking', `capacity ${capacity} must be a positive integer`);
    const sab = new SharedArrayBuffer(layoutOf(capacity).bytes);
    const t = new NxSpTracking(sab, capacity);
    t.#next[capacity] = capacity;
    t.#prev[capacity] = capacity;
    return sab;
  }

  constructor(sab: SharedArrayBuffer, capacity: number) {
    const l = layoutOf(capacity);
    if (sab.byteLength < l.bytes) throw invalidArg('NxSpTracking', `buffer of ${sab.byteLength} bytes is smaller than ${l.bytes}`);
    this.capacity = capacity;
    this.#hdr = new Int32Array(sab, 0, HDR_INT32S);
    this.#next = new Int32Array(sab, l.next, capacity + 1);
    this.#prev = new Int32Array(sab, l.prev, capacity + 1);
    this.#gfn = new Float64Array(sab, l.gfn, capacity);
    this.#level = new Uint8Array(sab, l.level, capacity);
    this.flags = new Uint8Array(sab, l.flags, capacity);
  }

  /** sp->nx_huge_page_disallowed of `table` (a fault's disallowed_hugepage_adjust). */
  isDisallowed(table: number): boolean {
    return (Atomics.load(this.flags, table) & NX_DISALLOWED) !== 0;
  }

  /** On the possible-NX-huge-pages list. */
  isListed(table: number): boolean {
    return (Atomics.load(this.flags, table) & NX_ON_LIST) !== 0;
  }

  /** Mark a table the caller owns and has not published yet (the fault's new sp). */
  markDisallowed(table: number): void {
    Atomics.or(this.flags, table, NX_DISALLOWED);
  }

  /** A table the fault marked but failed to publish goes back to the pool: clear its flags. */
  clearUnpublished(table: number): void {
    Atomics.store(this.flags, table, 0);
  }

  /** Possible NX huge pages recorded now (kvm->arch.possible_nx_huge_pages' length). */
  count(): number {
    return Atomics.load(this.#hdr, HDR_COUNT);
  }

  /** The list lock (tdp_mmu_pages_lock): a spinlock with a timed back-off. */
  lock(): void {
    for (let spins = 0; ; spins++) {
      // Pairs with unlock()'s store: the winner sees every link the previous holder wrote.
      if (Atomics.compareExchange(this.#hdr, HDR_LOCK, 0, 1) === 0) return;
      if (spins >= LOCK_SPINS) Atomics.wait(this.#hdr, HDR_LOCK, 1, LOCK_BACKOFF_MS);
    }
  }

  unlock(): void {
    Atomics.store(this.#hdr, HDR_LOCK, 0);
  }

  /**
   * track_possible_nx_huge_page: put `table` (mapping from `gfn`, pointed to by an SPTE at
   * `level`) on the list. Caller holds the list lock. A table already on it stays where it is.
   */
  trackLocked(table: number, gfn: number, level: number): void {
    this.#checkHeld();
    const f = Atomics.load(this.flags, table);
    if ((f & NX_ON_LIST) !== 0) return;
    const head = this.capacity;
    this.#gfn[table] = gfn;
    this.#level[table] = level;
    const last = this.#prev[head]!;
    this.#next[table] = head;
    this.#prev[table] = last;
    this.#next[last] = table;
    this.#prev[head] = table;
    Atomics.or(this.flags, table, NX_ON_LIST);
    Atomics.add(this.#hdr, HDR_COUNT, 1);
  }

  /**
   * untrack_possible_nx_huge_page + clearing nx_huge_page_disallowed (unaccount_nx_huge_page):
   * take `table` off the list if it is on it, and clear both flags. Caller holds the list lock.
   */
  untrackLocked(table: number): void {
    this.#checkHeld();
    const f = Atomics.load(this.flags, table);
    if ((f & NX_ON_LIST) !== 0) {
      const n = this.#next[table]!;
      const p = this.#prev[table]!;
      this.#next[p] = n;
      this.#prev[n] = p;
      if (Atomics.sub(this.#hdr, HDR_COUNT, 1) <= 0) throw invariantViolation('NxSpTracking: list count went negative', { table });
    }
    Atomics.store(this.flags, table, 0);
  }

  /** The oldest table on the list, or -1 (the recovery worker's list_first_entry). Caller holds the lock. */
  firstLocked(): number {
    this.#checkHeld();
    const t = this.#next[this.capacity]!;
    return t === this.capacity ? -1 : t;
  }

  /** gfn and level recorded for a table on the list. */
  gfnOf(table: number): number {
    return this.#gfn[table]!;
  }

  levelOf(table: number): number {
    return this.#level[table]!;
  }

  /** A table leaves the tree (handle_removed_pt): off the list, flags cleared. Takes the list lock if needed. */
  onTableRemoved(table: number): void {
    if (Atomics.load(this.flags, table) === 0) return;
    this.lock();
    try {
      this.untrackLocked(table);
    } finally {
      this.unlock();
    }
  }

  #checkHeld(): void {
    if (Atomics.load(this.#hdr, HDR_LOCK) !== 1) throw invariantViolation('NxSpTracking: list lock not held', {});
  }
}
