import test from 'ava';
import type { ExecutionContext } from 'ava';
import { attachVm, createVm } from '../src/vm.js';
import type { VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { POISON_SPTE, PT_ENTRIES, SHADOW_NONPRESENT_VALUE } from '../src/mmu/spte.js';
import { TS_FREE, TS_IN_USE, TS_RCU_WAIT } from '../src/mmu/pt_pool.js';
import { errorCode } from '../src/errors.js';
import { POOL_FREE } from '../src/layout.js';
import { runAllConcurrently } from '../src/thread_pool.js';
import { stressSeconds } from './_tier.js';
import type { PoolResult, PoolTask } from './fixtures/pool.worker.js';

const fixture = new URL('./fixtures/pool.worker.js', import.meta.url);

function config(over: Partial<VmConfig> = {}): VmConfig {
  return {
    levels: 4,
    memslots: [{ baseGfn: 2 ** 20, npages: 4096 }],
    backingLevel: 1,
    workers: 4,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
    poolTables: 64,
    ...over,
  };
}

function tableIs(spt: BigInt64Array, t: number, v: bigint): boolean {
  for (let i = 0; i < PT_ENTRIES; i++) if (spt[t * PT_ENTRIES + i] !== v) return false;
  return true;
}

test('alloc and free keep the accounting balanced; exhaustion returns -1', (t) => {
  const shared = createVm(config());
  const vm = attachVm(shared, 0);
  const pool = vm.pool;
  // The root is table 0, in use.
  t.is(vm.root, 0);
  t.is(pool.stateOf(0), TS_IN_USE);
  t.like(pool.accounting(), { capacity: 64, allocated: 1, freed: 0, inUse: 1, free: 63, rcuWaiting: 0, inCaches: 0 });
  const got: number[] = [];
  for (;;) {
    const x = pool.allocRaw();
    if (x < 0) break;
    got.push(x);
  }
  t.is(got.length, 63);
  t.is(new Set(got).size, 63, 'no table handed out twice');
  t.like(pool.accounting(), { allocated: 64, inUse: 64, free: 0, emptyHits: 1 });
  t.deepEqual(pool.audit().problems, []);
  for (const x of got.slice(0, 20)) pool.freeUnpublished(x);
  const a = pool.accounting();
  t.like(a, { allocated: 64, freed: 20, inUse: 44, free: 20 });
  t.is(a.free + a.inUse + a.inCaches + a.rcuWaiting, a.capacity);
  t.deepEqual(pool.audit().problems, []);
  vm.detach();
});

test('a double free and a free of an unallocated table are invariant violations', (t) => {
  const shared = createVm(config());
  const vm = attachVm(shared, 0);
  const x = vm.pool.allocRaw();
  vm.pool.freeUnpublished(x);
  t.is(errorCode(t.throws(() => vm.pool.freeUnpublished(x))), 'ERR_INVARIANT');
  t.is(errorCode(t.throws(() => vm.pool.freeAfterGracePeriod(x, vm.rcu))), 'ERR_INVARIANT');
  t.is(errorCode(t.throws(() => vm.pool.freeUnpublished(64))), 'ERR_INVARIANT');
  t.deepEqual(vm.pool.audit().problems, []);
  vm.detach();
});

test('freeAfterGracePeriod keeps the table intact for readers, then poisons it; reused only after a grace period, zeroed', (t) => {
  const shared = createVm(config({ poolTables: 8 }));
  const vm = attachVm(shared, 0);
  const other = attachVm(shared, 1); // a second reader (same thread is fine: we never block on it)
  const tables: number[] = [];
  for (let x = vm.pool.allocRaw(); x >= 0; x = vm.pool.allocRaw()) tables.push(x);
  const victim = tables[3]!;
  vm.spt.fill(0x1234n, victim * PT_ENTRIES, (victim + 1) * PT_ENTRIES);

  other.rcu.readLock(); // a walker that may still hold a pointer into `victim`
  vm.pool.freeAfterGracePeriod(victim, vm.rcu);
  t.true(tableIs(vm.spt, victim, 0x1234n), 'readers inside their section still see the old entries');
  t.is(vm.pool.stateOf(victim), TS_RCU_WAIT);
  t.like(vm.pool.accounting(), { rcuWaiting: 1, free: 0 });
  t.is(vm.pool.allocRaw(), -1, 'not reusable while its grace period is pending');
  t.false(vm.rcu.synchronize(50), 'the grace period cannot end while the reader is inside');
  vm.rcu.pollCallbacks();
  t.is(vm.pool.allocRaw(), -1, 'still not reusable');
  t.true(tableIs(vm.spt, victim, 0x1234n), "the reader still sees the old entries, not poison or a new owner's data");

  other.rcu.readUnlock();
  t.true(vm.rcu.synchronize(5_000));
  t.is(vm.pool.stateOf(victim), TS_FREE);
  t.true(tableIs(vm.spt, victim, POISON_SPTE), 'poisoned once its grace period ended');
  t.like(vm.pool.accounting(), { rcuWaiting: 0, free: 1 });
  const again = vm.pool.allocRaw();
  t.is(again, victim);
  t.true(tableIs(vm.spt, again, SHADOW_NONPRESENT_VALUE), 'a recycled table comes back zeroed (__GFP_ZERO)');
  t.deepEqual(vm.pool.audit().problems, []);
  other.detach();
  vm.detach();
});

/**
 * The reuse-before-grace-period scenario of the test above, with a reader inside its section while
 * a table is freed; `unsafe` frees it without waiting. Returns the audit's problems at the end.
 */
function freeUnderReader(t: ExecutionContext, unsafe: boolean): string[] {
  const shared = createVm(config({ poolTables: 8, ...(unsafe ? { unsafe: { freeWithoutGracePeriod: true } } : {}) }));
  const vm = attachVm(shared, 0);
  const other = attachVm(shared, 1); // the walker that may still hold a pointer into the victim
  const tables: number[] = [];
  for (let x = vm.pool.allocRaw(); x >= 0; x = vm.pool.allocRaw()) tables.push(x);
  const victim = tables[2]!;
  other.rcu.readLock();
  vm.pool.freeAfterGracePeriod(victim, vm.rcu);
  vm.rcu.pollCallbacks();
  const reused = vm.pool.allocRaw();
  other.rcu.readUnlock();
  t.true(vm.rcu.synchronize(5_000));
  if (unsafe) t.is(reused, victim, 'the broken pool hands the table out again inside the reader section');
  else t.is(reused, -1, 'the safe pool does not');
  if (reused >= 0) vm.pool.freeUnpublished(reused);
  const problems = vm.pool.audit().problems;
  other.detach();
  vm.detach();
  return problems;
}

test('the audit finds nothing when a table freed under a reader waits for its grace period', (t) => {
  t.deepEqual(freeUnderReader(t, false), []);
});

test("control: a table made reusable inside a reader's section (no grace period) is caught by the audit", (t) => {
  const problems = freeUnderReader(t, true);
  t.deepEqual(
    problems,
    ['1 table(s) became reusable before their grace period ended (reuse before a grace period)'],
    'exactly the early-reuse finding, nothing else',
  );
});

test('audit() notices a counter that disagrees with the state bytes', (t) => {
  const shared = createVm(config({ poolTables: 16 }));
  const vm = attachVm(shared, 0);
  const x = vm.pool.allocRaw();
  t.deepEqual(vm.pool.audit().problems, []);
  // Corrupt the FREE counter behind the pool's back: audit must notice (it is not a rubber stamp).
  Atomics.add(vm.control, shared.layout.poolCtrlBase + POOL_FREE, 1);
  t.true(vm.pool.audit().problems.length > 0);
  Atomics.sub(vm.control, shared.layout.poolCtrlBase + POOL_FREE, 1);
  vm.pool.freeUnpublished(x);
  t.deepEqual(vm.pool.audit().problems, []);
  vm.detach();
});

async function concurrentRun(unsafe: boolean): Promise<{ results: PoolResult[]; problems: string[]; leaked: number }> {
  const workers = 4;
  const poolTables = 256;
  const shared = createVm(config({ workers: workers + 1, poolTables, unsafe: { nonAtomicFreeList: unsafe } }));
  const owners = new SharedArrayBuffer(poolTables * 4);
  const ctl = new SharedArrayBuffer(64);
  const tasks: PoolTask[] = Array.from({ length: workers }, (_, i) => ({
    shared,
    workerId: i + 1,
    owners,
    ctl,
    workers,
    seconds: unsafe ? Math.min(1, stressSeconds()) : stressSeconds(),
    hold: 48,
  }));
  const results = await runAllConcurrently<PoolResult>(fixture, tasks, { timeoutMs: 60_000 });
  const main = attachVm(shared, 0);
  const problems = main.pool.audit().problems;
  const a = main.pool.accounting();
  main.detach();
  return { results, problems, leaked: a.capacity - 1 - a.free };
}

test('concurrent alloc/free from 4 workers loses and duplicates nothing', async (t) => {
  const { results, problems, leaked } = await concurrentRun(false);
  const sum = (k: keyof PoolResult): number => results.reduce((s, r) => s + r[k], 0);
  t.log(`allocs ${sum('allocs')}, frees ${sum('frees')} (${sum('rcuFrees')} after a grace period)`);
  t.true(sum('allocs') > 1000, 'the workers really raced');
  t.true(sum('rcuFrees') > 100);
  t.is(sum('duplicates'), 0);
  t.is(sum('invariantErrors'), 0);
  t.is(sum('markerErrors'), 0);
  t.is(sum('allocs'), sum('frees'));
  t.deepEqual(problems, []);
  t.is(leaked, 0, 'every table is back on the free list (root aside)');
});

test('control: a non-atomic free-list pop is caught handing tables out twice', async (t) => {
  const { results, problems, leaked } = await concurrentRun(true);
  const violations = results.reduce((s, r) => s + r.duplicates + r.invariantErrors + r.markerErrors, 0);
  t.log(`violations ${violations}, audit problems ${problems.length}, leaked ${leaked}`);
  t.true(violations + problems.length + (leaked !== 0 ? 1 : 0) > 0, 'the broken variant must be caught');
});
