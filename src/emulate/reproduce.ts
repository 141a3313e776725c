/**
 * `npm run reproduce`: run scaled versions of the published experiments and say, row by row,
 * whether the emulator reproduces them.
 *
 * Each row (reproduce_rows.ts) runs its variants as `node dist/src/emulate/main.js ... --json FILE -q`
 * child processes, one at a time (the host has 2 cores, and a run measures time), in the default
 * column (host costs calibrated) and with `--host-costs none`. The phase seconds come from each
 * run's JSON report (REPORT_SCHEMA.md, `phases[]` by name); reproduce_verdict.ts turns them into
 * ratios and a verdict. A run the emulator refuses (exit 2, one line) makes its row "not runnable"
 * with that line, so the harness runs before and after the options it needs exist.
 *
 * Options: --quick (or REPRODUCE_QUICK=1) a smoke variant of a few tiny rows, default column only; --rows PREFIX,...
 * selects rows by id; --repeat N runs every row at least N times (medians); --json FILE writes
 * the table. Progress, one line per run, goes to stderr.
 *
 * Exit codes: 0 every selected row has a result (reproduced, missed, printed or not runnable);
 * 1 an emulator run failed (exit 1 or 3, a signal, or a report without the metric);
 * 2 a bad option (one line); 130 interrupted.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { errorCode, invalidOption } from '../errors.js';
import { checkOutputPath } from './output_file.js';
import { formatCount } from './report.js';
import { parsePositiveInt } from './options.js';
import { apr24GroupVerdict, COLUMNS, planRuns, quickScalingNote, REPRODUCE_ROWS, rowRepeats, runArgs, runKey, selectRows } from './reproduce_rows.js';
import type { ColumnSpec, MetricRef, PlannedRun, ReproduceRow } from './reproduce_rows.js';
import { extractMetric } from './reproduce_metric.js';
import { formatRatio, judgeColumn, ruleWord, statusWord, toleranceShort } from './reproduce_verdict.js';
import type { ColumnVerdict, VariantOutcome, VerdictStatus } from './reproduce_verdict.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_INTERRUPTED = 130;

/** The emulator's CLI, next to this file in dist/. */
const EMULATE_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
/** A run that has not finished after this long is killed and reported failed (the emulator's own watchdog should fire first). */
const RUN_TIMEOUT_MS = 10 * 60 * 1000;
/** The 6.11 cover asks for 9 or more interleaved runs; --repeat is capped to keep the budget sane. */
const MAX_REPEAT = 50;

interface Cli {
  readonly quick: boolean;
  readonly json: string | undefined;
  readonly rows: readonly string[];
  readonly repeat: number;
}

const HELP = `Usage: npm run reproduce -- [options]

Runs scaled versions of the published eager-page-splitting experiments (the 2021 v1 cover, the
6.2 split-on-fault tables, the 6.11 drop-always cover) one emulator run at a time, and prints for
each row the published figure, ours, the ratio that carries over, and a verdict with its
tolerance, with the host costs calibrated (default) and with --host-costs none.

Options:
  --quick          a smoke variant: a few rows at 1-2 vCPUs x 32-64M, the default column
                   only (also REPRODUCE_QUICK=1)
  --rows LIST      only rows whose id starts with one of these comma-separated prefixes
                   (${[...new Set(REPRODUCE_ROWS.map((r) => r.id.replace(/-v\d+$/, '')))].join(', ')})
  --repeat N       run every row at least N times (medians) [default: each row's own, 1 or 9]
  --json FILE      also write the table as JSON
  -h, --help       print this help

Exit codes: 0 every row has a result (reproduced, missed, printed or not runnable); 1 an
emulator run failed; 2 bad option; 130 interrupted.`;

function parseCli(argv: readonly string[]): Cli | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        quick: { type: 'boolean' },
        json: { type: 'string' },
        rows: { type: 'string' },
        repeat: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, string | boolean | undefined> });
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    throw invalidOption('reproduce', `${first} (see --help)`);
  }
  if (values['help'] === true) return 'help';
  const json = typeof values['json'] === 'string' ? values['json'] : undefined;
  if (json !== undefined) checkOutputPath('--json', json);
  const rows =
    typeof values['rows'] === 'string'
      ? values['rows']
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
      : [];
  for (const p of rows) {
    if (!REPRODUCE_ROWS.some((r) => r.id.startsWith(p))) {
      throw invalidOption('--rows', `no row id starts with ${JSON.stringify(p)}; ids: ${REPRODUCE_ROWS.map((r) => r.id).join(', ')}`);
    }
  }
  const repeat = typeof values['repeat'] === 'string' ? parsePositiveInt('--repeat', values['repeat'], MAX_REPEAT) : 1;
  const quick = values['quick'] === true || process.env['REPRODUCE_QUICK'] === '1';
  return { quick, json, rows, repeat };
}

