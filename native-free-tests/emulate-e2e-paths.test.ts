// End to end: the paths of `npm run emulate` that hand-picked unit tests do not reach.
//  - Output files: every file option (--json, --csv, --timeline-csv, and any later one listed in
//    output_file.ts) is checked before anything runs: a path that cannot be written exits 2 with
//    one line naming the option, no stack trace, no banner and no report, for single runs,
//    compares and sweeps alike.
//  - Pool exhaustion in a real run (--pool-tables): eager splitting stops with ENOMEM and
//    write-protects the huge pages it could not split; the run completes with intact mappings.
//  - --resched-ms and --yield-on-contention change what the split walk does, seen in the report's
//    per-phase yields, each against a control run that differs only in the option.
//  - --compare and --repeat run end to end and print their tables and CSV rows.
// Every run is small (2-5 vCPUs, a few MiB each).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { errorCode } from '../src/errors.js';
import { OPTION_SPECS, parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { checkOutputPath, OUTPUT_FILE_OPTIONS } from '../src/emulate/output_file.js';
import { runCli, runWithJson } from './_emulate.js';
import type { CliResult, Json } from './_emulate.js';

const dir = mkdtempSync(join(tmpdir(), 'emulate-paths-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** Paths no run can write, even as root: each fails a different way. */
function unwritablePaths(): Record<string, string> {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const sub = join(dir, 'a-directory');
  mkdirSync(sub, { recursive: true });
  return {
    'a missing directory': join(dir, 'no-such-dir', 'out.csv'),
    'under a regular file': join(file, 'out.csv'),
    'a directory': sub,
    // /proc refuses creating files to root too (access(2) would say yes).
    '/proc': '/proc/emulate-test-out.csv',
  };
}

/** A run that would take many seconds if it started (so "nothing ran" is visible). */
const WOULD_RUN_LONG = ['-v', '2', '-b', '64M', '-i', '20'];

function assertRefusedBeforeRun(t: import('ava').ExecutionContext, r: CliResult, option: string, what: string): void {
  t.is(r.signal, null, what);
  t.is(r.code, 2, `${what}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  t.is(lines.length, 1, `${what}: one line: ${r.stderr}`);
  t.true(lines[0]!.startsWith(`emulate: ${option}: `), `${what}: ${lines[0]}`);
  t.false(/\n\s+at /.test(r.stderr), `${what}: no stack trace`);
  t.is(r.stdout, '', `${what}: no banner, no report`);
  // The run it would have been takes far longer than starting node: this bounds "nothing ran".
  t.true(r.ms < 15_000, `${what}: refused in ${Math.round(r.ms)} ms`);
}

test('every option whose value is a FILE is in the checked list, and only those', (t) => {
  const fileOptions = OPTION_SPECS.filter((s) => s.arg === 'FILE').map((s) => s.long);
  t.deepEqual([...fileOptions].sort(), Object.keys(OUTPUT_FILE_OPTIONS).sort());
});

test('checkOutputPath: each unwritable path is ERR_INVALID_OPTION, one line naming the option; a writable one is left as it was', (t) => {
  for (const [what, path] of Object.entries(unwritablePaths())) {
    const err = t.throws(() => checkOutputPath('--csv', path), undefined, what);
    t.is(errorCode(err), 'ERR_INVALID_OPTION', what);
    t.true(err.message.startsWith('--csv: '), err.message);
    t.false(err.message.includes('\n'), err.message);
    t.false(/E[A-Z]+: E[A-Z]+:/.test(err.message), `the code once: ${err.message}`);
  }
  const fresh = join(dir, 'fresh.csv');
  checkOutputPath('--csv', fresh);
  t.throws(() => readFileSync(fresh), undefined, 'the probe leaves no file behind');
  const existing = join(dir, 'existing.csv');
  writeFileSync(existing, 'keep me');
  checkOutputPath('--csv', existing);
  t.is(readFileSync(existing, 'utf8'), 'keep me', 'an existing file is not truncated by the check');
});

for (const long of Object.keys(OUTPUT_FILE_OPTIONS)) {
  test.serial(`--${long} to a path that cannot be written: exit 2 before the run, one line naming it`, async (t) => {
    // The case (a missing directory) and one that access(2) would pass; the test above has the others.
    const paths = unwritablePaths();
    for (const what of ['a missing directory', '/proc']) {
      const path = paths[what]!;
      const r = await runCli([...WOULD_RUN_LONG, `--${long}`, path], { timeoutMs: 60_000 });
      assertRefusedBeforeRun(t, r, `--${long}`, `${what} (${path})`);
    }
  });
}

test.serial('compares and sweeps check their output files before the first run too', async (t) => {
  const bad = '/proc/emulate-test-out.csv';
  for (const [args, option] of [
    [['--compare', '--csv', bad], '--csv'],
    [['--split-alloc', 'drop-always,cache', '--csv', bad], '--csv'],
    [['--repeat', '2', '--csv', join(dir, 'no-such-dir', 'x.csv')], '--csv'],
    // One run's timeline has no place in many runs: refused like --json (and never silently dropped).
    [['--compare', '--timeline-csv', join(dir, 'timeline.csv')], '--timeline-csv'],
  ] as const) {
    const r = await runCli([...WOULD_RUN_LONG, ...args], { timeoutMs: 60_000 });
    assertRefusedBeforeRun(t, r, option, args.join(' '));
  }
});

test.serial('pool exhaustion in a real run: the split stops with ENOMEM, write-protects instead, and the run completes intact', async (t) => {
  // 2 vCPUs x 4M (4 huge pages): 70 tables hold the tree and the vCPUs' caches with little to
  // spare, so the splitter's allocations fail (at 40 the vCPU faults fail too, ERR_ENOMEM).
  const r = await runWithJson(['-v', '2', '-b', '4M', '--pool-tables', '70'], { timeoutMs: 60_000 });
  t.is(r.code, 0, r.stderr);
  const rep = r.report;
  t.is(rep.pool.capacity, 70);
  t.true(rep.pool.emptyHits > 0, 'allocations found the pool empty');
  t.true(rep.split.splitEnomem > 0, 'eager splitting stopped with ENOMEM');
  t.true(rep.invariants.ok, rep.invariants.violations.join('; '));
  t.is(rep.invariants.xlateErrors, 0, 'every mapping still translates to its backing');
  t.is(rep.invariants.poisonReads, 0);
  t.is(rep.dirtyLog.ok, true, 'writes to the unsplit, write-protected huge pages were still logged');
  t.is(rep.dirtyLog.lostDirty, 0);
  t.regex(r.stdout, /^split ENOMEM\s+[1-9]/m);
  // Control: the default pool never runs out on the same run.
  const ctl = await runWithJson(['-v', '2', '-b', '4M'], { timeoutMs: 60_000 });
  t.is(ctl.code, 0, ctl.stderr);
  t.is(ctl.report.split.splitEnomem, 0);
  t.is(ctl.report.pool.emptyHits, 0);
});

test('--pool-tables rejects bad values with ERR_INVALID_OPTION (exit 2) naming the option', (t) => {
  for (const v of ['0', '-3', 'many', '4294967296', '1.5']) {
    const err = t.throws(() => {
      const cmd = parseCommandLine([`--pool-tables=${v}`]);
      if (cmd.kind === 'run') resolveOptions(cmd.raw);
    });
    t.is(errorCode(err), 'ERR_INVALID_OPTION', v);
    t.regex(err.message, /^--pool-tables: [^\n]+$/, v);
  }
  const cmd = parseCommandLine(['--pool-tables', '70']);
  t.is(cmd.kind === 'run' ? resolveOptions(cmd.raw).poolTables : null, 70);
});

/** Yields of the split walk in the phase named `name` (per-phase worker counters). */
function yieldsIn(report: Json, name: string): number {
  const p = (report.phases as Json[]).find((x) => x.name === name);
  return p?.counters.yields ?? 0;
}

test.serial('--resched-ms: with more runnable threads than cores, a 0 ms slice makes the split walk yield; a 60 s one never does', async (t) => {
  // -g: eager splitting runs when dirty logging is enabled, one long walk under the read lock;
  // --steady: the vCPUs are runnable meanwhile, more of them than the host has cores.
  const vcpus = String(availableParallelism() + 2);
  const base = ['-v', vcpus, '-b', '2M', '-g', '--steady', '--steady-seconds', '0.1', '--split-alloc', 'cache'];
  const fast = await runWithJson([...base, '--resched-ms', '0'], { timeoutMs: 90_000 });
  t.is(fast.code, 0, fast.stderr);
  t.is(fast.report.config.reschedMs, 0);
  const slow = await runWithJson([...base, '--resched-ms', '60000'], { timeoutMs: 90_000 });
  t.is(slow.code, 0, slow.stderr);
  t.log(`enable-time yields: ${yieldsIn(fast.report, 'enable')} with a 0 ms slice, ${yieldsIn(slow.report, 'enable')} with 60 s`);
  t.true(yieldsIn(fast.report, 'enable') > 0, `yields with 0 ms: ${yieldsIn(fast.report, 'enable')}`);
  t.is(yieldsIn(slow.report, 'enable'), 0, 'the control never used up its slice');
  t.true(fast.report.invariants.ok && slow.report.invariants.ok);
});

test.serial('--yield-on-contention: the split walk yields to queued mmu_lock writers (host invalidations); without it, it does not', async (t) => {
  // Host MMU-notifier invalidations take mmu_lock for write many times during the long enable-time
  // split (under the read lock); need_resched() is kept out of it with a 60 s slice.
  const base = [
    '-v',
    '2',
    '-b',
    '64M',
    '-g',
    '--jit-warmup',
    'off',
    '--split-alloc',
    'cache',
    '--resched-ms',
    '60000',
    '--host-events',
    'heavy,invalidate=100000',
  ];
  const on = await runWithJson([...base, '--yield-on-contention'], { timeoutMs: 90_000 });
  t.is(on.code, 0, on.stderr);
  t.true(on.report.config.yieldOnContention);
  const off = await runWithJson(base, { timeoutMs: 90_000 });
  t.is(off.code, 0, off.stderr);
  t.log(`enable-time yields: ${yieldsIn(on.report, 'enable')} with --yield-on-contention, ${yieldsIn(off.report, 'enable')} without`);
  t.true(yieldsIn(on.report, 'enable') > 0, `yields with --yield-on-contention: ${yieldsIn(on.report, 'enable')}`);
  t.is(yieldsIn(off.report, 'enable'), 0, 'the control never yields');
  t.true(on.report.invariants.ok && off.report.invariants.ok);
});

test.serial('--compare end to end: one row and one verdict per design, steady workload, one CSV row each', async (t) => {
  const csv = join(dir, 'compare.csv');
  const r = await runCli(['--compare', '--split-alloc', 'drop-always,cache', '-v', '2', '-b', '4M', '--steady-seconds', '0.1', '--csv', csv], {
    timeoutMs: 120_000,
  });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^emulate: compare: 2 run\(s\).*steady workload/m);
  for (const d of ['drop-always', 'cache']) t.regex(r.stdout, new RegExp(`^${d} +\\d`, 'm'), d);
  t.regex(r.stdout, /^drop-always: baseline/m);
  t.regex(r.stdout, /^cache: split took /m);
  const rows = readFileSync(csv, 'utf8').trim().split('\n');
  t.is(rows.length, 3, 'a header and two rows');
  const header = rows[0]!.split(',');
  const steady = header.indexOf('steady');
  const design = header.indexOf('splitAlloc');
  t.deepEqual(
    rows.slice(1).map((l) => l.split(',')[design]),
    ['drop-always', 'cache'],
  );
  t.true(
    rows.slice(1).every((l) => l.split(',')[steady] === 'true'),
    '--compare runs the steady workload',
  );
});

test.serial('--repeat end to end: the same run twice, medians in the table, one CSV row per repeat', async (t) => {
  const csv = join(dir, 'repeat.csv');
  const r = await runCli(['--repeat', '2', '-v', '1', '-b', '4M', '--csv', csv], { timeoutMs: 120_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^emulate: sweep: 2 run\(s\)/m);
  t.regex(r.stdout, /^Medians of 2 runs per row$/m);
  t.regex(r.stdout, /medians of 2 runs each, with the run-to-run spread/);
  const rows = readFileSync(csv, 'utf8').trim().split('\n');
  t.is(rows.length, 3);
  const repeat = rows[0]!.split(',').indexOf('repeat');
  t.deepEqual(
    rows.slice(1).map((l) => l.split(',')[repeat]),
    ['1', '2'],
  );
});
