/**
 * Intel PML dirty tracking (src/mmu/pml.ts, dirty_log.ts with dirtyTrack 'pml'):
 *   - enabling logging without initially-set clears D on every leaf and write-protects leaves of
 *     2M and above only; with initially-set it changes nothing and the first CLEAR does the work;
 *   - a write to a writable 4K SPTE with D clear does not fault: D is set and the gfn logged;
 *   - only a flush writes the bitmap: a write made by a vCPU on another thread is absent from the
 *     bitmap until GET_DIRTY_LOG's kick makes that vCPU flush, and present in what GET returns;
 *   - PML-full exits: one per 512 newly dirtied pages per vCPU per pass (floor: the rest is
 *     flushed at the pass's own exit);
 *   - GET without manual protect and CLEAR clear D on 4K leaves (and write-protect huge ones);
 *   - no write lost: the invariant "a writable leaf whose D bit is set is in the log once buffers
 *     are flushed" holds after every step, and a control that drops the buffer is caught.
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import test from 'ava';
import type { ExecutionContext } from 'ava';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm, VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { clearDirtyLog, enableDirtyLogging, getDirtyLog } from '../src/mmu/dirty_log.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { isPageDirty } from '../src/mmu/slot_flags.js';
import { PML_ENTRIES, vcpuEnterGuest, vcpuExitGuest } from '../src/mmu/pml.js';
import { walkGfn, walkOutSpte } from '../src/mmu/tdp_mmu_fault.js';
import { isDirty, isWritable, pagesPerHpage } from '../src/mmu/spte.js';
import { runAllConcurrently } from '../src/thread_pool.js';
import type { PmlVcpuResult, PmlVcpuTask } from './fixtures/pml-vcpu.worker.js';

const M = pagesPerHpage(2);
const vcpuWorker = new URL('./fixtures/pml-vcpu.worker.js', import.meta.url);

function makeVm(hugePages: number, extra: Partial<VmConfig> = {}): Vm {
  const config: VmConfig = {
    levels: 4,
    memslots: layoutMemslots(hugePages * M, 1),
    backingLevel: 2,
    workers: 2,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
    dirtyTrack: 'pml',
    ...extra,
  };
  return attachVm(createVm(config), 0);
}

function base(vm: Vm): number {
  return vm.config.memslots[0]!.baseGfn;
}

/** One write per huge page: every region mapped huge, writable and dirty (memstress populate). */
function populate(vm: Vm): void {
  const out = createAccessResult();
  const s = vm.config.memslots[0]!;
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g += M) guestAccess(vm, g, 'write', out);
}

function spteOf(vm: Vm, gfn: number): bigint {
  vm.rcu.readLock();
  walkGfn(vm.spt, vm.root, vm.rootLevel, gfn);
  vm.rcu.readUnlock();
  return walkOutSpte[0]!;
}

function expectClean(t: ExecutionContext, vm: Vm, what: string): void {
  vm.rcu.barrier();
  const r = checkInvariants(vm);
  t.true(r.ok, `${what}: ${r.count} violations\n${formatViolations(r)}`);
}

