/**
 * The timeline of a run: what the vCPUs, the faults, mmu_lock and the splitter did over time, so
 * that a dip in vCPU throughput while a CLEAR holds mmu_lock (the 2024 MySQL stall) can be seen
 * and measured, not only averaged away in a per-phase figure.
 *
 * The engine samples every TIMELINE_SAMPLE_MS on the main thread (engine.ts): the summed worker
 * counters (guest accesses, faults by kind, splits, lock drops, walk restarts: racy reads of
 * single-writer Float64 slots, see worker_stats.ts), the mmu_lock word and queue (how many
 * threads wait now), and the phase in progress. Counters are kept cumulative, so thinning the
 * samples loses no work: a rate between two kept samples is the average over the gap.
 * The count is bounded: past TIMELINE_MAX_SAMPLES, every other sample is dropped and the
 * sampling stride doubles (decimation), so a long run keeps an even, coarser timeline.
 *
 * Everything below the recorder is pure (unit-tested on synthetic samples): rates per sample,
 * phase boundaries, and the dip summary per phase.
 */

/** Sampling period (ms). Short enough to see a CLEAR of a few tens of ms; the main thread only reads memory. */
export const TIMELINE_SAMPLE_MS = 10;
/** At most this many samples are kept (decimation beyond). */
const TIMELINE_MAX_SAMPLES = 5000;
/** A sample's throughput below (1 - DIP_THRESHOLD) x the baseline counts towards the dip's length. */
export const DIP_THRESHOLD = 0.1;

/** One raw sample: cumulative counters at `tMs`. */
export interface TimelinePoint {
  /** Milliseconds since the run started. */
  readonly tMs: number;
  /** Index of the phase in progress (the report's phases[]), -1 before the first. */
  readonly phase: number;
  readonly accesses: number;
  readonly fastFaults: number;
  readonly slowFaults: number;
  readonly firstTouchFaults: number;
  readonly hugePagesSplit: number;
  readonly lockDrops: number;
  readonly restarts: number;
  /** Threads queued on mmu_lock now (the queue's tickets, head included). */
  readonly lockWaiters: number;
  /** How long the queue has been non-empty without a break, ms (0 when empty). */
  readonly lockWaitingMs: number;
  /** A writer holds mmu_lock now. */
  readonly writerHeld: boolean;
}

/** A phase (or splitter ioctl) boundary. */
export interface TimelineEvent {
  readonly tMs: number;
  readonly phase: number;
  readonly name: string;
  readonly edge: 'begin' | 'end';
}

/** One row of the report's timeline: rates over the gap since the previous kept sample. */
export interface TimelineRow {
  readonly tMs: number;
  readonly phase: number;
  readonly accessesPerSecond: number;
  readonly fastFaultsPerSecond: number;
  readonly slowFaultsPerSecond: number;
  readonly firstTouchFaultsPerSecond: number;
  /** Cumulative since the run started. */
  readonly hugePagesSplit: number;
  readonly lockDrops: number;
  readonly restarts: number;
  readonly lockWaiters: number;
  readonly lockWaitingMs: number;
  readonly writerHeld: boolean;
}

/** The deepest dip of one phase in which vCPUs ran. */
export interface PhaseDip {
  readonly phase: number;
  readonly name: string;
  /** The level the dip is measured against (accesses per second). */
  readonly baselinePerSecond: number;
  readonly baselineFrom: string;
  readonly meanPerSecond: number;
  readonly minPerSecond: number;
  /** (1 - min / baseline) x 100, 0 when never below the baseline. */
  readonly depthPct: number;
  /** Time the throughput spent below (1 - DIP_THRESHOLD) x baseline, ms (summed over samples). */
  readonly belowMs: number;
  /** The longest unbroken stretch below that level, ms. */
  readonly longestBelowMs: number;
  /** The most threads seen queued on mmu_lock, and the longest unbroken queue, ms. */
  readonly maxLockWaiters: number;
  readonly maxLockWaitingMs: number;
}

