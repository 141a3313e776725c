/**
 * Reclamation under pressure (src/mmu/pool_reclaim.ts): a tight page-table pool, zap-heavy churn.
 *
 * Stress: vCPUs fault random gfns of a dirty-logged slot (so every fault maps 4K and needs leaf
 * tables) while a zapper zaps random ranges and now and then the whole slot. Its tables are freed
 * through RCU and it never drives a grace period, so the pool would run dry behind grace periods
 * (the soak's failure). The pool holds the worst-case tree plus every vCPU cache plus a small
 * slack: live tables always fit. With pressure reclamation no fault may fail with ERR_ENOMEM, no
 * walker may read a reclaimed (poisoned) table, and the invariant checker must find nothing.
 * Control: the same harness with `unsafe.noPressureReclaim` must end with a vCPU's ERR_ENOMEM,
 * asserted on every run (nothing else returns the zapped tables, so it is certain, not a race).
 *
 * No-wait: with the pool exhausted and another reader inside its read-side section, GFP_KERNEL
 * allocations inside the caller's own read-side section and under mmu_lock (read and write), and
 * GFP_NOWAIT, must fail fast without pushing a grace period; outside every lock the same
 * allocation waits for the grace period and succeeds. A waiting implementation would deadlock
 * on the holder; the holder's own bound (holdMs) and the run's timeout keep the test finite.
 * Control: `unsafe.pressureWaitAnywhere` (waits in any context) is caught by the same checks.
 */
