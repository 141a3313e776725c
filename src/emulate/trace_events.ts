/**
 * `--trace FILE`: the run as a Chrome Trace Event file (the JSON Object Format: `traceEvents`
 * plus `displayTimeUnit` and `otherData`), which ui.perfetto.dev and chrome://tracing open.
 *
 * One process (pid 1), one track per thread, each named by a thread_name metadata event:
 * `main` (tid 0: the run's phases as slices), then every worker by its run-plan name (`vCPU n`,
 * `splitter`, `host events`) with tid = its Vm worker id. Worker tracks carry what the thread
 * recorded in its trace ring (src/stats/trace_ring.ts: mmu_lock holds and waits, slow faults,
 * splits, lock drops, ioctls, host events (invalidate, age, nx-recovery) as complete "X" slices; walk restarts and cond_resched yields as
 * thread-scoped "i" instants). The timeline's series (timeline.ts) become counter ("C") tracks.
 *
 * Every timestamp is in µs since the engine's start (the timeline's clock: process.hrtime).
 * Within a thread the events are written in timestamp order, a parent before its children on a
 * tie; slices come from real intervals of one thread, so they nest (trace_ring.ts says why the
 * dropped ones cannot break that). The size is bounded by the rings' capacities, which the
 * engine takes from TRACE_RECORD_BUDGET (traceRingCapacity), and by the timeline's own sample cap.
 */
import { HOST_EVENT_KINDS, TRACE_KINDS, TRACE_RECORD_F64S } from '../stats/trace_ring.js';
import type { TraceRingData } from '../stats/trace_ring.js';
import { OP_NAMES } from './control.js';
import type { Report } from './report_model.js';
import type { TimelineRow } from './timeline.js';

/**
 * Records kept over every thread of a run, at most: each becomes one event of about 120 bytes,
 * so a trace stays under 40 MB however many vCPUs run (issue 12 asks for under 100 MB at 32).
 * The splitter gets half: it records four events per huge page split (the split, the 6.11 lock
 * drop, the walk restart, the hold), 16,384 splits in the default 32-vCPU run; the vCPUs record
 * only waits, holds and sampled faults above their thresholds, and share the other half.
 */
const TRACE_RECORD_BUDGET = 300_000;
/**
 * A thread's ring holds at least this many records, however many threads share the budget: at the
 * 512-vCPU limit (options.ts) that adds at most 512 x 256 records to the budget's 300,000.
 */
const TRACE_MIN_RING = 256;

/** The ring capacity (records) of one worker thread of `role`, in a run of `threads` worker threads. */
export function traceRingCapacity(role: 'splitter' | 'other', threads: number): number {
  const share = role === 'splitter' ? TRACE_RECORD_BUDGET / 2 : TRACE_RECORD_BUDGET / 2 / Math.max(1, threads - 1);
  return Math.max(TRACE_MIN_RING, Math.floor(share));
}

/** One worker thread's records, as the engine hands them over. */
export interface TraceThread {
  readonly tid: number;
  readonly name: string;
  readonly data: TraceRingData | undefined;
}

/** What the engine hands the trace sink: its start on process.hrtime (ms) and every thread's records. */
export interface RunTrace {
  readonly t0HrMs: number;
  readonly threads: readonly TraceThread[];
}

/** One Trace Event (the fields this writer uses). */
export interface TraceEvent {
  readonly name: string;
  readonly ph: 'X' | 'i' | 'C' | 'M';
  /** µs. */
  readonly ts: number;
  readonly dur?: number;
  readonly pid: number;
  readonly tid: number;
  readonly cat?: string;
  /** Instants: thread scope. */
  readonly s?: 't';
  readonly args?: Readonly<Record<string, string | number>>;
}

const PID = 1;
/** The main thread's track (the run's phases); worker ids start at 1 (run_plan.ts MAIN_WORKER_ID). */
const MAIN_TID = 0;

/** µs rounded to the ns: the file stays short and every thread's times are rounded alike. */
function us(ms: number): number {
  return Math.round(ms * 1e6) / 1e3;
}

/** The counter tracks, one per timeline series: the track name and its value(s) per row. */
const COUNTERS: readonly { readonly name: string; readonly args: (r: TimelineRow) => Record<string, number> }[] = [
  { name: 'vCPU accesses/s', args: (r) => ({ value: r.accessesPerSecond }) },
  { name: 'faults/s', args: (r) => ({ fast: r.fastFaultsPerSecond, slow: r.slowFaultsPerSecond, firstTouch: r.firstTouchFaultsPerSecond }) },
  { name: 'huge pages split', args: (r) => ({ value: r.hugePagesSplit }) },
  { name: 'lock drops', args: (r) => ({ value: r.lockDrops }) },
  { name: 'walk restarts', args: (r) => ({ value: r.restarts }) },
  { name: 'mmu_lock waiters', args: (r) => ({ value: r.lockWaiters }) },
  { name: 'mmu_lock queued ms', args: (r) => ({ value: r.lockWaitingMs }) },
  { name: 'mmu_lock writer held', args: (r) => ({ value: r.writerHeld ? 1 : 0 }) },
];

