/**
 * The writer side of the RCU: one grace period, run by synchronize().
 *
 * A grace period ends once every reader that might hold a reference taken before it began has
 * let go. Readers never read anything global: each reader's slot holds its own state word
 * (layout.ts S_STATE: ACTIVE bit, WAITER bit, private sequence). The scan snapshots every ACTIVE
 * word and waits until that word CHANGES (the section it saw has ended: readUnlock, a QSBR
 * quiescentState, offline). Sections that begin after the scan read a slot cannot hold the old
 * pointer (step 5's proof), so they are never waited for and a stream of readers cannot starve
 * a grace period.
 *
 * Why this is correct with JS Atomics (all seq_cst, one total order S over them):
 *   writer: W1 Atomics.store(ptr, new) ... S5 Atomics.load(reader's state)
 *   reader: R1 Atomics.store(state, ACTIVE|seq) ... R2 Atomics.load(ptr)
 * If S5 read an inactive word, R1 (of any later section) comes after S5 in S, so after W1, and
 * R2 returns the new pointer. If S5 read ACTIVE, we wait for the reader's exit (R3, an
 * Atomics.exchange); our load that observes R3's value synchronizes with it, so every access the
 * reader made inside the section happens-before the free that follows synchronize().
 * This is the store-then-load (Dekker) pattern; it needs seq_cst on BOTH sides, which is why the
 * reader's entry is an Atomics.store and the published pointer must be read with Atomics.load.
 */
import { H_GP_LOCK, H_GP_SEQ, S_STATE, STATE_ACTIVE, STATE_ID_MASK, STATE_WAITER, gpDone, slotIndex } from './layout.js';
import { spinPause } from './spin_pause.js';

/** What one synchronize() did, for the caller's counters. */
export interface GpOutcome {
  /** false = the deadline passed first (the grace period was abandoned and rolled back). */
  ok: boolean;
  /** Times this call parked in Atomics.wait (on the GP lock or on a reader's state word). */
  parks: number;
}

/** Milliseconds left before `deadline` (a performance.now() value, or Infinity). */
function remaining(deadline: number): number {
  return deadline === Number.POSITIVE_INFINITY ? deadline : deadline - performance.now();
}

/**
 * Run (or share) one full grace period. `scratch` holds at least 2 * maxReaders Int32 (the
 * caller's, reused across calls: no allocation per grace period).
 *
 * Protocol (partners in reader.ts are marked R1/R3):
 *  1. (caller) snap = gpSnap(H_GP_SEQ), taken before anything else: the sequence value that
 *     proves a grace period began after this call did.
 *  2. Take H_GP_LOCK (spin `spinLimit` polls, then park). Grace periods are serialised so that
 *     H_GP_SEQ has one writer.
 *  3. If H_GP_SEQ has reached snap, another caller's grace period began after ours was asked for
 *     and has ended: it serves us too (sharing, like Linux's rcu_seq funnel). Unlock; done.
 *  4. H_GP_SEQ = start + 1 (odd: in progress). A callRcu() that reads this odd value knows the
 *     scan may already be past some reader, so it waits for the NEXT grace period (gpSnap).
 *  5. (a) For every slot but our own: load its state word (pairs with R1's store and R3's
 *     exchange) and remember the ACTIVE ones. (b) Then, for each remembered word, wait until its
 *     section id changes: spin `spinLimit` polls, then set WAITER with compareExchange (pairs
 *     with the exchange in R3, which sees the bit and notifies) and Atomics.wait on the flagged
 *     value (returns at once if it already changed, so no wakeup can be lost).
 *  6. H_GP_SEQ = start + 2 (even: done). Pairs with the Atomics.load in pollCallbacks(): a
 *     callback that sees this value runs after every reader's exit that step 5 observed.
 *  7. Release H_GP_LOCK; notify if someone parked on it.
 * On timeout in 2 or 5: roll H_GP_SEQ back to `start` (step 4 is undone; no callback can have
 * seen a completed sequence), release the lock, return ok=false.
 */
