/**
 * NX huge pages under concurrency (nx_huge_pages.ts, nx_sp_tracking.ts): vCPUs read, write and
 * execute random pages (execute faults split huge pages and record them) while a recoverer runs
 * NX recovery batches under the read lock (6.18+) and the write lock (before), and an invalidator
 * zaps 2M ranges under the write lock (which tears recorded tables down). At the end the MMU
 * invariants hold, no walker read a freed table or a wrong translation, and the NX tracking
 * agrees with the tree (checkNxTracking: every flagged table is linked, the count matches).
 * Control: with `unsafe.nxKeepRemovedTables` a torn-down table stays on the list, and
 * checkNxTracking must say so (single thread, deterministic).
 */
process.env['ATOMICS_LOCK_DEBUG'] = '1';
process.env['RCU_DEBUG'] = '1';

import test from 'ava';
import { runAllConcurrently } from '../src/thread_pool.js';
import { attachVm, createVm, layoutMemslots, worstCaseTreeTables } from '../src/vm.js';
import type { VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { checkNxTracking } from '../src/mmu/nx_huge_pages.js';
import { zapGfnRangeYieldSafe } from '../src/mmu/tdp_mmu_zap.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { stressSeconds } from './_tier.js';
import type { NxRole, NxStressResult, NxStressTask } from './fixtures/nx-stress.worker.js';

const worker = new URL('./fixtures/nx-stress.worker.js', import.meta.url);
const M = pagesPerHpage(2);

function config(workers: number, unsafe: boolean): VmConfig {
  const memslots = layoutMemslots(16 * M, 1);
  return {
    levels: 4,
    memslots,
    backingLevel: 2,
    workers,
    pressure: PRESSURE_PROFILES.none,
    seed: 3,
    dirtyTrack: 'wrprot',
    nxHugePages: true,
    poolTables: 4 * worstCaseTreeTables({ levels: 4, memslots }) + 2048,
    ...(unsafe ? { unsafe: { nxKeepRemovedTables: true } } : {}),
  };
}

test('vCPUs executing, NX recovery (read and write lock) and invalidations: invariants and NX tracking hold', async (t) => {
  const roles: NxRole[] = ['vcpu', 'vcpu', 'vcpu', 'recoverer', 'invalidator'];
  const shared = createVm(config(roles.length + 1, false));
  const main = attachVm(shared, 0);
  const out = createAccessResult();
  const s = shared.config.memslots[0]!;
  for (let g = s.baseGfn; g < s.baseGfn + s.npages; g += M) guestAccess(main, g, 'write', out);
  const stop = new SharedArrayBuffer(8);
  const ctl = new Int32Array(stop);
  const seconds = stressSeconds(1, 3, 30);
  const tasks: NxStressTask[] = roles.map((role, i) => ({ role, workerId: i + 1, vm: shared, stop, seed: 500 + i * 7919 }));
  // The run lasts `seconds` from the moment every worker has attached (start-up is slow on 2 cores).
  let timer: NodeJS.Timeout | undefined;
  const startClock = (): void => {
    if (Atomics.load(ctl, 1) >= roles.length) timer = setTimeout(() => Atomics.store(ctl, 0, 1), seconds * 1000);
    else timer = setTimeout(startClock, 20);
  };
  startClock();
  let results: NxStressResult[];
  try {
    results = await runAllConcurrently<NxStressResult>(worker, tasks, { timeoutMs: seconds * 1000 + 30_000, env: { ATOMICS_LOCK_DEBUG: '1', RCU_DEBUG: '1' } });
  } finally {
    clearTimeout(timer);
  }
  t.deepEqual(
    results.filter((r) => r.error !== null).map((r) => r.error),
    [],
  );
  t.true(
    results.every((r) => r.ops > 0),
    JSON.stringify(results.map((r) => [r.role, r.ops])),
  );
  main.rcu.barrier();
  const rep = checkInvariants(main);
  t.true(rep.ok, formatViolations(rep));
  const st = main.sumStats();
  t.is(st['poisonReads'], 0);
  t.is(st['xlateErrors'], 0);
  t.true(st['faultExec']! > 0, 'execute faults happened');
  t.true(st['nxRecoveryZaps']! > 0, 'recovery zapped recorded tables');
  t.deepEqual(checkNxTracking(main), []);
});

test('control: a torn-down table left on the NX list is caught by checkNxTracking', (t) => {
  for (const unsafe of [false, true]) {
    const vm = attachVm(createVm(config(1, unsafe)), 0);
    const b = vm.config.memslots[0]!.baseGfn;
    const out = createAccessResult();
    guestAccess(vm, b, 'write', out);
    guestAccess(vm, b, 'exec', out);
    t.is(vm.nx!.count(), 1);
    vm.mmuLock.writeLock();
    zapGfnRangeYieldSafe(vm, b, b + M, { shared: false });
    vm.mmuLock.writeUnlock();
    vm.rcu.barrier();
    const v = checkNxTracking(vm);
    if (unsafe) {
      t.true(v.length > 0, 'the control must be caught');
      t.regex(v[0]!, /not linked in the tree/);
    } else {
      t.deepEqual(v, []);
      t.is(vm.nx!.count(), 0, 'the zap took the table off the list');
    }
  }
});
