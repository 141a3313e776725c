/**
 * The FIFO wait queue behind the lock word: qrwlock's `wait_lock`, here a ticket lock in shared
 * memory whose waiters sleep on per-ticket futex words, may time out, and (rwsem-style) may be
 * granted the read lock in a batch.
 *
 * Tickets. A thread that could not take the lock on its fast path takes a ticket (NEXT++),
 * publishes what it wants in the ticket's STATE slot (reader or writer), and waits until SERVING
 * equals its ticket. That ticket holder is the queue HEAD: it alone works on the lock word on the
 * slow path, and when it has the lock (or gives up) it passes the turn on (SERVING moves
 * forward). So waiters reach the lock word in arrival order, and qrwlock's "wait_lock is held"
 * becomes "NEXT !== SERVING" (isContended()).
 *
 * Reader batches. qrwlock's queued readers spin, so a chain of them drains in nanoseconds. Ours
 * sleep, and on 2 cores shared by 32 threads every hop to a sleeping thread costs a scheduler
 * wake-up (measured: ~5 ms per hop when the CPUs are busy), so a FIFO of 30 readers would drain
 * in 150 ms. So, as rwsem does when it wakes readers, a reader head that has the read lock grants
 * it to the run of consecutive readers queued right behind it: it adds one reader bias per
 * grantee to CNTS (safe: its own bias keeps any writer out), moves SERVING past them, and wakes
 * them all at once. A waiter that sees SERVING move past its ticket knows it was granted (nothing
 * else moves SERVING past a live waiter) and returns holding the read lock. The batch stops at
 * the first writer, so writers keep their FIFO place and are never starved.
 *
 * STATE slot of ticket t (QUEUE_SLOTS of them): gen(t) | kind, where gen(t) = t & ~QUEUE_MASK
 * (t's low bits are the slot index, so they are free for the kind, and the generation tells
 * tickets t and t + QUEUE_SLOTS apart):
 *   EMPTY     not published yet (or consumed); never acted on
 *   READER / WRITER   published by the waiter right after taking the ticket
 *   ABANDONED the waiter timed out and left (CAS from READER/WRITER by the waiter)
 *   GRANTED   a reader head granted it the read lock (CAS from READER by the head)
 *
 * Timeouts: leaving the queue without breaking it. A waiter whose deadline passes cannot simply
 * vanish (when SERVING reached it nobody would pass the turn on). The two sides settle who owns
 * the ticket with compare-exchanges on its STATE slot:
 *
 *   waiter t (#leave)                           head passing the turn to t (passTurn)
 *   1. CAS STATE: kind -> ABANDONED              1. store SERVING = t
 *      failed: a head granted us; keep it       2. CAS STATE[t]: ABANDONED -> EMPTY
 *   2. load SERVING                                 success: t is gone; SERVING = t+1, repeat
 *   3. if SERVING === t: CAS ABANDONED -> kind      failure: t is live (or unpublished); done
 *      success: the turn is mine after all;
 *      pass it on myself (passTurn(t))
 *
 * All atomics are seq_cst, so at least one side sees the other's step 1 (the Dekker pattern) and
 * the CAS lets exactly one side act. A reader head's grant races with a timeout the same way: its
 * CAS READER -> GRANTED and the waiter's CAS READER -> ABANDONED cannot both succeed.
 *
 * Sleeping. Ticket t sleeps on WAKE[t % QUEUE_SLOTS] (a sequence word) so passing the turn wakes
 * only the tickets concerned. Only the waiter next in line polls SERVING (bounded) before
 * sleeping. passTurn() also wakes the ticket after the new head, so it is already polling when
 * its turn comes. QPARKED counts sleepers so an uncontended passTurn() skips Atomics.notify.
 *
 * Capacity: tickets are taken with a CAS that keeps NEXT - SERVING <= QUEUE_SLOTS, so the STATE
 * slot of a ticket ahead of SERVING is never reused. (A granted reader may still be asleep when
 * its slot is reused: it relies on SERVING, not on the slot.) A full queue makes new arrivals poll
 * in short timed sleeps until there is room: only possible with more than QUEUE_SLOTS waiters.
 */

import type { LockCounters } from './counters.js';
import { spinPause } from './spin_pause.js';
import { CNTS, NEXT, QPARKED, QR_BIAS, QUEUE_MASK, QUEUE_SLOTS, SERVING, STATE, WAKE } from './layout.js';

/** Sleep between polls while the queue is full (ms). Pathological case only. */
const FULL_QUEUE_POLL_MS = 0.5;

