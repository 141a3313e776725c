/**
 * MMU notifiers on one thread (src/mmu/mmu_notifier.ts): invalidate_range_start zaps the range's
 * leaves under the write lock with a TLB flush and marks the range in progress; range_end bumps the
 * sequence; the fault-side check retries on a moved sequence; the stale-translation detector
 * catches a fault path that ignores the notifier (its control); aging clears A under the write
 * lock or, from 6.15, without it. The multi-threaded races run end to end in host-events.test.ts.
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import test from 'ava';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { ageGfnRange, configureMmuNotifier, faultMustRetry, invalidateRangeEnd, invalidateRangeStart } from '../src/mmu/mmu_notifier.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { MMU_NOTIFIER_IN_PROGRESS, MMU_NOTIFIER_SEQ } from '../src/layout.js';
import { pagesPerHpage, SPTE_A_MASK } from '../src/mmu/spte.js';
import { walkGfn, walkOutSpte } from '../src/mmu/tdp_mmu_fault.js';

const M = pagesPerHpage(2);

function makeVm(backingLevel: 1 | 2 = 2): Vm {
  return attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(4 * M, 1),
      backingLevel,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      dirtyTrack: 'pml',
      hugePageFault: 'split',
    }),
    0,
  );
}

function populate(vm: Vm): void {
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g++) guestAccess(vm, g, 'write', out);
}

function notifierWord(vm: Vm, off: number): number {
  return Atomics.load(vm.control, vm.layout.mmuNotifierBase + off);
}

function spteAt(vm: Vm, gfn: number): bigint {
  vm.rcu.readLock();
  walkGfn(vm.spt, vm.root, vm.rootLevel, gfn);
  vm.rcu.readUnlock();
  return walkOutSpte[0]!;
}

test('invalidate_range_start zaps the huge leaf of the range under the write lock, with a TLB flush; range_end bumps the sequence', (t) => {
  const vm = makeVm();
  populate(vm);
  t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 4, pages1g: 0 });
  const base = vm.config.memslots[0]!.baseGfn + M;
  const flushes = vm.sumStats()['tlbFlushes']!;
  const holds = vm.timing.writeHold.count;
  t.is(invalidateRangeStart(vm, base, base + M), 1, 'one 2M leaf');
  t.is(vm.timing.writeHold.count - holds, 1, 'one write-lock hold');
  t.is(vm.sumStats()['tlbFlushes']! - flushes, 1, 'flush_on_ret');
  t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 3, pages1g: 0 });
  t.is(notifierWord(vm, MMU_NOTIFIER_IN_PROGRESS), 1);
  t.is(invalidateRangeEnd(vm, base, base + M), 0, 'no stale leaf');
  t.is(notifierWord(vm, MMU_NOTIFIER_IN_PROGRESS), 0);
  t.is(notifierWord(vm, MMU_NOTIFIER_SEQ), 1);
  t.is(vm.timing.writeHold.count - holds, 2, 'range_end: one more write-lock hold');
  // The guest touches it again: a first-touch slow fault maps it huge again.
  const out = createAccessResult();
  guestAccess(vm, base + 5, 'read', out);
  t.is(out.outcome, 'slow');
  t.deepEqual(vm.pageStats(), { pages4k: 0, pages2m: 4, pages1g: 0 });
  const r = checkInvariants(vm);
  t.true(r.ok, formatViolations(r));
});

test('4K leaves: only the range is zapped; tables stay', (t) => {
  const vm = makeVm(1);
  populate(vm);
  const base = vm.config.memslots[0]!.baseGfn + 100;
  t.is(invalidateRangeStart(vm, base, base + 8), 8);
  invalidateRangeEnd(vm, base, base + 8);
  t.deepEqual(vm.pageStats(), { pages4k: 4 * M - 8, pages2m: 0, pages1g: 0 });
  t.is(vm.sumStats()['zappedTables'] ?? 0, 0, 'leaves only (tdp_mmu_zap_leafs)');
  t.true(checkInvariants(vm).ok);
});

test('the fault-side check: a moved sequence retries under the lock; nothing in progress and no move does not', (t) => {
  const vm = makeVm();
  populate(vm);
  const base = vm.config.memslots[0]!.baseGfn;
  for (const point of ['after-lock', 'before-lock'] as const) {
    configureMmuNotifier(vm, point);
    t.false(faultMustRetry(vm, base + 3, 'before-lock'), `${point}: nothing in progress`);
    vm.mmuLock.readLock();
    t.false(faultMustRetry(vm, base + 3, 'under-lock'), `${point}: the sequence did not move`);
    vm.mmuLock.readUnlock();
    // Snapshot, then an invalidation elsewhere starts and ends before the fault takes the lock.
    t.false(faultMustRetry(vm, base + 3, 'before-lock'));
    invalidateRangeStart(vm, base + 2 * M, base + 3 * M);
    invalidateRangeEnd(vm, base + 2 * M, base + 3 * M);
    vm.mmuLock.readLock();
    t.true(faultMustRetry(vm, base + 3, 'under-lock'), `${point}: mmu_invalidate_seq moved since the snapshot`);
    vm.mmuLock.readUnlock();
  }
  t.true(vm.sumStats()['notifierRetries']! >= 2);
});

test('stale-translation detector: a fault path that ignores the notifier (the control) is caught at range_end', (t) => {
  const vm = makeVm();
  populate(vm);
  const base = vm.config.memslots[0]!.baseGfn + M;
  configureMmuNotifier(vm, 'never');
  invalidateRangeStart(vm, base, base + M);
  const out = createAccessResult();
  guestAccess(vm, base + 7, 'write', out); // maps the range while it is being invalidated
  t.is(out.outcome, 'slow');
  t.true(invalidateRangeEnd(vm, base, base + M) > 0, 'the stale leaf is found');
  t.true(vm.sumStats()['staleTranslations']! > 0);
  t.true(vm.sumStats()['xlateErrors']! > 0, 'and reaches the corruption channel');
});

test('aging clears A on the range: write lock through 6.14, no lock from 6.15', (t) => {
  for (const lock of ['write', 'rcu'] as const) {
    const vm = makeVm(1);
    populate(vm);
    const base = vm.config.memslots[0]!.baseGfn;
    t.not(spteAt(vm, base) & SPTE_A_MASK, 0n, 'faults install leaves with A set');
    const holds = vm.timing.writeHold.count;
    t.is(ageGfnRange(vm, base, base + M, { lock }), M, `${lock}: every leaf of the range was young`);
    t.is(vm.timing.writeHold.count - holds, lock === 'write' ? 1 : 0, `${lock}: write-lock holds`);
    t.is(spteAt(vm, base) & SPTE_A_MASK, 0n);
    t.not(spteAt(vm, base + M) & SPTE_A_MASK, 0n, 'outside the range: untouched');
    t.is(ageGfnRange(vm, base, base + M, { lock }), 0, 'nothing young the second time');
    t.true(checkInvariants(vm).ok);
  }
});

test('a fault that makes an aged leaf writable sets A again (make_spte)', (t) => {
  const vm = makeVm(2);
  const base = vm.config.memslots[0]!.baseGfn;
  const out = createAccessResult();
  guestAccess(vm, base, 'read', out); // a read-only 2M leaf
  t.is(ageGfnRange(vm, base, base + M, { lock: 'write' }), 1);
  t.is(spteAt(vm, base) & SPTE_A_MASK, 0n);
  guestAccess(vm, base + 1, 'write', out); // huge: the fast path refuses, the slow fault makes it writable
  t.is(out.outcome, 'slow');
  t.not(spteAt(vm, base) & SPTE_A_MASK, 0n);
  t.true(checkInvariants(vm).ok);
});