import test from 'ava';
import { runAllConcurrently } from '../src/thread_pool.js';
import { attachVm, createVm, layoutMemslots, worstCaseTreeTables } from '../src/vm.js';
import type { VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { enableDirtyLogging } from '../src/mmu/dirty_log.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import type { InvariantReport } from '../src/mmu/invariants.js';
import { TS_FREE, TS_RCU_WAIT } from '../src/mmu/pt_pool.js';
import type { PoolAccounting } from '../src/mmu/pt_pool.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { stressSeconds } from './_tier.js';
import { C_STOP, CTL_INT32S } from './fixtures/pool-pressure.worker.js';
import type { PressureResult, PressureTask, Role } from './fixtures/pool-pressure.worker.js';

const worker = new URL('./fixtures/pool-pressure.worker.js', import.meta.url);
const VCPUS = 3;
/** Per-vCPU cache capacity: small, so the caches do not hide the pool's pressure. */
const CACHE = 8;
/** Tables beyond the live worst case: what may wait for RCU before the pool runs dry. */
const SLACK = 8;
/** The churn each stress run must reach: tables zapped, in pool capacities. */
const CHURN_CAPACITIES = 4;

interface StressOutcome {
  readonly pool: PoolAccounting;
  readonly stats: Record<string, number>;
  readonly report: InvariantReport;
  readonly workerErrors: string[];
  readonly capacity: number;
}

async function stress(unsafe: boolean): Promise<StressOutcome> {
  const roles: Role[] = ['zapper', 'reader', ...new Array<Role>(VCPUS).fill('vcpu')];
  const memslots = layoutMemslots(32 * pagesPerHpage(2), 1);
  const workers = roles.length + 1;
  // Live tables at most: the tree mapped entirely at 4K, plus every vCPU cache (only vCPUs top up).
  const poolTables = worstCaseTreeTables({ levels: 4, memslots }) + VCPUS * CACHE + SLACK;
  const config: VmConfig = {
    levels: 4,
    memslots,
    backingLevel: 2,
    workers,
    pressure: PRESSURE_PROFILES.none,
    seed: 11,
    cacheCapacity: CACHE,
    poolTables,
    ...(unsafe ? { unsafe: { noPressureReclaim: true } } : {}),
  };
  const shared = createVm(config);
  const main = attachVm(shared, 0);
  // Dirty logging on (initially-set: no split, no write-protect pass): faults map 4K only.
  enableDirtyLogging(main, 0, { initiallySet: true, eagerSplit: false, design: dropAlways });
  const ctl = new SharedArrayBuffer(CTL_INT32S * 4);
  const c = new Int32Array(ctl);
  const tasks: PressureTask[] = roles.map((role, i) => ({ role, workerId: i + 1, vm: shared, ctl, seed: 1000 + i * 7919 }));
  const seconds = stressSeconds(1.5, 3, 30);
  // Stop after `seconds` once the churn is reached (or at once when a worker failed).
  const t0 = performance.now();
  const churn = CHURN_CAPACITIES * poolTables;
  const poll = setInterval(() => {
    const zapped = main.sumStats()['zappedTables'] ?? 0;
    if (performance.now() - t0 >= seconds * 1000 && zapped >= churn) Atomics.store(c, C_STOP, 1);
  }, 20);
  let results: PressureResult[];
  try {
    results = await runAllConcurrently<PressureResult>(worker, tasks, {
      timeoutMs: seconds * 1000 + 60_000,
      env: { ATOMICS_LOCK_DEBUG: '1', RCU_DEBUG: '1' },
    });
  } finally {
    clearInterval(poll);
  }
  // Every worker detached (its callbacks ran or found their tables reaped): the pool is quiescent.
  main.rcu.barrier();
  const report = checkInvariants(main);
  return {
    pool: main.pool.accounting(),
    stats: main.sumStats(),
    report,
    workerErrors: results.filter((r) => r.error !== null).map((r) => `${r.role}: ${r.error}`),
    capacity: poolTables,
  };
}

function summary(o: StressOutcome): string {
  const n = (k: string): number => o.stats[k] ?? 0;
  const p = o.pool;
  return [
    `pool ${o.capacity} tables; accesses ${n('accesses')}, slow faults ${n('slowFaults')}, zapped tables ${n('zappedTables')}`,
    `pressure: allocations ${p.pressureAllocs}, grace periods pushed ${p.pressureGracePeriods}, tables reaped ${p.reapedTables}, fail-fast ${p.pressureFailFast}`,
    `poison reads ${n('poisonReads')}, translation errors ${n('xlateErrors')}, invariant violations ${o.report.count}`,
  ].join('\n');
}

test.serial('zap-heavy stress at a tight pool: freed tables come back under pressure, no vCPU fault fails while live tables fit', async (t) => {
  const o = await stress(false);
  t.log(summary(o));
  t.deepEqual(o.workerErrors, [], 'no worker failed (no ERR_ENOMEM)');
  t.true(o.report.ok, formatViolations(o.report));
  t.is(o.stats['poisonReads'], 0, 'no walker read a reclaimed (poisoned) table');
  t.is(o.stats['xlateErrors'], 0, 'every translation matched the backing');
  // The run exercised what it claims to.
  t.true((o.stats['zappedTables'] ?? 0) >= CHURN_CAPACITIES * o.capacity, 'tables were zapped many times over the pool capacity');
  t.true(o.pool.pressureAllocs > 0, 'allocations found the free list empty');
  t.true(o.pool.pressureGracePeriods > 0, 'faults pushed grace periods');
  t.true(o.pool.reapedTables > 0, 'tables freed by the zapper were reaped by the faulting threads');
});

test.serial('control: without pressure reclamation the same stress ends with a vCPU fault failing ERR_ENOMEM', async (t) => {
  const o = await stress(true);
  t.log(summary(o));
  t.log(o.workerErrors.join('\n'));
  t.true(
    o.workerErrors.some((e) => e.startsWith('vcpu: ERR_ENOMEM') && e.includes('cannot top up the MMU cache')),
    'a vCPU fault failed with ERR_ENOMEM',
  );
  t.is(o.pool.pressureAllocs, 0, 'the control never entered the pressure path');
  t.true(o.report.ok, formatViolations(o.report));
});

test("a table reaped by another thread is freed once; its freer's late callback leaves the next life alone", (t) => {
  const shared = createVm({
    levels: 4,
    memslots: layoutMemslots(pagesPerHpage(2), 1),
    backingLevel: 2,
    workers: 2,
    pressure: PRESSURE_PROFILES.none,
    seed: 5,
    poolTables: 4,
  });
  const a = attachVm(shared, 0);
  const b = attachVm(shared, 1);
  const x = a.pool.allocRaw();
  a.pool.freeAfterGracePeriod(x, a.rcu); // life 1: a's callback is queued
  t.is(b.pool.reapExpired(b.rcu), 0, 'nothing is reaped before a grace period');
  t.true(b.rcu.synchronize(5_000));
  t.is(b.pool.reapExpired(b.rcu), 1, "b reaps a's table once its grace period has ended");
  t.is(a.pool.stateOf(x), TS_FREE);
  t.is(b.pool.allocRaw(), x, 'the reaped table is reusable (top of the free list)');
  b.pool.freeAfterGracePeriod(x, b.rcu); // life 2, waiting for a new grace period
  t.is(a.rcu.pollCallbacks(), 1, "a's callback for life 1 runs (its grace period ended)...");
  t.is(a.pool.stateOf(x), TS_RCU_WAIT, '...and leaves life 2 waiting for its own grace period');
  t.is(a.pool.accounting().rcuWaiting, 1);
  t.true(b.rcu.synchronize(5_000)); // runs b's callback: life 2 ends
  t.is(a.pool.stateOf(x), TS_FREE);
  t.like(a.pool.accounting(), { rcuWaiting: 0, reapedTables: 1 });
  t.deepEqual(a.pool.audit().problems, []);
  b.detach();
  a.detach();
});

interface NoWaitOutcome {
  readonly prober: PressureResult;
  readonly holder: PressureResult;
  readonly before: PoolAccounting;
  readonly after: PoolAccounting;
}

async function noWait(unsafe: boolean, holdMs: number): Promise<NoWaitOutcome> {
  const config: VmConfig = {
    levels: 4,
    memslots: layoutMemslots(pagesPerHpage(2), 1),
    backingLevel: 2,
    workers: 3,
    pressure: PRESSURE_PROFILES.none,
    seed: 3,
    poolTables: 16,
    ...(unsafe ? { unsafe: { pressureWaitAnywhere: true } } : {}),
  };
  const shared = createVm(config);
  const main = attachVm(shared, 0);
  // Exhaust the pool: every table but the root is taken, and all but two of them are freed
  // through RCU (as a teardown does, inside a read-side section). No grace period has run since,
  // so nothing is reclaimable yet.
  const taken: number[] = [];
  for (let x = main.pool.allocRaw(); x >= 0; x = main.pool.allocRaw()) taken.push(x);
  main.rcu.readLock();
  for (const x of taken.slice(2)) main.pool.freeAfterGracePeriod(x, main.rcu);
  main.rcu.readUnlock();
  const before = main.pool.accounting();
  const ctl = new SharedArrayBuffer(CTL_INT32S * 4);
  const tasks: PressureTask[] = [
    { role: 'holder', workerId: 1, vm: shared, ctl, seed: 1, holdMs },
    { role: 'prober', workerId: 2, vm: shared, ctl, seed: 2 },
  ];
  const [holder, prober] = await runAllConcurrently<PressureResult>(worker, tasks, { timeoutMs: holdMs + 60_000 });
  const after = main.pool.accounting();
  for (const x of taken.slice(0, 2)) main.pool.freeUnpublished(x);
  main.rcu.barrier(); // its callbacks find their tables already reaped
  main.detach();
  return { holder: holder!, prober: prober!, before, after };
}

/** The checks that make an allocation "fail fast" in a context that may not sleep. */
function noWaitProblems(o: NoWaitOutcome): string[] {
  const p = o.prober.probes;
  if (p === undefined) return [`the prober failed: ${o.prober.error}`];
  const problems: string[] = [];
  for (const [what, r] of [
    ['inside its own read-side section', p.inReadSide],
    ['under mmu_lock for read', p.underReadLock],
    ['under mmu_lock for write', p.underWriteLock],
    ['GFP_NOWAIT', p.nowait],
  ] as const) {
    if (r.threw !== null) problems.push(`${what}: threw ${r.threw}`);
    else if (r.table >= 0) problems.push(`${what}: got table ${r.table} (only a grace period could have made one reclaimable)`);
  }
  if (p.cookieAfterNoWait !== p.cookieBefore) problems.push('a grace period ran during the no-wait allocations');
  return problems;
}

test.serial('inside RCU or under mmu_lock an allocation fails fast instead of waiting; outside it waits and succeeds', async (t) => {
  const o = await noWait(false, 30_000);
  t.deepEqual(noWaitProblems(o), []);
  const p = o.prober.probes!;
  t.is(o.after.pressureFailFast - o.before.pressureFailFast, 4, 'all four counted as fail-fast');
  t.is(o.prober.error, null);
  t.is(o.holder.error, null);
  // Outside every lock the same allocation pushed a grace period and reaped main's tables.
  t.true(p.outside.table >= 0, 'outside every lock the allocation succeeded');
  t.true(o.after.pressureGracePeriods > o.before.pressureGracePeriods, 'it pushed a grace period');
  t.true(o.after.reapedTables > o.before.reapedTables, "it reaped tables freed by another thread's callRcu");
});

test.serial('control: a pressure path that waits in any context is caught by the same checks', async (t) => {
  // The holder leaves on its own after 1 s, so the broken variant's wait ends instead of deadlocking.
  const o = await noWait(true, 1_000);
  const problems = noWaitProblems(o);
  t.log(problems.join('\n'));
  t.true(
    problems.some((s) => s.startsWith('under mmu_lock for read: got table')),
    'the wait under mmu_lock is caught',
  );
  t.true(
    problems.some((s) => s.startsWith('inside its own read-side section: threw ERR_RCU_IN_READ_SIDE')),
    'the wait inside the read side is caught',
  );
});