test('enable without initially-set: D cleared on every leaf, only huge leaves write-protected', (t) => {
  const vm = makeVm(4);
  populate(vm);
  // Without eager splitting the leaves stay huge: D cleared and write-protected.
  const e = enableDirtyLogging(vm, 0, { eagerSplit: false, initiallySet: false, design: dropAlways });
  t.is(e.dirtyCleared, 4, 'D cleared on the four huge leaves');
  t.is(e.wrprotected, 4, 'the huge leaves are write-protected');
  const huge = spteOf(vm, base(vm) + 3);
  t.false(isWritable(huge));
  t.false(isDirty(huge));
  expectClean(t, vm, 'after enable (no split)');

  const vm2 = makeVm(4);
  populate(vm2);
  const e2 = enableDirtyLogging(vm2, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  t.is(e2.split?.hugePagesSplit, 4);
  t.is(e2.dirtyCleared, 4 * 512, 'D cleared on every 4K leaf');
  t.is(e2.wrprotected, 0, '4K leaves keep W with PML');
  const small = spteOf(vm2, base(vm2) + 700);
  t.true(isWritable(small));
  t.false(isDirty(small));
  t.is(vm2.sumStats()['tlbFlushes'], 1, 'one remote TLB flush after the enable');
  expectClean(t, vm2, 'after enable (split)');
});

test('a write to a writable 4K SPTE with D clear does not fault; the bitmap changes only at a flush', (t) => {
  const vm = makeVm(2);
  populate(vm);
  enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  const out = createAccessResult();
  vcpuEnterGuest(vm);
  const pages = [1, 5, 600, 1023];
  for (const p of pages) {
    guestAccess(vm, base(vm) + p, 'write', out);
    t.is(out.outcome, 'hit', `write to page ${p} is not a fault`);
    t.true(isDirty(spteOf(vm, base(vm) + p)), 'the walk set D');
    t.false(isPageDirty(vm, 0, base(vm) + p), 'not in the bitmap before a flush');
  }
  t.is(vm.sumStats()['pmlWrites'], pages.length);
  guestAccess(vm, base(vm) + 5, 'write', out);
  t.is(vm.sumStats()['pmlWrites'], pages.length, 'D already set: no second log entry');
  vcpuExitGuest(vm); // a VM exit flushes
  for (const p of pages) t.true(isPageDirty(vm, 0, base(vm) + p), `page ${p} in the bitmap after the exit`);
  t.is(vm.sumStats()['fastFaults'], 0);
  t.is(vm.sumStats()['slowFaults'], 2, 'only the populate faults');
  expectClean(t, vm, 'after writes');
});

test('GET kicks a vCPU on another thread: its writes are absent from the bitmap before the kick and reported after', async (t) => {
  const vm = makeVm(2);
  populate(vm);
  enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  const gfns = [3, 64, 65, 777, 1000].map((p) => base(vm) + p);
  const phaseSab = new SharedArrayBuffer(64);
  const ph = new Int32Array(phaseSab);
  const task: PmlVcpuTask = { vm: vm.shared, workerId: 1, gfns, phaseSab, answerKicks: true };
  const done = runAllConcurrently<PmlVcpuResult>(vcpuWorker, [task], { timeoutMs: 60_000 });
  // Wait (without blocking the event loop for long) until the vCPU made its writes.
  while (Atomics.load(ph, 0) !== 1) await new Promise((r) => setTimeout(r, 5));
  for (const g of gfns) t.false(isPageDirty(vm, 0, g), "in the vCPU's PML buffer only, not yet in the bitmap");
  const bm = new Int32Array(vm.dirtyBitmap(0).length);
  const g = getDirtyLog(vm, 0, bm, { manualProtect: true });
  t.is(g.dirtyPages, gfns.length, 'GET returns every write made before the kick');
  for (const gfn of gfns) {
    const p = gfn - base(vm);
    t.not(bm[p >> 5]! & (1 << (p & 31)), 0, `page ${p} reported`);
  }
  Atomics.store(ph, 0, 2);
  const [r] = await done;
  t.is(r!.faults, 0, 'the vCPU never faulted');
  t.is(r!.stats['pmlWrites'], gfns.length);
  expectClean(t, vm, 'after the GET');
});

test('PML-full exits: one per 512 newly dirtied pages per vCPU per pass', (t) => {
  const vm = makeVm(4);
  populate(vm);
  enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  const out = createAccessResult();
  const pass = (pages: number): number => {
    const before = vm.sumStats()['pmlFullExits']!;
    vcpuEnterGuest(vm);
    for (let p = 0; p < pages; p++) guestAccess(vm, base(vm) + p, 'write', out);
    vcpuExitGuest(vm);
    return vm.sumStats()['pmlFullExits']! - before;
  };
  t.is(pass(3 * PML_ENTRIES), 3, 'ceil(1536 / 512) = 3');
  t.is(pass(3 * PML_ENTRIES), 0, 'D still set: nothing newly dirtied, no exit');
  const bm = new Int32Array(vm.dirtyBitmap(0).length);
  t.is(getDirtyLog(vm, 0, bm, { manualProtect: false }).dirtyPages, 3 * PML_ENTRIES, 'legacy GET harvests and clears D');
  t.is(pass(4 * PML_ENTRIES), 4, 'after the harvest every page is newly dirty again: ceil(2048 / 512) = 4');
  t.is(pass(0), 0);
  expectClean(t, vm, 'after the passes');
});

test('legacy GET clears D on harvested 4K pages: the next write is logged again, no fault', (t) => {
  const vm = makeVm(1);
  populate(vm);
  enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  const out = createAccessResult();
  guestAccess(vm, base(vm) + 10, 'write', out);
  const bm = new Int32Array(vm.dirtyBitmap(0).length);
  const g = getDirtyLog(vm, 0, bm, { manualProtect: false });
  t.is(g.dirtyPages, 1);
  t.is(g.wrprotected, 1, 'one SPTE changed (D cleared)');
  t.false(isDirty(spteOf(vm, base(vm) + 10)));
  t.true(isWritable(spteOf(vm, base(vm) + 10)));
  guestAccess(vm, base(vm) + 10, 'write', out);
  t.is(out.outcome, 'hit');
  t.is(getDirtyLog(vm, 0, bm, { manualProtect: false }).dirtyPages, 1, 'reported again');
  expectClean(t, vm, 'after two harvests');
});

test('initially-set: enable changes nothing, the first CLEAR splits, write-protects huge leaves and clears D on 4K ones', (t) => {
  const vm = makeVm(2);
  populate(vm);
  const e = enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: true, design: dropAlways });
  t.is(e.dirtyCleared, 0);
  t.is(e.wrprotected, 0);
  t.true(isDirty(spteOf(vm, base(vm))) && isWritable(spteOf(vm, base(vm))), 'huge leaves untouched');
  const bm = new Int32Array(vm.dirtyBitmap(0).length);
  t.is(getDirtyLog(vm, 0, bm, { manualProtect: true }).dirtyPages, 2 * M);
  expectClean(t, vm, 'after enable');
  const mask = new Int32Array(2).fill(-1); // the first 64 pages
  const c = clearDirtyLog(vm, 0, 0, mask, { eagerSplit: true, design: dropAlways });
  t.is(c.cleared, 64);
  t.is(c.split.hugePagesSplit, 1);
  t.is(c.wrprotected, 64, 'D cleared on the 64 masked 4K pages');
  t.false(isDirty(spteOf(vm, base(vm) + 3)));
  t.true(isWritable(spteOf(vm, base(vm) + 3)));
  t.true(isDirty(spteOf(vm, base(vm) + 100)), 'unmasked pages keep D (their bits are still set)');
  expectClean(t, vm, 'after clear');
  // Without eager splitting, CLEAR write-protects the huge leaf overlapping the mask instead.
  const vm2 = makeVm(2);
  populate(vm2);
  enableDirtyLogging(vm2, 0, { eagerSplit: false, initiallySet: true, design: dropAlways });
  const c2 = clearDirtyLog(vm2, 0, 0, mask, { eagerSplit: false, design: dropAlways });
  t.is(c2.wrprotected, 1, 'the huge leaf is write-protected');
  t.false(isWritable(spteOf(vm2, base(vm2))));
  expectClean(t, vm2, 'after clear without split');
});