export interface TimelineReport {
  readonly sampleMs: number;
  /** Kept samples are this many sampling periods apart (1 until decimation). */
  readonly stride: number;
  readonly dipThresholdPct: number;
  readonly rows: readonly TimelineRow[];
  readonly events: readonly TimelineEvent[];
  readonly dips: readonly PhaseDip[];
}

/** Collects points with bounded memory: decimates by two whenever the cap is reached. */
export class TimelineRecorder {
  readonly #max: number;
  #points: TimelinePoint[] = [];
  #events: TimelineEvent[] = [];
  #stride = 1;
  #ticks = 0;

  constructor(max = TIMELINE_MAX_SAMPLES) {
    if (!Number.isInteger(max) || max < 4) throw new RangeError(`timeline: max samples must be an integer >= 4 (got ${max})`);
    this.#max = max;
  }

  /** Offer a sample; kept when it falls on the current stride. `force` keeps it regardless (a phase edge). */
  offer(p: TimelinePoint, force = false): void {
    const keep = force || this.#ticks % this.#stride === 0;
    this.#ticks++;
    if (!keep) return;
    this.#points.push(p);
    if (this.#points.length >= this.#max) {
      // Keep every other point, the last one too (the newest state), and sample half as often.
      const last = this.#points[this.#points.length - 1]!;
      this.#points = this.#points.filter((_, i) => i % 2 === 0);
      if (this.#points[this.#points.length - 1] !== last) this.#points.push(last);
      this.#stride *= 2;
    }
  }

  event(e: TimelineEvent): void {
    this.#events.push(e);
  }

  get stride(): number {
    return this.#stride;
  }

  get points(): readonly TimelinePoint[] {
    return this.#points;
  }

  get events(): readonly TimelineEvent[] {
    return this.#events;
  }
}

/** Rates between consecutive points (the first point has no gap: rates 0). */
export function timelineRows(points: readonly TimelinePoint[]): TimelineRow[] {
  return points.map((p, i) => {
    const prev = i === 0 ? null : points[i - 1]!;
    const dt = prev === null ? 0 : (p.tMs - prev.tMs) / 1000;
    const r = (k: 'accesses' | 'fastFaults' | 'slowFaults' | 'firstTouchFaults'): number => (prev === null || dt <= 0 ? 0 : Math.max(0, p[k] - prev[k]) / dt);
    return {
      tMs: p.tMs,
      phase: p.phase,
      accessesPerSecond: r('accesses'),
      fastFaultsPerSecond: r('fastFaults'),
      slowFaultsPerSecond: r('slowFaults'),
      firstTouchFaultsPerSecond: r('firstTouchFaults'),
      hugePagesSplit: p.hugePagesSplit,
      lockDrops: p.lockDrops,
      restarts: p.restarts,
      lockWaiters: p.lockWaiters,
      lockWaitingMs: p.lockWaitingMs,
      writerHeld: p.writerHeld,
    };
  });
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The baseline a dip is measured against: the mean throughput of the "steady before" window when
 * the run has one (steady mode: vCPUs ran undisturbed before dirty logging was enabled), else the
 * median of every sample in which the vCPUs made progress.
 */
function dipBaseline(rows: readonly TimelineRow[], phaseNames: readonly string[]): { perSecond: number; from: string } {
  const before = phaseNames.indexOf('steady before');
  if (before >= 0) {
    const xs = rows.filter((r, i) => i > 0 && r.phase === before).map((r) => r.accessesPerSecond);
    if (xs.length > 0) return { perSecond: xs.reduce((a, b) => a + b, 0) / xs.length, from: 'steady before (mean)' };
  }
  return {
    perSecond: median(rows.filter((r, i) => i > 0 && r.accessesPerSecond > 0).map((r) => r.accessesPerSecond)),
    from: 'median of the samples with vCPU progress',
  };
}

/**
 * The deepest dip of every phase in which the vCPUs ran (some sample with accesses): phases with
 * parked vCPUs have a throughput of 0 by construction and are left out.
 */
export function phaseDips(rows: readonly TimelineRow[], phaseNames: readonly string[]): PhaseDip[] {
  const base = dipBaseline(rows, phaseNames);
  const out: PhaseDip[] = [];
  const limit = base.perSecond * (1 - DIP_THRESHOLD);
  phaseNames.forEach((name, phase) => {
    const idx: number[] = [];
    rows.forEach((r, i) => {
      if (i > 0 && r.phase === phase) idx.push(i);
    });
    if (!idx.some((i) => rows[i]!.accessesPerSecond > 0)) return;
    let min = Number.POSITIVE_INFINITY;
    let sum = 0;
    let span = 0;
    let below = 0;
    let run = 0;
    let longest = 0;
    let maxWaiters = 0;
    let maxWaitingMs = 0;
    for (const i of idx) {
      const r = rows[i]!;
      const dt = r.tMs - rows[i - 1]!.tMs;
      min = Math.min(min, r.accessesPerSecond);
      sum += r.accessesPerSecond * dt;
      span += dt;
      if (base.perSecond > 0 && r.accessesPerSecond < limit) {
        below += dt;
        run += dt;
        longest = Math.max(longest, run);
      } else run = 0;
      maxWaiters = Math.max(maxWaiters, r.lockWaiters);
      maxWaitingMs = Math.max(maxWaitingMs, r.lockWaitingMs);
    }
    out.push({
      phase,
      name,
      baselinePerSecond: base.perSecond,
      baselineFrom: base.from,
      meanPerSecond: span > 0 ? sum / span : 0,
      minPerSecond: min,
      depthPct: base.perSecond > 0 ? Math.max(0, (1 - min / base.perSecond) * 100) : 0,
      belowMs: below,
      longestBelowMs: longest,
      maxLockWaiters: maxWaiters,
      maxLockWaitingMs: maxWaitingMs,
    });
  });
  return out;
}

/** The report's timeline from a recorder and the run's phase names (in index order). */
export function buildTimeline(
  rec: { readonly points: readonly TimelinePoint[]; readonly events: readonly TimelineEvent[]; readonly stride: number },
  phaseNames: readonly string[],
  sampleMs = TIMELINE_SAMPLE_MS,
): TimelineReport {
  const rows = timelineRows(rec.points);
  return { sampleMs, stride: rec.stride, dipThresholdPct: DIP_THRESHOLD * 100, rows, events: rec.events, dips: phaseDips(rows, phaseNames) };
}

/** The CSV columns of `--timeline-csv`, in order. */
export const TIMELINE_CSV_COLUMNS = [
  't_ms',
  'phase',
  'accesses_per_second',
  'fast_faults_per_second',
  'slow_faults_per_second',
  'first_touch_faults_per_second',
  'huge_pages_split',
  'lock_drops',
  'restarts',
  'lock_waiters',
  'lock_waiting_ms',
  'writer_held',
] as const;

/** `--timeline-csv FILE`: one row per kept sample, the phase by name. */
export function timelineCsv(t: TimelineReport, phaseNames: readonly string[]): string {
  const q = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const n = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(3));
  const lines = [TIMELINE_CSV_COLUMNS.join(',')];
  for (const r of t.rows) {
    lines.push(
      [
        n(r.tMs),
        q(phaseNames[r.phase] ?? ''),
        n(r.accessesPerSecond),
        n(r.fastFaultsPerSecond),
        n(r.slowFaultsPerSecond),
        n(r.firstTouchFaultsPerSecond),
        n(r.hugePagesSplit),
        n(r.lockDrops),
        n(r.restarts),
        n(r.lockWaiters),
        n(r.lockWaitingMs),
        r.writerHeld ? '1' : '0',
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}
