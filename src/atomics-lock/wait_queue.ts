/**
 * The FIFO wait queue behind the lock word: qrwlock's `wait_lock`, here a ticket lock in shared
 * memory whose waiters sleep on per-ticket futex words, and whose waiters may time out.
 *
 * A thread that could not take the lock on its fast path takes a ticket (NEXT++) and waits until
 * SERVING equals it. The ticket holder equal to SERVING is the queue HEAD: it alone touches the
 * lock word on the slow path; when it has the lock (or gives up) it passes the turn on
 * (SERVING++). So waiters reach the lock word in arrival order, and "is wait_lock held" becomes
 * "NEXT !== SERVING" (isContended()).
 *
 * Sleeping. Ticket t sleeps on WAKE[t % QUEUE_SLOTS] (a sequence word) so that passing the turn
 * wakes exactly the next ticket instead of every waiter (no thundering herd on 2 cores). Only the
 * waiter next in line polls SERVING for a bounded number of loads before sleeping; the others go
 * to sleep at once. passTurn() also wakes the ticket after the new head, so it is already polling
 * when its turn comes (overlapping the ~20 us VM wake-up latency with the head's work). QPARKED
 * counts sleepers so that an uncontended passTurn() skips Atomics.notify.
 *
 * Timeouts: leaving the queue without breaking it. A waiter whose deadline passes cannot simply
 * vanish: when SERVING reached its ticket nobody would pass the turn on. It leaves a marker
 * instead, and the two sides settle who owns the turn with one compare-exchange:
 *
  *   waiter t (#leave)                           head passing the turn to t (passTurn)
 *   1. store ABANDON[t%N] = t                   1. store SERVING = t
 *   2. load SERVING                             2. CAS ABANDON[t%N]: t -> t+1
 *   3. if SERVING === t: CAS ABANDON: t -> t+1     success: t is gone; SERVING = t+1, repeat
 *      success: the turn is mine after all;        failure: t is live (or not yet issued); done
 *      pass it on myself (passTurn(t))
 *
 * Both sides use seq_cst atomics, so at least one of them sees the other's step 1 (the Dekker
 * pattern), and the CAS on the marker lets exactly one of them act on it. SERVING never passes t
 * without t's marker being consumed or t passing the turn itself, so markers never go stale.
 * A consumed marker becomes t+1, a value no ticket of that slot can have, so "empty" needs no
 * reserved value even after the 32-bit ticket counter wraps.
 *
 * Capacity: tickets are taken with a CAS that keeps NEXT - SERVING <= QUEUE_SLOTS, so tickets t
 * and t+QUEUE_SLOTS never coexist and slots are never shared. A full queue (only possible with
 * more than QUEUE_SLOTS waiters, or a storm of timed-out tickets still ahead of the head) makes
 * new arrivals poll in short timed sleeps until there is room.
 */

import type { LockCounters } from './counters.js';
import { ABANDON, NEXT, QPARKED, QUEUE_MASK, QUEUE_SLOTS, SERVING, WAKE } from './layout.js';

/** Sleep between polls while the queue is full (ms). Pathological case only. */
const FULL_QUEUE_POLL_MS = 0.5;

export class WaitQueue {
  readonly #v: Int32Array;
  readonly #next: number;
  readonly #serving: number;
  readonly #qparked: number;
  readonly #wake: number;
  readonly #abandonBase: number;
  readonly #spinLimit: number;
  readonly #counters: LockCounters;

  constructor(view: Int32Array, base: number, spinLimit: number, counters: LockCounters) {
    this.#v = view;
    this.#next = base + NEXT;
    this.#serving = base + SERVING;
    this.#qparked = base + QPARKED;
    this.#wake = base + WAKE;
    this.#abandonBase = base + ABANDON;
    this.#spinLimit = spinLimit;
    this.#counters = counters;
  }

  /** Empty slot values: marker slot i holds i+1 (not congruent to i, so never a live marker). */
  static initialize(view: Int32Array, base: number): void {
    for (let i = 0; i < QUEUE_SLOTS; i++) {
      Atomics.store(view, base + WAKE + i, 0);
      Atomics.store(view, base + ABANDON + i, i + 1);
    }
    Atomics.store(view, base + NEXT, 0);
    Atomics.store(view, base + SERVING, 0);
    Atomics.store(view, base + QPARKED, 0);
  }

