/**
 * ScalableRwLock: a reader/writer lock whose readers do not share a cache line (the
 * percpu-rwsem / BRAVO idea), for users who need read scaling more than qrwlock fidelity.
 *
 * A shared lock word costs every reader a cache-line transfer: two readers on one RwLock run
 * ~4x slower each than one (machine-floors.md). Here each registered reader owns a SLOT on its
 * own 128-byte line, and a read lock touches only that slot plus a load of a read-mostly
 * WRITERS word, so readers on different cores never invalidate each other's lines.
 *
 * Protocol (all atomics seq_cst):
 *  Reader, fast path:
 *   1. store SLOT = 1 (announce);
 *   2. load WRITERS: 0 = no writer around, we hold the lock. Otherwise back out (exchange
 *      SLOT = 0) and take the slow path: readLock() on the embedded RwLock, queued FIFO with
 *      the writers.
 *   Unlock: exchange SLOT = 0; a returned WAIT bit means a writer sleeps on our slot: notify.
 *  Writer:
 *   1. fetch-add WRITERS: readers arriving from now on back out and use the embedded RwLock;
 *   2. writeLock() the embedded RwLock (orders writers, excludes slow-path readers);
 *   3. scan every SLOT until it reads 0 (bounded polling, then set WAIT with a CAS and sleep
 *      in Atomics.wait on that slot);
 *   Unlock: writeUnlock() the RwLock, then fetch-sub WRITERS.
 *  Reader step 1 -> 2 and writer step 1 -> 3 are the Dekker pattern: with seq_cst either the
 *  reader sees WRITERS > 0 or the writer sees SLOT = 1, never neither.
 *  WRITERS counts writers waiting as well as holding (percpu-rwsem's rcu_sync idea): during a
 *  burst of writes readers stay on the slow path, so the slots drain once per burst, not once
 *  per write, and readers take their FIFO turn between the writers on the embedded lock.
 *
 * Costs: a fast read is 3 atomics on lines nobody else writes (store, load, exchange); a write
 * is the RwLock's plus one load per reader slot. Readers without a slot (readerSlot omitted)
 * always use the embedded RwLock. Not recursive. One handle per thread; a slot belongs to one
 * handle at a time (claimed on attach, freed by release()).
 */

import { LockCounters } from './counters.js';
import type { RwLockStats } from './counters.js';
import { AtomicsLockError, invalidArg, notHeld } from './errors.js';
import { LINE_INT32S, RWLOCK_INT32S, STAT_FIELDS, checkRegion } from './layout.js';
import { DEFAULT_SPIN_LIMIT, RwLock, checkTimeout } from './rwlock.js';
import { spinPause } from './spin_pause.js';
import type { RwLockOptions } from './rwlock.js';
import { threadId } from 'node:worker_threads';

// Offsets relative to base. The embedded RwLock comes first.
const HDR = RWLOCK_INT32S; // header line
const WRITERS = HDR; // writers waiting or holding; read by every fast-path reader
const MAX_READERS = HDR + 1; // maxReaders given to initialize(), checked on attach
const MAGIC = HDR + 2;
const STATS = HDR + LINE_INT32S; // 8 x BigInt64 published totals
const SLOTS = HDR + 2 * LINE_INT32S; // slot i: SLOTS + LINE_INT32S * i; the owner word follows it
const SLOT_OWNER = 1; // in the slot's line: threadId + 1 of the handle that claimed it, 0 = free
const MAGIC_VALUE = 0x53524c4b; // 'SRLK'

const READER_IN = 1; // slot value while its reader holds the lock (fast path)
const WAIT = 2; // set in a slot by a writer that sleeps until the reader leaves

const NS_PER_MS = 1e6;

/** Int32 slots a ScalableRwLock with `maxReaders` reader slots needs (whole 128-byte lines). */
export function scalableRwLockInt32s(maxReaders: number): number {
  if (!Number.isInteger(maxReaders) || maxReaders < 1 || maxReaders > 4096) {
    throw invalidArg('scalableRwLockInt32s', `maxReaders must be an integer in 1..4096, got ${String(maxReaders)}`);
  }
  return SLOTS + LINE_INT32S * maxReaders;
}