/** A thread's events in file order: by start, and on a tie the longer (the parent) first. */
function ordered(events: TraceEvent[]): TraceEvent[] {
  return events.sort((a, b) => a.ts - b.ts || (b.dur ?? 0) - (a.dur ?? 0));
}

/** The phases of the report as slices on the main track (from the timeline's begin/end edges). */
function phaseSlices(report: Report): TraceEvent[] {
  const begins = new Map<number, number>();
  const out: TraceEvent[] = [];
  for (const e of report.timeline?.events ?? []) {
    if (e.edge === 'begin') {
      begins.set(e.phase, e.tMs);
      continue;
    }
    const t0 = begins.get(e.phase);
    if (t0 === undefined) continue;
    const p = report.phases[e.phase];
    const ts = us(t0);
    out.push({
      name: e.name,
      ph: 'X',
      ts,
      dur: us(e.tMs) - ts,
      pid: PID,
      tid: MAIN_TID,
      cat: 'phase',
      args: { kind: p?.kind ?? '', iteration: p?.iteration ?? -1, seconds: p?.seconds ?? 0 },
    });
  }
  return out;
}

/** One worker's ring records as events on its track. */
function threadEvents(t: TraceThread, t0HrMs: number): TraceEvent[] {
  const d = t.data;
  if (d === undefined) return [];
  const out: TraceEvent[] = [];
  const base = d.hrOffsetMs - t0HrMs;
  for (let i = 0; i < d.count; i++) {
    const o = i * TRACE_RECORD_F64S;
    const kind = TRACE_KINDS[d.records[o]!];
    if (kind === undefined) throw new Error(`trace: thread ${t.name} recorded an unknown kind ${d.records[o]}`);
    const ts = us(d.records[o + 1]! + base);
    const arg = d.records[o + 3]!;
    const name = kind.cat === 'ioctl' ? (OP_NAMES[arg] ?? `op ${arg}`) : kind.cat === 'host' ? (HOST_EVENT_KINDS[arg] ?? kind.name) : kind.name;
    if (kind.instant) {
      out.push({ name, ph: 'i', ts, pid: PID, tid: t.tid, cat: kind.cat, s: 't' });
      continue;
    }
    const ev: TraceEvent = { name, ph: 'X', ts, dur: us(d.records[o + 2]! + base) - ts, pid: PID, tid: t.tid, cat: kind.cat };
    out.push(kind.cat === 'split' && name === 'split' ? { ...ev, args: { level: arg } } : ev);
  }
  return out;
}

/** Every event of the trace: metadata, then each thread's slices in order, then the counters. */
export function traceEvents(run: RunTrace, report: Report): TraceEvent[] {
  const meta: TraceEvent[] = [
    { name: 'process_name', ph: 'M', ts: 0, pid: PID, tid: MAIN_TID, args: { name: `kvm-eager-split-emu emulate (${report.config.vcpus} vCPUs)` } },
    { name: 'thread_name', ph: 'M', ts: 0, pid: PID, tid: MAIN_TID, args: { name: 'main' } },
    { name: 'thread_sort_index', ph: 'M', ts: 0, pid: PID, tid: MAIN_TID, args: { sort_index: -1 } },
  ];
  for (const t of run.threads) {
    if (t.tid === MAIN_TID) throw new Error(`trace: thread ${t.name} has the main thread's tid ${MAIN_TID}`);
    meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid: PID, tid: t.tid, args: { name: t.name } });
    meta.push({ name: 'thread_sort_index', ph: 'M', ts: 0, pid: PID, tid: t.tid, args: { sort_index: t.tid } });
  }
  const slices = [ordered(phaseSlices(report)), ...run.threads.map((t) => ordered(threadEvents(t, run.t0HrMs)))].flat();
  const counters: TraceEvent[] = [];
  for (const r of report.timeline?.rows ?? []) {
    for (const c of COUNTERS) counters.push({ name: c.name, ph: 'C', ts: us(r.tMs), pid: PID, tid: MAIN_TID, args: c.args(r) });
  }
  return [...meta, ...slices, ...counters];
}

/** The trace file's text: one event per line, so a large trace is still readable with grep. */
export function traceJson(run: RunTrace, report: Report): string {
  const events = traceEvents(run, report);
  const otherData = {
    tool: 'kvm-eager-split-emu emulate',
    startedAt: report.startedAt,
    thresholdsUs: Object.fromEntries(TRACE_KINDS.map((k) => [k.name, k.minUs])),
    threads: run.threads.map((t) => ({ tid: t.tid, name: t.name, records: t.data?.count ?? 0, dropped: t.data?.dropped ?? 0, floorUs: t.data?.floorUs ?? 0 })),
  };
  return `{"displayTimeUnit":"ms","otherData":${JSON.stringify(otherData)},"traceEvents":[\n${events.map((e) => JSON.stringify(e)).join(',\n')}\n]}\n`;
}
