/**
 * The watchdog: nothing hangs. Every `pollMs` it reads a progress probe (`runProgress`: the sum
 * of the actors' progress words and READY in the control block and of the worker counters
 * marked `progress` in the counter table); if the value has not changed for `timeoutMs` while a phase
 * is running, the phase is stuck: it calls `onStuck` once with the idle time, and the run aborts
 * with ERR_STUCK and `stuckError`'s dump of the lock, the actors and the counters.
 *
 * Progress counters rather than phase deadlines: a 96 GiB split legitimately takes seconds, a
 * wedged lock never advances anything. Workers bump their counter every batch of work, so a
 * healthy run changes the probe many times per second.
 */
import { EmulatorError } from '../errors.js';
import { PROGRESS_KEYS } from '../stats/worker_stats.js';
import type { Vm } from '../vm.js';
import { CTL_CMD_DONE, CTL_CMD_OP, CTL_CMD_SEQ, CTL_READY, OP_NAMES, SLOT_PASSES_DONE, SLOT_STATE, WSTATE_NAMES } from './control.js';
import type { Control } from './control.js';
import type { Role } from './run_plan.js';

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

/**
 * The probe: anything that moves when workers make progress: the actors' progress words, the
 * count of actors attached (READY: on a loaded host, starting the threads alone can take more
 * than a short timeout) and the work counters.
 */
export function runProgress(ctl: Control, vm: Vm): number {
  const s = vm.sumStats();
  let work = ctl.totalProgress() + Atomics.load(ctl.i32, CTL_READY);
  for (const k of PROGRESS_KEYS) work += s[k] ?? 0;
  return work;
}

/** What the run looked like when the watchdog fired: which actor was doing what, the lock, the counters. */
export function stuckError(phase: string, idleMs: number, ctl: Control, vm: Vm, roles: readonly Role[]): EmulatorError {
  const workers = roles.map((r) => ({
    worker: r.name,
    state: WSTATE_NAMES[Atomics.load(ctl.i32, ctl.slot(r.controlSlot, SLOT_STATE))] ?? 'unknown',
    passes: Atomics.load(ctl.i32, ctl.slot(r.controlSlot, SLOT_PASSES_DONE)),
  }));
  const busy = workers.filter((w) => w.state === 'running').map((w) => w.worker);
  const lockBase = vm.layout.mmuLockBase;
  const lockWords = Array.from(vm.control.subarray(lockBase, lockBase + 8), (x) => `0x${(x >>> 0).toString(16)}`);
  const pendingOp = Atomics.load(ctl.i32, CTL_CMD_DONE) < Atomics.load(ctl.i32, CTL_CMD_SEQ) ? OP_NAMES[Atomics.load(ctl.i32, CTL_CMD_OP)] : 'none';
  const sums = vm.sumStats();
  const counters = Object.fromEntries(PROGRESS_KEYS.map((k) => [k, sums[k] ?? 0]));
  const dump = { phase, idleSeconds: idleMs / 1000, pendingOp, mmuLockWords: lockWords, busy, workers, counters };
  return new EmulatorError(
    'ERR_STUCK',
    `watchdog: phase "${phase}" made no progress for ${(idleMs / 1000).toFixed(1)} s ` +
      `(splitter op: ${pendingOp}; running: ${busy.length === 0 ? 'none' : busy.join(', ')}; mmu_lock words [${lockWords.join(' ')}]; ` +
      `counters ${Object.entries(counters)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')})`,
    dump,
  );
}
