/**
 * Chunked CLEAR_DIRTY_LOG and the dropped 2023-24 change (src/mmu/dirty_log.ts, the splitter's
 * clearPass): `--clear-lock per-word` takes mmu_lock exactly once per 64-page word whose cleared
 * mask is non-empty (all-zero words and words whose bits were already clear take none), `whole`
 * once per call; -k gives ceil(slot / chunk) calls per CLEAR pass and -l one pause between
 * consecutive calls; compare and sweeps accept --clear-lock lists.
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import test from 'ava';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { clearDirtyLog, enableDirtyLogging } from '../src/mmu/dirty_log.js';
import type { ClearLockMode } from '../src/mmu/dirty_log.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { checkInvariants } from '../src/mmu/invariants.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { expandSweep, isSweep } from '../src/emulate/sweep.js';
import { errorCode } from '../src/errors.js';
import { runWithJson } from './_emulate.js';
import type { Json } from './_emulate.js';

const PAGES = 4 * 512;

function makeVm(): Vm {
  return attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(PAGES, 1),
      backingLevel: 1,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      dirtyTrack: 'pml',
      hugePageFault: 'split',
    }),
    0,
  );
}

/** Populate at 4K, enable logging with initially-set (every bit set), and a mask with set, empty and already-cleared words. */
function setUp(): { vm: Vm; mask: Int32Array; nonEmptyWords: number } {
  const vm = makeVm();
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g++) guestAccess(vm, g, 'write', out);
  enableDirtyLogging(vm, 0, { initiallySet: true, eagerSplit: false, design: dropAlways });
  const words = (PAGES / 64) * 2;
  const mask = new Int32Array(words);
  // 64-page word k covers Int32 words 2k, 2k+1. Non-empty: 0 (low half), 3 (high half), 5 (both), 31 (both).
  for (const [k, lo, hi] of [
    [0, 0x1, 0],
    [3, 0, -1],
    [5, 0xff, 0x10],
    [31, -1, -1],
    [7, 0x4, 0],
  ] as const) {
    mask[2 * k] = lo;
    mask[2 * k + 1] = hi;
  }
  // Word 7's bit is already clear in the kernel's bitmap (an earlier CLEAR took it): its cleared mask is empty (no lock).
  const earlier = new Int32Array(words);
  earlier[14] = 0x4;
  clearDirtyLog(vm, 0, 0, earlier, { eagerSplit: false, design: dropAlways });
  return { vm, mask, nonEmptyWords: 4 };
}

for (const mode of ['whole', 'per-word'] as ClearLockMode[]) {
  test(`--clear-lock ${mode}: mmu_lock acquisitions per CLEAR call`, (t) => {
    const { vm, mask, nonEmptyWords } = setUp();
    const holds0 = vm.timing.writeHold.count;
    const counted0 = vm.sumStats()['clearLockHolds']!;
    const r = clearDirtyLog(vm, 0, 0, mask, { eagerSplit: false, design: dropAlways, clearLock: mode });
    const expected = mode === 'per-word' ? nonEmptyWords : 1;
    t.is(vm.timing.writeHold.count - holds0, expected, 'write-lock holds (the lock statistics)');
    t.is(vm.sumStats()['clearLockHolds']! - counted0, expected, 'clearLockHolds counter');
    t.is(r.cleared, 1 + 32 + 9 + 64, 'pages cleared');
    t.true(checkInvariants(vm).ok);
  });
}

test('--clear-lock per-word with eager splitting: the CLEAR itself still takes the lock once per non-empty word', (t) => {
  const vm = attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(PAGES, 1),
      backingLevel: 2,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      dirtyTrack: 'pml',
      hugePageFault: 'split',
    }),
    0,
  );
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g += 512) guestAccess(vm, g, 'write', out);
  enableDirtyLogging(vm, 0, { initiallySet: true, eagerSplit: true, design: dropAlways });
  const mask = new Int32Array((PAGES / 64) * 2).fill(-1);
  clearDirtyLog(vm, 0, 0, mask, { eagerSplit: true, design: dropAlways, clearLock: 'per-word' });
  t.is(vm.sumStats()['clearLockHolds'], PAGES / 64, 'one per 64-page word');
  t.is(vm.sumStats()['hugePagesSplit'], PAGES / 512, 'every huge page split');
  t.true(checkInvariants(vm).ok);
});

function resolve(argv: string[]) {
  const c = parseCommandLine(argv);
  if (c.kind !== 'run') throw new Error('help');
  return resolveOptions(c.raw);
}

test('options: -k sizes in 64-page words, -l in ms, --clear-lock names', (t) => {
  t.is(resolve(['-k', '4M']).clearChunkPages, 1024);
  t.is(resolve([]).clearChunkPages, 0, 'default: the whole memslot');
  t.is(resolve(['-l', '2.5']).clearDelayMs, 2.5);
  t.is(resolve(['--clear-lock', 'per-word']).clearLock, 'per-word');
  t.is(resolve([]).clearLock, 'whole');
  for (const bad of [
    ['-k', '4K'],
    ['-k', '100K'],
    ['--clear-lock', 'sometimes'],
    ['-l', '-1'],
  ]) {
    t.is(errorCode(t.throws(() => resolve(bad))), 'ERR_INVALID_OPTION', bad.join(' '));
  }
});

test('compare and sweeps accept --clear-lock whole,per-word', (t) => {
  const c = parseCommandLine(['--compare', '--clear-lock', 'whole,per-word', '--split-alloc', 'drop-always,nowait-retry']);
  if (c.kind !== 'run') throw new Error('help');
  t.true(isSweep(c.raw));
  const runs = expandSweep(c.raw, { compareDesigns: ['drop-always'] });
  t.is(runs.length, 4);
  t.deepEqual(
    runs.map((r) => r.swept['clear-lock']),
    ['whole', 'whole', 'per-word', 'per-word'],
    'the design varies fastest',
  );
  t.deepEqual(
    runs.map((r) => resolveOptions(r.raw).clearLock),
    ['whole', 'whole', 'per-word', 'per-word'],
  );
});

test.serial('-k: ceil(slot / chunk) CLEAR calls per pass, -l: a pause between consecutive calls', async (t) => {
  // One memslot of 10M (2,560 pages) in 4M calls: 3 calls; two memslots of 5M: 2 calls each.
  for (const [args, calls] of [
    [['-x', '1'], 3],
    [['-x', '1', '-l', '1'], 3],
    [['-x', '2', '-s', 'anonymous'], 4],
  ] as const) {
    const r = await runWithJson(['-v', '1', '-b', '10M', '-i', '2', '-k', '4M', ...args], { timeoutMs: 60_000 });
    t.is(r.code, 0, r.stderr);
    const cc = r.report.clearCalls as Json[];
    t.is(cc.length, 2, 'one entry per CLEAR pass');
    const pauses = (args as readonly string[]).includes('-l') ? calls - 1 : 0;
    for (const c of cc) {
      t.is(c.calls, calls, `${args.join(' ')}: calls`);
      t.is(c.pauses, pauses, `${args.join(' ')}: pauses (between calls only)`);
      t.true(c.maxCallSeconds <= c.totalSeconds);
    }
    t.true(r.report.invariants.ok);
    t.true(r.report.dirtyLog.ok);
  }
});