export interface ScalableRwLockOptions extends RwLockOptions {
  /** This handle's reader slot, 0..maxReaders-1. Omitted: reads always take the embedded RwLock. */
  readerSlot?: number;
}

// Per-handle read state.
const NOT_READING = 0;
const READING_FAST = 1;
const READING_SLOW = 2;

export class ScalableRwLock {
  readonly debug: boolean;
  readonly readerSlot: number | undefined;
  /** The embedded qrwlock: writers, and readers without a slot or arriving while a writer is in. */
  readonly inner: RwLock;

  readonly #v: Int32Array;
  readonly #base: number;
  readonly #writers: number;
  readonly #slot: number; // Int32 index of our slot, or -1
  readonly #maxReaders: number;
  readonly #spinLimit: number;
  readonly #c = new LockCounters();
  #reading: typeof NOT_READING | typeof READING_FAST | typeof READING_SLOW = NOT_READING;
  #writing = false;
  #released = false;

  /** Once per lock (main thread): zero the region, initialise the embedded RwLock. */
  static initialize(view: Int32Array, base: number, maxReaders: number): void {
    const n = scalableRwLockInt32s(maxReaders);
    checkRegion('ScalableRwLock.initialize', view, base, n);
    for (let i = RWLOCK_INT32S; i < n; i++) Atomics.store(view, base + i, 0);
    RwLock.initialize(view, base);
    Atomics.store(view, base + MAX_READERS, maxReaders);
    Atomics.store(view, base + MAGIC, MAGIC_VALUE); // last: pairs with the load on attach
  }

  /** Attach (every thread). Claims `opts.readerSlot` if given. Throws ERR_INVALID_ARG. */
  constructor(view: Int32Array, base: number, maxReaders: number, opts: ScalableRwLockOptions = {}) {
    checkRegion('ScalableRwLock', view, base, scalableRwLockInt32s(maxReaders));
    if (Atomics.load(view, base + MAGIC) !== MAGIC_VALUE || Atomics.load(view, base + MAX_READERS) !== maxReaders) {
      throw invalidArg('ScalableRwLock', `no ScalableRwLock with maxReaders ${maxReaders} initialised at base ${base}`);
    }
    this.inner = new RwLock(view, base, opts);
    this.debug = this.inner.debug;
    this.#v = view;
    this.#base = base;
    this.#writers = base + WRITERS;
    this.#maxReaders = maxReaders;
    this.#spinLimit = opts.spinLimit ?? DEFAULT_SPIN_LIMIT;
    const s = opts.readerSlot;
    if (s === undefined) {
      this.readerSlot = undefined;
      this.#slot = -1;
    } else {
      if (!Number.isInteger(s) || s < 0 || s >= maxReaders) {
        throw invalidArg('ScalableRwLock', `options.readerSlot must be an integer in 0..${maxReaders - 1}, got ${String(s)}`);
      }
      const owner = base + SLOTS + LINE_INT32S * s + SLOT_OWNER;
      const prev = Atomics.compareExchange(view, owner, 0, threadId + 1);
      if (prev !== 0) throw invalidArg('ScalableRwLock', `reader slot ${s} is already claimed (by thread ${prev - 1})`);
      this.readerSlot = s;
      this.#slot = base + SLOTS + LINE_INT32S * s;
    }
  }

