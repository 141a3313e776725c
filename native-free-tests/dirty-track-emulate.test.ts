/**
 * End to end (the CLI, real vCPU and splitter threads): every dirty-tracking mode and lazy path
 * loses no write (each iteration's GET reports exactly the pages the vCPUs wrote) and leaves a
 * clean MMU; PML makes an eagerly split dirty pass fault-free; lazy-zap takes one slow fault per
 * 4K page written; the report carries hostCosts and dirtyTracking; bad values exit 2.
 */
import test from 'ava';
import { runCli, runWithJson } from './_emulate.js';
import type { Json } from './_emulate.js';

const BASE = ['-v', '2', '-b', '8M', '-i', '2'];

function firstDirty(report: Json): Json {
  return report.phases.find((p: Json) => p.name === 'iteration 1 dirty');
}

const CASES: readonly (readonly string[])[] = [
  ['--dirty-track', 'pml'],
  ['--dirty-track', 'pml', '-g'],
  ['--dirty-track', 'wrprot', '-g'],
  ['--dirty-track', 'pml', '-g', '--split-alloc', 'lazy'],
  ['--dirty-track', 'pml', '-g', '--split-alloc', 'lazy-zap'],
  ['--dirty-track', 'wrprot', '--split-alloc', 'lazy-zap'],
];

for (const args of CASES) {
  test(`no write lost, clean MMU: ${args.join(' ')}`, async (t) => {
    const r = await runWithJson([...BASE, ...args], { timeoutMs: 90_000 });
    t.is(r.code, 0, r.stderr);
    const rep = r.report;
    t.true(rep.dirtyLog.ok, 'every iteration reported exactly the pages written');
    t.true(rep.invariants.ok, rep.invariants.violations.join('\n'));
    t.is(rep.dirtyTracking.mode, args[1]);
    t.deepEqual(Object.keys(rep.hostCosts).sort(), ['calibration', 'pmlfullNs', 'slowfaultNs', 'spentSeconds', 'tlbFlushes', 'tlbflushNs', 'wpfaultNs']);
    const pages = (2 * 8 * 1024 * 1024) / 4096;
    const it1 = firstDirty(rep);
    if (args.includes('-g') && args.includes('pml') && !args.includes('--split-alloc')) {
      t.is(it1.vcpu.fastFaults + it1.vcpu.slowFaults, 0, 'PML after eager splitting: the first dirty pass takes no fault');
      // 2048 pages per vCPU per pass: 4 PML-full exits each, 2 vCPUs, 2 passes.
      t.is(rep.dirtyTracking.pmlFullExits, 2 * 2 * 4);
    }
    if (args.includes('-g') && args.includes('lazy-zap')) {
      t.is(it1.vcpu.slowFaults, pages, 'lazy-zap: one slow fault per 4K page');
    }
    if (args.includes('-g') && args.includes('lazy')) {
      t.is(it1.vcpu.slowFaults, pages / 512, 'lazy: one slow fault per huge page');
      t.is(it1.vcpu.fastFaults, pages - pages / 512, 'lazy: lockless fast faults for the rest');
    }
  });
}

test('bad --dirty-track, --host-costs or --workload: exit 2 with one line', async (t) => {
  for (const bad of [
    ['--dirty-track', 'ept'],
    ['--host-costs', 'wpfault=x'],
    ['--workload', 'nope'],
  ]) {
    const r = await runCli([...BASE, ...bad], { timeoutMs: 30_000 });
    t.is(r.code, 2, bad.join(' '));
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.regex(r.stderr, new RegExp(bad[0]!));
  }
});