// ---------------------------------------------------------------------------------------------
// Running one emulator child

/** Per phase name, the two metrics a row can read. */
type PhaseMetrics = ReadonlyMap<string, PhaseMetric>;

interface PhaseMetric {
  readonly seconds: number;
  readonly splitSeconds: number | null;
  /** vCPU faults in the phase (null if no vCPU ran): shows, e.g., that PML makes an eager first pass fault-free. */
  readonly faults: FaultCounts | null;
}

/** Lockless fast faults and slow faults (mmu_lock for read) of one phase. */
interface FaultCounts {
  readonly fast: number;
  readonly slow: number;
}

type RunResult =
  | {
      readonly kind: 'ok';
      readonly phases: PhaseMetrics;
      /** The parsed JSON report, for metrics beyond the phase seconds (reproduce_metric.ts). */
      readonly report: unknown;
      /** The report's resolved `config` (dirty tracking, host costs... as the emulator printed them). */
      readonly config: Readonly<Record<string, unknown>>;
      readonly elapsedSeconds: number;
    }
  | { readonly kind: 'not-runnable'; readonly message: string; readonly elapsedSeconds: number }
  | { readonly kind: 'failed'; readonly message: string; readonly elapsedSeconds: number };

/** The child being waited for, so Ctrl-C can stop it (by its own pid, nothing else). */
let currentChild: ReturnType<typeof spawn> | null = null;

function lastMeaningfulLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const line = lines.find((l) => l.startsWith('emulate:')) ?? lines[lines.length - 1] ?? '';
  return line.replace(/^emulate:\s*/, '');
}

function readReport(file: string): { phases: PhaseMetrics; report: unknown; config: Readonly<Record<string, unknown>> } | string {
  let report: unknown;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return `no JSON report (${err instanceof Error ? err.message : String(err)})`;
  }
  const phases = (report as { phases?: unknown }).phases;
  if (!Array.isArray(phases)) return 'the JSON report has no phases[]';
  const out = new Map<string, PhaseMetric>();
  for (const p of phases as { name?: unknown; seconds?: unknown; splitSeconds?: unknown; vcpu?: { fastFaults?: unknown; slowFaults?: unknown } | null }[]) {
    if (typeof p.name !== 'string' || typeof p.seconds !== 'number') continue;
    const v = p.vcpu;
    const faults =
      v !== null && v !== undefined && typeof v.fastFaults === 'number' && typeof v.slowFaults === 'number' ? { fast: v.fastFaults, slow: v.slowFaults } : null;
    out.set(p.name, { seconds: p.seconds, splitSeconds: typeof p.splitSeconds === 'number' ? p.splitSeconds : null, faults });
  }
  const config = (report as { config?: unknown }).config;
  return { phases: out, report, config: typeof config === 'object' && config !== null ? (config as Record<string, unknown>) : {} };
}

