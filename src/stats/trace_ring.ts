/**
 * The worker side of `--trace` (src/emulate/trace_events.ts writes the file): each worker thread
 * records what it did as fixed-size records in a bounded buffer of its own, and hands the buffer
 * to the main thread with its task result (messages.ts `trace`). Nothing is shared while the run
 * goes on, so recording never touches a cache line another thread uses.
 *
 * No observer effect:
 *  - off (the default), every hook is one predictable branch on `traceRing === null`, and the
 *    buffer is never allocated;
 *  - on, the hooks reuse timestamps their paths already take (mmu_lock.ts reads the clock for its
 *    histograms; guest_access.ts times one fault in 16), except a split, a lock drop, an ioctl
 *    and a host event, which read it twice more (about 80 ns against a split's own microseconds),
 *    and a walk restart or a cond_resched yield, which read it once;
 *  - a record is four Float64 stores into a preallocated Float64Array: no allocation, no message.
 *
 * Bounded size (so that a 32-vCPU run writes a trace well under 100 MB): each kind of record has
 * a minimum duration (TRACE_KINDS `minUs`, the thresholds), and the buffer holds `capacity`
 * records. When it fills, it is compacted: the median duration of the droppable records becomes
 * a floor for every droppable kind, shorter records are dropped, and later ones below the floor
 * are not recorded. A trace therefore keeps the longest holds, waits, faults and splits, never
 * the mere first ones; ioctls (few) are never dropped. Records kept from properly nested slices
 * stay properly nested, whatever subset survives. Dropped records are counted.
 */

/** One kind of record: its slice name, its Trace Event category, and its recording threshold. */
interface TraceKind {
  readonly name: string;
  readonly cat: string;
  /** Slices shorter than this are not recorded (µs). 0 = every one. */
  readonly minUs: number;
  /** Never dropped by compaction (few per run). */
  readonly keep: boolean;
  /** An instant (a point in time) rather than a slice. */
  readonly instant: boolean;
}

/** Every kind of record, indexed by TK. The thresholds are documented in the README ("Trace"). */
export const TRACE_KINDS: readonly TraceKind[] = [
  { name: 'mmu_lock read hold', cat: 'mmu_lock', minUs: 20, keep: false, instant: false },
  { name: 'mmu_lock write hold', cat: 'mmu_lock', minUs: 0, keep: false, instant: false },
  { name: 'mmu_lock read wait', cat: 'mmu_lock', minUs: 5, keep: false, instant: false },
  { name: 'mmu_lock write wait', cat: 'mmu_lock', minUs: 5, keep: false, instant: false },
  { name: 'slow fault', cat: 'fault', minUs: 50, keep: false, instant: false },
  { name: 'split', cat: 'split', minUs: 0, keep: false, instant: false },
  { name: 'lock drop', cat: 'split', minUs: 0, keep: false, instant: false },
  { name: 'cond_resched yield', cat: 'split', minUs: 0, keep: false, instant: true },
  { name: 'walk restart', cat: 'split', minUs: 0, keep: false, instant: true },
  { name: 'ioctl', cat: 'ioctl', minUs: 0, keep: true, instant: false },
  { name: 'host event', cat: 'host', minUs: 0, keep: false, instant: false },
];

/** Indices into TRACE_KINDS. */
export const TK = {
  readHold: 0,
  writeHold: 1,
  readWait: 2,
  writeWait: 3,
  slowFault: 4,
  split: 5,
  lockDrop: 6,
  yield: 7,
  restart: 8,
  ioctl: 9,
  /** The host-events thread's events; the argument is the index of the event's kind in HOST_EVENT_KINDS. */
  hostEvent: 10,
} as const;

/** The host-events thread's event kinds (workers/host_events.worker.ts), named in the trace by index. */
export const HOST_EVENT_KINDS = ['invalidate', 'age', 'nx-recovery'] as const;

/** Float64 slots per record: kind, start (ms, performance.now()), end (ms), argument. */
export const TRACE_RECORD_F64S = 4;

/** What a worker hands back: its records, and how to put them on the run's clock. */
export interface TraceRingData {
  /** `count` records of TRACE_RECORD_F64S slots each, in the order they were recorded. */
  readonly records: Float64Array;
  readonly count: number;
  /** Add to a record's times to get process.hrtime ms (the engine's clock): workers have their own performance.timeOrigin. */
  readonly hrOffsetMs: number;
  /** Records not kept (below a raised floor, or the buffer full of kept records). */
  readonly dropped: number;
  /** The duration floor compaction left (µs; 0 when the buffer never filled). */
  readonly floorUs: number;
}