  /** qrwlock's arch_spin_is_locked(&wait_lock): is anyone queued (head included)? */
  isLocked(): boolean {
    // SERVING first: it only grows towards NEXT, so reading it first never reports a queue
    // that was empty at every instant between the two loads.
    const s = Atomics.load(this.#v, this.#serving);
    return Atomics.load(this.#v, this.#next) !== s;
  }

  /**
   * Join the queue: a ticket, or undefined when the queue stayed full until `deadline`
   * (performance.now() ms; Infinity = no deadline).
   */
  takeTicket(deadline: number): number | undefined {
    const v = this.#v;
    for (;;) {
      const n = Atomics.load(v, this.#next);
      const s = Atomics.load(v, this.#serving);
      if (((n - s) | 0) < QUEUE_SLOTS) {
        // CAS, not fetch-add: the capacity check and the increment must be one step.
        if (Atomics.compareExchange(v, this.#next, n, (n + 1) | 0) === n) return n;
        continue;
      }
      const now = performance.now();
      if (now >= deadline) return undefined;
      // Nobody notifies SERVING: this is a timed poll, kept out of the normal protocol.
      Atomics.wait(v, this.#serving, s, Math.min(FULL_QUEUE_POLL_MS, deadline - now));
    }
  }

  /**
   * Wait until `ticket` is the head. true = we are the head ("hold wait_lock") and must call
   * passTurn(ticket) later; false = the deadline passed and we left the queue (nothing to undo).
   */
  waitTurn(ticket: number, deadline: number): boolean {
    const v = this.#v;
    const wake = this.#wake + (ticket & QUEUE_MASK);
    let spins = 0;
    for (;;) {
      const s = Atomics.load(v, this.#serving);
      if (s === ticket) return true;
      // Only the waiter next in line polls; the rest sleep at once (32 threads, 2 cores).
      if (spins < this.#spinLimit && ((ticket - s) | 0) === 1) {
        spins++;
        continue;
      }
      const now = performance.now();
      if (now >= deadline) return this.#leave(ticket);
      const seq = Atomics.load(v, wake);
      // Announce the sleep before re-checking SERVING; pairs with the QPARKED load in passTurn()
      // (either we see the new SERVING, or passTurn sees QPARKED > 0 and bumps our WAKE word).
      Atomics.add(v, this.#qparked, 1);
      if (Atomics.load(v, this.#serving) !== ticket) {
        const r = Atomics.wait(v, wake, seq, deadline === Number.POSITIVE_INFINITY ? undefined : deadline - now);
        if (r !== 'not-equal') this.#counters.parks++;
      }
      Atomics.sub(v, this.#qparked, 1);
      spins = 0;
    }
  }

  /** Release wait_lock: make the next live ticket the head, skipping abandoned ones. */
  passTurn(ticket: number): void {
    const v = this.#v;
    let next = (ticket + 1) | 0;
    for (;;) {
      // Step 1 of the handshake; pairs with the SERVING load in #leave() step 2.
      Atomics.store(v, this.#serving, next);
      // Step 2: consume next's marker if it left; pairs with the marker store in #leave().
      if (Atomics.compareExchange(v, this.#abandonBase + (next & QUEUE_MASK), next, (next + 1) | 0) !== next) break;
      next = (next + 1) | 0;
    }
    // Pairs with the QPARKED increment in waitTurn(): skip two notifies when nobody sleeps.
    if (Atomics.load(v, this.#qparked) !== 0) {
      this.#wakeTicket(next);
      this.#wakeTicket((next + 1) | 0); // the one after the new head starts polling now
    }
  }

  #wakeTicket(ticket: number): void {
    const w = this.#wake + (ticket & QUEUE_MASK);
    Atomics.add(this.#v, w, 1); // the sequence change makes a sleeper's Atomics.wait fail or wake
    Atomics.notify(this.#v, w);
  }

  /** A timed-out waiter leaves (see the handshake above). Always returns false. */
  #leave(ticket: number): false {
    const v = this.#v;
    const marker = this.#abandonBase + (ticket & QUEUE_MASK);
    Atomics.store(v, marker, ticket); // step 1; pairs with the CAS in passTurn() step 2
    if (Atomics.load(v, this.#serving) === ticket) {
      // The turn reached us meanwhile: whoever removes the marker owns the turn.
      if (Atomics.compareExchange(v, marker, ticket, (ticket + 1) | 0) === ticket) this.passTurn(ticket);
    }
    return false;
  }
}
