/**
 * Split 1G -> 2M -> 4K and recovery back, on one thread, checked at every step by the invariant
 * checker and the page stats (what dirty_log_page_splitting_test checks in the kernel). Plus the
 * best-effort ENOMEM stop, the dirty-log flows on one thread, and two controls for the checker:
 * (a) a split that drops one child mapping and miscounts the page stats is caught by the page
 * stats alone; (a') a split that drops one child mapping and keeps the stats consistent is caught
 * by the lost-mapping check alone (memory populated and then only split must stay mapped).
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1'; // assert lock contexts (read before any lock is attached)
process.env['RCU_DEBUG'] = '1'; // and RCU read-side contexts

import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createVm, attachVm, layoutMemslots } from '../src/vm.js';
import type { Vm, VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { guestAccess, createAccessResult } from '../src/mmu/guest_access.js';
import { splitHugePagesYieldSafe } from '../src/mmu/tdp_mmu_split.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import type { GfnRange } from '../src/mmu/invariants.js';
import { clearDirtyLog, disableDirtyLogging, enableDirtyLogging, getDirtyLog } from '../src/mmu/dirty_log.js';
import { zapGfnRangeYieldSafe } from '../src/mmu/tdp_mmu_zap.js';
import { pagesPerHpage } from '../src/mmu/spte.js';

const G = pagesPerHpage(3);
const M = pagesPerHpage(2);

function makeVm(levels: 4 | 5, backingLevel: 1 | 2 | 3, pages: number, extra: Partial<VmConfig> = {}): Vm {
  const config: VmConfig = {
    levels,
    memslots: layoutMemslots(pages, 1),
    backingLevel,
    workers: 1,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
    ...extra,
  };
  return attachVm(createVm(config), 0);
}

/**
 * Quiesce (run this thread's RCU callbacks) and check; fail the test with the violations.
 * `mustMap`: ranges that must still be fully translated (populated, then only split or protected).
 */
function expectClean(t: ExecutionContext, vm: Vm, what: string, mustMap: readonly GfnRange[] = []): void {
  vm.rcu.barrier();
  const r = checkInvariants(vm, { mustMap });
  t.true(r.ok, `${what}: ${r.count} violations\n${formatViolations(r)}`);
}

/** The whole first memslot, as a must-map range. */
function wholeSlot(vm: Vm): GfnRange[] {
  const s = vm.config.memslots[0]!;
  return [{ start: s.baseGfn, end: s.baseGfn + s.npages }];
}

function touchAll(vm: Vm, stride: number, isWrite: boolean): { hits: number; faults: number } {
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  let hits = 0;
  let faults = 0;
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g += stride) {
    guestAccess(vm, g, isWrite ? 'write' : 'read', out);
    if (out.outcome === 'hit') hits++;
    else faults++;
  }
  return { hits, faults };
}

function splitAll(vm: Vm, shared: boolean, targetLevel: number) {
  const s = vm.config.memslots[0]!;
  if (shared) vm.mmuLock.readLock();
  else vm.mmuLock.writeLock();
  const r = splitHugePagesYieldSafe(vm, s.baseGfn, s.baseGfn + s.npages, { shared, targetLevel, design: dropAlways });
  if (shared) vm.mmuLock.readUnlock();
  else vm.mmuLock.writeUnlock();
  return r;
}

for (const levels of [4, 5] as const) {
  test(`1G -> 2M -> 4K and recovery back to 1G (${levels} levels)`, (t) => {
    const vm = makeVm(levels, 3, 2 * G);
    const f = touchAll(vm, G, true);
    t.deepEqual(f, { hits: 0, faults: 2 }, 'one fault per 1G page');
    t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 0, pages1g: 2 });
    expectClean(t, vm, 'after populate', wholeSlot(vm));
    t.deepEqual(touchAll(vm, 4099, false).faults, 0, 'reads of a mapped 1G page hit');

    const r1 = splitAll(vm, true, 2);
    t.true(r1.ok);
    t.is(r1.hugePagesSplit, 2);
    t.is(r1.lockDrops, 2, 'drop-always drops the lock once per table');
    t.true(r1.restarts >= 2, 'and restarts the walk after each drop');
    t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 1024, pages1g: 0 });
    expectClean(t, vm, 'after 1G -> 2M', wholeSlot(vm));

    const r2 = splitAll(vm, false, 1);
    t.true(r2.ok);
    t.is(r2.hugePagesSplit, 1024);
    t.deepEqual(vm.pageStats(), { pages4k: 2 * G, pages2m: 0, pages1g: 0 });
    expectClean(t, vm, 'after 2M -> 4K (write lock)', wholeSlot(vm));
    const again = splitAll(vm, true, 1);
    t.is(again.hugePagesSplit, 0, 'nothing left to split');
    t.is(again.lockDrops, 0, 'no allocation, so no lock drop');
    t.deepEqual(touchAll(vm, 997, true).faults, 0, 'split children inherit W: writes still hit');

    const d = disableDirtyLogging(vm, 0);
    t.is(d.zapped, 2, 'recovery zaps the two 1G-level tables');
    t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 0, pages1g: 0 });
    expectClean(t, vm, 'after recovery');
    const acct = vm.poolAccounting();
    t.is(acct.inUse, levels === 4 ? 2 : 3, 'only the root and the upper tables remain');

    t.deepEqual(touchAll(vm, G, false), { hits: 0, faults: 2 });
    t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 0, pages1g: 2 }, 'faults map 1G again');
    expectClean(t, vm, 'after refault');
  });
}

