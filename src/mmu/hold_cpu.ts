/**
 * HoldCpuRecorder: the on-CPU time of a thread's mmu_lock holds beside their wall time, so a hold
 * that the host descheduled (lock-holder preemption: many busy threads on few cores) can be told
 * from a hold the design made long. A kernel rwlock holder runs with preemption disabled and is
 * never descheduled; an emulator thread is, and its hold then shows the scheduler, not the design.
 *
 * Source: Linux /proc/thread-self/schedstat, whose first field is the thread's time on a CPU in
 * ns. Reading it (pread on a descriptor kept open) costs about 2.6 us in a tight loop (200,000 reads,
 * a loaded 2-core machine), 30 to 60 times a clock read, and 5 to 9 us on average inside the
 * threaded emulator, where each read also slows the code that runs after it; so it stays off the
 * fast path:
 *   - at a hold's start the file is read only if the last reading is older than
 *     CPU_READ_STALE_MS (at most one read per 1 ms of wall time: <= 1 % of the thread's time).
 *     A read sooner than that tells nothing new: the value moves only at scheduler events (see
 *     Granularity), so a running thread reads the same figure for a tick. At 0.1 ms, the 2,052
 *     splits of a drop-always CLEAR (one hold each, about 50 us) made 970 to 1,319 reads costing
 *     5 to 12 ms of that CLEAR's 0.11 s split time (2 vCPUs x 2G of 1G pages, iteration 1);
 *   - at a hold's end it is read only if the hold lasted HOLD_CLASSIFY_MIN_NS or more. A shorter
 *     hold cannot hide a preemption: the scheduler's tick is 1 ms or more (4 ms at HZ=250).
 * A classified hold's on-CPU time is the CPU time since the last reading minus the wall time from
 * that reading to the hold's start (the thread was running then), clamped to [0, wall]; it is
 * flagged preempted when that is under half its wall time (PREEMPTED_CPU_FRACTION).
 *
 * Granularity: the kernel updates a running thread's runtime at scheduler events (a tick, a
 * switch), so a reading lags by up to one tick (1-4 ms). A hold's estimate can therefore be off by
 * about a tick either way: holds of a few ticks or more are classified reliably, shorter ones
 * only roughly (the figures say how many holds were classified).
 *
 * Single-threaded (one per MmuLock handle, the splitter's). Opening /proc/thread-self must happen
 * on the thread whose time is wanted: the descriptor names that thread.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Histogram } from '../stats/histogram.js';
import type { HistogramData } from '../stats/histogram.js';

/** A reading older than this is refreshed at the next hold start (ms). */
const CPU_READ_STALE_MS = 1;
/** Holds at least this long (wall, ns) are classified as preempted or not. */
export const HOLD_CLASSIFY_MIN_NS = 250_000;
/** A hold whose on-CPU time is under this fraction of its wall time was preempted. */
export const PREEMPTED_CPU_FRACTION = 0.5;

/** One op's holds, as plain data (the splitter's result carries it). */
export interface HoldCpuData {
  /** Holds long enough to classify (>= HOLD_CLASSIFY_MIN_NS wall). */
  readonly classified: number;
  /** Of those, holds on a CPU under half their wall time. */
  readonly preempted: number;
  /** Wall and estimated on-CPU ns summed over the preempted holds. */
  readonly preemptedWallNs: number;
  readonly preemptedCpuNs: number;
  /** Read and write hold times (ns) of every hold NOT flagged preempted: the figures without them. */
  readonly readHoldNotPreempted: HistogramData;
  readonly writeHoldNotPreempted: HistogramData;
  /** schedstat reads made (the instrument's own cost: about 2.6 us each). */
  readonly cpuReads: number;
}

export class HoldCpuRecorder {
  readonly #fd: number;
  readonly #buf = Buffer.alloc(64);
  /** Last reading: wall time (performance.now() ms) and on-CPU ns. */
  #readAt = Number.NEGATIVE_INFINITY;
  #cpuNs = 0;
  #holdStartAt = 0;
  #classified = 0;
  #preempted = 0;
  #preemptedWallNs = 0;
  #preemptedCpuNs = 0;
  #cpuReads = 0;
  #readOk = new Histogram();
  #writeOk = new Histogram();

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** A recorder for the calling thread, or null where there is no per-thread schedstat (not Linux). */
  static open(): HoldCpuRecorder | null {
    try {
      const r = new HoldCpuRecorder(openSync('/proc/thread-self/schedstat', 'r'));
      r.#cpuNs = r.readCpuNs();
      return r;
    } catch {
      return null;
    }
  }

  /** This thread's on-CPU time (ns), read now. */
  readCpuNs(): number {
    const n = readSync(this.#fd, this.#buf, 0, this.#buf.length, 0);
    let v = 0;
    for (let i = 0; i < n; i++) {
      const c = this.#buf[i]!;
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
    }
    this.#cpuReads++;
    return v;
  }

  /** A hold began at `t` (performance.now() ms): refresh a stale reading. */
  holdStart(t: number): void {
    this.#holdStartAt = t;
    if (t - this.#readAt > CPU_READ_STALE_MS) {
      this.#cpuNs = this.readCpuNs();
      this.#readAt = t;
    }
  }

  /** The hold that began at the last holdStart ended after `wallNs`. */
  holdEnd(wallNs: number, write: boolean): void {
    if (wallNs >= HOLD_CLASSIFY_MIN_NS) {
      const end = this.#holdStartAt + wallNs / 1e6;
      const cpu = this.readCpuNs();
      const onCpu = Math.min(wallNs, Math.max(0, cpu - this.#cpuNs - (this.#holdStartAt - this.#readAt) * 1e6));
      this.#cpuNs = cpu;
      this.#readAt = end;
      this.#classified++;
      if (onCpu < PREEMPTED_CPU_FRACTION * wallNs) {
        this.#preempted++;
        this.#preemptedWallNs += wallNs;
        this.#preemptedCpuNs += onCpu;
        return;
      }
    }
    (write ? this.#writeOk : this.#readOk).record(wallNs);
  }

  /** The figures so far as plain data; start afresh. */
  take(): HoldCpuData {
    const d: HoldCpuData = {
      classified: this.#classified,
      preempted: this.#preempted,
      preemptedWallNs: this.#preemptedWallNs,
      preemptedCpuNs: this.#preemptedCpuNs,
      readHoldNotPreempted: this.#readOk.toData(),
      writeHoldNotPreempted: this.#writeOk.toData(),
      cpuReads: this.#cpuReads,
    };
    this.#classified = 0;
    this.#preempted = 0;
    this.#preemptedWallNs = 0;
    this.#preemptedCpuNs = 0;
    this.#cpuReads = 0;
    this.#readOk = new Histogram();
    this.#writeOk = new Histogram();
    return d;
  }

  close(): void {
    closeSync(this.#fd);
  }
}
