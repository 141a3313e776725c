/**
 * `--csv FILE`: one row per run of a compare or sweep (or of a single run), RFC 4180: comma
 * separated, a header row, fields quoted when they hold a comma, a quote or a line break (a custom
 * --pressure spec does), CRLF line ends. Numbers are plain (seconds as seconds, latencies in ns,
 * empty when not measured), so spreadsheets and pandas read them without unit parsing.
 */
import { writeFileSync } from 'node:fs';
import type { CompareRow } from './compare.js';
import type { Report } from './report_model.js';
import { jsonKeyOf, snakeCase, SPLIT_ROWS } from '../stats/worker_stats.js';

/** Quote a field when RFC 4180 requires it. */
export function csvField(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function csvLine(fields: readonly (string | number | boolean | null | undefined)[]): string {
  return fields.map(csvField).join(',');
}

/** The configuration columns (from the report's resolved options), then the compare metrics. */
const CONFIG_COLUMNS = [
  'splitAlloc',
  'vcpus',
  'memoryPerVcpuBytes',
  'backing',
  'levels',
  'pressure',
  'cacheCapacity',
  'chunkPages',
  'reschedMs',
  'yieldOnContention',
  'manualProtect',
  'eagerSplit',
  'steady',
  'iterations',
  'seed',
] as const;

const METRIC_COLUMNS: readonly [string, (r: CompareRow) => string | number | boolean | null][] = [
  ['enable_s', (r) => r.enableSeconds],
  ['first_clear_s', (r) => r.firstClearSeconds],
  ['split_s', (r) => r.splitterSeconds],
  ['split_phase', (r) => r.splitPhase],
  ['fault_before_count', (r) => r.faultBefore?.count ?? 0],
  ['fault_before_p50_ns', (r) => r.faultBefore?.p50 ?? null],
  ['fault_before_p99_ns', (r) => r.faultBefore?.p99 ?? null],
  ['fault_before_max_ns', (r) => r.faultBefore?.max ?? null],
  ['fault_during_count', (r) => r.faultDuring?.count ?? 0],
  ['fault_during_p50_ns', (r) => r.faultDuring?.p50 ?? null],
  ['fault_during_p99_ns', (r) => r.faultDuring?.p99 ?? null],
  ['fault_during_max_ns', (r) => r.faultDuring?.max ?? null],
  ['vcpu_rate_change_pct', (r) => r.throughputChangePct],
  ['hold_mode', (r) => r.holdMode],
  ['hold_p99_ns', (r) => r.holdP99Ns],
  ['hold_max_ns', (r) => r.holdMaxNs],
  ['read_wait_p99_ns', (r) => r.readWaitP99Ns],
  ['lock_wait_share_pct', (r) => r.lockWaitSharePct],
  ['dip_pct', (r) => r.dipPct],
  ['lock_drops', (r) => r.lockDrops],
  ['restarts', (r) => r.restarts],
  ['yields', (r) => r.yields],
  ['extra_reads_per_split', (r) => r.extraReadsPerSplit],
  ['alloc_under_lock', (r) => r.allocUnderLock],
  ['alloc_failures', (r) => r.allocFailures],
  ['leftovers_freed', (r) => r.leftoverFreed],
  ['split_by_splitter', (r) => r.splitBySplitter],
  ['split_by_vcpus', (r) => r.splitByVcpus],
  ['split_enomem', (r) => r.splitEnomem],
  ['invariants_ok', (r) => r.invariantsOk],
];

/**
 * Whole-run totals of every split counter, all threads (Report.split), one column per row of the
 * counter table (src/stats/worker_stats.ts): `total_<json key in snake_case>`.
 */
const TOTAL_COLUMNS: readonly [string, (r: Report) => number | null][] = SPLIT_ROWS.map((row) => {
  const k = jsonKeyOf(row);
  return [`total_${snakeCase(k)}`, (r: Report) => (r.split as unknown as Record<string, number>)[k] ?? null];
});

export const CSV_HEADER: readonly string[] = ['run', 'label', 'repeat', ...CONFIG_COLUMNS, ...METRIC_COLUMNS.map(([h]) => h), ...TOTAL_COLUMNS.map(([h]) => h)];

/** The whole CSV text: header plus one row per (report, compare row) pair, in order. */
export function compareCsv(runs: readonly { readonly report: Report; readonly row: CompareRow; readonly repeat?: number }[]): string {
  const lines = [csvLine(CSV_HEADER)];
  runs.forEach(({ report, row, repeat }, i) => {
    const cfg = report.config;
    lines.push(
      csvLine([
        i + 1,
        row.label,
        repeat ?? 1,
        ...CONFIG_COLUMNS.map((k) => {
          const v = cfg[k];
          return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : null;
        }),
        ...METRIC_COLUMNS.map(([, f]) => f(row)),
        ...TOTAL_COLUMNS.map(([, f]) => f(report)),
      ]),
    );
  });
  return `${lines.join('\r\n')}\r\n`;
}

export function writeCsv(file: string, text: string): void {
  writeFileSync(file, text);
}