test('no write lost with PML across harvest cycles; control: a flush that drops the buffer is caught', (t) => {
  for (const control of [false, true]) {
    const vm = makeVm(2, control ? { unsafe: { pmlDropBuffer: true } } : {});
    populate(vm);
    enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
    const out = createAccessResult();
    const bm = new Int32Array(vm.dirtyBitmap(0).length);
    let lost = 0;
    let x = 12345;
    for (let cycle = 0; cycle < 4; cycle++) {
      const written = new Set<number>();
      vcpuEnterGuest(vm);
      for (let i = 0; i < 700; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const p = x % (2 * M);
        guestAccess(vm, base(vm) + p, 'write', out);
        written.add(p);
      }
      vcpuExitGuest(vm);
      getDirtyLog(vm, 0, bm, { manualProtect: false });
      for (const p of written) if ((bm[p >> 5]! & (1 << (p & 31))) === 0) lost++;
    }
    if (!control) {
      t.is(lost, 0, 'every write reported by the next GET');
      expectClean(t, vm, 'after the cycles');
      continue;
    }
    t.true(lost > 0, 'the control loses writes');
    // The checker sees it without the oracle: D set on writable leaves whose bits are clear.
    vcpuEnterGuest(vm);
    guestAccess(vm, base(vm) + 7, 'write', out);
    guestAccess(vm, base(vm) + 8, 'write', out);
    vcpuExitGuest(vm);
    vm.rcu.barrier();
    const r = checkInvariants(vm);
    t.true(
      r.violations.some((v) => v.kind === 'lost-dirty'),
      `the checker reports lost-dirty: ${formatViolations(r)}`,
    );
  }
});
