/**
 * RwLock: a reader/writer lock in shared memory with Linux qrwlock semantics.
 *
 * One Int32 word (CNTS, see layout.ts) carries the whole lock state: a writer byte, a
 * writer-waiting bit and a reader count. Uncontended, a read acquire is one fetch-add and a read
 * release one fetch-sub; a write acquire is one compare-exchange and a write release one
 * fetch-sub. Everything else (queueing, sleeping, timeouts, waking) is on the slow path, behind a
 * FIFO ticket queue (wait_queue.ts) that plays the part of qrwlock's `wait_lock`:
 *
 *  - a reader whose fetch-add saw writer bits backs its bias out and queues;
 *  - a writer whose compare-exchange failed queues;
 *  - only the queue head touches CNTS on the slow path. A writer head sets WAITING, which makes
 *    every new reader fail its fast path and queue behind it: a stream of readers cannot starve
 *    a writer. Readers queued behind the writer get in, in order, after it releases.
 *  - the head polls CNTS for a bounded number of loads, then sets PARKED and sleeps in
 *    Atomics.wait on CNTS; the unlock that makes progress possible sees PARKED in the value its
 *    fetch-sub returned and notifies. Nobody ever spins unbounded.
 *
 * As in the kernel, fast-path arrivals may barge past queued waiters when the word allows it
 * (readers while no writer is waiting, a writer when CNTS is 0); the queue orders the waiters.
 *
 * Not recursive: a thread that read-locks twice can deadlock behind a waiting writer (as with
 * qrwlock). Debug mode (ATOMICS_LOCK_DEBUG=1) records holders so callers can assert the context.
 *
 * Usage: RwLock.initialize(view, base) once (main thread), then `new RwLock(view, base)` in each
 * thread (one handle per thread; a handle's counters are plain fields, not thread-safe).
 */

import { LockCounters } from './counters.js';
import type { RwLockStats } from './counters.js';
import { AtomicsLockError, invalidArg, notHeld } from './errors.js';
import {
  CNTS,
  DBG_READERS,
  DBG_WRITER,
  DEBUG_MAX_HOLDERS,
  MAGIC,
  MAGIC_VALUE,
  NEXT,
  Q_PARKED,
  QR_BIAS,
  QR_MASK,
  QR_SHIFT,
  QW_LOCKED,
  QW_WAITING,
  QW_WMASK,
  RWLOCK_INT32S,
  SERVING,
  STAT_FIELDS,
  STATS,
  checkRegion,
} from './layout.js';
import { spinPause } from './spin_pause.js';
import { ST_READER, ST_WRITER, TURN_GRANTED, TURN_HEAD, WaitQueue } from './wait_queue.js';
import { threadId } from 'node:worker_threads';

export { RWLOCK_INT32S, DEBUG_MAX_HOLDERS };
export type { RwLockStats };

/** Default bounded poll before sleeping: ~1000 loads, about 5 us here (a VM wake-up costs ~20 us). */
export const DEFAULT_SPIN_LIMIT = 1000;
const NS_PER_MS = 1e6;

export interface RwLockOptions {
  /** Polls of the lock word (or queue) before parking with Atomics.wait. Default 1000. */
  spinLimit?: number;
  /** Record holders for assertHeld*(). Default: process.env.ATOMICS_LOCK_DEBUG === '1'. */
  debug?: boolean;
  /** Id recorded by debug mode, 0..DEBUG_MAX_HOLDERS-1. Default: worker threadId mod DEBUG_MAX_HOLDERS. */
  holderId?: number;
}

/** A decoded snapshot of the lock state, for error messages and tests (racy by nature). */
export interface RwLockState {
  readonly cnts: number;
  readonly writerLocked: boolean;
  readonly writerWaiting: boolean;
  readonly readers: number;
  readonly parked: boolean;
  readonly queued: number; // NEXT - SERVING: queued tickets, head included (abandoned ones too)
}

// What the queue head waits for on CNTS.
const HEAD_READER = 0; // the writer byte to clear (we already hold a reader bias)
const HEAD_WRITER = 1; // no writer and no readers: CNTS === WAITING (plus maybe PARKED)
type HeadKind = typeof HEAD_READER | typeof HEAD_WRITER;

