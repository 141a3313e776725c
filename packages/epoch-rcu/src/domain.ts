/**
 * An RCU domain in shared memory: the grace-period word, the grace-period lock, and one padded
 * slot per reader (layout.ts). Initialise once (main thread), attach in every thread, then
 * register one reader per thread:
 *
 * ```ts
 * const view = new Int32Array(new SharedArrayBuffer(rcuInt32s(32) * 4));
 * RcuDomain.initialize(view, 0, 32);                 // main thread, once
 * const rcu = new RcuDomain(view, 0, 32).registerReader(workerId); // each thread
 * rcu.readLock(); const p = Atomics.load(ptrs, 0); ... rcu.readUnlock();
 * Atomics.store(ptrs, 0, next); rcu.callRcu(() => free(p));          // writer
 * ```
 */
import { RcuError, rcuInvalidArg } from './errors.js';
import {
  H_GP_LOCK,
  H_GP_SEQ,
  H_MAGIC,
  H_MAX_READERS,
  HEADER_INT32S,
  MAX_READERS,
  RCU_MAGIC,
  S_CB_QUEUED,
  S_CB_RUN,
  S_OWNER,
  S_SYNC_CALLS,
  S_SYNC_PARKS,
  SLOT_INT32S,
  rcuInt32s,
  slotIndex,
} from './layout.js';
import { RcuReader, type RcuReaderOptions } from './reader.js';

/** Totals over the domain (plain numbers, read with Atomics.load; a snapshot, not a cut). */
export interface RcuStats {
  /** Grace periods completed (H_GP_SEQ / 2). */
  gracePeriods: number;
  /** Callbacks queued by all readers (sum of per-slot counters). */
  callbacksQueued: number;
  /** Callbacks run by all readers. */
  callbacksRun: number;
  /** synchronize() calls by all readers (barrier and callRcu's own grace periods included). */
  synchronizeCalls: number;
  /** Times a synchronize() parked in Atomics.wait instead of finishing while spinning. */
  synchronizeParks: number;
}

function checkRegion(what: string, view: unknown, base: unknown, maxReaders: unknown): asserts view is Int32Array {
  if (!(view instanceof Int32Array)) {
    throw rcuInvalidArg(what, `view must be an Int32Array, got ${Object.prototype.toString.call(view)}`);
  }
  if (!(view.buffer instanceof SharedArrayBuffer)) {
    throw rcuInvalidArg(what, 'view must be backed by a SharedArrayBuffer (readers live in other threads)');
  }
  if (typeof maxReaders !== 'number' || !Number.isInteger(maxReaders) || maxReaders < 1 || maxReaders > MAX_READERS) {
    throw rcuInvalidArg(what, `maxReaders must be an integer in 1..${MAX_READERS}, got ${String(maxReaders)}`);
  }
  if (typeof base !== 'number' || !Number.isInteger(base) || base < 0) {
    throw rcuInvalidArg(what, `base must be a non-negative integer, got ${String(base)}`);
  }
  const need = rcuInt32s(maxReaders);
  if (base + need > view.length) {
    throw rcuInvalidArg(what, `the domain needs Int32 [${base}, ${base + need}) (rcuInt32s(${maxReaders}) = ${need}) but the view has ${view.length}`);
  }
  if (((view.byteOffset + base * 4) & 63) !== 0) {
    throw rcuInvalidArg(
      what,
      `base must be 64-byte aligned in the buffer (view.byteOffset + base*4 = ${view.byteOffset + base * 4} is not a multiple of 64): reader slots are one cache line each`,
    );
  }
}

export class RcuDomain {
  readonly view: Int32Array;
  readonly base: number;
  readonly maxReaders: number;

