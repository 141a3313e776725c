/**
 * One registered RCU reader: a thread's handle on its own 64-byte slot.
 *
 * Two read-side flavours, chosen at registration (liburcu's memb vs qsbr):
 *  - 'epoch' (default): readLock()/readUnlock() bracket every critical section. Entry is one
 *    Atomics.store to the reader's own slot, exit one Atomics.exchange; nothing global is read
 *    or written, so readers on different cores never share a cache line.
 *  - 'qsbr': an online reader is ALWAYS treated as possibly holding references; it reports
 *    quiescentState() ("I hold nothing now") once per batch of work, and readLock()/readUnlock()
 *    only count nesting (for assertInReadSide()). Reads cost nothing; the price is that a reader
 *    that forgets to report (or to go offline before parking) stalls every grace period.
 *
 * State word transitions (layout.ts S_STATE; `seq` is private to this reader and advances by
 * STATE_SEQ_STEP on every change, so a synchronizer can tell "same section" from "new section"):
 *   R1 enter:  Atomics.store(state, seq' | ACTIVE)         readLock (epoch), online (qsbr)
 *   R3 exit:   old = Atomics.exchange(state, seq' [| ACTIVE]) readUnlock (epoch), offline and
 *              quiescentState (qsbr); if old has WAITER, Atomics.notify the parked synchronizer.
 * The WAITER bit lives in the reader's own word, so the fast path needs no extra load to learn
 * whether anyone waits: the exchange it does anyway returns it (Atomics.notify with no waiter
 * would cost ~33 ns).
 */
import { CallbackQueue } from './callbacks.js';
import { RcuError, rcuInvalidArg } from './errors.js';
import { runGracePeriod } from './grace_period.js';
import {
  H_GP_SEQ,
  S_CB_QUEUED,
  S_CB_RUN,
  S_OWNER,
  S_STATE,
  S_SYNC_CALLS,
  S_SYNC_PARKS,
  STATE_ACTIVE,
  STATE_ID_MASK,
  STATE_SEQ_STEP,
  STATE_WAITER,
  gpDone,
  gpSnap,
  slotIndex,
} from './layout.js';

export type RcuReaderMode = 'epoch' | 'qsbr';

export interface RcuReaderOptions {
  /** Read-side flavour (see above). Default 'epoch'. */
  readonly mode?: RcuReaderMode;
  /** Polls of a reader's word (or the GP lock) before synchronize() parks. Default 2000 (~10 us). */
  readonly spinLimit?: number;
  /** Enable assertInReadSide() checks. Default: process.env.RCU_DEBUG === '1'. */
  readonly debug?: boolean;
  /**
   * An 'epoch' reader that queues this many callbacks outside a read-side section runs a grace
   * period itself (liburcu's defer_rcu does the same when its queue fills). Default 1024.
   */
  readonly maxPendingCallbacks?: number;
  /**
   * TEST CONTROLS ONLY: synchronize() returns at once after advancing the grace-period sequence,
   * without waiting for readers, so callbacks run too early. The torture test's broken variant.
   */
  readonly unsafeSkipGracePeriod?: boolean;
}

export const DEFAULT_SPIN_LIMIT = 2000;
export const DEFAULT_MAX_PENDING_CALLBACKS = 1024;

function envDebug(): boolean {
  return typeof process !== 'undefined' && process.env['RCU_DEBUG'] === '1';
}

/** Where a reader lives; built by RcuDomain.registerReader(). */
export interface ReaderPlacement {
  readonly view: Int32Array;
  readonly base: number;
  readonly maxReaders: number;
  readonly slot: number;
}

export class RcuReader {
  readonly slot: number;
  readonly mode: RcuReaderMode;
  readonly debug: boolean;

  // The fast-path fields are `declare`d (no class-field definition is emitted) and first
  // assigned real values in the constructor: a field defined as `undefined` first gets a
  // generic representation in V8, which measurably slows readLock+readUnlock (~0.5 ns of 17).
  declare private readonly view: Int32Array;
  /** Index of this reader's S_STATE word in view. */
  declare private readonly stateIdx: number;
  /** readLock nesting depth (thread-local). */
  declare private depth: number;
  /** The sequence part of our state word as last written (bits 0-1 clear). */
  declare private seq: number;
  /** 'epoch' mode and online: the readLock/readUnlock fast path (one field test). */
  declare private epochOnline: boolean;
  /** 'qsbr' mode and online: the quiescentState() fast path. */
  declare private qsbrOnline: boolean;
  /** Callbacks queued and not yet run (mirrors #queue.length for the fast paths). */
  declare private pending: number;