const ST_EMPTY = 0;
export const ST_READER = 1;
export const ST_WRITER = 2;
const ST_ABANDONED = 3;
const ST_GRANTED = 4;
export type TicketKind = typeof ST_READER | typeof ST_WRITER;

/** waitTurn() outcomes. */
export const TURN_HEAD = 0; // we are the head: work on CNTS, then passTurn()
export const TURN_GRANTED = 1; // a reader head granted us the read lock: we hold it, nothing to pass
export const TURN_TIMEOUT = 2; // the deadline passed and we left the queue
export type Turn = typeof TURN_HEAD | typeof TURN_GRANTED | typeof TURN_TIMEOUT;

function gen(ticket: number): number {
  return ticket & ~QUEUE_MASK;
}

export class WaitQueue {
  readonly #v: Int32Array;
  readonly #cnts: number;
  readonly #next: number;
  readonly #serving: number;
  readonly #qparked: number;
  readonly #wake: number;
  readonly #state: number;
  readonly #spinLimit: number;
  readonly #counters: LockCounters;

  constructor(view: Int32Array, base: number, spinLimit: number, counters: LockCounters) {
    this.#v = view;
    this.#cnts = base + CNTS;
    this.#next = base + NEXT;
    this.#serving = base + SERVING;
    this.#qparked = base + QPARKED;
    this.#wake = base + WAKE;
    this.#state = base + STATE;
    this.#spinLimit = spinLimit;
    this.#counters = counters;
  }

  /** All zero: tickets start at 0, every STATE slot EMPTY for generation 0. */
  static initialize(view: Int32Array, base: number): void {
    for (let i = 0; i < QUEUE_SLOTS; i++) {
      Atomics.store(view, base + WAKE + i, 0);
      Atomics.store(view, base + STATE + i, ST_EMPTY);
    }
    Atomics.store(view, base + NEXT, 0);
    Atomics.store(view, base + SERVING, 0);
    Atomics.store(view, base + QPARKED, 0);
  }