test('2M backing: split to 4K and recover to 2M; unaligned slot edges map smaller', (t) => {
  const vm = makeVm(4, 2, 8 * M + 100); // the last 100 pages cannot be mapped 2M
  touchAll(vm, 1, true);
  t.deepEqual(vm.pageStats(), { pages4k: 100, pages2m: 8, pages1g: 0 });
  expectClean(t, vm, 'after populate');
  const r = splitAll(vm, true, 1);
  t.is(r.hugePagesSplit, 8);
  t.deepEqual(vm.pageStats(), { pages4k: 8 * 512 + 100, pages2m: 0, pages1g: 0 });
  expectClean(t, vm, 'after split', wholeSlot(vm));
  const d = disableDirtyLogging(vm, 0);
  t.is(d.zapped, 8, 'the partial 2M region is not collapsible');
  t.deepEqual(vm.pageStats(), { pages4k: 100, pages2m: 0, pages1g: 0 });
  touchAll(vm, 1, false);
  t.deepEqual(vm.pageStats(), { pages4k: 100, pages2m: 8, pages1g: 0 });
  expectClean(t, vm, 'after recover + refault');
});

test('ENOMEM stops the split cleanly; unsplit huge pages stay mapped and correct', (t) => {
  // root + L3 + vCPU cache (40) + 2 tables for 1G->2M + 60 more: the 2M->4K split runs dry.
  const vm = makeVm(4, 3, 2 * G, { poolTables: 105 });
  touchAll(vm, G, true);
  const r1 = splitAll(vm, true, 2);
  t.true(r1.ok);
  const r2 = splitAll(vm, true, 1);
  t.false(r2.ok);
  t.is(r2.code, 'ENOMEM');
  t.true(r2.hugePagesSplit > 0 && r2.hugePagesSplit < 1024, `split ${r2.hugePagesSplit} before running out`);
  const ps = vm.pageStats();
  t.is(ps.pages4k, r2.hugePagesSplit * 512);
  t.is(ps.pages2m, 1024 - r2.hugePagesSplit);
  expectClean(t, vm, 'after ENOMEM', wholeSlot(vm));
  t.is(vm.sumStats()['splitEnomem'], 1);
  t.deepEqual(touchAll(vm, 1021, false).faults, 0, 'every page still translates');
});

test('dirty log without initially-set: enable splits + write-protects, writes fault fast and are logged', (t) => {
  const vm = makeVm(4, 2, 4 * M);
  touchAll(vm, M, true);
  const e = enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  t.is(e.split?.hugePagesSplit, 4);
  t.is(e.wrprotected, 4 * 512);
  expectClean(t, vm, 'after enable');
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  const written = [3, 700, 701, 1500, 2047];
  for (const p of written) {
    guestAccess(vm, s.baseGfn + p, 'write', out);
    t.is(out.outcome, 'fast', `write to page ${p} takes the lockless fast fault`);
    guestAccess(vm, s.baseGfn + p, 'write', out);
    t.is(out.outcome, 'hit');
  }
  guestAccess(vm, s.baseGfn + 9, 'read', out);
  t.is(out.outcome, 'hit', 'reads of write-protected pages hit');
  expectClean(t, vm, 'after writes');
  const bm = new Int32Array(vm.dirtyBitmap(0).length);
  const g = getDirtyLog(vm, 0, bm, { manualProtect: false });
  t.is(g.dirtyPages, written.length);
  t.is(g.wrprotected, written.length);
  for (const p of written) t.not(bm[p >> 5]! & (1 << (p & 31)), 0, `page ${p} reported`);
  guestAccess(vm, s.baseGfn + 700, 'write', out);
  t.is(out.outcome, 'fast', 'after the harvest the page is write-protected again');
  expectClean(t, vm, 'after get');
  const g2 = getDirtyLog(vm, 0, bm, { manualProtect: false });
  t.is(g2.dirtyPages, 1);
  disableDirtyLogging(vm, 0);
  expectClean(t, vm, 'after disable');
});