export class TraceRing {
  readonly #rec: Float64Array;
  readonly #cap: number;
  /** Per kind: the current minimum duration (ms), raised by compaction; and the kind's own threshold. */
  readonly #minMs: Float64Array;
  readonly #baseMs: Float64Array;
  #n = 0;
  #dropped = 0;
  #floorMs = 0;
  readonly #hrOffsetMs: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 16) throw new RangeError(`trace ring: capacity must be an integer >= 16 (got ${capacity})`);
    this.#cap = capacity;
    this.#rec = new Float64Array(capacity * TRACE_RECORD_F64S);
    this.#baseMs = new Float64Array(TRACE_KINDS.map((k) => k.minUs / 1000));
    this.#minMs = this.#baseMs.slice();
    // The two clocks read back to back: the offset is exact to about a microsecond.
    this.#hrOffsetMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();
  }

  /** A slice [startMs, endMs] on performance.now()'s clock; kept when at least its kind's minimum. */
  span(kind: number, startMs: number, endMs: number, arg = 0): void {
    const d = endMs - startMs;
    if (d < this.#minMs[kind]!) {
      // Below the kind's threshold: not wanted. Only below a floor compaction raised: dropped.
      if (d >= this.#baseMs[kind]!) this.#dropped++;
      return;
    }
    if (this.#n === this.#cap) {
      this.#compact();
      if (d < this.#minMs[kind]! || this.#n === this.#cap) {
        this.#dropped++;
        return;
      }
    }
    const o = this.#n * TRACE_RECORD_F64S;
    const r = this.#rec;
    r[o] = kind;
    r[o + 1] = startMs;
    r[o + 2] = endMs;
    r[o + 3] = arg;
    this.#n++;
  }

  /** A point in time (an instant); the first to go when the buffer fills. */
  instant(kind: number, tMs: number, arg = 0): void {
    this.span(kind, tMs, tMs, arg);
  }

  /** Raise the floor to the median droppable duration and drop every droppable record below it. */
  #compact(): void {
    const r = this.#rec;
    const durs: number[] = [];
    for (let i = 0; i < this.#n; i++) {
      const o = i * TRACE_RECORD_F64S;
      if (!TRACE_KINDS[r[o]!]!.keep) durs.push(r[o + 2]! - r[o + 1]!);
    }
    durs.sort((a, b) => a - b);
    const median = durs.length === 0 ? 0 : durs[durs.length >> 1]!;
    // Strictly above the old floor, so every compaction frees something unless all records are kept kinds.
    this.#floorMs = Math.max(median, this.#floorMs * 2, 1e-6);
    TRACE_KINDS.forEach((k, i) => {
      if (!k.keep) this.#minMs[i] = Math.max(this.#baseMs[i]!, this.#floorMs);
    });
    let w = 0;
    for (let i = 0; i < this.#n; i++) {
      const o = i * TRACE_RECORD_F64S;
      const kind = r[o]!;
      if (r[o + 2]! - r[o + 1]! < this.#minMs[kind]!) {
        this.#dropped++;
        continue;
      }
      if (w !== i) r.copyWithin(w * TRACE_RECORD_F64S, o, o + TRACE_RECORD_F64S);
      w++;
    }
    this.#n = w;
  }

  data(): TraceRingData {
    return {
      records: this.#rec.slice(0, this.#n * TRACE_RECORD_F64S),
      count: this.#n,
      hrOffsetMs: this.#hrOffsetMs,
      dropped: this.#dropped,
      floorUs: this.#floorMs * 1000,
    };
  }
}

/**
 * This thread's ring, or null when --trace is off: every hook tests it first (one predictable
 * branch). One per worker thread; set by openTraceRing at the start of the worker's task.
 */
export let traceRing: TraceRing | null = null;

/** Start recording with `capacity` records (undefined: --trace is off, record nothing). */
export function openTraceRing(capacity: number | undefined): void {
  traceRing = capacity === undefined ? null : new TraceRing(capacity);
}

/** The result's `trace` field: `{ trace }` when recording, else nothing. Stops recording. */
export function takeTraceRing(): { trace?: TraceRingData } {
  const r = traceRing;
  traceRing = null;
  return r === null ? {} : { trace: r.data() };
}
