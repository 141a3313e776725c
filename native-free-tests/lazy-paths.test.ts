/**
 * Both lazy paths (eager splitting off; kvm-faults-and-dirty-tracking.md §2), on one thread:
 *   - `lazy` (6.2+, hugePageFault 'split'): the first write to a write-protected huge page is one
 *     slow fault that splits it with a table from the vCPU cache; the other 511 pages of the 2M
 *     region inherit the write-protected SPTE and take lockless fast faults;
 *   - `lazy-zap` (before 6.2, hugePageFault 'zap'): the first write zaps the huge SPTE (with a
 *     remote TLB flush), links an empty table and maps only its own 4K page; every other page of
 *     the region then takes its own slow fault, reads as much as writes.
 * Checked in both dirty-tracking modes: fault counts, page stats, the dirty bitmap, and the
 * invariant checker (every page maps the right pfn after a full write pass).
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import { smallVm } from './_small_vm.js';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { DirtyTrackMode, HugePageFaultMode, Vm } from '../src/vm.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { enableDirtyLogging, getDirtyLog } from '../src/mmu/dirty_log.js';
import { lazySplit, lazyZapSplit, hugePageFaultFor } from '../src/mmu/split_alloc_lazy.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { vcpuEnterGuest, vcpuExitGuest } from '../src/mmu/pml.js';
import { pagesPerHpage } from '../src/mmu/spte.js';

const M = pagesPerHpage(2);
const HUGE_PAGES = 3;

function makeVm(dirtyTrack: DirtyTrackMode, hugePageFault: HugePageFaultMode): Vm {
  return smallVm(HUGE_PAGES, { dirtyTrack, hugePageFault });
}

function expectClean(t: ExecutionContext, vm: Vm, what: string): void {
  vm.rcu.barrier();
  const r = checkInvariants(vm);
  t.true(r.ok, `${what}: ${r.count} violations\n${formatViolations(r)}`);
}

interface PassCounts {
  slow: number;
  fast: number;
  hits: number;
}

/** Populate (one write per huge page), enable logging with eager splitting off (-g), then one full sequential write pass. */
function writePass(vm: Vm): PassCounts {
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g += M) guestAccess(vm, g, 'write', out);
  const e = enableDirtyLogging(vm, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
  if (e.wrprotected !== HUGE_PAGES) throw new Error(`enable write-protected ${e.wrprotected} SPTEs, expected ${HUGE_PAGES} huge leaves`);
  const before = vm.sumStats();
  let hits = 0;
  vcpuEnterGuest(vm);
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g++) {
    guestAccess(vm, g, 'write', out);
    if (out.outcome === 'hit') hits++;
  }
  vcpuExitGuest(vm);
  const after = vm.sumStats();
  return { slow: after['slowFaults']! - before['slowFaults']!, fast: after['fastFaults']! - before['fastFaults']!, hits };
}

for (const mode of ['pml', 'wrprot'] as const) {
  test(`lazy (6.2+ split on fault), ${mode}: one slow fault per huge page, fast faults for the other 511 pages`, (t) => {
    const vm = makeVm(mode, hugePageFaultFor(lazySplit.name));
    const c = writePass(vm);
    t.is(c.slow, HUGE_PAGES, 'one slow fault per huge page');
    t.is(c.fast, HUGE_PAGES * (M - 1), 'the siblings inherit the write-protected SPTE: lockless fast faults');
    t.is(c.hits, 0);
    t.deepEqual(vm.pageStats(), { pages4k: HUGE_PAGES * M, pages2m: 0, pages1g: 0 });
    t.is(vm.sumStats()['hugePagesSplit'], HUGE_PAGES);
    t.is(vm.sumStats()['pmlWrites'], 0, 'no page was writable with D clear: PML logged nothing');
    const bm = new Int32Array(vm.dirtyBitmap(0).length);
    t.is(getDirtyLog(vm, 0, bm, { manualProtect: true }).dirtyPages, HUGE_PAGES * M, 'every written page is in the log');
    expectClean(t, vm, 'after the pass');
  });

  test(`lazy-zap (before 6.2), ${mode}: the huge page is zapped and every 4K page takes its own slow fault`, (t) => {
    const vm = makeVm(mode, hugePageFaultFor(lazyZapSplit.name));
    const flushes0 = vm.sumStats()['tlbFlushes']!;
    const c = writePass(vm);
    t.is(c.slow, HUGE_PAGES * M, 'one slow fault per 4K page written');
    t.is(c.fast, 0);
    t.deepEqual(vm.pageStats(), { pages4k: HUGE_PAGES * M, pages2m: 0, pages1g: 0 });
    t.is(vm.sumStats()['hugePagesSplit'], 0, 'nothing was split');
    // One flush for the enable, one per zapped huge page.
    t.is(vm.sumStats()['tlbFlushes']! - flushes0, 1 + HUGE_PAGES, 'a remote TLB flush per zap');
    const bm = new Int32Array(vm.dirtyBitmap(0).length);
    t.is(getDirtyLog(vm, 0, bm, { manualProtect: true }).dirtyPages, HUGE_PAGES * M);
    expectClean(t, vm, 'after the pass');
  });
}

test('lazy-zap: after the zap, reads of the other pages of the region are slow faults too (first touch); with split they hit', (t) => {
  for (const fault of ['zap', 'split'] as const) {
    const vm = makeVm('pml', fault);
    const s = vm.config.memslots[0]!;
    const out = createAccessResult();
    guestAccess(vm, s.baseGfn, 'write', out);
    enableDirtyLogging(vm, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
    guestAccess(vm, s.baseGfn + 17, 'write', out);
    t.is(out.outcome, 'slow');
    guestAccess(vm, s.baseGfn + 18, 'read', out);
    t.is(out.outcome, fault === 'zap' ? 'slow' : 'hit', `${fault}: read of a sibling`);
    guestAccess(vm, s.baseGfn + 19, 'exec', out);
    t.is(out.outcome, fault === 'zap' ? 'slow' : 'hit', `${fault}: exec of a sibling (every SPTE is executable)`);
    expectClean(t, vm, fault);
  }
});

test('first-touch faults: an access to unmapped memory is a slow fault; 4K in a dirty-logged slot, huge otherwise', (t) => {
  for (const kind of ['read', 'write', 'exec'] as const) {
    const vm = makeVm('pml', 'split');
    const s = vm.config.memslots[0]!;
    const out = createAccessResult();
    guestAccess(vm, s.baseGfn + 3, kind, out);
    t.is(out.outcome, 'slow', `${kind}: first touch`);
    t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 1, pages1g: 0 }, `${kind}: mapped huge outside dirty logging`);
    enableDirtyLogging(vm, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
    guestAccess(vm, s.baseGfn + M + 9, kind, out);
    t.is(out.outcome, 'slow');
    t.deepEqual(vm.pageStats(), { pages4k: 1, pages2m: 1, pages1g: 0 }, `${kind}: 4K in a dirty-logged slot`);
    t.is(vm.sumStats()['firstTouchFaults'], 2);
    guestAccess(vm, s.baseGfn + M + 9, kind, out);
    t.is(out.outcome, 'hit', `${kind}: mapped now`);
    expectClean(t, vm, `first touch ${kind}`);
  }
});
