/**
 * The three fault models (vm.ts FaultModel; guest_access.ts), on one thread: which mmu_lock mode
 * each fault kind takes, counted as lock holds by mode (the MmuLock hold histograms count every
 * acquisition), plus the per-kind fault classification of each access.
 *
 *   kind          tdp      tdp-locked-fast   shadow
 *   first-touch   read     read              write
 *   wp-fast       none     read              none
 *   exec (NX)     read     read              write
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import test from 'ava';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { FaultModel, Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import type { FaultKind } from '../src/mmu/guest_access.js';
import type { AccessKind } from '../src/mmu/access_kind.js';
import { enableDirtyLogging } from '../src/mmu/dirty_log.js';
import { lazySplit } from '../src/mmu/split_alloc_lazy.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { EmulatorError } from '../src/errors.js';

const M = pagesPerHpage(2);

function makeVm(faultModel: FaultModel, backingLevel: 1 | 2, nxHugePages: boolean): Vm {
  return attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(2 * M, 1),
      backingLevel,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      dirtyTrack: 'wrprot',
      nxHugePages,
      faultModel,
    }),
    0,
  );
}

interface Holds {
  read: number;
  write: number;
  kinds: Partial<Record<FaultKind, number>>;
}

/** Run `n` accesses of `kind` from `first`; the lock holds they took, by mode, and their fault kinds. */
function run(vm: Vm, first: number, n: number, kind: AccessKind, stride = 1): Holds {
  vm.takeTiming(); // start the hold counts afresh
  const out = createAccessResult();
  const kinds: Partial<Record<FaultKind, number>> = {};
  for (let i = 0; i < n; i++) {
    guestAccess(vm, first + i * stride, kind, out);
    kinds[out.faultKind] = (kinds[out.faultKind] ?? 0) + 1;
  }
  const d = vm.takeTiming();
  return { read: d.readHold.count, write: d.writeHold.count, kinds };
}

const EXPECT: Readonly<Record<FaultModel, { firstTouch: 'read' | 'write'; wpFast: 'none' | 'read'; exec: 'read' | 'write' }>> = {
  tdp: { firstTouch: 'read', wpFast: 'none', exec: 'read' },
  'tdp-locked-fast': { firstTouch: 'read', wpFast: 'read', exec: 'read' },
  shadow: { firstTouch: 'write', wpFast: 'none', exec: 'write' },
};

for (const model of ['tdp', 'tdp-locked-fast', 'shadow'] as const) {
  test(`fault model ${model}: lock mode per fault kind`, (t) => {
    const e = EXPECT[model];
    const want = (mode: 'none' | 'read' | 'write', n: number) => ({ read: mode === 'read' ? n : 0, write: mode === 'write' ? n : 0 });

    // 4K backing: first-touch writes, then write-protection faults after enabling dirty logging.
    const vm = makeVm(model, 1, false);
    const s = vm.config.memslots[0]!;
    const n = 64;
    const pop = run(vm, s.baseGfn, n, 'write');
    t.deepEqual({ read: pop.read, write: pop.write }, want(e.firstTouch, n), 'first-touch faults');
    t.deepEqual(pop.kinds, { 'first-touch': n });
    enableDirtyLogging(vm, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
    const wp = run(vm, s.baseGfn, n, 'write');
    t.deepEqual({ read: wp.read, write: wp.write }, want(e.wpFast, n), 'write-protection faults');
    t.deepEqual(wp.kinds, { 'wp-fast': n });
    const hits = run(vm, s.baseGfn, n, 'read');
    t.deepEqual({ read: hits.read, write: hits.write }, { read: 0, write: 0 }, 'hits take no lock');
    t.deepEqual(hits.kinds, { none: n });

    // 2M backing with NX huge pages: one execute fault per huge page.
    const nx = makeVm(model, 2, true);
    const b = nx.config.memslots[0]!.baseGfn;
    run(nx, b, 2, 'write', M);
    const ex = run(nx, b, 2, 'exec', M);
    t.deepEqual({ read: ex.read, write: ex.write }, want(e.exec, 2), 'execute faults');
    t.deepEqual(ex.kinds, { exec: 2 });
    nx.rcu.barrier();
    const r = checkInvariants(nx);
    t.true(r.ok, formatViolations(r));
  });
}

test('control: the counts tell the models apart (tdp and shadow disagree on first-touch faults)', (t) => {
  const a = makeVm('tdp', 1, false);
  const b = makeVm('shadow', 1, false);
  const ra = run(a, a.config.memslots[0]!.baseGfn, 8, 'write');
  const rb = run(b, b.config.memslots[0]!.baseGfn, 8, 'write');
  t.notDeepEqual({ read: ra.read, write: ra.write }, { read: rb.read, write: rb.write });
});

function optionsOf(argv: string[]) {
  const cl = parseCommandLine(argv);
  if (cl.kind !== 'run') throw new Error('help');
  return resolveOptions(cl.raw);
}

test('--fault-model: parsed; shadow forces eager splitting off and refuses --eager-split on', (t) => {
  t.is(optionsOf([]).faultModel, 'tdp');
  t.is(optionsOf(['--fault-model', 'tdp-locked-fast']).faultModel, 'tdp-locked-fast');
  const sh = optionsOf(['--fault-model', 'shadow']);
  t.is(sh.faultModel, 'shadow');
  t.false(sh.eagerSplit);
  const err = t.throws(() => optionsOf(['--fault-model', 'shadow', '--eager-split', 'on']));
  t.true(err instanceof EmulatorError && err.code === 'ERR_INVALID_OPTION');
  t.regex(err!.message, /--fault-model/);
  t.throws(() => optionsOf(['--fault-model', 'arm64']), { message: /--fault-model.*expected one of tdp, tdp-locked-fast, shadow/ });
  t.is(optionsOf(['--nx-huge-pages', 'on']).nxHugePages, true);
  t.is(optionsOf([]).nxHugePages, false);
  t.throws(() => optionsOf(['--nx-huge-pages', 'maybe']), { message: /--nx-huge-pages/ });
});

test('fault kinds: pml (a logged write, no fault) and wp-slow (a write to a write-protected huge page)', (t) => {
  // PML: 4K leaves keep W and lose D when logging starts; the next write is logged by the walk.
  const pml = attachVm(
    createVm({ levels: 4, memslots: layoutMemslots(M, 1), backingLevel: 1, workers: 1, pressure: PRESSURE_PROFILES.none, seed: 1, dirtyTrack: 'pml' }),
    0,
  );
  const b = pml.config.memslots[0]!.baseGfn;
  run(pml, b, 8, 'write');
  enableDirtyLogging(pml, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
  t.deepEqual(run(pml, b, 8, 'write').kinds, { pml: 8 });
  t.deepEqual(run(pml, b, 8, 'write').kinds, { none: 8 }, 'D is set now: plain hits');
  // Write protection of huge pages: the first write to each needs mmu_lock (split on fault).
  const wp = makeVm('tdp', 2, false);
  const w = wp.config.memslots[0]!.baseGfn;
  run(wp, w, 2, 'write', M);
  enableDirtyLogging(wp, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
  const r = run(wp, w + 1, 2, 'write', M);
  t.deepEqual(r.kinds, { 'wp-slow': 2 });
  t.is(wp.sumStats()['faultWpSlow'], 2);
});
