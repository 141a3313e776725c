/**
 * `npm run emulate`: parse, validate, run, print, exit.
 *
 * Exit codes (also in --help): 0 success; 1 a worker failed, the MMU was corrupted (a poison read, a
 * translation error or a lost dirty page), the dirty log disagreed with the
 * pages written, or an invariant was violated; 2 a bad option or a guest too big for this host
 * (one line naming the option, never a stack trace); 3 the watchdog saw a stuck phase;
 * 130 interrupted by Ctrl-C (every worker is stopped first).
 *
 * EMULATE_DEBUG=1 adds stack traces to failure messages; EMULATE_FAULT_INJECT (tests only) makes
 * a worker fail on purpose (messages.ts lists the values); EMULATE_TEST_STAT_ROW (tests only)
 * appends one counter row to the table (src/stats/worker_stats.ts).
 */
import { formatKernel } from '../kernel_version.js';
import { formatHostCosts } from '../mmu/host_costs.js';
import { errorCode, EmulatorError } from '../errors.js';
import { resolveRunConfig, signalExitCode } from './config.js';
import type { RunConfig } from './config.js';
import { parseFaultInjection } from './messages.js';
import type { FaultInjection } from './messages.js';
import { formatBytes, formatSize, helpText, parseCommandLine, resolveOptions } from './options.js';
import { Progress } from './progress.js';
import { corruptionFound } from './report_model.js';
import { runEmulation } from './run.js';
import { runManyFromCli, wantsManyRuns } from './compare_main.js';
import { csvSink, emitReport, jsonSink, textSink, timelineCsvSink, traceSink } from './report_sink.js';
import type { ReportSink } from './report_sink.js';
import { writeHtmlReport } from './html_report.js';
import { checkOutputFiles } from './output_file.js';
import type { RawValues } from './options.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_STUCK = 3;

const debug = process.env['EMULATE_DEBUG'] === '1';

function fail(message: string): void {
  process.stderr.write(`emulate: ${message}\n`);
}

/** Options and geometry, or an exit code for bad input. */
function configure(argv: readonly string[]): RunConfig | number | { readonly many: RawValues } {
  try {
    const cmd = parseCommandLine(argv);
    if (cmd.kind === 'help') {
      process.stdout.write(`${helpText()}\n`);
      return EXIT_OK;
    }
    // Every output file, before anything runs (single runs, compares and sweeps alike).
    checkOutputFiles(cmd.raw);
    // --compare and comma lists: many runs and the compare table (compare_main.ts).
    if (wantsManyRuns(cmd.raw)) return { many: cmd.raw };
    const options = resolveOptions(cmd.raw);
    let faultInject: FaultInjection | null;
    try {
      faultInject = parseFaultInjection(process.env['EMULATE_FAULT_INJECT']);
    } catch (err) {
      throw new EmulatorError('ERR_INVALID_OPTION', (err as Error).message);
    }
    return resolveRunConfig(options, faultInject);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ERR_INVALID_OPTION' || code === 'ERR_TOO_BIG' || code === 'ERR_INVALID_ARG') {
      fail((err as Error).message);
      return EXIT_USAGE;
    }
    throw err;
  }
}

function banner(cfg: RunConfig): string {
  const o = cfg.options;
  return (
    `emulate: Linux ${formatKernel(o.kernel)}, ${o.vcpus} vCPUs x ${formatSize(o.memoryPerVcpuBytes)}, ${o.backing}, ${o.memslots} memslot(s), ${o.levels}-level TDP, ` +
    `${o.iterations} iterations, eager split ${o.eagerSplit ? 'on' : 'off'} (${o.splitAlloc}), ` +
    `${o.manualProtect ? 'manual-protect + initially-set' : 'no manual-protect'}, -w ${o.writePercent}${o.randomAccess ? ' -a' : ''}` +
    `${o.vcpusRunDuringDisable ? ' -e' : ''}${o.steady ? ', steady' : ''}, pressure ${o.pressure}, seed ${o.seed}, ` +
    `workload ${o.workload}, dirty tracking ${o.dirtyTrack}, host costs ${formatHostCosts(o.hostCosts)}; ` +
    `page-table pool ${cfg.footprint.tables} tables (${formatBytes(cfg.footprint.bytes)}), ${formatBytes(cfg.availableBytes)} available`
  );
}

async function main(argv: readonly string[]): Promise<number> {
  const configured = configure(argv);
  if (typeof configured === 'number') return configured;
  if ('many' in configured) return runManyFromCli(configured.many, debug);
  const cfg = configured;
  const o = cfg.options;
  if (!o.quiet) process.stdout.write(`${banner(cfg)}\n`);

  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    // A second Ctrl-C does not wait for the workers to stop.
    if (interrupts > 1) process.exit(signalExitCode('SIGINT'));
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const live = !o.quiet && process.stderr.isTTY === true;
  const progress = new Progress({ enabled: live, stream: process.stderr });
  // Every output of the run: the progress line (live), the text report, --json, --csv.
  const sinks: ReportSink[] = [...(live ? [progress] : []), textSink(process.stdout)];
  if (o.json !== undefined) sinks.push(jsonSink(o.json));
  if (o.csv !== undefined) sinks.push(csvSink(o.csv));
  if (o.timelineCsv !== undefined) sinks.push(timelineCsvSink(o.timelineCsv));
  if (o.trace !== undefined) sinks.push(traceSink(o.trace));
  progress.start();
  try {
    const report = await runEmulation(cfg, { sinks, signal: abort.signal });
    progress.stop();
    emitReport(sinks, report);
    if (o.html !== undefined) await writeHtmlReport(o.html, [{ label: String(report.config['splitAlloc']), report, splitPhase: null }]);
    if (!report.invariants.ok) {
      fail(`invariant checker found ${report.invariants.violationCount} violation(s)`);
      return EXIT_FAILED;
    }
    const corrupt = corruptionFound(report);
    if (corrupt.length > 0) {
      fail(`the MMU was corrupted: ${corrupt.join(', ')} (see the Invariants section)`);
      return EXIT_FAILED;
    }
    if (report.dirtyLog.ok === false) {
      fail('the dirty log disagrees with the pages the vCPUs wrote (see the Dirty log table)');
      return EXIT_FAILED;
    }
    return EXIT_OK;
  } catch (err) {
    progress.stop();
    const code = errorCode(err);
    const e = err instanceof Error ? err : new Error(String(err));
    if (code === 'ERR_ABORTED' && abort.signal.aborted) {
      fail('interrupted; every worker stopped');
      return signalExitCode('SIGINT');
    }
    // Node's system errors already start with their code ("ENOENT: no such file ..."): say it once.
    fail(code !== undefined && e.message.startsWith(`${code}:`) ? e.message : `${code ?? 'ERR_INTERNAL'}: ${e.message}`);
    const stack = (e as EmulatorError).details?.['stack'] ?? e.stack;
    if (debug && typeof stack === 'string') process.stderr.write(`${stack}\n`);
    return code === 'ERR_STUCK' ? EXIT_STUCK : EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

/** Exit once stdout has drained (a piped report must not be cut short). */
function exitWith(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main(process.argv.slice(2)).then(exitWith, (err: unknown) => {
  fail(`internal error: ${err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err)}`);
  exitWith(EXIT_FAILED);
});
