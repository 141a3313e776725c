/**
 * Where a run's results go: every output is a ReportSink. The finished Report goes to `report`
 * (the text report on stdout, --json, --csv); while the run goes on, `tick` receives a RunSample
 * every TICK_MS (the progress line is the first consumer; timelines and traces plug in the same
 * way). The engine feeds ticks and calls `end` when the run stops, success or failure; main.ts
 * hands the finished Report to every sink in order.
 */
import { writeFileSync } from 'node:fs';
import { compareRow } from './compare.js';
import { compareCsv } from './csv.js';
import { formatReport } from './report.js';
import { reportToJson } from './report_json.js';
import type { Report } from './report_model.js';
import { timelineCsv } from './timeline.js';
import { traceJson } from './trace_events.js';
import type { RunTrace } from './trace_events.js';

/** How often the engine samples a running run for `tick`. */
export const TICK_MS = 250;

/** One sample of a running run. */
export interface RunSample {
  /** Milliseconds since the run started. */
  readonly elapsedMs: number;
  /** The current phase as the report names it ("iteration 2 dirty"), or a state ("starting worker threads"). */
  readonly phase: string;
  /** Its iteration, and the run's iteration count. */
  readonly iteration: number | null;
  readonly iterations: number;
  /** What is going on inside the phase ("40% of the pages, 3/8 vCPUs done"; "" when nothing to add). */
  readonly detail: string;
  /** Totals so far, all threads: guest accesses and huge pages split. */
  readonly accesses: number;
  readonly hugePagesSplit: number;
  /** Every worker counter so far, all threads, by key (src/stats/worker_stats.ts). */
  readonly counters: Readonly<Record<string, number>>;
}

export interface ReportSink {
  /** A sample while the run goes on (every TICK_MS; never after `end`). */
  tick?(sample: RunSample): void;
  /** The threads' trace records (trace_events.ts), before `report`; asking for them turns recording on. */
  trace?(run: RunTrace): void;
  /** The run stopped (finished or failed): end any live output. */
  end?(): void;
  /** The finished run's Report. */
  report?(report: Report): void;
}

/** The text report (report.ts) on a stream. */
export function textSink(stream: { write(s: string): boolean }): ReportSink {
  return { report: (r) => void stream.write(`${formatReport(r)}\n`) };
}

/** `--json FILE` (report_json.ts). */
export function jsonSink(file: string): ReportSink {
  return { report: (r) => writeFileSync(file, reportToJson(r)) };
}

/** `--csv FILE` for one run: the compare CSV with one row (csv.ts). */
export function csvSink(file: string): ReportSink {
  return { report: (r) => writeFileSync(file, compareCsv([{ report: r, row: compareRow(r) }])) };
}

/** `--timeline-csv FILE`: the run's timeline, one row per sample (timeline.ts); a header only when the run has none. */
export function timelineCsvSink(file: string): ReportSink {
  return {
    report: (r) => {
      const t = r.timeline ?? { sampleMs: 0, stride: 1, dipThresholdPct: 0, rows: [], events: [], dips: [] };
      writeFileSync(
        file,
        timelineCsv(
          t,
          r.phases.map((p) => p.name),
        ),
      );
    },
  };
}

/** `--trace FILE`: a Chrome Trace Event file (trace_events.ts) from the threads' records and the report's timeline. */
export function traceSink(file: string): ReportSink {
  let run: RunTrace = { t0HrMs: 0, threads: [] };
  return {
    trace: (t) => {
      run = t;
    },
    report: (r) => writeFileSync(file, traceJson(run, r)),
  };
}

/** Hand a finished report to every sink, in order. */
export function emitReport(sinks: readonly ReportSink[], report: Report): void {
  for (const s of sinks) s.report?.(report);
}
