import test from 'ava';
import { attachVm, createVm } from '../src/vm.js';
import type { Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { DEFAULT_CACHE_CAPACITY, MmuMemoryCache } from '../src/mmu/mmu_cache.js';
import { TS_IN_CACHE, TS_IN_USE } from '../src/mmu/pt_pool.js';
import { errorCode } from '../src/errors.js';
import { PT_ENTRIES, SHADOW_NONPRESENT_VALUE } from '../src/mmu/spte.js';
import { WS } from '../src/stats/worker_stats.js';

function vmWith(poolTables: number): Vm {
  return attachVm(
    createVm({
      levels: 5,
      memslots: [{ baseGfn: 2 ** 20, npages: 4096 }],
      backingLevel: 1,
      workers: 2,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      poolTables,
    }),
    0,
  );
}

test('topup fills to capacity only when below the minimum; pool counts cached tables', (t) => {
  const vm = vmWith(200);
  const c = new MmuMemoryCache(vm.alloc, undefined, { stats: vm.stats });
  t.is(c.capacity, DEFAULT_CACHE_CAPACITY);
  t.is(c.nobjs, 0);
  t.true(c.topup(5));
  t.is(c.nobjs, 40, 'refilled all the way to capacity');
  t.like(vm.pool.accounting(), { inCaches: 40, inUse: 1 });
  t.is(vm.stats.get(WS.allocBlocking), 40, 'topup uses GFP_KERNEL allocations');
  for (let i = 0; i < 35; i++) c.pop();
  t.is(c.nobjs, 5);
  const before = vm.pool.accounting().allocated;
  t.true(c.topup(5));
  t.is(c.nobjs, 5, 'nobjs >= min: nothing allocated');
  t.is(vm.pool.accounting().allocated, before);
  t.true(c.topup(6));
  t.is(c.nobjs, 40, 'below the minimum: refilled to capacity, not to the minimum');
  t.deepEqual(vm.pool.audit().problems, []);
});

test('pop hands out zeroed IN_USE tables and counts them; popping an empty cache is a bug', (t) => {
  const vm = vmWith(100);
  // Dirty a table and free it, so the cache's refill includes a recycled (must-be-zeroed) table.
  const d = vm.pool.allocRaw();
  vm.spt.fill(0x77n, d * PT_ENTRIES, (d + 1) * PT_ENTRIES);
  vm.pool.freeUnpublished(d);
  const c = new MmuMemoryCache(vm.alloc, 4, { stats: vm.stats });
  t.true(c.topup(1));
  t.is(c.nobjs, 4);
  const seen = new Set<number>();
  for (let i = 0; i < 4; i++) {
    const x = c.pop();
    t.is(vm.pool.stateOf(x), TS_IN_USE);
    t.true(vm.spt.subarray(x * PT_ENTRIES, (x + 1) * PT_ENTRIES).every((v) => v === SHADOW_NONPRESENT_VALUE));
    seen.add(x);
  }
  t.is(seen.size, 4);
  t.is(vm.stats.get(WS.allocFromCache), 4);
  const err = t.throws(() => c.pop());
  t.is(errorCode(err), 'ERR_INVARIANT');
  t.like(vm.pool.accounting(), { inCaches: 0, inUse: 5 });
});

test('a topup that runs out midway reports whether the minimum was reached', (t) => {
  // 8 tables: the root plus 7 free.
  const vm = vmWith(8);
  const a = new MmuMemoryCache(vm.alloc, 40);
  t.true(a.topup(5), '7 >= 5: enough although short of capacity');
  t.is(a.nobjs, 7);
  a.freeAll();
  const b = new MmuMemoryCache(vm.alloc, 40);
  t.false(b.topup(10), 'only 7 free: the minimum of 10 cannot be reached');
  t.is(b.nobjs, 7, 'what was allocated stays in the cache');
  t.true(b.topup(7), 'now nobjs >= min');
  t.is(errorCode(t.throws(() => b.topup(41))), 'ERR_INVALID_ARG');
});

test('freeAll returns leftovers to the pool and counts them (unless told not to)', (t) => {
  const vm = vmWith(100);
  const c = new MmuMemoryCache(vm.alloc, 10, { stats: vm.stats });
  c.topup(10);
  c.pop();
  c.pop();
  const cached = [...Array(100).keys()].filter((x) => vm.pool.stateOf(x) === TS_IN_CACHE);
  t.is(cached.length, 8);
  t.is(c.freeAll(), 8);
  t.is(c.nobjs, 0);
  t.is(c.freeAll(), 0);
  t.is(vm.stats.get(WS.leftoverFreed), 8);
  t.like(vm.pool.accounting(), { inCaches: 0, inUse: 3, free: 97 });
  // The vCPU cache does not count its leftovers (they are not a splitter design's waste).
  vm.vcpuCache.topup(3);
  t.is(vm.vcpuCache.freeAll(), 40);
  t.is(vm.stats.get(WS.leftoverFreed), 8);
  t.deepEqual(vm.pool.audit().problems, []);
});