  /** qrwlock's arch_spin_is_locked(&wait_lock): is anyone queued (head included)? */
  isLocked(): boolean {
    // SERVING first: it only moves towards NEXT, so reading it first never reports a queue that
    // was empty at every instant between the two loads.
    const s = Atomics.load(this.#v, this.#serving);
    return Atomics.load(this.#v, this.#next) !== s;
  }

  /**
   * Join the queue as `kind`: a ticket, or undefined when the queue stayed full until `deadline`
   * (performance.now() ms; Infinity = no deadline).
   */
  takeTicket(kind: TicketKind, deadline: number): number | undefined {
    const v = this.#v;
    for (;;) {
      const n = Atomics.load(v, this.#next);
      const s = Atomics.load(v, this.#serving);
      if (((n - s) | 0) < QUEUE_SLOTS) {
        // CAS, not fetch-add: the capacity check and the increment must be one step.
        if (Atomics.compareExchange(v, this.#next, n, (n + 1) | 0) === n) {
          // Publish the kind; a head only grants or skips tickets whose kind it can see.
          Atomics.store(v, this.#state + (n & QUEUE_MASK), gen(n) | kind);
          return n;
        }
        continue;
      }
      const now = performance.now();
      if (now >= deadline) return undefined;
      // Nobody notifies SERVING: a timed poll, outside the normal protocol.
      Atomics.wait(v, this.#serving, s, Math.min(FULL_QUEUE_POLL_MS, deadline - now));
    }
  }

  /** Wait until `ticket` is the head, is granted the read lock, or leaves at `deadline`. */
  waitTurn(ticket: number, kind: TicketKind, deadline: number): Turn {
    const v = this.#v;
    const wake = this.#wake + (ticket & QUEUE_MASK);
    let spins = 0;
    for (;;) {
      const s = Atomics.load(v, this.#serving);
      const ahead = (ticket - s) | 0; // tickets before ours; negative = SERVING passed us
      if (ahead === 0) return TURN_HEAD;
      if (ahead < 0) return TURN_GRANTED;
      // Only the waiter next in line polls; the rest sleep at once (32 threads, 2 cores).
      if (ahead === 1 && spins < this.#spinLimit) {
        spins++;
        spinPause();
        continue;
      }
      const now = performance.now();
      if (now >= deadline) return this.#leave(ticket, kind);
      const seq = Atomics.load(v, wake);
      // Announce the sleep before re-checking SERVING; pairs with the QPARKED load in
      // #advance(): either we see SERVING move, or it sees QPARKED > 0 and bumps our WAKE word.
      Atomics.add(v, this.#qparked, 1);
      if (((ticket - Atomics.load(v, this.#serving)) | 0) > 0) {
        const r = Atomics.wait(v, wake, seq, deadline === Number.POSITIVE_INFINITY ? undefined : deadline - now);
        if (r !== 'not-equal') this.#counters.parks++;
      }
      Atomics.sub(v, this.#qparked, 1);
      spins = 0;
    }
  }

  /** Release wait_lock (a writer head, or any head that gives up): the next live ticket is head. */
  passTurn(ticket: number): void {
    this.#advance(ticket, (ticket + 1) | 0);
  }

  /**
   * A reader head that holds the read lock releases wait_lock: grant the read lock to the
   * consecutive readers queued behind it, then pass the turn to the first ticket after them.
   * Returns how many were granted.
   */
  grantReadersAndPassTurn(ticket: number): number {
    const v = this.#v;
    const next = Atomics.load(v, this.#next); // only tickets already issued
    let u = (ticket + 1) | 0;
    let granted = 0;
    while (u !== next) {
      const slot = this.#state + (u & QUEUE_MASK);
      const g = gen(u);
      const st = Atomics.load(v, slot);
      if (st === (g | ST_READER)) {
        // Take its hold first: once the CAS succeeds it may run and unlock at once. Our own bias
        // keeps writers out, so adding one cannot conflict with a writer.
        Atomics.add(v, this.#cnts, QR_BIAS);
        if (Atomics.compareExchange(v, slot, g | ST_READER, g | ST_GRANTED) === (g | ST_READER)) {
          granted++;
          u = (u + 1) | 0;
          continue;
        }
        // It timed out meanwhile. The count cannot reach 0 here (we hold a bias), so no wake.
        Atomics.sub(v, this.#cnts, QR_BIAS);
      }
      // A timed-out ticket is skipped as passTurn would; anything else (a writer, or a ticket
      // not yet published) ends the batch.
      if (Atomics.compareExchange(v, slot, g | ST_ABANDONED, g | ST_EMPTY) !== (g | ST_ABANDONED)) break;
      u = (u + 1) | 0;
    }
    this.#advance(ticket, u);
    return granted;
  }

  /**
   * Move SERVING from `ticket` (ours) to `to`, skipping abandoned tickets, and wake the tickets
   * passed over (granted readers), the new head, and the one after it.
   */
  #advance(ticket: number, to: number): void {
    const v = this.#v;
    let next = to;
    for (;;) {
      // Step 1 of the handshake; pairs with the SERVING load in #leave() step 2.
      Atomics.store(v, this.#serving, next);
      // Step 2: consume next's marker if it left; pairs with the CAS in #leave() step 1.
      const slot = this.#state + (next & QUEUE_MASK);
      const g = gen(next);
      if (Atomics.compareExchange(v, slot, g | ST_ABANDONED, g | ST_EMPTY) !== (g | ST_ABANDONED)) break;
      next = (next + 1) | 0;
    }
    // Pairs with the QPARKED increment in waitTurn(): skip the notifies when nobody sleeps.
    if (Atomics.load(v, this.#qparked) !== 0) {
      const last = (next + 1) | 0; // the one after the new head starts polling now
      for (let u = (ticket + 1) | 0; u !== ((last + 1) | 0); u = (u + 1) | 0) this.#wakeTicket(u);
    }
  }

  #wakeTicket(ticket: number): void {
    const w = this.#wake + (ticket & QUEUE_MASK);
    Atomics.add(this.#v, w, 1); // the sequence change makes a sleeper's Atomics.wait fail or wake
    Atomics.notify(this.#v, w);
  }

  /** A timed-out waiter leaves (see the handshake above): TURN_TIMEOUT, or TURN_GRANTED. */
  #leave(ticket: number, kind: TicketKind): Turn {
    const v = this.#v;
    const slot = this.#state + (ticket & QUEUE_MASK);
    const g = gen(ticket);
    // Step 1; pairs with the CAS in #advance() step 2 and the grant CAS.
    if (Atomics.compareExchange(v, slot, g | kind, g | ST_ABANDONED) !== (g | kind)) {
      // Only a grant changes a live waiter's slot (or a later generation reusing it after
      // SERVING passed us, which also means granted): we hold the read lock.
      return TURN_GRANTED;
    }
    if (Atomics.load(v, this.#serving) === ticket) {
      // The turn reached us meanwhile: whoever removes the marker owns the turn.
      if (Atomics.compareExchange(v, slot, g | ST_ABANDONED, g | kind) === (g | ST_ABANDONED)) this.passTurn(ticket);
    }
    return TURN_TIMEOUT;
  }
}
