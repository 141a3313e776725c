/**
 * Many runs from one command line: `--compare` (every design, or the --split-alloc list, on the
 * same configuration and seed) and sweeps (comma lists for --split-alloc, --cache-capacity,
 * --levels, --vcpus, --pressure). main.ts hands the raw options here when wantsManyRuns() says so.
 *
 * Steps:
 *   1. expand the lists into runs (sweep.ts) and resolve every run's options and geometry, so a
 *      bad item or a guest too big exits 2 before anything runs (main.ts has checked every
 *      output file already: output_file.ts);
 *   2. run them one after another (each its own VM and threads), a one-line summary per run on
 *      stderr; Ctrl-C stops the current run and the sweep;
 *   3. print the compare tables and one verdict per run against drop-always (compare.ts);
 *   4. write --csv FILE (one row per run) and --html FILE (html_report.ts: the designs overlaid).
 * `--compare` also turns on the steady workload: vCPU impact DURING splitting is the point of the
 * comparison, and vCPUs only run during splitting in steady mode. A plain sweep keeps the
 * selftest flow unless --steady is given.
 *
 * Exit codes as main.ts: 0; 1 a run failed or an invariant/dirty-log check failed; 2 bad option or
 * guest too big; 3 stuck; 130 interrupted.
 */
import { formatKernel } from '../kernel_version.js';
import { formatHostCosts, HOST_COSTS_CALIBRATION } from '../mmu/host_costs.js';
import { errorCode, type EmulatorError, invalidOption } from '../errors.js';
import { SPLIT_ALLOC_DESIGN_ORDER } from '../mmu/split_alloc_designs.js';
import { resolveRunConfig, signalExitCode } from './config.js';
import type { RunConfig } from './config.js';
import { compareRow, formatCompareTables, labelRows, medianRow, verdictLines } from './compare.js';
import type { CompareRow } from './compare.js';
import { compareCsv, writeCsv } from './csv.js';
import { writeHtmlReport } from './html_report.js';
import { OUTPUT_FILE_OPTIONS } from './output_file.js';
import { corruptionFound } from './report_model.js';
import { formatSize, resolveOptions } from './options.js';
import type { RawValues } from './options.js';
import { Progress } from './progress.js';
import { runEmulation } from './run.js';
import { expandSweep, isSweep, runSweep } from './sweep.js';
import type { SweepResult, SweepRun } from './sweep.js';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_STUCK = 3;

/** Should this command line run many emulations (compare, a sweep, or --repeat)? Throws ERR_INVALID_OPTION on an empty list item. */
export function wantsManyRuns(raw: RawValues): boolean {
  return raw['compare'] === true || isSweep(raw) || (typeof raw['repeat'] === 'string' && raw['repeat'].trim() !== '1');
}

export interface ManyRunsIo {
  readonly stdout: { write(s: string): boolean };
  readonly stderr: { write(s: string): boolean; readonly isTTY?: boolean; readonly columns?: number };
  readonly signal?: AbortSignal;
  /** EMULATE_DEBUG=1: stack traces with failures. */
  readonly debug?: boolean;
}

/** The raw values every run shares, with --compare's implications applied. */
function baseRaw(raw: RawValues): RawValues {
  // Files of one run's output (output_file.ts): many runs would overwrite them, so they are refused.
  for (const [long, holds] of Object.entries(OUTPUT_FILE_OPTIONS)) {
    if (holds === 'one run' && raw[long] !== undefined) {
      throw invalidOption(`--${long}`, "writes one run's output; with --compare or a sweep use --csv FILE (one row per run)");
    }
  }
  return raw['compare'] === true ? { ...raw, steady: true } : raw;
}