function runEmulator(args: readonly string[], jsonFile: string): Promise<RunResult> {
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  return new Promise((resolve) => {
    rmSync(jsonFile, { force: true });
    const child = spawn(process.execPath, [EMULATE_MAIN, ...args, '--json', jsonFile, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    currentChild = child;
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      // Only the last lines matter; keep memory bounded on a chatty failure.
      stderr = (stderr + d).slice(-8192);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      currentChild = null;
      resolve({ kind: 'failed', message: `could not start the emulator: ${err.message}`, elapsedSeconds: elapsed() });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      currentChild = null;
      const seconds = elapsed();
      if (code === EXIT_USAGE) {
        resolve({ kind: 'not-runnable', message: lastMeaningfulLine(stderr) || 'the emulator refused the options (exit 2)', elapsedSeconds: seconds });
        return;
      }
      if (code !== 0) {
        const why = signal !== null ? `killed by ${signal}` : `exit ${code}`;
        resolve({ kind: 'failed', message: `${why}: ${lastMeaningfulLine(stderr)}`, elapsedSeconds: seconds });
        return;
      }
      const report = readReport(jsonFile);
      rmSync(jsonFile, { force: true });
      resolve(
        typeof report === 'string'
          ? { kind: 'failed', message: report, elapsedSeconds: seconds }
          : { kind: 'ok', phases: report.phases, report: report.report, config: report.config, elapsedSeconds: seconds },
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// From runs to outcomes to verdicts

/** The value printed for a metric: seconds, or a share / percentage for the fields that are not times. */
function metricText(metric: MetricRef, v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  if (metric.field === 'lockWaitShare' || metric.field === 'onCpuShare') return `${(v * 100).toFixed(2)}%`;
  if (metric.field === 'dipPct') return `${v.toFixed(1)}% dip`;
  return seconds(v);
}

function outcomeOf(row: ReproduceRow, variantArgs: (repeat: number) => string, repeats: number, results: ReadonlyMap<string, RunResult>): VariantOutcome {
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const res = results.get(variantArgs(r));
    if (res === undefined) return { kind: 'failed', message: 'not run' };
    if (res.kind === 'not-runnable') return { kind: 'not-runnable', message: res.message };
    if (res.kind === 'failed') return { kind: 'failed', message: res.message };
    const v = extractMetric(res.report, row.metric);
    if (v.kind !== 'ok') return v;
    samples.push(v.value);
  }
  return { kind: 'ok', samples };
}

/** The metric phase's vCPU faults in a variant's first run (null if it did not run or no vCPU ran in the phase). */
function faultsOf(row: ReproduceRow, key: string, results: ReadonlyMap<string, RunResult>): FaultCounts | null {
  const res = results.get(key);
  return res?.kind === 'ok' ? (res.phases.get(row.metric.phase)?.faults ?? null) : null;
}

interface RowResult {
  readonly row: ReproduceRow;
  readonly repeats: number;
  readonly commands: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Per column and variant, the metric phase's vCPU faults (first run). */
  readonly faults: Readonly<Record<string, Readonly<Record<string, FaultCounts | null>>>>;
  /** The calibrated column always; the bare one unless --quick skipped it. */
  readonly columns: { readonly calibrated: ColumnVerdict; readonly bare?: ColumnVerdict };
}

/** The columns a run uses: --quick runs only the default one, to stay a smoke test. */
function activeColumns(quick: boolean): readonly ColumnSpec[] {
  return quick ? COLUMNS.filter((c) => c.id === 'calibrated') : COLUMNS;
}

function commandLine(args: readonly string[]): string {
  const main = relative(process.cwd(), EMULATE_MAIN) || EMULATE_MAIN;
  return `node ${main} ${args.join(' ')} --json FILE -q`;
}

// ---------------------------------------------------------------------------------------------
// Printing

function seconds(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  return `${x.toFixed(x >= 1 ? 3 : x >= 0.01 ? 4 : 6)} s`;
}

function textTable(header: readonly string[], rows: readonly (readonly string[])[], leftAligned: ReadonlySet<number>): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: readonly string[]): string =>
    r
      .map((c, i) => (leftAligned.has(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)];
}

function formatRow(res: RowResult, quick: boolean): string[] {
  const { row } = res;
  const columns = activeColumns(quick);
  const lines: string[] = [];
  lines.push(`== ${row.id}: ${row.title}`);
  lines.push(`   source:    ${row.source}`);
  lines.push(`   published: ${row.publishedSetup}`);
  lines.push(`   metric:    ${row.metric.label} (phases["${row.metric.phase}"].${row.metric.field})`);
  lines.push(`   scaling:   ${quick ? quickScalingNote(row) : row.scaling}`);
  if (row.note !== undefined) lines.push(`   note:      ${row.note}`);
  const showFaults = columns.some((c) => row.variants.some((v) => res.faults[c.id]?.[v.id] != null));
  const header = [
    'variant',
    'models',
    'published',
    ...columns.map((c) => `ours, ${c.id}`),
    ...(showFaults ? columns.map((c) => `faults fast/slow, ${c.id}`) : []),
  ];
  const body = row.variants.map((v) => [
    v.id,
    v.label,
    metricText(row.metric, v.published),
    ...columns.map((c) => {
      const cv = res.columns[c.id]!;
      return cv.status === 'not-runnable' || cv.status === 'failed' ? '-' : metricText(row.metric, cv.medians[v.id]);
    }),
    ...(showFaults
      ? columns.map((c) => {
          const f = res.faults[c.id]?.[v.id];
          return f === null || f === undefined ? '-' : `${formatCount(f.fast)} / ${formatCount(f.slow)}`;
        })
      : []),
  ]);
  lines.push(...textTable(header, body, new Set([0, 1])).map((l) => `   ${l}`));
  const rHeader = ['ratio', 'published', ...columns.map((c) => `ours, ${c.id}`)];
  const rBody = row.ratios.map((spec, i) => [
    `${spec.num}/${spec.den}`,
    `${formatRatio(res.columns.calibrated.ratios[i]?.published ?? null)}${spec.publishedNote !== undefined ? ` ${spec.publishedNote}` : ''}`,
    ...columns.map((c) => {
      const r = res.columns[c.id]!.ratios[i];
      return r === undefined ? '-' : `${formatRatio(r.ours)}${r.factor !== null ? ` (${r.factor.toFixed(2)}x published)` : ''}`;
    }),
  ]);
  lines.push(...textTable(rHeader, rBody, new Set([0])).map((l) => `   ${l}`));
  lines.push(`   tolerance: ${res.columns.calibrated.tolerance}${res.repeats > 1 ? `; medians of ${res.repeats} interleaved runs` : ''}`);
  for (const c of columns) {
    const cv = res.columns[c.id]!;
    lines.push(`   verdict, ${c.label}: ${statusWord(cv.status)}: ${cv.detail}`);
  }
  lines.push('   commands:');
  for (const c of columns) for (const v of row.variants) lines.push(`     ${v.id}, ${c.id}: ${res.commands[c.id]?.[v.id] ?? '-'}`);
  return lines;
}

/** The April 2024 group's verdict (reproduce_rows.ts apr24GroupVerdict), per column, when its rows ran. */
function apr24Lines(results: readonly RowResult[], columns: readonly ColumnSpec[]): string[] {
  const rows = results.filter((r) => r.row.id.startsWith('apr24-'));
  if (rows.length === 0) return [];
  const lines = ['== apr24 (group): per-word / whole CLEAR CPU time across the three fault models'];
  for (const c of columns) {
    const ours: Record<string, number | null> = {};
    for (const r of rows) ours[r.row.id] = r.columns[c.id]?.ratios[0]?.ours ?? null;
    const v = apr24GroupVerdict(ours);
    lines.push(`   verdict, ${c.label}: ${v.passed === null ? 'not judged' : v.passed ? 'reproduced' : 'missed'}: ${v.detail}`);
  }
  return [...lines, ''];
}

function summaryTable(results: readonly RowResult[]): string[] {
  const body: string[][] = [];
  for (const res of results) {
    res.row.ratios.forEach((spec, i) => {
      const cal = res.columns.calibrated;
      const bare = res.columns.bare;
      const cell = (cv: ColumnVerdict | undefined): string => {
        if (cv === undefined) return 'skipped (--quick)';
        if (cv.status === 'not-runnable') return 'not runnable';
        if (cv.status === 'failed') return 'failed';
        return formatRatio(cv.ratios[i]?.ours ?? null);
      };
      const verdict = (cv: ColumnVerdict): string =>
        cv.status === 'not-runnable'
          ? `not runnable: ${cv.detail}`
          : cv.status === 'calibration'
            ? `${statusWord(cv.status)} (rule: ${ruleWord(cv.rulePassed)})`
            : statusWord(cv.status);
      body.push([
        i === 0 ? res.row.id : '',
        `${spec.num}/${spec.den}`,
        formatRatio(cal.ratios[i]?.published ?? null),
        cell(cal),
        cell(bare),
        i === 0 ? toleranceShort(res.row.judgement) : '',
        i === 0 ? verdict(cal) : '',
        i === 0 ? (bare === undefined ? '-' : verdict(bare) === verdict(cal) ? 'same' : verdict(bare)) : '',
      ]);
    });
  }
  return textTable(
    ['row', 'ratio', 'published', 'ours', 'ours, --host-costs none', 'tolerance', 'verdict (host costs calibrated)', 'verdict, none'],
    body,
    new Set([0, 1, 5, 6, 7]),
  );
}

/** Rows per verdict in one column (the bare column is absent with --quick). */
function counts(results: readonly RowResult[], column: ColumnSpec['id']): Record<VerdictStatus, number> {
  const c: Record<VerdictStatus, number> = { reproduced: 0, missed: 0, calibration: 0, printed: 0, 'not-runnable': 0, failed: 0 };
  for (const r of results) {
    const v = r.columns[column];
    if (v !== undefined) c[v.status]++;
  }
  return c;
}

function countLine(c: Record<VerdictStatus, number>): string {
  return (
    `${c.reproduced} reproduced, ${c.missed} missed, ${c.calibration} calibration point(s) (not counted), ${c.printed} printed without a verdict, ` +
    `${c['not-runnable']} not runnable, ${c.failed} failed`
  );
}

// ---------------------------------------------------------------------------------------------

async function main(argv: readonly string[]): Promise<number> {
  let cli: Cli | 'help';
  try {
    cli = parseCli(argv);
  } catch (err) {
    if (errorCode(err) === 'ERR_INVALID_OPTION') {
      process.stderr.write(`reproduce: ${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (cli === 'help') {
    process.stdout.write(`${HELP}\n`);
    return EXIT_OK;
  }
  const { quick, repeat } = cli;
  const rows = selectRows(REPRODUCE_ROWS, cli.rows, quick);
  if (rows.length === 0) {
    process.stderr.write(
      `reproduce: --rows: no selected row has a --quick version (those that do: ${selectRows(REPRODUCE_ROWS, [], true)
        .map((r) => r.id)
        .join(', ')})\n`,
    );
    return EXIT_USAGE;
  }
  const columns = activeColumns(quick);
  const plan = planRuns(rows, columns, quick, repeat);
  const startedAt = new Date().toISOString();
  const t0 = performance.now();

  process.stdout.write(
    `reproduce${quick ? ' --quick' : ''}: ${rows.length} rows, ${plan.length} emulator runs, one at a time ` +
      `(${availableParallelism()} cores, Node ${process.version}); ${
        quick
          ? `--quick runs only the column ${columns.map((c) => c.label).join('')}`
          : `every row in two columns: ${columns.map((c) => c.label).join(' and ')}`
      }\n` +
      `Scaling: the published runs used up to 96 vCPUs x 1 GiB; here each row runs fewer vCPUs (and less memory per vCPU at 16 and 32)\n` +
      `with the same backing page size. Seconds do not carry over; the ratios between variants do. Each row says how it was scaled.\n\n`,
  );

  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    // Only the child this process started, by its own handle.
    currentChild?.kill('SIGINT');
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  const dir = mkdtempSync(join(tmpdir(), 'reproduce-'));
  const results = new Map<string, RunResult>();
  try {
    for (const [i, run] of plan.entries()) {
      if (interrupted) break;
      const res = await runEmulator(run.args, join(dir, 'run.json'));
      results.set(run.key, res);
      process.stderr.write(`${progressLine(i, plan.length, run, res)}\n`);
    }
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    rmSync(dir, { recursive: true, force: true });
  }
  if (interrupted) {
    process.stderr.write('reproduce: interrupted\n');
    return EXIT_INTERRUPTED;
  }

  const rowResults: RowResult[] = rows.map((row) => {
    const repeats = rowRepeats(row, quick, repeat);
    const commands: Record<string, Record<string, string>> = {};
    const faults: Record<string, Record<string, FaultCounts | null>> = {};
    const verdicts: Partial<Record<ColumnSpec['id'], ColumnVerdict>> = {};
    for (const column of columns) {
      const outcomes: Record<string, VariantOutcome> = {};
      commands[column.id] = {};
      faults[column.id] = {};
      for (const variant of row.variants) {
        const args = runArgs(row, variant, column, quick);
        commands[column.id]![variant.id] = commandLine(args);
        faults[column.id]![variant.id] = faultsOf(row, runKey(args, 0), results);
        outcomes[variant.id] = outcomeOf(row, (r) => runKey(args, r), repeats, results);
      }
      verdicts[column.id] = judgeColumn(row, outcomes);
    }
    return { row, repeats, commands, faults, columns: { calibrated: verdicts.calibrated!, ...(verdicts.bare !== undefined ? { bare: verdicts.bare } : {}) } };
  });

  const out: string[] = [];
  out.push(...modelLines(plan, results, columns), '');
  for (const r of rowResults) out.push(...formatRow(r, quick), '');
  out.push(...apr24Lines(rowResults, columns));
  const wall = (performance.now() - t0) / 1000;
  const c = counts(rowResults, 'calibrated');
  out.push(
    '== Summary (host costs calibrated; the none column is the bare emulator)',
    ...summaryTable(rowResults),
    '',
    `host costs calibrated: ${countLine(c)}`,
    ...(quick ? [] : [`--host-costs none:     ${countLine(counts(rowResults, 'bare'))}`]),
    `${plan.length} runs in ${wall.toFixed(1)} s`,
  );
  process.stdout.write(`${out.join('\n')}\n`);

  if (cli.json !== undefined) {
    const doc = {
      tool: 'kvm-eager-split-emu reproduce',
      schemaVersion: 1,
      startedAt,
      quick,
      minRepeat: repeat,
      host: { cores: availableParallelism(), nodeVersion: process.version },
      wallSeconds: wall,
      runs: plan.length,
      counts: { calibrated: c, bare: quick ? null : counts(rowResults, 'bare') },
      runLog: plan.map((run) => {
        const res = results.get(run.key);
        return {
          command: commandLine(run.args),
          repeat: run.repeat,
          uses: run.uses,
          status: res?.kind ?? 'not run',
          elapsedSeconds: res?.elapsedSeconds ?? null,
          message: res !== undefined && res.kind !== 'ok' ? res.message : null,
          config: res?.kind === 'ok' ? res.config : null,
        };
      }),
      rows: rowResults.map((r) => ({
        id: r.row.id,
        title: r.row.title,
        source: r.row.source,
        publishedSetup: r.row.publishedSetup,
        publishedVcpus: r.row.publishedVcpus,
        metric: r.row.metric,
        scaling: quick ? quickScalingNote(r.row) : r.row.scaling,
        calibration: r.row.calibration,
        judgement: r.row.judgement,
        repeats: r.repeats,
        variants: r.row.variants.map((v) => ({ id: v.id, label: v.label, published: v.published })),
        commands: r.commands,
        faults: r.faults,
        columns: r.columns,
        note: r.row.note ?? null,
      })),
    };
    writeFileSync(cli.json, `${JSON.stringify(doc, null, 2)}\n`);
  }
  return c.failed > 0 || [...rowResults].some((r) => r.columns.bare?.status === 'failed') ? EXIT_FAILED : EXIT_OK;
}

/**
 * What the runs say they modelled, per column: the report's `config` values that differ between
 * the columns or describe the model (dirty tracking, host costs), so the printout shows which
 * host costs the calibrated column really used. Keys the emulator does not report are skipped.
 */
function modelLines(plan: readonly PlannedRun[], results: ReadonlyMap<string, RunResult>, columns: readonly ColumnSpec[]): string[] {
  const lines: string[] = [];
  for (const column of columns) {
    const run = plan.find((p) => p.uses.some((u) => u.columnId === column.id) && results.get(p.key)?.kind === 'ok');
    const res = run === undefined ? undefined : results.get(run.key);
    if (res?.kind !== 'ok') {
      lines.push(`model, ${column.label}: no run of this column completed`);
      continue;
    }
    const keys = Object.keys(res.config).filter((k) => /host|dirtyTrack|kernel/i.test(k));
    const shown = keys.map((k) => `${k} ${JSON.stringify(res.config[k])}`).join(', ');
    lines.push(`model, ${column.label}: ${shown === '' ? 'the reports name no host costs or dirty-tracking mode' : shown}`);
  }
  return lines;
}

function progressLine(i: number, total: number, run: PlannedRun, res: RunResult): string {
  const first = run.uses[0]!;
  const more = new Set(run.uses.map((u) => u.rowId));
  more.delete(first.rowId);
  const shared = more.size > 0 ? ` (+${[...more].join(', ')})` : '';
  const what = res.kind === 'ok' ? 'ok' : res.kind === 'not-runnable' ? `not runnable: ${res.message}` : `FAILED: ${res.message}`;
  return (
    `reproduce [${i + 1}/${total}] ${first.rowId}${shared} ${first.variantId}, ${first.columnId}` +
    `${run.repeat > 0 ? `, repeat ${run.repeat + 1}` : ''}: ${res.elapsedSeconds.toFixed(1)} s, ${what}`
  );
}

main(process.argv.slice(2)).then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    process.stderr.write(`reproduce: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT_FAILED);
  },
);
