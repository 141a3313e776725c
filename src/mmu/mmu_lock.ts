/**
 * MmuLock: the VM's mmu_lock (a queued reader/writer lock from atomics-lock) plus per-worker
 * timing. Same method names as RwLock; every release records its hold time into this worker's
 * Histograms (ns); an acquisition that could not take the lock at once counts as contended
 * (WS.lockReadContended / _WRITE_CONTENDED) and records its wait time, while an
 * uncontended one records a wait of 0 without reading the clock.
 *
 * Cost, kept small because the 6.11 design drops and retakes mmu_lock once per split and the
 * uncontended drop must cost about its floor (two lock operations, RCU exit and entry, a few SPTE
 * reads): one clock read per acquisition (the hold's start) and one per release (its end), plus
 * two histogram records; a contended acquisition adds two clock reads. Measured in
 * bench/instrumentation.bench.ts against the same path with timing off (setMmuLockTiming(false)).
 * Clock: performance.now(). Measured here (Node 20, this machine, 2M calls, median of 3):
 * performance.now() 39 ns, process.hrtime.bigint() 43 ns, process.hrtime() 36 ns, Date.now() 38 ns.
 * All about equal; performance.now() returns a plain double with sub-microsecond resolution and
 * allocates nothing, while hrtime.bigint() allocates a BigInt and hrtime() an array per call.
 *
 * Single-threaded per handle (one MmuLock per worker): the start timestamps are plain fields.
 */

import type { RwLock } from 'atomics-lock';
import { WS } from '../stats/worker_stats.js';
import type { WorkerStats } from '../stats/worker_slot.js';
import type { WorkerTiming } from '../stats/worker_timing.js';
import { TK, traceRing } from '../stats/trace_ring.js';
import { HoldCpuRecorder } from './hold_cpu.js';
import type { HoldCpuData } from './hold_cpu.js';

const NS_PER_MS = 1e6;

/**
 * Lock timing on (the default) or off, for this thread: off, no clock is read and no histogram
 * recorded (contention is still counted). The switch exists so a benchmark can measure what the
 * timing costs against the same path without it.
 */
let timingEnabled = true;

export function setMmuLockTiming(on: boolean): void {
  timingEnabled = on;
}

export class MmuLock {
  readonly rwlock: RwLock;
  readonly #timing: WorkerTiming;
  readonly #stats: WorkerStats;
  /** When the current read hold began (ms). mmu_lock is never taken recursively, so one field suffices. */
  #readSince = 0;
  #writeSince = 0;
  /** On-CPU time of this thread's holds (the splitter turns it on: enableHoldCpu). */
  #holdCpu: HoldCpuRecorder | null = null;
  /**
   * Holds of this handle now (0 or 1: never recursive). A plain field, thread-local like the
   * handle: the page allocator's pressure path asks it whether this thread may sleep
   * (pool_reclaim.ts), as the kernel's might_sleep() knows it is inside a spinning rwlock.
   */
  #holds = 0;

  constructor(rwlock: RwLock, timing: WorkerTiming, stats: WorkerStats) {
    this.rwlock = rwlock;
    this.#timing = timing;
    this.#stats = stats;
  }

  get debug(): boolean {
    return this.rwlock.debug;
  }

  /**
   * Record each hold's on-CPU time beside its wall time from now on (hold_cpu.ts): for the
   * splitter's thread only, whose holds a busy host can preempt. Returns the recorder, or null
   * where the OS gives no per-thread CPU time.
   */
  enableHoldCpu(): HoldCpuRecorder | null {
    this.#holdCpu ??= HoldCpuRecorder.open();
    return this.#holdCpu;
  }

  /** The hold-CPU figures so far, then start afresh (null when not enabled). */
  takeHoldCpu(): HoldCpuData | null {
    return this.#holdCpu?.take() ?? null;
  }