test('dirty log with initially-set: CLEAR splits under the write lock, 64 pages at a time', (t) => {
  const vm = makeVm(4, 3, G);
  touchAll(vm, G, true);
  const e = enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: true, design: dropAlways });
  t.is(e.split, null, 'no split at enable time');
  const bm = new Int32Array(vm.dirtyBitmap(0).length);
  t.is(getDirtyLog(vm, 0, bm, { manualProtect: true }).dirtyPages, G, 'all pages initially dirty');
  expectClean(t, vm, 'after enable');
  // Clear the first 128 pages: the first word splits 1G -> 2M -> 4K of the first 2M page.
  const mask = new Int32Array(4).fill(-1);
  const c = clearDirtyLog(vm, 0, 0, mask, { eagerSplit: true, design: dropAlways });
  t.is(c.cleared, 128);
  t.is(c.split.hugePagesSplit, 2, '1G -> 2M, then that 2M -> 4K');
  t.is(c.wrprotected, 128);
  t.deepEqual(vm.pageStats(), { pages4k: 512, pages2m: 511, pages1g: 0 });
  expectClean(t, vm, 'after first clear', wholeSlot(vm));
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  guestAccess(vm, s.baseGfn + 5, 'write', out);
  t.is(out.outcome, 'fast');
  guestAccess(vm, s.baseGfn + 200, 'write', out);
  t.is(out.outcome, 'hit', 'page 200 was not cleared: still writable, its bit still set');
  expectClean(t, vm, 'after writes');
  const c2 = clearDirtyLog(vm, 0, 0, mask, { eagerSplit: true, design: dropAlways });
  t.is(c2.cleared, 1, 'only the page written since');
  t.is(c2.split.hugePagesSplit, 0);
  expectClean(t, vm, 'after second clear');
});

test('zap a range under the read and the write lock, then refault', (t) => {
  const vm = makeVm(4, 2, 8 * M);
  touchAll(vm, M, true);
  splitAll(vm, true, 1);
  const s = vm.config.memslots[0]!;
  vm.mmuLock.readLock();
  const z1 = zapGfnRangeYieldSafe(vm, s.baseGfn + 100, s.baseGfn + 3 * M, { shared: true });
  vm.mmuLock.readUnlock();
  t.is(z1.zapped, M - 100 + 2, '412 leaves of the first table, then two whole tables');
  expectClean(t, vm, 'after shared zap');
  vm.mmuLock.writeLock();
  const z2 = zapGfnRangeYieldSafe(vm, s.baseGfn, s.baseGfn + 8 * M, { shared: false });
  vm.mmuLock.writeUnlock();
  t.true(z2.zapped > 0);
  t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 0, pages1g: 0 });
  expectClean(t, vm, 'after exclusive zap');
  touchAll(vm, 512, false);
  t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 8, pages1g: 0 });
  expectClean(t, vm, 'after refault');
});

/** Populate 4 x 2M, then split them all under the read lock with `faultInjection`; quiesced. */
function splitWithLostChild(keepStatsConsistent: boolean): Vm {
  const vm = makeVm(4, 2, 4 * M);
  touchAll(vm, M, true);
  const s = vm.config.memslots[0]!;
  vm.mmuLock.readLock();
  const r = splitHugePagesYieldSafe(vm, s.baseGfn, s.baseGfn + 4 * M, {
    shared: true,
    design: dropAlways,
    faultInjection: { dropChildIndex: 77, keepStatsConsistent },
  });
  vm.mmuLock.readUnlock();
  if (r.hugePagesSplit !== 4) throw new Error(`control setup: expected 4 splits, got ${r.hugePagesSplit}`);
  vm.rcu.barrier();
  return vm;
}

test('control (a): a split that drops one child mapping and miscounts the stats is caught by the page stats', (t) => {
  const vm = splitWithLostChild(false);
  const r = checkInvariants(vm);
  t.false(r.ok, 'the checker must report the lost mappings');
  t.true(
    r.violations.every((v) => v.kind === 'page-stats' && v.level === 1),
    formatViolations(r),
  );
  t.log(`control (a) reported ${r.count} violation(s): ${r.violations.map((v) => v.kind).join(', ')}`);
});

test("control (a'): a split that drops one child mapping with consistent stats is caught by the lost-mapping check", (t) => {
  const vm = splitWithLostChild(true);
  t.deepEqual(vm.pageStats(), { pages4k: 4 * 511, pages2m: 0, pages1g: 0 }, 'the stats agree with the broken tree');
  t.true(checkInvariants(vm).ok, 'without knowing what must be mapped the tree looks legal (a zap leaves the same state)');
  const r = checkInvariants(vm, { mustMap: wholeSlot(vm) });
  t.is(r.count, 4, `one lost mapping per split table:\n${formatViolations(r)}`);
  const s = vm.config.memslots[0]!;
  t.deepEqual(
    r.violations.map((v) => [v.kind, v.gfn, v.level]),
    [0, 1, 2, 3].map((i) => ['lost-mapping', s.baseGfn + i * M + 77, 1]),
    formatViolations(r),
  );
});