/** Throws ERR_INVALID_ARG unless timeoutMs is a non-negative number (Infinity allowed). */
export function checkTimeout(what: string, timeoutMs: number): void {
  // `!(x >= 0)` also rejects NaN; Infinity means "no timeout".
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
    throw invalidArg(what, `timeoutMs must be a non-negative number of milliseconds, got ${String(timeoutMs)}`);
  }
}

export class RwLock {
  /** true when this handle records holders and checks assertHeld*() / unlocks by holder. */
  readonly debug: boolean;
  /** The id this handle records in debug mode. */
  readonly holderId: number;

  readonly #v: Int32Array;
  readonly #base: number;
  readonly #cnts: number;
  readonly #spinLimit: number;
  readonly #queue: WaitQueue;
  readonly #c = new LockCounters();

  /**
   * Once per lock, before any thread attaches (main thread): zero the region and mark it
   * initialised. `view` must be an Int32Array over a SharedArrayBuffer and the region
   * [base, base + RWLOCK_INT32S) must fit and start on a 64-byte boundary (128 recommended).
   * Throws AtomicsLockError ERR_INVALID_ARG otherwise.
   */
  static initialize(view: Int32Array, base: number): void {
    checkRegion('RwLock.initialize', view, base, RWLOCK_INT32S);
    for (let i = 0; i < RWLOCK_INT32S; i++) Atomics.store(view, base + i, 0);
    WaitQueue.initialize(view, base);
    // Last, so an attach that sees MAGIC sees the initialised words (seq_cst store/load pair
    // with the MAGIC load in the constructor).
    Atomics.store(view, base + MAGIC, MAGIC_VALUE);
  }

  /** Attach to an initialised lock (every thread, main included). Throws ERR_INVALID_ARG. */
  constructor(view: Int32Array, base: number, opts: RwLockOptions = {}) {
    checkRegion('RwLock', view, base, RWLOCK_INT32S);
    if (Atomics.load(view, base + MAGIC) !== MAGIC_VALUE) {
      throw invalidArg('RwLock', `no initialised lock at base ${base} (call RwLock.initialize first)`);
    }
    if (typeof opts !== 'object' || opts === null) throw invalidArg('RwLock', 'options must be an object');
    const spinLimit = opts.spinLimit ?? DEFAULT_SPIN_LIMIT;
    if (!Number.isSafeInteger(spinLimit) || spinLimit < 0) {
      throw invalidArg('RwLock', `options.spinLimit must be a non-negative integer, got ${String(opts.spinLimit)}`);
    }
    const debug = opts.debug ?? process.env['ATOMICS_LOCK_DEBUG'] === '1';
    if (typeof debug !== 'boolean') throw invalidArg('RwLock', `options.debug must be a boolean, got ${String(debug)}`);
    const holderId = opts.holderId ?? threadId % DEBUG_MAX_HOLDERS;
    if (!Number.isInteger(holderId) || holderId < 0 || holderId >= DEBUG_MAX_HOLDERS) {
      throw invalidArg('RwLock', `options.holderId must be an integer in 0..${DEBUG_MAX_HOLDERS - 1}, got ${String(opts.holderId)}`);
    }
    this.debug = debug;
    this.holderId = holderId;
    this.#v = view;
    this.#base = base;
    this.#cnts = base + CNTS;
    this.#spinLimit = spinLimit;
    this.#queue = new WaitQueue(view, base, spinLimit, this.#c);
  }

  // ---------------------------------------------------------------------------------------------
  // Read side
  // ---------------------------------------------------------------------------------------------

