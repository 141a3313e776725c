import test from 'ava';
import { attachVm, BACKING_PFN_OFFSET, checkFootprint, createVm, layoutMemslots, vmFootprint } from '../src/vm.js';
import type { VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { pagesPerHpage, PT_ENTRIES } from '../src/mmu/spte.js';
import { checkLayout, computeLayout, layoutRegions, LINE_INT32S, PAGE_STATS_2M, WORKER_STAT_FIELDS } from '../src/layout.js';
import { STAT_ROWS, WORKER_STAT_NAMES, WORKER_STAT_ROWS, WS } from '../src/stats/worker_stats.js';
import { errorCode } from '../src/errors.js';

const GiB_PAGES = 2 ** 18;
const GiB = 2 ** 30;

function config(over: Partial<VmConfig> = {}): VmConfig {
  return {
    levels: 4,
    memslots: layoutMemslots(4 * GiB_PAGES, 2),
    backingLevel: 3,
    workers: 3,
    pressure: PRESSURE_PROFILES.none,
    seed: 5,
    poolTables: 512,
    ...over,
  };
}

test('vmFootprint: 96 vCPUs x 1 GiB at 4K needs ~49k tables (~200 MiB) plus headroom', (t) => {
  for (const slots of [1, 96]) {
    const fp = vmFootprint({
      levels: 4,
      memslots: layoutMemslots(96 * GiB_PAGES, slots),
      backingLevel: 1,
      workers: 97,
      pressure: PRESSURE_PROFILES.moderate,
      seed: 1,
    });
    t.log(`${slots} memslot(s): ${fp.tables} tables (ideal ${fp.idealTables}, tree ${fp.worstCaseTreeTables}), ${(fp.bytes / 2 ** 20).toFixed(1)} MiB`);
    // 96 x 512 leaf tables per GiB = 49,152 leaves + 96 + 1 + 1 upper: the ideal.
    t.is(fp.idealTables, 49152 + 96 + 1 + 1);
    t.true(fp.worstCaseTreeTables >= fp.idealTables);
    t.true(fp.tables >= fp.worstCaseTreeTables + 97 * 40, 'room for every vCPU cache on top of the full tree');
    t.true(fp.tables <= fp.idealTables * 1.15, 'headroom, not waste');
    t.true(fp.bytes < 256 * 2 ** 20);
  }
});

test('vmFootprint: a 1 TiB guest mapped at 4K fits in 24 GiB; 4 and 5 levels both', (t) => {
  for (const levels of [4, 5] as const) {
    const fp = vmFootprint({
      levels,
      memslots: layoutMemslots(1024 * GiB_PAGES, 1),
      backingLevel: 1,
      workers: 33,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
    });
    t.log(`levels ${levels}: ${fp.tables} tables, ${(fp.bytes / GiB).toFixed(3)} GiB (ideal ${((fp.idealTables * 4096) / GiB).toFixed(3)} GiB)`);
    t.is(fp.idealTables, 524288 + 1024 + 2 + (levels === 5 ? 1 : 0) + 1);
    t.true(fp.bytes < 24 * GiB);
    t.true(fp.tables / fp.idealTables < 1.05);
    t.notThrows(() =>
      checkFootprint(
        { levels, memslots: layoutMemslots(1024 * GiB_PAGES, 1), backingLevel: 1, workers: 33, pressure: PRESSURE_PROFILES.none, seed: 1 },
        24 * GiB,
      ),
    );
  }
});

test('checkFootprint refuses a guest that will not fit with ERR_TOO_BIG', (t) => {
  const big: VmConfig = {
    levels: 4,
    memslots: layoutMemslots(16 * 1024 * GiB_PAGES, 4),
    backingLevel: 1,
    workers: 2,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
  };
  const err = t.throws(() => checkFootprint(big, 24 * GiB));
  t.is(errorCode(err), 'ERR_TOO_BIG');
  t.regex(err?.message ?? '', /GiB/);
});

test('createVm with a worst-case pool commits memory lazily (96 GiB guest at 4K)', (t) => {
  const cfg: VmConfig = { levels: 4, memslots: layoutMemslots(96 * GiB_PAGES, 1), backingLevel: 1, workers: 4, pressure: PRESSURE_PROFILES.none, seed: 1 };
  const fp = vmFootprint(cfg);
  const before = process.memoryUsage().rss;
  const shared = createVm(cfg);
  const vm = attachVm(shared, 0);
  const grew = process.memoryUsage().rss - before;
  t.log(`reserved ${(fp.bytes / 2 ** 20).toFixed(1)} MiB, RSS grew ${(grew / 2 ** 20).toFixed(1)} MiB`);
  t.is(shared.spt.byteLength, fp.sptBytes);
  t.true(grew < fp.bytes / 4, 'only what was touched is committed');
  vm.detach();
});

test('createVm + attachVm: root, levels, memslots, backing, dirty bitmaps', (t) => {
  for (const levels of [4, 5] as const) {
    const shared = createVm(config({ levels }));
    const vm = attachVm(shared, 1);
    t.is(vm.rootLevel, levels);
    t.is(vm.root, shared.root);
    t.is(vm.spt, vm.pool.spt);
    t.is(vm.spt.length, 512 * PT_ENTRIES);
    t.like(vm.poolAccounting(), { inUse: 1, capacity: 512 });
    const [s0, s1] = shared.config.memslots;
    t.is(vm.slotOf(s0!.baseGfn), 0);
    t.is(vm.slotOf(s0!.baseGfn + s0!.npages - 1), 0);
    t.is(vm.slotOf(s1!.baseGfn), 1);
    t.is(vm.slotOf(s0!.baseGfn - 1), -1);
    t.is(vm.slotOf(s1!.baseGfn + s1!.npages), -1);
    // Huge-aligned gfns map to huge-aligned pfns at every level.
    for (const level of [2, 3]) {
      const g = s1!.baseGfn + 3 * pagesPerHpage(level);
      t.is(vm.backingPfn(g) % pagesPerHpage(level), 0);
    }
    t.is(vm.backingPfn(s0!.baseGfn + 5), s0!.baseGfn + 5 + BACKING_PFN_OFFSET);
    const bm = vm.dirtyBitmap(1);
    t.is(bm.length, Math.ceil(s1!.npages / 32 / LINE_INT32S) * LINE_INT32S);
    vm.markDirty(1, 37);
    t.is(bm[1], 1 << 5);
    t.is(vm.dirtyBitmap(0)[1], 0, 'bitmaps are separate');
    t.is(errorCode(t.throws(() => vm.dirtyBitmap(2))), 'ERR_INVALID_ARG');
    vm.detach();
  }
});

test('stats: per-worker slots are separate, sumStats adds them, pageStats reads the shared counters', (t) => {
  const shared = createVm(config());
  const a = attachVm(shared, 0);
  const b = attachVm(shared, 2);
  a.stats.add(WS.spteReads, 5);
  b.stats.add(WS.spteReads, 7);
  b.stats.add(WS.accesses, 2 ** 40); // past Int32: counters are doubles
  t.is(a.stats.get(WS.spteReads), 5);
  const sum = a.sumStats();
  t.is(sum['spteReads'], 12);
  t.is(sum['accesses'], 2 ** 40);
  t.deepEqual(Object.keys(sum), [...WORKER_STAT_NAMES]);
  t.is(a.workerStats(2)['spteReads'], 7);
  Atomics.add(a.control, shared.layout.pageStatsBase + PAGE_STATS_2M, 3);
  t.deepEqual(b.pageStats(), { pages4k: 0, pages2m: 3, pages1g: 0 });
  a.resetAllStats();
  t.is(b.sumStats()['spteReads'], 0);
  a.detach();
  b.detach();
});

test('attach: a worker id is an RCU slot; detach frees it for the next phase', (t) => {
  const shared = createVm(config());
  const a = attachVm(shared, 1);
  t.throws(() => attachVm(shared, 1), undefined, 'one thread per slot');
  a.detach();
  const again = attachVm(shared, 1);
  t.is(again.workerId, 1);
  again.detach();
  t.is(errorCode(t.throws(() => attachVm(shared, 3))), 'ERR_INVALID_ARG');
});

test('config checks: overlapping memslots, gfns past 2^36, bad levels', (t) => {
  t.is(
    errorCode(
      t.throws(() =>
        createVm(
          config({
            memslots: [
              { baseGfn: 0, npages: 100 },
              { baseGfn: 50, npages: 10 },
            ],
          }),
        ),
      ),
    ),
    'ERR_INVALID_ARG',
  );
  t.is(errorCode(t.throws(() => createVm(config({ memslots: [{ baseGfn: 2 ** 36 - 5, npages: 10 }] })))), 'ERR_INVALID_ARG');
  t.is(errorCode(t.throws(() => createVm(config({ levels: 3 as 4 })))), 'ERR_INVALID_ARG');
  t.is(errorCode(t.throws(() => createVm(config({ workers: 0 })))), 'ERR_INVALID_ARG');
});

test('layout: regions are 64-B aligned and disjoint for many shapes; checkLayout catches an overlap', (t) => {
  for (const workers of [1, 2, 33, 97, 300]) {
    for (const pages of [[1], [31, 33, 4097], [2 ** 28]]) {
      const l = computeLayout({ workers, memslotPages: pages });
      t.notThrows(() => checkLayout(l));
      let end = 0;
      for (const [, base, n] of layoutRegions(l)) {
        t.is(base % LINE_INT32S, 0);
        t.true(base >= end);
        end = base + n;
      }
      t.true(end <= l.totalInt32s);
    }
  }
  const l = computeLayout({ workers: 4, memslotPages: [100] });
  t.throws(() => checkLayout({ ...l, workerStatsBase: l.pageStatsBase }), { message: /overlaps/ });
  t.throws(() => checkLayout({ ...l, workerStatsBase: l.workerStatsBase + 1 }), { message: /aligned/ });
});

test('MmuLock records wait and hold times per worker and counts contended acquisitions', (t) => {
  const shared = createVm(config());
  const a = attachVm(shared, 0);
  const b = attachVm(shared, 1);
  t.true(a.mmuLock.readLock());
  t.true(b.mmuLock.readLock(), 'readers share');
  b.mmuLock.readUnlock();
  a.mmuLock.readUnlock();
  t.is(a.timing.readWait.count, 1);
  t.is(a.timing.readHold.count, 1);
  t.is(a.stats.get(WS.lockReadContended), 0);
  t.true(a.mmuLock.writeLock());
  t.true(a.mmuLock.isContended() === false);
  // b cannot get in while a holds it for write: a contended, timed-out attempt.
  t.false(b.mmuLock.readLock(5));
  t.false(b.mmuLock.writeLock(5));
  t.is(b.stats.get(WS.lockReadContended), 1);
  t.is(b.stats.get(WS.lockWriteContended), 1);
  a.mmuLock.writeUnlock();
  t.is(a.timing.writeHold.count, 1);
  t.is(b.timing.readWait.count, 1, 'only the earlier successful read recorded a wait; the timed-out one did not');
  const d = a.takeTiming();
  t.is(d.writeHold.count, 1);
  t.is(a.timing.writeHold.count, 0, 'takeTiming starts fresh histograms');
  a.detach();
  b.detach();
});

test('worker stats: the table gives every counter a unique slot index and a name, within the slot', (t) => {
  const idx = Object.values(WS);
  t.is(idx.length, WORKER_STAT_ROWS.length);
  t.is(new Set(idx).size, idx.length, 'indices are unique');
  for (const [k, v] of Object.entries(WS)) {
    t.true(v >= 0 && v < WORKER_STAT_FIELDS, k);
    t.is(WORKER_STAT_NAMES[v], k, `${k} is named by its row`);
  }
  t.true(STAT_ROWS.length <= WORKER_STAT_FIELDS);
});
