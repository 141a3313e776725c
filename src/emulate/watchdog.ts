/**
 * The watchdog: nothing hangs. Every `pollMs` it reads a progress probe (the sum of the workers'
 * shared progress counters and MMU work counters); if the value has not changed for
 * `timeoutMs` while a phase is running, the phase is stuck: it calls `onStuck` once with the
 * idle time, and the run aborts with ERR_STUCK and a dump of the lock and worker state.
 *
 * Progress counters rather than phase deadlines: a 96 GiB split legitimately takes seconds, a
 * wedged lock never advances anything. Workers bump their counter every batch of work, so a
 * healthy run changes the probe many times per second.
 */

export interface WatchdogOptions {
  /** No progress for this long = stuck. 0 disables the watchdog. */
  readonly timeoutMs: number;
  /** Monotone work counter; any change counts as progress. */
  readonly probe: () => number;
  readonly onStuck: (idleMs: number) => void;
  readonly pollMs?: number;
}

export class Watchdog {
  readonly #opts: WatchdogOptions;
  #timer: NodeJS.Timeout | undefined;
  #last = Number.NaN;
  #lastChange = 0;
  #fired = false;

  constructor(opts: WatchdogOptions) {
    this.#opts = opts;
  }

  get fired(): boolean {
    return this.#fired;
  }

  start(): void {
    if (this.#opts.timeoutMs <= 0 || this.#timer !== undefined) return;
    this.#lastChange = performance.now();
    this.#last = this.#opts.probe();
    const poll = this.#opts.pollMs ?? Math.min(500, Math.max(20, this.#opts.timeoutMs / 4));
    // Not unref'd: while a run is in progress the watchdog is what guarantees it ends.
    this.#timer = setInterval(() => this.check(), poll);
  }

  /** Main-thread progress (a phase boundary) also counts. */
  kick(): void {
    this.#lastChange = performance.now();
  }

  check(): void {
    if (this.#fired) return;
    const v = this.#opts.probe();
    const now = performance.now();
    if (v !== this.#last) {
      this.#last = v;
      this.#lastChange = now;
      return;
    }
    const idle = now - this.#lastChange;
    if (idle >= this.#opts.timeoutMs) {
      this.#fired = true;
      this.stop();
      this.#opts.onStuck(idle);
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
