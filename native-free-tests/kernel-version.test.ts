/**
 * `--kernel VERSION` (src/kernel_version.ts): the one table of version-dependent behaviours read
 * at every boundary, the defaults it gives the options, explicit options overriding it, the
 * impossible combinations (exit 2) against the merely anachronistic (allowed, noted), and the
 * modelled release printed in every report.
 */
import test from 'ava';
import { DEFAULT_KERNEL, formatKernel, KERNEL_CHANGES, kernelBehaviour, parseKernelVersion } from '../src/kernel_version.js';
import type { KernelVersion } from '../src/kernel_version.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { errorCode } from '../src/errors.js';
import { runCli, runWithJson } from './_emulate.js';

function resolve(argv: string[]) {
  const c = parseCommandLine(argv);
  if (c.kind !== 'run') throw new Error('help');
  return resolveOptions(c.raw);
}

const v = (s: string): KernelVersion => parseKernelVersion(s)!;

test('one table: every behaviour has a row, each row names what changed', (t) => {
  const keys = new Set(KERNEL_CHANGES.map((c) => c.key));
  t.deepEqual([...keys].sort(), Object.keys(kernelBehaviour(DEFAULT_KERNEL)).sort());
  for (const c of KERNEL_CHANGES) t.true(c.what.length > 0 && c.before !== c.after, c.key);
});

test('the table at every boundary', (t) => {
  const at = (s: string) => kernelBehaviour(v(s));
  t.false(at('5.17').eagerSplitExists);
  t.is(at('5.17').splitAlloc, null);
  t.true(at('5.18').eagerSplitExists);
  t.is(at('5.18').splitAlloc, 'nowait-retry');
  t.is(at('6.10').splitAlloc, 'nowait-retry');
  t.is(at('6.11').splitAlloc, 'drop-always');
  t.is(at('6.1').lazyPath, 'lazy-zap');
  t.is(at('6.2').lazyPath, 'lazy');
  t.false(at('6.1').nxRecoverySkipsDirtyLogged);
  t.true(at('6.2').nxRecoverySkipsDirtyLogged);
  t.is(at('6.7').notifierRetry, 'after-lock');
  t.is(at('6.8').notifierRetry, 'before-lock');
  t.is(at('6.14').agingLock, 'write');
  t.is(at('6.15').agingLock, 'rcu');
  t.is(at('6.17').nxRecoveryLock, 'write');
  t.is(at('6.18').nxRecoveryLock, 'read');
  t.deepEqual(v('6.1.55'), [6, 1], 'a stable release reads as its minor');
  t.is(parseKernelVersion('six'), null);
});

test('default 6.12: today behaviour (eager split, drop-always)', (t) => {
  t.is(formatKernel(DEFAULT_KERNEL), '6.12');
  const o = resolve([]);
  t.deepEqual(o.kernel, [6, 12]);
  t.true(o.eagerSplit);
  t.is(o.splitAlloc, 'drop-always');
  t.deepEqual(o.anachronisms, []);
  const off = resolve(['--eager-split', 'off']);
  t.false(off.eagerSplit);
  t.not(off.splitAlloc, 'lazy-zap', '6.12 splits on fault');
});

test('the release sets the defaults', (t) => {
  const k65 = resolve(['--kernel', '6.5']);
  t.true(k65.eagerSplit);
  t.is(k65.splitAlloc, 'nowait-retry');
  const k515 = resolve(['--kernel', '5.15']);
  t.false(k515.eagerSplit, 'no eager split before 5.18');
  t.is(k515.splitAlloc, 'lazy-zap', 'and faults zap huge pages (before 6.2)');
  const k61off = resolve(['--kernel', '6.1', '--eager-split', 'off']);
  t.is(k61off.splitAlloc, 'lazy-zap');
  t.is(resolve(['--kernel', '6.2', '--eager-split', 'off']).splitAlloc, 'drop-always', 'split on fault from 6.2 (the fault path of every eager design)');
});

test('explicit options override; anachronisms are noted, not refused', (t) => {
  const a = resolve(['--kernel', '6.5', '--split-alloc', 'drop-always']);
  t.is(a.splitAlloc, 'drop-always');
  t.is(a.anachronisms.length, 1);
  t.regex(a.anachronisms[0]!, /drop-always on Linux 6\.5, which ships nowait-retry/);
  t.is(resolve(['--kernel', '6.12', '--split-alloc', 'lazy-zap']).anachronisms.length, 1);
  t.is(resolve(['--kernel', '6.5', '--host-events', 'light,retry=before-lock']).anachronisms.length, 1);
  t.is(resolve(['--kernel', '6.5', '--host-events', 'light,retry=after-lock']).anachronisms.length, 0);
  t.is(resolve(['--kernel', '5.18', '--split-alloc', 'nowait-retry']).anachronisms.length, 0);
});

test('impossible combinations are option errors', (t) => {
  for (const bad of [
    ['--kernel', '5.15', '--split-alloc', 'drop-always'],
    ['--kernel', '5.15', '--eager-split', 'on'],
    ['--kernel', '6.1', '--split-alloc', 'lazy'],
    ['--kernel', 'six'],
    ['--kernel', '4.19'],
  ]) {
    t.is(errorCode(t.throws(() => resolve(bad))), 'ERR_INVALID_OPTION', bad.join(' '));
  }
});

test.serial('every report says which kernel it models; an impossible combination exits 2', async (t) => {
  const r = await runWithJson(['-v', '1', '-b', '4M', '--kernel', '6.5'], { timeoutMs: 60_000 });
  t.is(r.code, 0, r.stderr);
  t.is(r.report.kernel.version, '6.5');
  t.is(r.report.kernel.behaviour.splitAlloc, 'nowait-retry');
  t.is(r.report.config.splitAlloc, 'nowait-retry');
  const text = await runCli(['-v', '1', '-b', '4M'], { timeoutMs: 60_000 });
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /Linux 6\.12/);
  const bad = await runCli(['--kernel', '5.15', '--split-alloc', 'drop-always'], { timeoutMs: 30_000 });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /no eager page splitting/);
  t.is(bad.stderr.trim().split('\n').length, 1, 'one line');
});