  /**
   * read_lock(). Returns true once held for read; false only if `timeoutMs` was given and ran out
   * (0 = a single attempt, like tryReadLock). Fast path: one fetch-add.
   */
  readLock(timeoutMs?: number): boolean {
    if (timeoutMs !== undefined) checkTimeout('RwLock.readLock', timeoutMs);
    // Acquire: pairs with the fetch-sub in writeUnlock() (the writer's critical section
    // happens-before ours once we see its byte clear).
    const c = Atomics.add(this.#v, this.#cnts, QR_BIAS);
    if ((c & QW_WMASK) === 0) {
      this.#c.readAcquisitions++;
      if (this.debug) this.#debugReadAcquired();
      return true;
    }
    return this.#readLockSlow(timeoutMs);
  }

  /** read_trylock(): true = held for read. Fails (no waiting) if a writer holds or waits. */
  tryReadLock(): boolean {
    const c = Atomics.add(this.#v, this.#cnts, QR_BIAS);
    if ((c & QW_WMASK) === 0) {
      this.#c.readAcquisitions++;
      if (this.debug) this.#debugReadAcquired();
      return true;
    }
    this.#subReaderBias();
    return false;
  }

  /** read_unlock(). Throws ERR_LOCK_NOT_HELD if no read hold is outstanding (state restored). */
  readUnlock(): void {
    if (this.debug) this.#debugReadReleasing();
    // Release: pairs with the acquiring fetch-add/CAS of the next writer.
    const old = Atomics.sub(this.#v, this.#cnts, QR_BIAS);
    // One branch: PARKED (sign bit) set, or no reader was counted (an unbalanced unlock).
    if (old < 0 || (old & QR_MASK) === 0) this.#readUnlockSlow(old);
  }

  /**
   * Read slow path (qrwlock's queued_read_lock_slowpath):
   *  1. back out the bias our fast path added (it may be the count a parked writer waits on);
   *  2. take a ticket and wait to become the queue head (FIFO behind earlier waiters);
   *  3. as head, add the bias back and wait for the writer byte to clear: any writer that was
   *     WAITING was ahead of us in the queue, so only a lock holder can be in the way now;
   *  4. grant the read lock to the readers queued right behind us (rwsem-style batch, see
   *     wait_queue.ts) and pass the turn to the first ticket after them.
   * Steps 2-3 may end early: a reader head ahead of us may grant us the lock while we wait.
   * A deadline undoes the step in progress and returns false.
   */
  #readLockSlow(timeoutMs: number | undefined): boolean {
    this.#subReaderBias(); // step 1
    if (timeoutMs === 0) return this.#timedOut();
    const t0 = performance.now();
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : t0 + timeoutMs;
    const ok = this.#readLockQueued(deadline);
    this.#c.readWaitNs += (performance.now() - t0) * NS_PER_MS;
    if (!ok) return this.#timedOut();
    this.#c.readAcquisitions++;
    this.#c.contendedReads++;
    if (this.debug) this.#debugReadAcquired();
    return true;
  }

  #readLockQueued(deadline: number): boolean {
    const q = this.#queue;
    const ticket = q.takeTicket(ST_READER, deadline); // step 2
    if (ticket === undefined) return false;
    const turn = q.waitTurn(ticket, ST_READER, deadline);
    if (turn !== TURN_HEAD) return turn === TURN_GRANTED; // granted: a reader head added our bias
    const c = Atomics.add(this.#v, this.#cnts, QR_BIAS); // step 3
    if ((c & QW_LOCKED) !== 0 && !this.#headWait(HEAD_READER, deadline)) {
      this.#subReaderBias();
      q.passTurn(ticket);
      return false;
    }
    q.grantReadersAndPassTurn(ticket); // step 4
    return true;
  }

  /** Remove one reader bias (a back-out or an unlock) and wake a parked head that needs it. */
  #subReaderBias(): void {
    const old = Atomics.sub(this.#v, this.#cnts, QR_BIAS);
    if (old < 0) this.#readUnlockSlow(old);
  }

  #readUnlockSlow(old: number): void {
    if ((old & QR_MASK) === 0) {
      Atomics.add(this.#v, this.#cnts, QR_BIAS); // undo the underflow before reporting it
      throw notHeld('RwLock.readUnlock', `the lock is not held for read ${JSON.stringify(this.describe())}`);
    }
    // A parked writer head waits for the reader count to reach 0; a parked reader head waits for
    // the writer byte (it holds a bias itself, so the count cannot reach 0 while it waits).
    if (((old - QR_BIAS) & QR_MASK) === 0) this.#wakeHead();
  }

  // ---------------------------------------------------------------------------------------------
  // Write side
  // ---------------------------------------------------------------------------------------------

  /**
   * write_lock(). Returns true once held for write; false only if `timeoutMs` was given and ran
   * out (0 = a single attempt, like tryWriteLock). Fast path: one compare-exchange 0 -> LOCKED.
   */
  writeLock(timeoutMs?: number): boolean {
    if (timeoutMs !== undefined) checkTimeout('RwLock.writeLock', timeoutMs);
    // Acquire: pairs with the fetch-subs in readUnlock()/writeUnlock() of the previous holders.
    if (Atomics.compareExchange(this.#v, this.#cnts, 0, QW_LOCKED) === 0) {
      this.#c.writeAcquisitions++;
      if (this.debug) this.#debugWriteAcquired();
      return true;
    }
    return this.#writeLockSlow(timeoutMs);
  }

  /** write_trylock(): true = held for write. Succeeds only if nobody holds the lock. */
  tryWriteLock(): boolean {
    const v = this.#v;
    let c = Atomics.compareExchange(v, this.#cnts, 0, QW_LOCKED);
    // A stale PARKED bit alone (a head that timed out while asleep) does not make the lock busy.
    if (c === Q_PARKED) c = Atomics.compareExchange(v, this.#cnts, Q_PARKED, QW_LOCKED) === Q_PARKED ? 0 : -1;
    if (c !== 0) return false;
    this.#c.writeAcquisitions++;
    if (this.debug) this.#debugWriteAcquired();
    return true;
  }

  /** write_unlock(). Throws ERR_LOCK_NOT_HELD if the lock is not held for write (state restored). */
  writeUnlock(): void {
    if (this.debug) this.#debugWriteReleasing();
    // Release: clear the writer byte only (WAITING and queued reader biases stay). Pairs with
    // the fetch-add/CAS of the next holder; the returned value tells us if the head sleeps.
    const old = Atomics.sub(this.#v, this.#cnts, QW_LOCKED);
    if (old < 0 || (old & QW_LOCKED) !== QW_LOCKED) this.#writeUnlockSlow(old);
  }

  #writeUnlockSlow(old: number): void {
    if ((old & QW_LOCKED) !== QW_LOCKED) {
      Atomics.add(this.#v, this.#cnts, QW_LOCKED);
      throw notHeld('RwLock.writeUnlock', `the lock is not held for write ${JSON.stringify(this.describe())}`);
    }
    this.#wakeHead(); // a parked head waits for exactly this byte (reader) or for it as well (writer)
  }

  /**
   * Write slow path (qrwlock's queued_write_lock_slowpath):
   *  1. take a ticket and wait to become the queue head;
   *  2. as head, if CNTS is free, take it with one CAS;
   *  3. otherwise set WAITING: from now on new readers fail their fast path and queue behind us;
   *  4. wait until the readers drained and no writer holds (CNTS === WAITING), then CAS
   *     WAITING -> LOCKED (which also clears WAITING and a PARKED bit of ours);
   *  5. pass the turn.
   * A deadline clears WAITING (if set), passes the turn and returns false.
   */
  #writeLockSlow(timeoutMs: number | undefined): boolean {
    if (timeoutMs === 0) return this.tryWriteLock() || this.#timedOut();
    const t0 = performance.now();
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : t0 + timeoutMs;
    const ok = this.#writeLockQueued(deadline);
    this.#c.writeWaitNs += (performance.now() - t0) * NS_PER_MS;
    if (!ok) return this.#timedOut();
    this.#c.writeAcquisitions++;
    this.#c.contendedWrites++;
    if (this.debug) this.#debugWriteAcquired();
    return true;
  }

  #writeLockQueued(deadline: number): boolean {
    const v = this.#v;
    const q = this.#queue;
    const ticket = q.takeTicket(ST_WRITER, deadline); // step 1
    if (ticket === undefined) return false;
    const turn = q.waitTurn(ticket, ST_WRITER, deadline);
    if (turn !== TURN_HEAD) {
      if (turn === TURN_GRANTED) throw new AtomicsLockError('ERR_LOCK_NOT_HELD', `RwLock: a writer was granted a read hold ${JSON.stringify(this.describe())}`);
      return false;
    }
    const c = Atomics.load(v, this.#cnts); // step 2
    if ((c & ~Q_PARKED) !== 0 || Atomics.compareExchange(v, this.#cnts, c, QW_LOCKED) !== c) {
      Atomics.or(v, this.#cnts, QW_WAITING); // step 3
      if (!this.#headWait(HEAD_WRITER, deadline)) {
        Atomics.and(v, this.#cnts, ~(QW_WAITING | Q_PARKED)); // let the readers in again
        q.passTurn(ticket);
        return false;
      }
    }
    q.passTurn(ticket); // step 5
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // The queue head's wait on CNTS
  // ---------------------------------------------------------------------------------------------

  /**
   * The head waits on CNTS: poll up to spinLimit loads, then sleep. true = the condition held (a
   * writer head has also taken the lock, step 4 above); false = deadline.
   *
   * Sleeping: set PARKED with a fetch-or, then Atomics.wait(CNTS, value-with-PARKED). Any unlock
   * that could satisfy us runs a fetch-sub after our fetch-or, sees PARKED, clears it and
   * notifies; an unlock before our fetch-or is visible in the value the fetch-or returns, which
   * we check before sleeping. Atomics.wait compares the word atomically with going to sleep, so a
   * change in between returns 'not-equal' instead of sleeping through a wake-up.
   */
  #headWait(kind: HeadKind, deadline: number): boolean {
    const v = this.#v;
    const i = this.#cnts;
    let spins = 0;
    let parkedByUs = false;
    for (;;) {
      const c = Atomics.load(v, i);
      if (kind === HEAD_READER) {
        if ((c & QW_LOCKED) === 0) {
          if (parkedByUs) Atomics.and(v, i, ~Q_PARKED); // only the head sets PARKED: ours to clear
          return true;
        }
      } else if ((c & ~Q_PARKED) === QW_WAITING) {
        if (Atomics.compareExchange(v, i, c, QW_LOCKED) === c) return true;
        continue; // a reader's transient bias or a PARKED change: look again
      }
      if (spins < this.#spinLimit) {
        spins++;
        spinPause();
        continue;
      }
      const now = performance.now();
      if (now >= deadline) {
        if (parkedByUs) Atomics.and(v, i, ~Q_PARKED);
        return false;
      }
      const old = Atomics.or(v, i, Q_PARKED);
      parkedByUs = true;
      const ready = kind === HEAD_READER ? (old & QW_LOCKED) === 0 : (old & ~Q_PARKED) === QW_WAITING;
      if (!ready) {
        const r = Atomics.wait(v, i, old | Q_PARKED, deadline === Number.POSITIVE_INFINITY ? undefined : deadline - now);
        if (r !== 'not-equal') this.#c.parks++;
      }
      spins = 0;
    }
  }

  /** Clear PARKED and wake the head. Called by the unlock that saw PARKED and made progress. */
  #wakeHead(): void {
    // Clearing first means later unlocks skip the notify until the head parks again; if the head
    // had not yet slept, its Atomics.wait sees the changed word and returns 'not-equal'.
    Atomics.and(this.#v, this.#cnts, ~Q_PARKED);
    Atomics.notify(this.#v, this.#cnts);
  }

  #timedOut(): false {
    this.#c.timeouts++;
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // Contention, state, debug, stats
  // ---------------------------------------------------------------------------------------------

  /**
   * rwlock_needbreak() / queued_rwlock_is_contended(): is anyone queued in the slow path (the
   * queue head included)? Plain readers that got in on the fast path do not count; a queued
   * writer, or readers queued behind one or behind a writer holder, do. Two loads; racy by nature.
   */
  isContended(): boolean {
    return this.#queue.isLocked();
  }

  /** A decoded snapshot of the lock state (for messages and tests; racy). */
  describe(): RwLockState {
    const v = this.#v;
    const cnts = Atomics.load(v, this.#cnts);
    const serving = Atomics.load(v, this.#base + SERVING);
    const next = Atomics.load(v, this.#base + NEXT);
    return {
      cnts,
      writerLocked: (cnts & QW_LOCKED) !== 0,
      writerWaiting: (cnts & QW_WAITING) !== 0,
      readers: (cnts & QR_MASK) >>> QR_SHIFT,
      parked: (cnts & Q_PARKED) !== 0,
      queued: (next - serving) | 0,
    };
  }

  /** lockdep_assert_held_read(): no-op unless debug; throws ERR_LOCK_NOT_HELD. */
  assertHeldRead(): void {
    if (!this.debug) return;
    if (Atomics.load(this.#v, this.#base + DBG_READERS + this.holderId) <= 0) {
      throw notHeld('RwLock.assertHeldRead', `holder ${this.holderId} does not hold the lock for read ${this.#dump()}`);
    }
  }

  /** lockdep_assert_held_write(): no-op unless debug; throws ERR_LOCK_NOT_HELD. */
  assertHeldWrite(): void {
    if (!this.debug) return;
    if (Atomics.load(this.#v, this.#base + DBG_WRITER) !== this.holderId + 1) {
      throw notHeld('RwLock.assertHeldWrite', `holder ${this.holderId} does not hold the lock for write ${this.#dump()}`);
    }
  }

  /** lockdep_assert_held(): held for read or write by this holder. No-op unless debug. */
  assertHeld(): void {
    if (!this.debug) return;
    const v = this.#v;
    if (Atomics.load(v, this.#base + DBG_WRITER) !== this.holderId + 1 && Atomics.load(v, this.#base + DBG_READERS + this.holderId) <= 0) {
      throw notHeld('RwLock.assertHeld', `holder ${this.holderId} does not hold the lock ${this.#dump()}`);
    }
  }

  #dump(): string {
    const v = this.#v;
    const writer = Atomics.load(v, this.#base + DBG_WRITER);
    const readers: number[] = [];
    for (let id = 0; id < DEBUG_MAX_HOLDERS; id++) {
      if (Atomics.load(v, this.#base + DBG_READERS + id) > 0) readers.push(id);
    }
    return JSON.stringify({ ...this.describe(), writerHolder: writer === 0 ? null : writer - 1, readerHolders: readers });
  }

  #debugReadAcquired(): void {
    Atomics.add(this.#v, this.#base + DBG_READERS + this.holderId, 1);
  }

  #debugReadReleasing(): void {
    const i = this.#base + DBG_READERS + this.holderId;
    if (Atomics.sub(this.#v, i, 1) <= 0) {
      Atomics.add(this.#v, i, 1);
      throw notHeld('RwLock.readUnlock', `holder ${this.holderId} does not hold the lock for read ${this.#dump()}`);
    }
  }

  #debugWriteAcquired(): void {
    const prev = Atomics.exchange(this.#v, this.#base + DBG_WRITER, this.holderId + 1);
    if (prev !== 0) {
      // Two writers at once: the lock itself is broken. Not a caller error.
      throw new AtomicsLockError('ERR_LOCK_NOT_HELD', `RwLock: writer ${this.holderId} acquired while holder ${prev - 1} was recorded as writer`);
    }
  }

  #debugWriteReleasing(): void {
    const i = this.#base + DBG_WRITER;
    if (Atomics.compareExchange(this.#v, i, this.holderId + 1, 0) !== this.holderId + 1) {
      throw notHeld('RwLock.writeUnlock', `holder ${this.holderId} does not hold the lock for write ${this.#dump()}`);
    }
  }

  /** This handle's counters since attach or the last publishStats(). */
  stats(): RwLockStats {
    return this.#c.snapshot();
  }

  /** Add this handle's counters into the lock's shared totals, then reset them. */
  publishStats(): void {
    const totals = statsView(this.#v, this.#base);
    const c = this.#c;
    for (let f = 0; f < STAT_FIELDS.length; f++) {
      const n = Math.round(c[STAT_FIELDS[f]!]);
      if (n !== 0) Atomics.add(totals, f, BigInt(n));
    }
    c.reset();
  }

  /** The totals published so far by every handle of the lock at (view, base). */
  static sharedStats(view: Int32Array, base: number): RwLockStats {
    checkRegion('RwLock.sharedStats', view, base, RWLOCK_INT32S);
    const totals = statsView(view, base);
    const out = new LockCounters();
    for (let f = 0; f < STAT_FIELDS.length; f++) out[STAT_FIELDS[f]!] = Number(Atomics.load(totals, f));
    return out.snapshot();
  }
}

function statsView(view: Int32Array, base: number): BigInt64Array {
  // checkRegion guarantees 64-byte alignment of the region, so STATS is 8-byte aligned.
  return new BigInt64Array(view.buffer, view.byteOffset + (base + STATS) * 4, STAT_FIELDS.length);
}