  readonly #base: number;
  readonly #maxReaders: number;
  readonly #slotIdx: number;
  readonly #qsbr: boolean;
  readonly #spinLimit: number;
  readonly #maxPending: number;
  readonly #unsafeSkip: boolean;

  #online = true;
  #registered = true;
  readonly #queue = new CallbackQueue();
  #queued = 0;
  #run = 0;
  #syncCalls = 0;
  #syncParks = 0;
  /** synchronize()'s snapshot of active slots (allocated on first use). */
  #scratch: Int32Array | undefined;
  /** pollCallbacks is running callbacks (thread-local; see callRcu). Added by D. */
  #polling = false;

  /** Use RcuDomain.registerReader(); the slot must already be claimed (S_OWNER = 1). */
  constructor(place: ReaderPlacement, opts: RcuReaderOptions = {}) {
    const what = 'RcuDomain.registerReader';
    const mode = opts.mode ?? 'epoch';
    if (mode !== 'epoch' && mode !== 'qsbr') {
      throw rcuInvalidArg(what, `options.mode must be 'epoch' or 'qsbr', got ${String(mode)}`);
    }
    const spinLimit = opts.spinLimit ?? DEFAULT_SPIN_LIMIT;
    if (!Number.isInteger(spinLimit) || spinLimit < 0) {
      throw rcuInvalidArg(what, `options.spinLimit must be a non-negative integer, got ${spinLimit}`);
    }
    const maxPending = opts.maxPendingCallbacks ?? DEFAULT_MAX_PENDING_CALLBACKS;
    if (!Number.isInteger(maxPending) || maxPending < 1) {
      throw rcuInvalidArg(what, `options.maxPendingCallbacks must be a positive integer, got ${maxPending}`);
    }
    this.view = place.view;
    this.depth = 0;
    this.slot = place.slot;
    this.mode = mode;
    this.debug = opts.debug ?? envDebug();
    this.#base = place.base;
    this.#maxReaders = place.maxReaders;
    this.#slotIdx = slotIndex(place.base, place.slot);
    this.stateIdx = this.#slotIdx + S_STATE;
    this.#qsbr = mode === 'qsbr';
    this.epochOnline = !this.#qsbr;
    this.qsbrOnline = this.#qsbr;
    this.pending = 0;
    this.#spinLimit = spinLimit;
    this.#maxPending = maxPending;
    this.#unsafeSkip = opts.unsafeSkipGracePeriod === true;
    // Continue the slot's sequence (a previous owner's values are never reused soon), clear
    // any leftover bits. A new reader starts online, outside any read-side section.
    const prev = Atomics.load(this.view, this.stateIdx);
    this.seq = ((prev & ~(STATE_ACTIVE | STATE_WAITER)) + STATE_SEQ_STEP) | 0;
    this.#queued = Atomics.load(this.view, this.#slotIdx + S_CB_QUEUED);
    this.#run = Atomics.load(this.view, this.#slotIdx + S_CB_RUN);
    this.#syncCalls = Atomics.load(this.view, this.#slotIdx + S_SYNC_CALLS);
    this.#syncParks = Atomics.load(this.view, this.#slotIdx + S_SYNC_PARKS);
    // R1 for a QSBR reader coming online; an epoch reader publishes "inactive".
    Atomics.store(this.view, this.stateIdx, this.#qsbr ? this.seq | STATE_ACTIVE : this.seq);
  }

  // ---------------------------------------------------------------- read side

  /**
   * Enter a read-side critical section (nestable). After the outermost readLock, pointers
   * loaded with Atomics.load stay valid until the matching readUnlock.
   * Throws ERR_RCU_OFFLINE if the reader is offline or unregistered.
   */
  readLock(): void {
    if (this.depth++ !== 0) return;
    if (this.epochOnline) {
      const s = (this.seq + STATE_SEQ_STEP) | 0;
      this.seq = s;
      // R1: pairs with step 5's load in runGracePeriod(). seq_cst store, then the caller's
      // Atomics.load of the protected pointer: the store-then-load half of the Dekker pattern.
      Atomics.store(this.view, this.stateIdx, s | STATE_ACTIVE);
      return;
    }
    this.readLockSlow();
  }

  /** Leave a read-side critical section. Throws ERR_RCU_UNBALANCED without a matching readLock. */
  readUnlock(): void {
    const d = this.depth;
    if (d === 1) {
      this.depth = 0;
      // In a section an epoch reader is online (offline() refuses inside), so epochOnline is
      // exactly "epoch mode" here; a QSBR reader has nothing to publish.
      if (this.epochOnline) {
        // R3: pairs with step 5's load and compareExchange(WAITER) in runGracePeriod(). The
        // exchange both ends the section and tells us whether a synchronizer parked on it.
        const old = Atomics.exchange(this.view, this.stateIdx, this.seq);
        if ((old & STATE_WAITER) !== 0) Atomics.notify(this.view, this.stateIdx);
      }
      return;
    }
    this.readUnlockSlow(d);
  }

  // The rare paths live out of line so readLock/readUnlock stay small enough to inline.
  private readLockSlow(): void {
    if (!this.#online) {
      this.depth = 0;
      throw this.#offlineError('readLock');
    }
    // An online QSBR reader is already protected: nesting bookkeeping only.
  }

  private readUnlockSlow(d: number): void {
    if (d < 1) throw new RcuError('ERR_RCU_UNBALANCED', `RcuReader.readUnlock: slot ${this.slot} is not in a read-side section`);
    this.depth = d - 1;
  }

  /** In a read-side critical section: inside readLock, or an online QSBR reader (liburcu's rcu_read_ongoing). */
  isInReadSide(): boolean {
    return this.depth > 0 || (this.#qsbr && this.#online);
  }

  /** Debug only (RCU_DEBUG=1 or options.debug): throws ERR_LOCK_NOT_HELD outside a read-side section. */
  assertInReadSide(): void {
    if (this.debug && !this.isInReadSide()) {
      throw new RcuError(
        'ERR_LOCK_NOT_HELD',
        `RcuReader.assertInReadSide: slot ${this.slot} (${this.mode}, ${this.#online ? 'online' : 'offline'}) is not in a read-side critical section`,
      );
    }
  }

  /**
   * QSBR: "this thread holds no RCU-protected references now". Call between batches of work,
   * never inside readLock (ERR_RCU_IN_READ_SIDE). Also runs this reader's ripe callbacks.
   * For an 'epoch' reader it only runs ripe callbacks: outside its sections it holds nothing.
   */
  quiescentState(): void {
    if (this.qsbrOnline && this.depth === 0) {
      const s = (this.seq + STATE_SEQ_STEP) | 0;
      this.seq = s;
      // R3 then R1 in one RMW: ends the interval a synchronizer may be waiting on and starts a
      // new one. Pairs with step 5 in runGracePeriod().
      const old = Atomics.exchange(this.view, this.stateIdx, s | STATE_ACTIVE);
      if ((old & STATE_WAITER) !== 0) Atomics.notify(this.view, this.stateIdx);
      if (this.pending !== 0) this.pollCallbacks();
      return;
    }
    this.quiescentStateSlow();
  }

  private quiescentStateSlow(): void {
    if (this.depth !== 0) throw this.#inReadSideError('quiescentState');
    if (this.#qsbr) throw this.#offlineError('quiescentState');
    // An epoch reader outside its sections holds nothing: only run ripe callbacks.
    if (this.pending !== 0) this.pollCallbacks();
  }

  /**
   * Go offline: this reader holds no references and will not delay grace periods until
   * online(). Call before parking or idling. Not inside readLock (ERR_RCU_IN_READ_SIDE).
   */
  offline(): void {
    if (this.depth !== 0) throw this.#inReadSideError('offline');
    if (!this.#online) return;
    this.#online = false;
    this.epochOnline = false;
    this.qsbrOnline = false;
    if (this.#qsbr) this.#publishInactive();
  }

  /** Come back online after offline(). Throws ERR_RCU_OFFLINE once unregistered. */
  online(): void {
    if (!this.#registered) throw this.#offlineError('online');
    if (this.#online) return;
    this.#online = true;
    this.epochOnline = !this.#qsbr;
    this.qsbrOnline = this.#qsbr;
    if (this.#qsbr) this.#publishActive();
  }

  isOnline(): boolean {
    return this.#online;
  }

  // ---------------------------------------------------------------- write side

  /**
   * Wait for a full grace period: every read-side section that was running when this call began
   * has ended. Spins briefly, then parks. Returns false only if `timeoutMs` was given and ran
   * out (nothing was completed then). Concurrent callers are serialised and share grace periods.
   * Not inside readLock (ERR_RCU_IN_READ_SIDE). For an online QSBR reader the call is itself a
   * quiescent state (as in liburcu qsbr). Runs this reader's ripe callbacks afterwards.
   */
  synchronize(timeoutMs?: number): boolean {
    if (this.depth !== 0) throw this.#inReadSideError('synchronize');
    this.#checkRegistered('synchronize');
    let deadline = Number.POSITIVE_INFINITY;
    if (timeoutMs !== undefined) {
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
        throw rcuInvalidArg('RcuReader.synchronize', `timeoutMs must be a non-negative number, got ${String(timeoutMs)}`);
      }
      deadline = performance.now() + timeoutMs;
    }
    // Step 1 of runGracePeriod's protocol: the snapshot comes first.
    const seqIdx = this.#base + H_GP_SEQ;
    const snap = gpSnap(Atomics.load(this.view, seqIdx));
    this.#syncCalls++;
    Atomics.store(this.view, this.#slotIdx + S_SYNC_CALLS, this.#syncCalls);

    if (this.#unsafeSkip) {
      // Broken on purpose (test controls): claim a grace period without waiting for anyone.
      Atomics.add(this.view, seqIdx, 2);
      this.pollCallbacks();
      return true;
    }

    // An online QSBR reader must not wait for itself: it goes offline for the duration.
    const qsbrOnline = this.#qsbr && this.#online;
    if (qsbrOnline) this.#publishInactive();
    let ok: boolean;
    try {
      this.#scratch ??= new Int32Array(2 * this.#maxReaders);
      const out = runGracePeriod(this.view, this.#base, this.#maxReaders, this.slot, snap, this.#spinLimit, deadline, this.#scratch);
      ok = out.ok;
      if (out.parks !== 0) {
        this.#syncParks += out.parks;
        Atomics.store(this.view, this.#slotIdx + S_SYNC_PARKS, this.#syncParks);
      }
    } finally {
      if (qsbrOnline) this.#publishActive();
    }
    if (ok) this.pollCallbacks();
    return ok;
  }

  /**
   * Queue `fn` to run on THIS thread after a full grace period has elapsed since this call
   * (call_rcu). It runs from pollCallbacks(), quiescentState(), synchronize(), barrier() or
   * unregister() of this reader. May be called inside a read-side section.
   */
  callRcu(fn: () => void): void {
    if (typeof fn !== 'function') throw rcuInvalidArg('RcuReader.callRcu', `fn must be a function, got ${typeof fn}`);
    this.#checkRegistered('callRcu');
    // Pairs with steps 4 and 6 (stores of H_GP_SEQ) in runGracePeriod(): the object was
    // unpublished before this load, so any grace period that starts after it covers it.
    this.#queue.push(fn, gpSnap(Atomics.load(this.view, this.#base + H_GP_SEQ)));
    this.pending = this.#queue.length;
    this.#queued++;
    Atomics.store(this.view, this.#slotIdx + S_CB_QUEUED, this.#queued);
    // (Added by D, the emulator: not from inside pollCallbacks. A callback that queues another,
    // e.g. tdp_mmu's two-stage deferred table free, would otherwise recurse callRcu ->
    // synchronize -> pollCallbacks -> callback -> callRcu once 1024 frees are pending, and
    // overflow the stack when disabling dirty logging zaps thousands of tables.)
    if (this.#queue.length >= this.#maxPending && this.depth === 0 && !this.#qsbr && !this.#polling) {
      // Too much memory waiting: run a grace period ourselves (liburcu defer_rcu). A QSBR reader
      // cannot: outside readLock it may still hold references, so it waits for someone else.
      this.synchronize();
    }
  }

  /**
   * Linux's polled grace-period API (get_state_synchronize_rcu; polled since 5.12): a cookie that
   * pollStateSynchronize() reports as done once a full grace period has begun after this call and
   * ended. Take it after unpublishing an object; any thread may poll it. Never blocks; legal
   * inside a read-side section. Pairs with steps 4 and 6 of runGracePeriod(), like callRcu's
   * snapshot.
   */
  getStateSynchronize(): number {
    return gpSnap(Atomics.load(this.view, this.#base + H_GP_SEQ));
  }

  /**
   * poll_state_synchronize_rcu: has a full grace period elapsed since getStateSynchronize()
   * returned `cookie` (on any thread of this domain)? Never blocks. A true answer pairs with the
   * store of step 6 in runGracePeriod(): every reader section that could hold the object ended
   * before it.
   */
  pollStateSynchronize(cookie: number): boolean {
    return gpDone(Atomics.load(this.view, this.#base + H_GP_SEQ), cookie);
  }

  /** Alias of callRcu (liburcu's defer_rcu, crossbeam's defer). */
  defer(fn: () => void): void {
    this.callRcu(fn);
  }

  /** Callbacks queued by this reader that have not run yet. */
  pendingCallbacks(): number {
    return this.#queue.length;
  }

  /** Run this reader's callbacks whose grace period has elapsed; never blocks. Returns how many ran. */
  pollCallbacks(): number {
    if (this.#queue.length === 0) return 0;
    // Pairs with step 6 (the store that completes a grace period) in runGracePeriod().
    const seq = Atomics.load(this.view, this.#base + H_GP_SEQ);
    let n = 0;
    const wasPolling = this.#polling;
    this.#polling = true;
    try {
      for (let fn = this.#queue.shiftRipe(seq); fn !== undefined; fn = this.#queue.shiftRipe(seq)) {
        this.pending = this.#queue.length;
        n++;
        this.#run++;
        // Published before the call so a callback that throws is still counted as run.
        Atomics.store(this.view, this.#slotIdx + S_CB_RUN, this.#run);
        fn();
      }
    } finally {
      this.#polling = wasPolling;
    }
    return n;
  }

  /**
   * Wait until every callback this reader has queued has run, including callbacks queued by
   * those callbacks while the barrier runs (so a callback that always re-queues itself would
   * never let it return). Not inside readLock (ERR_RCU_IN_READ_SIDE). Like synchronize(), a
   * quiescent state for an online QSBR reader.
   */
  barrier(): void {
    if (this.depth !== 0) throw this.#inReadSideError('barrier');
    this.#checkRegistered('barrier');
    this.pollCallbacks();
    while (this.#queue.length !== 0) {
      this.synchronize();
      // synchronize() polled; if the newest callback is still not ripe (a concurrent
      // synchronize() shared a grace period that started too early for it), loop.
    }
  }

  /** barrier(), then offline, then free the slot for another thread. */
  unregister(): void {
    if (!this.#registered) return;
    if (this.depth !== 0) throw this.#inReadSideError('unregister');
    this.barrier();
    this.offline();
    this.#registered = false;
    // Leave the word inactive with a fresh sequence (a later owner continues from it).
    this.#publishInactive();
    Atomics.store(this.view, this.#slotIdx + S_OWNER, 0);
  }

  // ---------------------------------------------------------------- helpers

  /** R3: end whatever the word showed; notify a parked synchronizer. */
  #publishInactive(): void {
    const s = (this.seq + STATE_SEQ_STEP) | 0;
    this.seq = s;
    const old = Atomics.exchange(this.view, this.stateIdx, s);
    if ((old & STATE_WAITER) !== 0) Atomics.notify(this.view, this.stateIdx);
  }

  /** R1 for a QSBR reader (online again). */
  #publishActive(): void {
    const s = (this.seq + STATE_SEQ_STEP) | 0;
    this.seq = s;
    Atomics.store(this.view, this.stateIdx, s | STATE_ACTIVE);
  }

  #checkRegistered(op: string): void {
    if (!this.#registered) throw new RcuError('ERR_RCU_OFFLINE', `RcuReader.${op}: slot ${this.slot} is unregistered`);
  }

  #offlineError(op: string): RcuError {
    return new RcuError('ERR_RCU_OFFLINE', `RcuReader.${op}: slot ${this.slot} is ${this.#registered ? 'offline (call online() first)' : 'unregistered'}`);
  }

  #inReadSideError(op: string): RcuError {
    return new RcuError(
      'ERR_RCU_IN_READ_SIDE',
      `RcuReader.${op}: slot ${this.slot} is inside a read-side section (depth ${this.depth}); call it after readUnlock`,
    );
  }

  /** Debug/state dump of this reader (for error messages and tests). */
  describe(): Record<string, unknown> {
    const word = Atomics.load(this.view, this.stateIdx);
    return {
      slot: this.slot,
      mode: this.mode,
      depth: this.depth,
      online: this.#online,
      registered: this.#registered,
      state: { active: (word & STATE_ACTIVE) !== 0, waiter: (word & STATE_WAITER) !== 0, id: word & STATE_ID_MASK },
      pendingCallbacks: this.#queue.length,
      gpSeq: Atomics.load(this.view, this.#base + H_GP_SEQ),
      gpDoneForNewest: this.#queue.length === 0 || gpDone(Atomics.load(this.view, this.#base + H_GP_SEQ), this.#queue.lastSnap),
    };
  }
}