  /** read_lock(&kvm->mmu_lock). true = acquired; false only when timeoutMs ran out. */
  readLock(timeoutMs?: number): boolean {
    if (this.rwlock.tryReadLock()) {
      this.#holds++;
      if (timingEnabled) this.#readSince = this.#startHold(this.#timing.readWait);
      return true;
    }
    this.#stats.add(WS.lockReadContended, 1);
    const t0 = timingEnabled ? performance.now() : 0;
    if (!this.rwlock.readLock(timeoutMs)) return false;
    this.#holds++;
    if (timingEnabled) {
      this.#readSince = this.#startContendedHold(this.#timing.readWait, t0);
      // --trace: the wait as a slice, from the clock reads the histogram already made (trace_ring.ts).
      if (traceRing !== null) traceRing.span(TK.readWait, t0, this.#readSince);
    }
    return true;
  }

  readUnlock(): void {
    this.#holds--;
    if (!timingEnabled) {
      this.rwlock.readUnlock();
      return;
    }
    const t = performance.now();
    this.rwlock.readUnlock();
    this.#endHold(this.#timing.readHold, t, this.#readSince, false);
  }

  writeLock(timeoutMs?: number): boolean {
    if (this.rwlock.tryWriteLock()) {
      this.#holds++;
      if (timingEnabled) this.#writeSince = this.#startHold(this.#timing.writeWait);
      return true;
    }
    this.#stats.add(WS.lockWriteContended, 1);
    const t0 = timingEnabled ? performance.now() : 0;
    if (!this.rwlock.writeLock(timeoutMs)) return false;
    this.#holds++;
    if (timingEnabled) {
      this.#writeSince = this.#startContendedHold(this.#timing.writeWait, t0);
      if (traceRing !== null) traceRing.span(TK.writeWait, t0, this.#writeSince);
    }
    return true;
  }

  writeUnlock(): void {
    this.#holds--;
    if (!timingEnabled) {
      this.rwlock.writeUnlock();
      return;
    }
    const t = performance.now();
    this.rwlock.writeUnlock();
    this.#endHold(this.#timing.writeHold, t, this.#writeSince, true);
  }

  tryReadLock(): boolean {
    if (!this.rwlock.tryReadLock()) return false;
    this.#holds++;
    if (timingEnabled) this.#readSince = this.#startHold(this.#timing.readWait);
    return true;
  }

  tryWriteLock(): boolean {
    if (!this.rwlock.tryWriteLock()) return false;
    this.#holds++;
    if (timingEnabled) this.#writeSince = this.#startHold(this.#timing.writeWait);
    return true;
  }

  /** An uncontended acquisition: a wait of 0 (no clock read for it); returns the hold's start. */
  #startHold(wait: { record(ns: number): void }): number {
    wait.record(0);
    const t = performance.now();
    this.#holdCpu?.holdStart(t);
    return t;
  }

  #startContendedHold(wait: { record(ns: number): void }, t0: number): number {
    const t = performance.now();
    wait.record((t - t0) * NS_PER_MS);
    this.#holdCpu?.holdStart(t);
    return t;
  }

  #endHold(hold: { record(ns: number): void }, t: number, since: number, write: boolean): void {
    const ns = (t - since) * NS_PER_MS;
    hold.record(ns);
    this.#holdCpu?.holdEnd(ns, write);
    if (traceRing !== null) traceRing.span(write ? TK.writeHold : TK.readHold, since, t);
  }

  /** rwlock_needbreak(): is anyone queued behind the holder? */
  isContended(): boolean {
    return this.rwlock.isContended();
  }

  /** Does this thread hold mmu_lock (read or write) through this handle? Always tracked (no debug mode needed). */
  isHeldByThisThread(): boolean {
    return this.#holds > 0;
  }

  assertHeldRead(): void {
    this.rwlock.assertHeldRead();
  }

  assertHeldWrite(): void {
    this.rwlock.assertHeldWrite();
  }

  assertHeld(): void {
    this.rwlock.assertHeld();
  }
}
