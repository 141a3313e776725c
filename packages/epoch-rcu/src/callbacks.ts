/**
 * A reader's queue of deferred callbacks (call_rcu / defer_rcu), kept in plain thread-local memory.
 *
 * Each callback carries the grace-period sequence value that will prove it safe to run (a
 * `gpSnap()` of H_GP_SEQ taken when it was queued). Snapshots are forced non-decreasing, so the
 * queue is ripe from its head: running stops at the first callback that is not ripe yet, and
 * callbacks run in the order they were queued (FIFO), as liburcu's call_rcu does per thread.
 *
 * Only the owning reader touches the queue; its counters are published to the reader's shared
 * slot by reader.ts.
 */
import { gpDone } from './layout.js';

export class CallbackQueue {
  #fns: ((() => void) | undefined)[] = [];
  #snaps: number[] = [];
  /** Index of the oldest queued callback in the arrays (entries before it have run). */
  #head = 0;
  /** The snapshot of the newest callback: later snapshots are raised to at least this. */
  #lastSnap = 0;
  #empty = true;

  /** Callbacks queued but not yet run. */
  get length(): number {
    return this.#fns.length - this.#head;
  }

  push(fn: () => void, snap: number): void {
    // Keep snapshots non-decreasing (wrap-safe): a synchronize() that timed out rolls H_GP_SEQ
    // back by one, so a later call could otherwise snapshot a smaller value than an earlier one.
    const s = this.#empty || !gpDone(this.#lastSnap, snap) ? snap : this.#lastSnap;
    this.#fns.push(fn);
    this.#snaps.push(s);
    this.#lastSnap = s;
    this.#empty = false;
  }

  /** The snapshot the newest queued callback waits for (only meaningful when length > 0). */
  get lastSnap(): number {
    return this.#lastSnap;
  }

  /**
   * Remove and return the oldest callback if it is ripe at sequence `seq`, else undefined.
   * The caller runs it; removing first means a callback that throws is not run twice.
   */
  shiftRipe(seq: number): (() => void) | undefined {
    const h = this.#head;
    if (h >= this.#fns.length) return undefined;
    if (!gpDone(seq, this.#snaps[h]!)) return undefined;
    const fn = this.#fns[h]!;
    this.#fns[h] = undefined; // let the closure (and what it retires) be collected
    this.#head = h + 1;
    if (this.#head === this.#fns.length) {
      // Drained: reset instead of growing forever.
      this.#fns.length = 0;
      this.#snaps.length = 0;
      this.#head = 0;
      this.#empty = true;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#fns.length) {
      // Mostly consumed: compact so a long-lived queue does not keep dead entries.
      this.#fns = this.#fns.slice(this.#head);
      this.#snaps = this.#snaps.slice(this.#head);
      this.#head = 0;
    }
    return fn;
  }
}