  /**
   * Lay out a fresh domain at view[base .. base + rcuInt32s(maxReaders)). Once, before any
   * thread attaches (the region is zeroed: no reader registered, no grace period run).
   */
  static initialize(view: Int32Array, base: number, maxReaders: number): void {
    checkRegion('RcuDomain.initialize', view, base, maxReaders);
    view.fill(0, base, base + rcuInt32s(maxReaders));
    Atomics.store(view, base + H_MAX_READERS, maxReaders);
    Atomics.store(view, base + H_GP_SEQ, 0);
    Atomics.store(view, base + H_GP_LOCK, 0);
    // Last: attach() checks the magic, so a half-initialised region is never accepted.
    Atomics.store(view, base + H_MAGIC, RCU_MAGIC);
  }

  /** Attach to a domain initialised by RcuDomain.initialize with the same arguments. */
  constructor(view: Int32Array, base: number, maxReaders: number) {
    const what = 'RcuDomain';
    checkRegion(what, view, base, maxReaders);
    if (Atomics.load(view, base + H_MAGIC) !== RCU_MAGIC) {
      throw rcuInvalidArg(what, `no RCU domain at base ${base} (call RcuDomain.initialize first)`);
    }
    const stored = Atomics.load(view, base + H_MAX_READERS);
    if (stored !== maxReaders) {
      throw rcuInvalidArg(what, `maxReaders ${maxReaders} does not match the domain's ${stored}`);
    }
    this.view = view;
    this.base = base;
    this.maxReaders = maxReaders;
  }

  /**
   * Claim reader slot `slot` for the calling thread (one thread per slot). The reader starts
   * online and outside any read-side section. Throws ERR_RCU_SLOT_IN_USE if another reader
   * holds the slot, ERR_INVALID_ARG for a bad slot or option.
   */
  registerReader(slot: number, opts?: RcuReaderOptions): RcuReader {
    const what = 'RcuDomain.registerReader';
    if (typeof slot !== 'number' || !Number.isInteger(slot) || slot < 0 || slot >= this.maxReaders) {
      throw rcuInvalidArg(what, `slot must be an integer in 0..${this.maxReaders - 1}, got ${String(slot)}`);
    }
    const ownerIdx = slotIndex(this.base, slot) + S_OWNER;
    if (Atomics.compareExchange(this.view, ownerIdx, 0, 1) !== 0) {
      throw new RcuError('ERR_RCU_SLOT_IN_USE', `${what}: slot ${slot} is already registered (unregister() it first)`);
    }
    try {
      return new RcuReader({ view: this.view, base: this.base, maxReaders: this.maxReaders, slot }, opts);
    } catch (err) {
      Atomics.store(this.view, ownerIdx, 0); // bad options: give the slot back
      throw err;
    }
  }

  /** Is `slot` currently registered? */
  isRegistered(slot: number): boolean {
    return Atomics.load(this.view, slotIndex(this.base, slot) + S_OWNER) !== 0;
  }

  /** The grace-period sequence (odd while a grace period runs); for tests and dumps. */
  gpSeq(): number {
    return Atomics.load(this.view, this.base + H_GP_SEQ);
  }

  /** Counters summed over every slot (registered or not: counts survive unregister). */
  stats(): RcuStats {
    const v = this.view;
    const out: RcuStats = {
      gracePeriods: Atomics.load(v, this.base + H_GP_SEQ) >>> 1,
      callbacksQueued: 0,
      callbacksRun: 0,
      synchronizeCalls: 0,
      synchronizeParks: 0,
    };
    for (let s = 0; s < this.maxReaders; s++) {
      const i = slotIndex(this.base, s);
      out.callbacksQueued += Atomics.load(v, i + S_CB_QUEUED) >>> 0;
      out.callbacksRun += Atomics.load(v, i + S_CB_RUN) >>> 0;
      out.synchronizeCalls += Atomics.load(v, i + S_SYNC_CALLS) >>> 0;
      out.synchronizeParks += Atomics.load(v, i + S_SYNC_PARKS) >>> 0;
    }
    return out;
  }
}

// Load-time layout checks (TypeScript has no static_assert).
if (HEADER_INT32S % 16 !== 0 || SLOT_INT32S !== 16) throw new Error('rcu layout: header/slot must be whole 64-byte lines');
