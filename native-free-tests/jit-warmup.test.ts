/**
 * The JIT warm-up (src/emulate/jit_warmup.ts) runs every path it claims to warm, on a scratch VM
 * of its own: the real VM's counters, pool and page tables are untouched. Its counts are the
 * detector; the controls are setups in which a path cannot run (write protection has no PML
 * write, PML with eager splitting has no fast fault), and the counts must show that too.
 */
import test from 'ava';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { SPLIT_WARMUP_ROUNDS, WARMUP_PAGES, warmUpJit } from '../src/emulate/jit_warmup.js';
import type { DirtyLogMode } from '../src/emulate/mmu_ops.js';

function config(extra: Partial<VmConfig>): VmConfig {
  return {
    levels: 4,
    memslots: layoutMemslots(4 * pagesPerHpage(2), 1),
    backingLevel: 2,
    workers: 2,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
    ...extra,
  };
}

const EAGER: DirtyLogMode = { manualProtect: true, eagerSplit: true, splitAlloc: 'drop-always' };

test('PML: every setup runs: slow faults (populate, write faults on huge pages), PML writes, eager splits', (t) => {
  const c = warmUpJit(config({ dirtyTrack: 'pml' }), EAGER, 'splitter');
  t.true(c.accesses >= 3 * 5 * WARMUP_PAGES, `accesses ${c.accesses}`);
  t.true(c.slowFaults > 0, 'slow faults');
  t.true(c.pmlWrites > 0, 'PML writes');
  t.true(c.hugePagesSplit > 0, 'splits (eager and on fault)');
  // The split-in-CLEAR rounds must each find the scratch guest's 4 huge pages again (disable
  // recovers them, the next populate maps them): otherwise the per-split path stays cold.
  t.true(c.hugePagesSplit >= (WARMUP_PAGES / pagesPerHpage(2)) * SPLIT_WARMUP_ROUNDS, `splits ${c.hugePagesSplit}`);
  // CONTROL: a vCPU thread never runs the split walk in the real run, so its warm-up skips those rounds.
  const vcpu = warmUpJit(config({ dirtyTrack: 'pml' }), EAGER, 'vcpu');
  t.true(vcpu.hugePagesSplit < (WARMUP_PAGES / pagesPerHpage(2)) * SPLIT_WARMUP_ROUNDS, `vCPU splits ${vcpu.hugePagesSplit}`);
});

test('write protection: fast faults run, no PML write (control of the PML count)', (t) => {
  const c = warmUpJit(config({ dirtyTrack: 'wrprot' }), EAGER, 'vcpu');
  t.true(c.fastFaults > 0, 'write-protection fast faults');
  t.is(c.pmlWrites, 0);
});

test('lazy-zap: the write faults zap instead of splitting, so only the eager setups split', (t) => {
  const zap = warmUpJit(config({ dirtyTrack: 'pml', hugePageFault: 'zap' }), { manualProtect: true, eagerSplit: false, splitAlloc: 'lazy-zap' }, 'vcpu');
  t.is(zap.hugePagesSplit, 0, 'no eager split and no split on fault');
  t.true(zap.slowFaults > WARMUP_PAGES, 'one slow fault per 4K page after a zap');
});

test('the real VM is untouched: its counters, pool and page stats stay as created', (t) => {
  const base = config({ dirtyTrack: 'pml' });
  const vm = attachVm(createVm(base), 0);
  const pool0 = vm.poolAccounting();
  warmUpJit(base, EAGER, 'splitter');
  t.true(
    Object.values(vm.sumStats()).every((v) => v === 0),
    'no counter moved',
  );
  t.deepEqual(vm.poolAccounting(), pool0);
  t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 0, pages1g: 0 });
  vm.detach();
});
