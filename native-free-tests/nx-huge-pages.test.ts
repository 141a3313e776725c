/**
 * NX huge pages on one thread (nx_huge_pages.ts, nx_sp_tracking.ts, tdp_mmu_fault.ts):
 *   - an execute access to a huge page faults (kind 'exec', slow: the fast path cannot fix it),
 *     splits it (6.2+) or zaps it (before 6.2), and records one possible NX huge page;
 *   - the 4K children are executable: sibling fetches hit after a split;
 *   - a later read fault under the split table does not map a huge page over it
 *     (disallowed_hugepage_adjust), and the control (mark cleared) shows that it would;
 *   - the recovery batch zaps the recorded table (read or write lock), after which the region
 *     maps huge again and an execute faults again; in a dirty-logged slot it only unaccounts;
 *   - the control: with NX huge pages off, the same execute access is a hit.
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import { smallVm } from './_small_vm.js';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { HugePageFaultMode, Vm } from '../src/vm.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { enableDirtyLogging } from '../src/mmu/dirty_log.js';
import { lazySplit } from '../src/mmu/split_alloc_lazy.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { recoverNxHugePagesYieldSafe } from '../src/mmu/nx_huge_pages.js';
import { zapGfnRangeYieldSafe } from '../src/mmu/tdp_mmu_zap.js';
import { walkGfn, walkOutSpte } from '../src/mmu/tdp_mmu_fault.js';
import { isExecutable, pagesPerHpage, spteToChildTable } from '../src/mmu/spte.js';

const M = pagesPerHpage(2);
const HUGE_PAGES = 3;

function makeVm(nxHugePages: boolean, hugePageFault: HugePageFaultMode = 'split'): Vm {
  return smallVm(HUGE_PAGES, { dirtyTrack: 'wrprot', hugePageFault, nxHugePages });
}

function base(vm: Vm): number {
  return vm.config.memslots[0]!.baseGfn;
}

/** Populate: one write per huge page maps the slot with 2M leaves. */
function populate(vm: Vm): void {
  const out = createAccessResult();
  for (let g = base(vm); g < base(vm) + HUGE_PAGES * M; g += M) guestAccess(vm, g, 'write', out);
}

function level(vm: Vm, gfn: number): number {
  vm.rcu.readLock();
  const l = walkGfn(vm.spt, vm.root, vm.rootLevel, gfn);
  vm.rcu.readUnlock();
  return l;
}

function spteOf(vm: Vm, gfn: number): bigint {
  level(vm, gfn);
  return walkOutSpte[0]!;
}

function expectClean(t: ExecutionContext, vm: Vm, what: string): void {
  vm.rcu.barrier();
  const r = checkInvariants(vm);
  t.true(r.ok, `${what}: ${r.count} violations\n${formatViolations(r)}`);
}

test('NX on, split on fault (6.2+): an exec on a huge page faults once, splits it, children executable, one possible NX huge page', (t) => {
  const vm = makeVm(true);
  populate(vm);
  t.is(vm.pageStats().pages2m, HUGE_PAGES);
  t.false(isExecutable(spteOf(vm, base(vm))), 'huge leaves are built without X');
  const out = createAccessResult();
  const g = base(vm) + 7;
  guestAccess(vm, g, 'exec', out);
  t.is(out.outcome, 'slow', 'the fast path cannot fix an execute fault');
  t.is(out.faultKind, 'exec');
  t.is(vm.pageStats().pages2m, HUGE_PAGES - 1);
  t.is(vm.pageStats().pages4k, M);
  t.is(vm.nx!.count(), 1);
  const s = vm.sumStats();
  t.is(s['nxHugePagesSplit'], 1);
  t.is(s['faultExec'], 1);
  for (const sib of [base(vm), base(vm) + 100, base(vm) + M - 1]) {
    t.is(level(vm, sib), 1);
    t.true(isExecutable(spteOf(vm, sib)), `4K child ${sib - base(vm)} is executable`);
    guestAccess(vm, sib, 'exec', out);
    t.is(out.outcome, 'hit', 'sibling fetches hit');
    t.is(out.faultKind, 'none');
  }
  // Reads of the other huge pages still hit; an exec on the next one faults again.
  guestAccess(vm, base(vm) + M + 3, 'read', out);
  t.is(out.outcome, 'hit');
  guestAccess(vm, base(vm) + M + 3, 'exec', out);
  t.is(out.faultKind, 'exec');
  t.is(vm.nx!.count(), 2);
  expectClean(t, vm, 'after exec faults');
});

test('NX on, zap on fault (before 6.2): the exec zaps the huge page and maps one executable 4K page', (t) => {
  const vm = makeVm(true, 'zap');
  populate(vm);
  const out = createAccessResult();
  guestAccess(vm, base(vm) + 5, 'exec', out);
  t.is(out.outcome, 'slow');
  t.is(out.faultKind, 'exec');
  t.is(vm.pageStats().pages2m, HUGE_PAGES - 1);
  t.is(vm.pageStats().pages4k, 1, 'only the faulting page is mapped');
  t.is(vm.nx!.count(), 1);
  t.is(vm.sumStats()['nxHugePagesSplit'], 1);
  guestAccess(vm, base(vm) + 6, 'exec', out);
  t.is(out.outcome, 'slow', 'a sibling faults in on its own');
  t.is(out.faultKind, 'first-touch');
  t.is(vm.pageStats().pages4k, 2);
  t.is(vm.nx!.count(), 1, 'no new table: the sibling maps under the recorded one');
  expectClean(t, vm, 'after zap-on-fault');
});