export function runGracePeriod(
  view: Int32Array,
  base: number,
  maxReaders: number,
  selfSlot: number,
  snap: number,
  spinLimit: number,
  deadline: number,
  scratch: Int32Array,
): GpOutcome {
  const out: GpOutcome = { ok: false, parks: 0 };
  const lockIdx = base + H_GP_LOCK;
  const seqIdx = base + H_GP_SEQ;

  // Step 2.
  if (!acquireGpLock(view, lockIdx, spinLimit, deadline, out)) return out;

  // Step 3. Only lock holders write H_GP_SEQ, so this load is stable until we release.
  const start = Atomics.load(view, seqIdx);
  if (gpDone(start, snap)) {
    releaseGpLock(view, lockIdx);
    out.ok = true;
    return out;
  }

  // Step 4.
  Atomics.store(view, seqIdx, (start + 1) | 0);

  // Step 5a: snapshot every slot first, THEN wait. Loading each slot only when its turn comes
  // would be correct too, but on an oversubscribed machine it is pathological: while we wait
  // for one descheduled reader, the next one runs and is descheduled inside a NEW section,
  // which a late load would then wait for as well, costing a scheduler period per reader
  // (measured: 8 busy readers on 2 loaded cores, 150-300 ms per grace period instead of ~30).
  let active = 0;
  for (let slot = 0; slot < maxReaders; slot++) {
    if (slot === selfSlot) continue; // the caller is not in a section (checked by reader.ts)
    const idx = slotIndex(base, slot) + S_STATE;
    const seen = Atomics.load(view, idx) & STATE_ID_MASK; // pairs with R1 / R3
    if ((seen & STATE_ACTIVE) === 0) continue;
    scratch[active++] = idx;
    scratch[active++] = seen;
  }
  // Step 5b: wait for each section seen in 5a to end.
  for (let i = 0; i < active; i += 2) {
    if (!waitForSectionEnd(view, scratch[i]!, scratch[i + 1]!, spinLimit, deadline, out)) {
      Atomics.store(view, seqIdx, start); // undo step 4: this grace period never happened
      releaseGpLock(view, lockIdx);
      return out;
    }
  }

  // Step 6. Pairs with the load in pollCallbacks() and the snapshot in callRcu().
  Atomics.store(view, seqIdx, (start + 2) | 0);
  // Step 7.
  releaseGpLock(view, lockIdx);
  out.ok = true;
  return out;
}

/**
 * Wait until the reader's state word no longer shows section `seen` (ACTIVE set, WAITER clear).
 * Returns false if the deadline passed first.
 */
function waitForSectionEnd(view: Int32Array, idx: number, seen: number, spinLimit: number, deadline: number, out: GpOutcome): boolean {
  // Spin first: a running reader leaves its section within nanoseconds, far cheaper than a
  // park/wake round trip (about 47 us on this VM).
  for (let i = 0; i < spinLimit; i++) {
    if ((Atomics.load(view, idx) & STATE_ID_MASK) !== seen) return true; // pairs with R3
    spinPause();
  }
  for (;;) {
    // Flag ourselves as a waiter. Pairs with the exchange in R3 (readUnlock / quiescentState /
    // offline), which returns the old word: if it carries WAITER, the reader notifies.
    const cur = Atomics.compareExchange(view, idx, seen, seen | STATE_WAITER);
    if ((cur & STATE_ID_MASK) !== seen) return true; // the section ended before we flagged it
    const rem = remaining(deadline);
    if (rem <= 0) return false;
    out.parks++;
    // Returns 'not-equal' at once if the reader already exchanged the word: no lost wakeup.
    Atomics.wait(view, idx, seen | STATE_WAITER, rem);
  }
}

/** Step 2: a three-state mutex (0 free, 1 held, 2 held with parked waiters). */
function acquireGpLock(view: Int32Array, idx: number, spinLimit: number, deadline: number, out: GpOutcome): boolean {
  if (Atomics.compareExchange(view, idx, 0, 1) === 0) return true;
  for (let i = 0; i < spinLimit; i++) {
    if (Atomics.load(view, idx) === 0 && Atomics.compareExchange(view, idx, 0, 1) === 0) return true;
    spinPause();
  }
  for (;;) {
    // Mark "someone parks" before parking; pairs with the exchange in releaseGpLock(). Taking
    // the lock this way leaves it at 2, so our release may notify nobody: harmless.
    if (Atomics.exchange(view, idx, 2) === 0) return true;
    const rem = remaining(deadline);
    if (rem <= 0) return false;
    out.parks++;
    Atomics.wait(view, idx, 2, rem);
  }
}

/** Step 7. Pairs with the exchange to 2 in acquireGpLock(). */
function releaseGpLock(view: Int32Array, idx: number): void {
  if (Atomics.exchange(view, idx, 0) === 2) Atomics.notify(view, idx, 1);
}
