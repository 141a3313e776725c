/**
 * Host costs (src/mmu/host_costs.ts): the --host-costs grammar, the calibrated defaults, and who
 * pays what. Costs are asserted through the counters they leave (host cost ns, TLB flushes,
 * PML-full exits), never through timings.
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import test from 'ava';
import {
  DEFAULT_HOST_COSTS,
  formatHostCosts,
  NO_HOST_COSTS,
  parseHostCosts,
  PMLFULL_NS,
  SLOWFAULT_NS,
  TLBFLUSH_NS,
  WPFAULT_NS,
} from '../src/mmu/host_costs.js';
import type { HostCosts } from '../src/mmu/host_costs.js';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { DirtyTrackMode, Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { enableDirtyLogging } from '../src/mmu/dirty_log.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { vcpuEnterGuest, vcpuExitGuest } from '../src/mmu/pml.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { errorCode } from '../src/errors.js';

const M = pagesPerHpage(2);

test('the calibrated defaults: WP fault 0.91 µs - our 295 ns, slow fault 0.99 µs - our 753 ns, PML-full and flush one exit/entry', (t) => {
  t.is(WPFAULT_NS, 910 - 295);
  t.is(SLOWFAULT_NS, 1210 - 220 - 753);
  t.is(PMLFULL_NS, WPFAULT_NS);
  t.is(TLBFLUSH_NS, WPFAULT_NS);
  t.deepEqual({ ...DEFAULT_HOST_COSTS }, { wpfaultNs: 615, slowfaultNs: 237, pmlfullNs: 615, tlbflushNs: 615 });
  t.is(formatHostCosts(DEFAULT_HOST_COSTS), 'wpfault=615ns slowfault=237ns pmlfull=615ns tlbflush=615ns');
});

test('--host-costs grammar: none, default, partial lists keep the other defaults; bad input refused naming the option', (t) => {
  const L = '--host-costs';
  t.deepEqual(parseHostCosts(L, 'none'), NO_HOST_COSTS);
  t.deepEqual(parseHostCosts(L, 'default'), DEFAULT_HOST_COSTS);
  t.deepEqual(parseHostCosts(L, 'wpfault=100, tlbflush=2000'), { ...DEFAULT_HOST_COSTS, wpfaultNs: 100, tlbflushNs: 2000 });
  t.deepEqual(parseHostCosts(L, 'wpfault=0,slowfault=0,pmlfull=0,tlbflush=0'), NO_HOST_COSTS);
  for (const bad of ['', 'fast=10', 'wpfault=-1', 'wpfault=abc', 'wpfault', 'wpfault=2000000']) {
    const err = t.throws(() => parseHostCosts(L, bad), undefined, bad);
    t.is(errorCode(err), 'ERR_INVALID_OPTION', bad);
    t.regex(err!.message, /--host-costs/);
  }
  const parse = (...argv: string[]) => {
    const c = parseCommandLine(argv);
    if (c.kind !== 'run') throw new Error('expected a run');
    return resolveOptions(c.raw);
  };
  t.deepEqual(parse().hostCosts, DEFAULT_HOST_COSTS, 'the calibrated values by default');
  t.deepEqual(parse('--host-costs', 'none').hostCosts, NO_HOST_COSTS);
  t.is(parse().dirtyTrack, 'pml', 'PML by default');
  t.is(parse('--dirty-track', 'wrprot').dirtyTrack, 'wrprot');
  t.is(errorCode(t.throws(() => parse('--dirty-track', 'ept'))), 'ERR_INVALID_OPTION');
  t.true(parse('--split-alloc', 'lazy-zap').eagerSplit === false, 'lazy-zap is eager splitting off');
});

function makeVm(dirtyTrack: DirtyTrackMode, hostCosts: HostCosts, hugePageFault: 'split' | 'zap' = 'split'): Vm {
  return attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(2 * M, 1),
      backingLevel: 2,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      dirtyTrack,
      hostCosts,
      hugePageFault,
    }),
    0,
  );
}

const COSTS: HostCosts = { wpfaultNs: 1000, slowfaultNs: 2000, pmlfullNs: 3000, tlbflushNs: 4000 };

function spent(vm: Vm): number {
  return vm.sumStats()['hostCostNs']!;
}

test('who pays: a slow fault pays slowfault, a lockless WP fault wpfault, a PML-full exit pmlfull, a flush tlbflush', (t) => {
  const vm = makeVm('wrprot', COSTS);
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  guestAccess(vm, s.baseGfn, 'write', out);
  t.is(out.outcome, 'slow');
  t.is(spent(vm), 2000, 'populate fault: one slow fault');
  guestAccess(vm, s.baseGfn + M, 'write', out);
  enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  t.is(vm.sumStats()['tlbFlushes'], 1);
  t.is(spent(vm), 2 * 2000 + 4000, 'enable write-protected SPTEs: one remote flush');
  guestAccess(vm, s.baseGfn + 5, 'write', out);
  t.is(out.outcome, 'fast');
  t.is(spent(vm), 2 * 2000 + 4000 + 1000, 'a lockless write-protection fault');

  const pml = makeVm('pml', COSTS);
  const p0 = pml.config.memslots[0]!.baseGfn;
  guestAccess(pml, p0, 'write', out);
  guestAccess(pml, p0 + M, 'write', out);
  enableDirtyLogging(pml, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  const before = spent(pml);
  vcpuEnterGuest(pml);
  for (let p = 0; p < 2 * M; p++) guestAccess(pml, p0 + p, 'write', out);
  vcpuExitGuest(pml);
  t.is(pml.sumStats()['pmlFullExits'], 2);
  t.is(spent(pml) - before, 2 * 3000, 'two PML-full exits and no fault');

  const zap = makeVm('pml', COSTS, 'zap');
  const z0 = zap.config.memslots[0]!.baseGfn;
  guestAccess(zap, z0, 'write', out);
  enableDirtyLogging(zap, 0, { eagerSplit: false, initiallySet: false, design: dropAlways });
  const zb = spent(zap);
  guestAccess(zap, z0 + 1, 'write', out);
  t.is(spent(zap) - zb, 2000 + 4000, 'the zapping fault pays a slow fault and the remote flush');
});

test('--host-costs none: nothing is spent, the flushes are still counted', (t) => {
  const vm = makeVm('wrprot', DEFAULT_HOST_COSTS);
  const none = makeVm('wrprot', NO_HOST_COSTS);
  const out = createAccessResult();
  for (const v of [vm, none]) {
    const s = v.config.memslots[0]!;
    guestAccess(v, s.baseGfn, 'write', out);
    enableDirtyLogging(v, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
    guestAccess(v, s.baseGfn + 3, 'write', out);
  }
  t.is(spent(vm), SLOWFAULT_NS + TLBFLUSH_NS + WPFAULT_NS);
  t.is(spent(none), 0);
  t.is(none.sumStats()['tlbFlushes'], 1);
});