/** Steps 1-4. Returns the exit code. */
async function runManyMain(raw: RawValues, io: ManyRunsIo): Promise<number> {
  let results: SweepResult<RunConfig>[];
  const quiet = raw['quiet'] === true;
  const csv = typeof raw['csv'] === 'string' ? raw['csv'] : undefined;
  const html = typeof raw['html'] === 'string' ? raw['html'] : undefined;
  let runs: SweepRun[] = [];
  let configs: RunConfig[] = [];
  let repeat = 1;
  try {
    const base = baseRaw(raw);
    const combos = expandSweep(base, raw['compare'] === true ? { compareDesigns: SPLIT_ALLOC_DESIGN_ORDER } : {});
    // Resolve everything now: a bad item exits 2 before the first run.
    const comboConfigs = combos.map((r) => resolveRunConfig(resolveOptions(r.raw)));
    repeat = comboConfigs[0]!.options.repeat;
    // --repeat: every combination once, then again (interleaved, so slow drifts of a shared
    // machine hit every design alike).
    runs = Array.from({ length: repeat }, () => combos).flat();
    configs = Array.from({ length: repeat }, () => comboConfigs).flat();
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ERR_INVALID_OPTION' || code === 'ERR_TOO_BIG' || code === 'ERR_INVALID_ARG') {
      io.stderr.write(`emulate: ${(err as Error).message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  // Every run's design in its label, swept or not.
  const swept = runs.map((r, i) => ({ 'split-alloc': configs[i]!.options.splitAlloc, ...r.swept }));
  const labels = labelRows(swept);
  if (!quiet) io.stdout.write(`${banner(configs[0]!, runs.length, raw['compare'] === true)}\n`);
  // Already resolved above (so that errors exit 2 before any run); runSweep just looks them up.
  const configOf = new Map(runs.map((r, i) => [r.raw, configs[i]!]));
  try {
    results = await runSweep(runs, {
      resolve: (r) => configOf.get(r)!,
      run: async (cfg, index, total) => {
        const live = !quiet && io.stderr.isTTY === true;
        const progress = new Progress({ enabled: live, stream: io.stderr });
        progress.start();
        try {
          const report = await runEmulation(cfg, { sinks: live ? [progress] : [], ...(io.signal !== undefined ? { signal: io.signal } : {}) });
          progress.stop();
          if (!quiet) {
            const row = compareRow(report, swept[index], labels[index]);
            io.stderr.write(
              `emulate: run ${index + 1}/${total} ${labels[index]}: split ${row.splitterSeconds.toFixed(4)} s, wall ${report.totals.wallSeconds.toFixed(1)} s, invariants ${row.invariantsOk ? 'ok' : 'VIOLATED'}\n`,
            );
          }
          return report;
        } finally {
          progress.stop();
        }
      },
    });
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ERR_ABORTED' && io.signal?.aborted === true) {
      io.stderr.write('emulate: interrupted; every worker stopped\n');
      return signalExitCode('SIGINT');
    }
    const e = err instanceof Error ? err : new Error(String(err));
    io.stderr.write(`emulate: ${code ?? 'ERR_INTERNAL'}: ${e.message}\n`);
    const stack = (e as EmulatorError).details?.['stack'] ?? e.stack;
    if (io.debug === true && typeof stack === 'string') io.stderr.write(`${stack}\n`);
    return code === 'ERR_STUCK' ? EXIT_STUCK : EXIT_FAILED;
  }
  const rows: CompareRow[] = results.map((r, i) => compareRow(r.report, swept[i], labels[i]));
  // One table row per combination: the median of its repeats.
  const combos = rows.length / repeat;
  const shown = Array.from({ length: combos }, (_, c) => medianRow(Array.from({ length: repeat }, (_, k) => rows[k * combos + c]!)));
  const how =
    repeat > 1
      ? `medians of ${repeat} runs each, with the run-to-run spread ((max - min) / median) of split time and fault p99`
      : 'one run each: with --repeat N the verdicts give medians and the run-to-run spread, the measure of noise here';
  io.stdout.write(
    `${repeat > 1 ? `Medians of ${repeat} runs per row\n` : ''}${formatCompareTables(shown).join('\n')}\n\nVerdicts (against drop-always, the Linux 6.11+ design; ${how})\n`,
  );
  const verdicts = verdictLines(shown);
  io.stdout.write(`${verdicts.join('\n')}\n`);
  const o0 = configs[0]!.options;
  io.stdout.write(`Dirty tracking ${o0.dirtyTrack}; host costs ${formatHostCosts(o0.hostCosts)} (${HOST_COSTS_CALIBRATION})\n`);
  if (csv !== undefined) {
    writeCsv(csv, compareCsv(results.map((r, i) => ({ report: r.report, row: rows[i]!, repeat: Math.floor(i / combos) + 1 }))));
    if (!quiet) io.stderr.write(`emulate: wrote ${rows.length} row(s) to ${csv}\n`);
  }
  // The charts overlay the first repeat of every combination (one line per design); the tables give the medians.
  if (html !== undefined) {
    await writeHtmlReport(
      html,
      rows.slice(0, combos).map((row, i) => ({ label: row.label, report: results[i]!.report, splitPhase: row.splitPhase })),
      { rows: shown, verdicts },
    );
    if (!quiet) io.stderr.write(`emulate: wrote the HTML report to ${html}\n`);
  }
  const bad = results.filter((r) => !r.report.invariants.ok || corruptionFound(r.report).length > 0 || r.report.dirtyLog.ok === false);
  if (bad.length > 0) {
    io.stderr.write(`emulate: ${bad.length} run(s) failed the invariant or dirty-log check: ${bad.map((r) => labels[results.indexOf(r)]).join(', ')}\n`);
    return EXIT_FAILED;
  }
  return EXIT_OK;
}

function banner(cfg: RunConfig, runs: number, compare: boolean): string {
  const o = cfg.options;
  return (
    `emulate: ${compare ? 'compare' : 'sweep'}: ${runs} run(s), one after another, seed ${o.seed}; Linux ${formatKernel(o.kernel)}; first run: ${o.vcpus} vCPUs x ${formatSize(o.memoryPerVcpuBytes)}, ` +
    `${o.backing}, ${o.levels}-level TDP, ${o.iterations} iterations, ` +
    `${o.manualProtect ? 'manual-protect + initially-set (split in CLEAR, write lock)' : 'no manual-protect (split at enable, read lock)'}, ` +
    `pressure ${o.pressure}${o.steady ? `, steady workload (${o.steadySeconds} s windows)` : ''}`
  );
}

/** From main.ts: runManyMain on the process's streams, Ctrl-C (SIGINT/SIGTERM) stopping the current run. */
export async function runManyFromCli(raw: RawValues, debug: boolean): Promise<number> {
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    // A second Ctrl-C does not wait for the workers to stop.
    if (interrupts > 1) process.exit(signalExitCode('SIGINT'));
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await runManyMain(raw, { stdout: process.stdout, stderr: process.stderr, signal: abort.signal, debug });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