/** Zap one 4K child under the NX-split table (as an invalidation would), then read it back in. */
function zapOneAndRead(vm: Vm, g: number): void {
  vm.mmuLock.writeLock();
  zapGfnRangeYieldSafe(vm, g, g + 1, { shared: false });
  vm.mmuLock.writeUnlock();
  vm.rcu.barrier();
  const out = createAccessResult();
  guestAccess(vm, g, 'read', out);
  if (out.faultKind !== 'first-touch') throw new Error(`expected a first-touch fault, got ${out.faultKind}`);
}

test('a read fault under an NX-split table maps 4K, never a huge page over it (disallowed_hugepage_adjust)', (t) => {
  const vm = makeVm(true);
  populate(vm);
  const out = createAccessResult();
  guestAccess(vm, base(vm), 'exec', out);
  zapOneAndRead(vm, base(vm) + 9);
  t.is(level(vm, base(vm) + 9), 1, 'mapped at 4K');
  t.is(vm.pageStats().pages2m, HUGE_PAGES - 1, 'no huge page was re-created');
  t.is(vm.pageStats().pages4k, M);
  expectClean(t, vm, 'after the read');
});

test('control: with the disallowed mark cleared, the same read fault re-creates the huge page', (t) => {
  const vm = makeVm(true);
  populate(vm);
  const out = createAccessResult();
  guestAccess(vm, base(vm), 'exec', out);
  // Break the detector: forget that the table was split for NX.
  vm.rcu.readLock();
  const l = walkGfn(vm.spt, vm.root, vm.rootLevel, base(vm));
  vm.rcu.readUnlock();
  t.is(l, 1);
  // The table's parent is the 2M SPTE: find the table through a 2M-level walk of the root.
  const table = parentTableOf(vm, base(vm));
  vm.nx!.lock();
  vm.nx!.untrackLocked(table);
  vm.nx!.unlock();
  zapOneAndRead(vm, base(vm) + 9);
  t.is(vm.pageStats().pages2m, HUGE_PAGES, 'without the mark the fault maps a huge page over the table');
  expectClean(t, vm, 'control');
});

/** The table the 2M SPTE over `gfn` points at. */
function parentTableOf(vm: Vm, gfn: number): number {
  // Walk to the 2M level: the root's chain of non-leaf SPTEs down to level 2.
  let table = vm.root;
  for (let lv = vm.rootLevel; lv >= 2; lv--) {
    const idx = table * 512 + (Math.floor(gfn / pagesPerHpage(lv)) & 511);
    table = spteToChildTable(vm.spt[idx]!);
  }
  return table;
}

for (const lockMode of ['write', 'read'] as const) {
  test(`recovery (${lockMode} lock) zaps the recorded table; the region maps huge again and a later exec faults again`, (t) => {
    const vm = makeVm(true);
    populate(vm);
    const out = createAccessResult();
    guestAccess(vm, base(vm) + 1, 'exec', out);
    guestAccess(vm, base(vm) + M + 1, 'exec', out);
    t.is(vm.nx!.count(), 2);
    const r = recoverNxHugePagesYieldSafe(vm, { lockMode, ratio: 2 });
    t.is(r.toZap, 1, 'DIV_ROUND_UP(2, 2)');
    t.is(r.zapped, 1);
    t.is(vm.nx!.count(), 1);
    const r2 = recoverNxHugePagesYieldSafe(vm, { lockMode, ratio: 1 });
    t.is(r2.zapped, 1);
    t.is(vm.nx!.count(), 0);
    t.is(vm.sumStats()['nxRecoveryZaps'], 2);
    vm.rcu.barrier();
    guestAccess(vm, base(vm) + 1, 'read', out);
    t.is(out.faultKind, 'first-touch', 'the zapped region faults in again');
    t.is(level(vm, base(vm) + 1), 2, 'mapped huge again');
    guestAccess(vm, base(vm) + 1, 'exec', out);
    t.is(out.faultKind, 'exec', 'and an exec faults again');
    t.is(vm.nx!.count(), 1);
    expectClean(t, vm, 'after recovery');
  });
}

test('recovery skips dirty-logged memslots since 6.2 (only unaccounts), and zaps them before 6.2', (t) => {
  for (const skipDirtyLogged of [true, false]) {
    const vm = makeVm(true);
    populate(vm);
    const out = createAccessResult();
    guestAccess(vm, base(vm) + 1, 'exec', out);
    enableDirtyLogging(vm, 0, { eagerSplit: false, initiallySet: false, design: lazySplit });
    const r = recoverNxHugePagesYieldSafe(vm, { lockMode: 'write', ratio: 1, skipDirtyLogged });
    t.is(vm.nx!.count(), 0);
    if (skipDirtyLogged) {
      t.is(r.unaccounted, 1);
      t.is(r.zapped, 0);
      t.is(level(vm, base(vm) + 1), 1, 'still mapped at 4K');
    } else {
      t.is(r.zapped, 1);
      t.is(r.unaccounted, 0);
    }
    expectClean(t, vm, `skipDirtyLogged ${skipDirtyLogged}`);
  }
});

test('control: with NX huge pages off, an exec on a huge page is a hit and nothing is recorded', (t) => {
  const vm = makeVm(false);
  populate(vm);
  const out = createAccessResult();
  guestAccess(vm, base(vm) + 7, 'exec', out);
  t.is(out.outcome, 'hit');
  t.is(out.faultKind, 'none');
  t.is(vm.nx, undefined);
  t.is(vm.pageStats().pages2m, HUGE_PAGES);
  t.is(vm.sumStats()['faultExec'], 0);
  t.is(recoverNxHugePagesYieldSafe(vm, { lockMode: 'write' }).toZap, 0);
});