  /** Give the reader slot back (the handle keeps working, on the slow path for reads). */
  release(): void {
    if (this.#slot < 0 || this.#released) return;
    if (this.#reading !== NOT_READING) throw notHeld('ScalableRwLock.release', 'cannot release the slot while read-locked');
    this.#released = true;
    Atomics.store(this.#v, this.#slot + SLOT_OWNER, 0);
  }

  // ---------------------------------------------------------------------------------------------
  // Read side
  // ---------------------------------------------------------------------------------------------

  /** true once held for read; false only if `timeoutMs` ran out (slow path only). */
  readLock(timeoutMs?: number): boolean {
    if (timeoutMs !== undefined) checkTimeout('ScalableRwLock.readLock', timeoutMs);
    if (this.#reading !== NOT_READING || this.#writing) throw this.#recursive('readLock');
    if (this.#slot >= 0 && !this.#released) {
      const v = this.#v;
      Atomics.store(v, this.#slot, READER_IN); // step 1; pairs with the slot scan in writeLock()
      if (Atomics.load(v, this.#writers) === 0) {
        // step 2; pairs with the WRITERS fetch-add in writeLock()
        this.#reading = READING_FAST;
        this.#c.readAcquisitions++;
        return true;
      }
      this.#leaveSlot();
    }
    return this.#readLockSlow(timeoutMs);
  }

  tryReadLock(): boolean {
    if (this.#reading !== NOT_READING || this.#writing) throw this.#recursive('tryReadLock');
    if (this.#slot >= 0 && !this.#released) {
      Atomics.store(this.#v, this.#slot, READER_IN);
      if (Atomics.load(this.#v, this.#writers) === 0) {
        this.#reading = READING_FAST;
        this.#c.readAcquisitions++;
        return true;
      }
      this.#leaveSlot(); // a writer is around: try the embedded lock, as a slotless reader would
    }
    if (!this.inner.tryReadLock()) return false;
    this.#reading = READING_SLOW;
    this.#c.readAcquisitions++;
    return true;
  }

  readUnlock(): void {
    if (this.#reading === READING_FAST) {
      this.#reading = NOT_READING;
      this.#leaveSlot();
    } else if (this.#reading === READING_SLOW) {
      this.#reading = NOT_READING;
      this.inner.readUnlock();
    } else {
      throw notHeld('ScalableRwLock.readUnlock', 'this handle does not hold the lock for read');
    }
  }

  #readLockSlow(timeoutMs: number | undefined): boolean {
    const t0 = performance.now();
    const ok = this.inner.readLock(timeoutMs);
    this.#c.readWaitNs += (performance.now() - t0) * NS_PER_MS;
    if (!ok) {
      this.#c.timeouts++;
      return false;
    }
    this.#reading = READING_SLOW;
    this.#c.readAcquisitions++;
    this.#c.contendedReads++;
    return true;
  }

  /** Clear our slot; wake a writer that set WAIT on it. */
  #leaveSlot(): void {
    // Release: our critical section happens-before the writer's load that sees 0.
    if (Atomics.exchange(this.#v, this.#slot, 0) !== READER_IN) Atomics.notify(this.#v, this.#slot);
  }

  // ---------------------------------------------------------------------------------------------
  // Write side
  // ---------------------------------------------------------------------------------------------

  /** true once held for write; false only if `timeoutMs` ran out. */
  writeLock(timeoutMs?: number): boolean {
    if (timeoutMs !== undefined) checkTimeout('ScalableRwLock.writeLock', timeoutMs);
    if (this.#reading !== NOT_READING || this.#writing) throw this.#recursive('writeLock');
    const t0 = performance.now();
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : t0 + timeoutMs;
    Atomics.add(this.#v, this.#writers, 1); // step 1; pairs with the WRITERS load of readers
    let ok = this.inner.writeLock(timeoutMs); // step 2
    if (ok) {
      ok = this.#drainReaders(deadline); // step 3
      if (!ok) this.inner.writeUnlock();
    }
    if (!ok) Atomics.sub(this.#v, this.#writers, 1);
    const waited = performance.now() - t0;
    if (!ok) {
      this.#c.writeWaitNs += waited * NS_PER_MS;
      this.#c.timeouts++;
      return false;
    }
    this.#writing = true;
    this.#c.writeAcquisitions++;
    return true;
  }

  tryWriteLock(): boolean {
    if (this.#reading !== NOT_READING || this.#writing) throw this.#recursive('tryWriteLock');
    const v = this.#v;
    Atomics.add(v, this.#writers, 1);
    let ok = this.inner.tryWriteLock();
    for (let i = 0; ok && i < this.#maxReaders; i++) {
      if (Atomics.load(v, this.#base + SLOTS + LINE_INT32S * i) !== 0) {
        this.inner.writeUnlock();
        ok = false;
      }
    }
    if (!ok) {
      Atomics.sub(v, this.#writers, 1);
      return false;
    }
    this.#writing = true;
    this.#c.writeAcquisitions++;
    return true;
  }

  writeUnlock(): void {
    if (!this.#writing) throw notHeld('ScalableRwLock.writeUnlock', 'this handle does not hold the lock for write');
    this.#writing = false;
    this.inner.writeUnlock();
    Atomics.sub(this.#v, this.#writers, 1); // the last writer out lets readers take the fast path again
  }

  /** Wait until every reader slot is empty. false = deadline. */
  #drainReaders(deadline: number): boolean {
    const v = this.#v;
    let contended = false;
    for (let i = 0; i < this.#maxReaders; i++) {
      const slot = this.#base + SLOTS + LINE_INT32S * i;
      let spins = 0;
      for (let s = Atomics.load(v, slot); s !== 0; s = Atomics.load(v, slot)) {
        contended = true;
        if (spins++ < this.#spinLimit) {
          spinPause();
          continue;
        }
        const now = performance.now();
        if (now >= deadline) return false;
        // Ask the reader to wake us; if it left meanwhile the CAS sees 0 and we move on.
        const cur = Atomics.compareExchange(v, slot, READER_IN, READER_IN | WAIT);
        if (cur === 0) break;
        const r = Atomics.wait(v, slot, READER_IN | WAIT, deadline === Number.POSITIVE_INFINITY ? undefined : deadline - now);
        if (r !== 'not-equal') this.#c.parks++;
        spins = 0;
      }
    }
    if (contended) this.#c.contendedWrites++;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Contention, debug, stats
  // ---------------------------------------------------------------------------------------------

  /** Is anyone waiting for the holder? Waiters on the embedded RwLock, or another writer around. */
  isContended(): boolean {
    if (this.inner.isContended()) return true;
    return Atomics.load(this.#v, this.#writers) > (this.#writing ? 1 : 0);
  }

  /** Per-handle checks (this handle holds for read / write). No-ops unless debug. */
  assertHeldRead(): void {
    if (this.debug && this.#reading === NOT_READING) throw notHeld('ScalableRwLock.assertHeldRead', 'not held for read by this handle');
  }
  assertHeldWrite(): void {
    if (this.debug && !this.#writing) throw notHeld('ScalableRwLock.assertHeldWrite', 'not held for write by this handle');
  }
  assertHeld(): void {
    if (this.debug && !this.#writing && this.#reading === NOT_READING) throw notHeld('ScalableRwLock.assertHeld', 'not held by this handle');
  }

  stats(): RwLockStats {
    return this.#c.snapshot();
  }

  publishStats(): void {
    const totals = new BigInt64Array(this.#v.buffer, this.#v.byteOffset + (this.#base + STATS) * 4, STAT_FIELDS.length);
    for (let f = 0; f < STAT_FIELDS.length; f++) {
      const n = Math.round(this.#c[STAT_FIELDS[f]!]);
      if (n !== 0) Atomics.add(totals, f, BigInt(n));
    }
    this.#c.reset();
    this.inner.publishStats();
  }

  static sharedStats(view: Int32Array, base: number, maxReaders: number): RwLockStats {
    checkRegion('ScalableRwLock.sharedStats', view, base, scalableRwLockInt32s(maxReaders));
    const totals = new BigInt64Array(view.buffer, view.byteOffset + (base + STATS) * 4, STAT_FIELDS.length);
    const out = new LockCounters();
    for (let f = 0; f < STAT_FIELDS.length; f++) out[STAT_FIELDS[f]!] = Number(Atomics.load(totals, f));
    return out.snapshot();
  }

  #recursive(what: string): AtomicsLockError {
    return new AtomicsLockError('ERR_INVALID_ARG', `ScalableRwLock.${what}: this handle already holds the lock (not recursive)`);
  }
}
