/**
 * Every split allocation design on the one shared split walk, single-threaded on small
 * guests so that the counters can be derived exactly:
 *   - all huge pages are split and the invariants hold, at 4 and 5 levels, under the read lock
 *     (enable path) and the write lock (CLEAR path);
 *   - each design's counting rule: cache restarts once per refill (ceil(T/C)), nowait-retry
 *     without pressure allocates under the lock and never restarts, drop-always drops once per
 *     table, blocking-under-lock never drops, chunked-cache tops up once per chunk;
 *   - cond_resched yields are counted apart from allocation lock drops;
 *   - under exhaustion every design stops cleanly with ENOMEM and the unsplit huge pages stay
 *     mapped and correct;
 *   - a control: a cache design that leaks its leftovers must be caught by the invariant checker.
 * Pressure delays are disabled (timeScale=0) or absent: no test depends on timing.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { attachVm, createVm, DEFAULT_FIRST_GFN } from '../src/vm.js';
import type { Vm } from '../src/vm.js';
import { parsePressure, PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import type { PressureParams } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import { splitHugePagesYieldSafe } from '../src/mmu/tdp_mmu_split.js';
import type { SplitResult } from '../src/mmu/tdp_mmu_split.js';
import { createSplitAllocDesign, splitAllocDesignImplNames } from '../src/mmu/split_alloc.js';
import type { SplitAllocDesign, SplitAllocParams } from '../src/mmu/split_alloc.js';
import { endSplitIoctl, releaseSplitAllocDesign, SPLIT_ALLOC_DESIGN_ORDER, splitIsEager, splitLockShared } from '../src/mmu/split_alloc_designs.js';
import { CacheSplitDesign } from '../src/mmu/split_alloc_cache.js';
import { type ChunkedCacheSplitDesign, CHUNK_PAGES_1G, CHUNK_PAGES_2M, splitNrPageTables } from '../src/mmu/split_alloc_chunked.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { measureRestartReads } from '../src/emulate/restart_reads.js';
import { setRunnable } from '../src/mmu/mmu_resched.js';
import { registerSplitAllocDesign } from '../src/mmu/split_alloc.js';
import { splitAllocDesignInfo, splitAllocDesignNames } from '../src/emulate/split_designs.js';
import { helpText, parseCommandLine, resolveOptions } from '../src/emulate/options.js';

const BASE = DEFAULT_FIRST_GFN;

interface GuestSpec {
  readonly levels?: 4 | 5;
  /** Huge pages in the memslot. */
  readonly hugePages: number;
  readonly backingLevel?: 2 | 3;
  readonly pressure?: PressureParams;
  readonly seed?: number;
  /** Free tables left in the pool after mapping (exhaustion tests); default: a roomy pool. */
  readonly poolFree?: number;
  readonly poolTables?: number;
}

interface Guest {
  readonly vm: Vm;
  readonly npages: number;
  readonly hugePages: number;
  readonly hugeSpan: number;
}

/** Tables a tree of huge pages inside one 1G (2M backing) or 512G (1G backing) region uses, root included. */
function treeTables(levels: number, backingLevel: number): number {
  return levels - backingLevel + 1;
}

/** A VM with one memslot of `hugePages` huge pages, all mapped huge by vCPU writes, vCPU cache emptied. */
function mappedGuest(spec: GuestSpec): Guest {
  const levels = spec.levels ?? 4;
  const backingLevel = spec.backingLevel ?? 2;
  const hugeSpan = pagesPerHpage(backingLevel);
  const npages = spec.hugePages * hugeSpan;
  const poolTables = spec.poolFree !== undefined ? treeTables(levels, backingLevel) + spec.poolFree : spec.poolTables;
  const shared = createVm({
    levels,
    memslots: [{ baseGfn: BASE, npages }],
    backingLevel,
    // Worker 1 stands for a vCPU thread (busyHost marks it runnable); one host core.
    workers: 2,
    hostCores: 1,
    pressure: spec.pressure ?? PRESSURE_PROFILES.none,
    seed: spec.seed ?? 1,
    ...(poolTables !== undefined ? { poolTables } : {}),
  });
  const vm = attachVm(shared, 0);
  const out = createAccessResult();
  for (let i = 0; i < spec.hugePages; i++) guestAccess(vm, BASE + i * hugeSpan, 'write', out);
  vm.vcpuCache.freeAll();
  const ps = vm.pageStats();
  if ((backingLevel === 2 ? ps.pages2m : ps.pages1g) !== spec.hugePages)
    throw new Error(`setup: expected ${spec.hugePages} huge pages, got ${JSON.stringify(ps)}`);
  if (spec.poolFree !== undefined && vm.poolAccounting().free !== spec.poolFree) {
    throw new Error(`setup: expected ${spec.poolFree} free tables, got ${JSON.stringify(vm.poolAccounting())}`);
  }
  vm.resetAllStats();
  return { vm, npages, hugePages: spec.hugePages, hugeSpan };
}

/** A vCPU thread of the guest becomes runnable: with one host core, need_resched() can now be set. */
function busyHost(g: Guest): void {
  const vcpu = attachVm(g.vm.shared, 1);
  vcpu.rcu.offline();
  setRunnable(vcpu, true);
}

interface SplitRun {
  readonly r: SplitResult;
  readonly stats: Record<string, number>;
  readonly released: number;
}

/** Split the whole memslot with `design` under the lock its path and design call for. */
function split(g: Guest, design: SplitAllocDesign, opts: { pathShared?: boolean; reschedMs?: number } = {}): SplitRun {
  const vm = g.vm;
  const shared = splitLockShared(design, opts.pathShared ?? true);
  if (shared) vm.mmuLock.readLock();
  else vm.mmuLock.writeLock();
  let r: SplitResult;
  try {
    r = splitHugePagesYieldSafe(vm, BASE, BASE + g.npages, { shared, design, reschedMs: opts.reschedMs ?? Infinity });
  } finally {
    if (shared) vm.mmuLock.readUnlock();
    else vm.mmuLock.writeUnlock();
  }
  const released = releaseSplitAllocDesign(design);
  return { r, stats: vm.workerStats(0), released };
}

function designOf(g: Guest, name: string, params: SplitAllocParams = {}): SplitAllocDesign {
  const d = createSplitAllocDesign(name, g.vm, params);
  if (d === undefined) throw new Error(`design ${name} is not registered`);
  return d;
}

function assertInvariants(t: ExecutionContext, vm: Vm): void {
  const inv = checkInvariants(vm);
  t.true(inv.ok, formatViolations(inv));
}

/** Every gfn of the guest still translates without a fault (sampled every 61 pages and at each huge page's ends). */
function assertAllMapped(t: ExecutionContext, g: Guest): void {
  const out = createAccessResult();
  let faults = 0;
  const probe = (gfn: number): void => {
    guestAccess(g.vm, gfn, 'read', out);
    if (out.outcome !== 'hit') faults++;
  };
  for (let gfn = BASE; gfn < BASE + g.npages; gfn += 61) probe(gfn);
  for (let i = 0; i < g.hugePages; i++) {
    probe(BASE + i * g.hugeSpan);
    probe(BASE + (i + 1) * g.hugeSpan - 1);
  }
  t.is(faults, 0, 'every page stays mapped (no fault on read)');
}

const EAGER = ['drop-always', 'cache', 'nowait-retry', 'chunked-cache', 'blocking-under-lock'] as const;

test('registry: every design is registered, in compare order, drop-always first', (t) => {
  const names = splitAllocDesignImplNames();
  for (const n of SPLIT_ALLOC_DESIGN_ORDER) t.true(names.includes(n), n);
  t.is(SPLIT_ALLOC_DESIGN_ORDER[0], 'drop-always');
  t.deepEqual([...SPLIT_ALLOC_DESIGN_ORDER].sort(), [...EAGER, 'lazy', 'lazy-zap'].sort());
});

test('registration: a design registered from its own module reaches the CLI, --help and the factory with its summary and traits', (t) => {
  // What a new design file does: declare the design (traits on the interface) and register it.
  const probe: SplitAllocDesign = {
    name: 'test-probe',
    lockMode: 'write',
    begin(): void {},
    allocSp(ctx): number {
      return ctx.vm.alloc.allocBlocking();
    },
    end(ctx, leftover): void {
      if (leftover >= 0) ctx.vm.pool.freeUnpublished(leftover);
    },
  };
  registerSplitAllocDesign({ name: 'test-probe', summary: 'a design registered by a test', origin: 'test', compareOrder: 99, create: () => probe });
  t.true(splitAllocDesignNames().includes('test-probe'));
  t.is(splitAllocDesignInfo('test-probe')?.summary, 'a design registered by a test');
  const c = parseCommandLine(['--split-alloc', 'test-probe']);
  t.is(c.kind, 'run');
  if (c.kind === 'run') t.is(resolveOptions(c.raw).splitAlloc, 'test-probe');
  t.true(helpText().includes('a design registered by a test'));
  const g = mappedGuest({ hugePages: 1 });
  const d = designOf(g, 'test-probe');
  t.is(splitLockShared(d, true), false, 'its lockMode trait is read without a cast');
  t.throws(() => registerSplitAllocDesign({ name: 'test-probe', summary: '', origin: '', compareOrder: 0, create: () => probe }), { message: /twice/ });
});

test('lock mode and eagerness: chunked-cache takes the write lock on every path; lazy never splits', (t) => {
  const g = mappedGuest({ hugePages: 1 });
  for (const n of EAGER) {
    const d = designOf(g, n);
    t.true(splitIsEager(d), n);
    t.is(splitLockShared(d, false), false, `${n}: CLEAR path stays under the write lock`);
    t.is(splitLockShared(d, true), n !== 'chunked-cache', `${n}: enable path`);
  }
  const lazy = designOf(g, 'lazy');
  t.false(splitIsEager(lazy));
  g.vm.mmuLock.readLock();
  const e = t.throws(() => splitHugePagesYieldSafe(g.vm, BASE, BASE + g.npages, { shared: true, design: lazy }));
  g.vm.mmuLock.readUnlock();
  t.is((e as { code?: string }).code, 'ERR_INVALID_ARG');
  // chunked-cache refuses to run under the read lock (the caller ignored splitLockShared).
  const chunked = designOf(g, 'chunked-cache');
  g.vm.mmuLock.readLock();
  const e2 = t.throws(() => splitHugePagesYieldSafe(g.vm, BASE, BASE + g.npages, { shared: true, design: chunked }));
  g.vm.mmuLock.readUnlock();
  t.is((e2 as { code?: string }).code, 'ERR_INVARIANT');
  t.is(g.vm.pageStats().pages2m, 1, 'nothing was split');
});

for (const name of EAGER) {
  for (const levels of [4, 5] as const) {
    for (const pathShared of [true, false]) {
      test(`${name}: ${levels}-level, ${pathShared ? 'enable path (read lock)' : 'CLEAR path (write lock)'}: every 2M page split, invariants hold`, (t) => {
        const g = mappedGuest({ levels, hugePages: 12, poolTables: 1024 });
        const { r } = split(g, designOf(g, name, { chunkPages: CHUNK_PAGES_2M, cacheCapacity: 5 }), { pathShared });
        t.true(r.ok);
        t.is(r.hugePagesSplit, 12);
        t.deepEqual(g.vm.pageStats(), { pages4k: g.npages, pages2m: 0, pages1g: 0 });
        assertInvariants(t, g.vm);
        assertAllMapped(t, g);
      });
    }
  }
}

test('1G pages: every design splits 1G -> 2M -> 4K (513 tables per 1G page)', (t) => {
  for (const name of EAGER) {
    const g = mappedGuest({ hugePages: 1, backingLevel: 3 });
    const { r, stats } = split(g, designOf(g, name, { chunkPages: CHUNK_PAGES_1G }), { pathShared: name !== 'chunked-cache' });
    t.true(r.ok, name);
    t.is(r.hugePagesSplit, 513, name);
    t.is(stats['tablesAllocated'], 513, name);
    t.deepEqual(g.vm.pageStats(), { pages4k: g.npages, pages2m: 0, pages1g: 0 }, name);
    assertInvariants(t, g.vm);
  }
});

// ---- counting rules (no pressure, no yields: reschedMs = Infinity) -----------------------------

const T = 16;

test('drop-always drops the lock and restarts once per table; nothing under the lock', (t) => {
  for (const pathShared of [true, false]) {
    const g = mappedGuest({ hugePages: T });
    const { r, stats } = split(g, designOf(g, 'drop-always'), { pathShared });
    t.is(r.lockDrops, T);
    t.is(r.restarts, T);
    t.is(r.yields, 0);
    t.is(r.allocUnderLock, 0);
    t.is(stats['allocBlocking'], T);
    t.is(stats['lockDrops'], T, 'WS.lockDrops');
  }
});

test('nowait-retry without pressure allocates every table under the lock and never restarts', (t) => {
  for (const pathShared of [true, false]) {
    const g = mappedGuest({ hugePages: T });
    const { r, stats } = split(g, designOf(g, 'nowait-retry'), { pathShared });
    t.is(r.allocUnderLock, T);
    t.is(r.lockDrops, 0);
    t.is(r.restarts, 0);
    t.is(stats['allocNowait'], T);
    t.is(stats['allocBlocking'], 0);
    t.is(stats['allocUnderLock'], T, 'WS.allocUnderLock');
  }
});

test('blocking-under-lock never drops the lock, even under heavy pressure', (t) => {
  const g = mappedGuest({ hugePages: T, pressure: parsePressure('heavy,timeScale=0') });
  const { r, stats } = split(g, designOf(g, 'blocking-under-lock'), { pathShared: false });
  t.true(r.ok);
  t.is(r.lockDrops, 0);
  t.is(r.restarts, 0);
  t.is(r.allocUnderLock, T);
  t.is(stats['allocBlocking'], T);
});

test('cache restarts once per refill: refills = ceil(T / capacity), leftovers = refills * capacity - T', (t) => {
  for (const capacity of [1, 3, 5, 16, 40]) {
    const g = mappedGuest({ hugePages: T });
    const design = designOf(g, 'cache', { cacheCapacity: capacity });
    const { r, stats } = split(g, design);
    const refills = Math.ceil(T / capacity);
    t.true(design instanceof CacheSplitDesign);
    t.is((design as CacheSplitDesign).refills, refills, `capacity ${capacity}`);
    t.is(r.lockDrops, refills, `capacity ${capacity}: one drop per refill`);
    t.is(r.restarts, refills, `capacity ${capacity}: one restart per refill`);
    t.is(r.allocUnderLock, 0);
    t.is(stats['allocFromCache'], T);
    t.is(stats['allocBlocking'], refills * capacity);
    t.is(stats['leftoverFreed'], refills * capacity - T, `capacity ${capacity}: leftovers freed`);
    assertInvariants(t, g.vm);
  }
});

test('cache with 1G pages: 513 tables through a 40-table cache is 13 refills and 7 leftovers', (t) => {
  const g = mappedGuest({ hugePages: 1, backingLevel: 3 });
  const { r, stats } = split(g, designOf(g, 'cache', { cacheCapacity: 40 }));
  t.is(r.lockDrops, Math.ceil(513 / 40));
  t.is(r.restarts, 13);
  t.is(stats['leftoverFreed'], 13 * 40 - 513);
  assertInvariants(t, g.vm);
});

test('chunked-cache tops up once per chunk: 2M chunks (capacity 2) and 1G chunks (capacity 513)', (t) => {
  t.is(splitNrPageTables(CHUNK_PAGES_2M), 2);
  t.is(splitNrPageTables(CHUNK_PAGES_1G), 513);
  {
    // 2M pages, 2M chunks: every chunk consumed one table, so every chunk starts below capacity.
    const g = mappedGuest({ hugePages: T });
    const design = designOf(g, 'chunked-cache', { chunkPages: CHUNK_PAGES_2M }) as ChunkedCacheSplitDesign;
    const { r, stats, released } = split(g, design, { pathShared: true });
    t.is(design.topups, T);
    t.is(r.lockDrops, T);
    t.is(r.restarts, 0, 'a chunk is a fresh walk, not a restart');
    t.is(r.allocUnderLock, 0);
    t.is(stats['walks'], T, 'one walk per chunk');
    t.is(stats['allocBlocking'], T + 1, 'first top-up fills 2, then 1 per chunk');
    t.is(released, 1);
    t.is(stats['leftoverFreed'], 1);
    assertInvariants(t, g.vm);
  }
  {
    // 2M pages, one 1G chunk: one top-up of 513 (the "thermal shock"), 513 - T left over.
    const g = mappedGuest({ hugePages: T, poolTables: 1024 });
    const design = designOf(g, 'chunked-cache', { chunkPages: CHUNK_PAGES_1G }) as ChunkedCacheSplitDesign;
    const { r, stats, released } = split(g, design);
    t.is(design.topups, 1);
    t.is(r.lockDrops, 1);
    t.is(stats['allocBlocking'], 513);
    t.is(released, 513 - T);
    assertInvariants(t, g.vm);
  }
  {
    // The cache persists across calls (one CLEAR word per call): a second call over a split range
    // consumes nothing and tops up nothing.
    const g = mappedGuest({ hugePages: 2, poolTables: 1024 });
    const design = designOf(g, 'chunked-cache', { chunkPages: CHUNK_PAGES_1G }) as ChunkedCacheSplitDesign;
    g.vm.mmuLock.writeLock();
    splitHugePagesYieldSafe(g.vm, BASE, BASE + g.npages, { shared: false, design, reschedMs: Infinity });
    const again = splitHugePagesYieldSafe(g.vm, BASE, BASE + g.npages, { shared: false, design, reschedMs: Infinity });
    g.vm.mmuLock.writeUnlock();
    t.is(again.hugePagesSplit, 0);
    t.is(again.lockDrops, 1, 'the chunk after one that consumed tables tops up once');
    t.is(design.cache.nobjs, 513);
    t.is(releaseSplitAllocDesign(design), 513);
    assertInvariants(t, g.vm);
  }
});

test('cond_resched yields are counted apart from allocation lock drops (forward-progress guard keeps the walk finite)', (t) => {
  for (const name of ['drop-always', 'cache', 'nowait-retry', 'blocking-under-lock'] as const) {
    const g = mappedGuest({ hugePages: T });
    busyHost(g);
    // reschedMs 0 on a busy host: need_resched() at every visited SPTE; only the guard stops a yield at the same gfn.
    const { r } = split(g, designOf(g, name, { cacheCapacity: 4 }), { reschedMs: 0 });
    t.true(r.ok, name);
    t.is(r.hugePagesSplit, T, name);
    t.true(r.yields > 0, `${name}: yielded`);
    const allocDrops = name === 'drop-always' ? T : name === 'cache' ? T / 4 : 0;
    t.is(r.lockDrops, allocDrops, `${name}: lock drops for allocation only`);
    t.is(r.restarts, r.lockDrops + r.yields, `${name}: every drop and every yield restarts once`);
    assertInvariants(t, g.vm);
  }
});

test('nowait-retry under pressure: each failed GFP_NOWAIT is one drop, one blocking allocation and one restart', (t) => {
  {
    const g = mappedGuest({ hugePages: T, pressure: parsePressure('failP=1') });
    const { r, stats } = split(g, designOf(g, 'nowait-retry'));
    t.is(r.lockDrops, T);
    t.is(r.restarts, T);
    t.is(r.allocUnderLock, 0);
    t.is(stats['allocFailed'], T);
    t.is(stats['allocBlocking'], T);
  }
  {
    const g = mappedGuest({ hugePages: 64, pressure: parsePressure('failP=0.3'), seed: 7, poolTables: 1024 });
    const { r, stats } = split(g, designOf(g, 'nowait-retry'));
    t.true(r.ok);
    t.true(r.lockDrops > 0 && r.lockDrops < 64, `some but not all fall back (${r.lockDrops})`);
    t.is(r.lockDrops, stats['allocFailed'] ?? -1);
    t.is(r.restarts, r.lockDrops);
    t.is(r.allocUnderLock, 64 - r.lockDrops);
    t.is(stats['allocBlocking'], r.lockDrops);
    assertInvariants(t, g.vm);
  }
});

// ---- exhaustion --------------------------------------------------------------------------------

/** Split count each design reaches with `free` tables left for T huge pages. */
const EXHAUSTION: readonly { name: string; params: SplitAllocParams; split: (free: number) => number; path: boolean }[] = [
  { name: 'drop-always', params: {}, split: (k) => k, path: true },
  { name: 'cache', params: { cacheCapacity: 40 }, split: (k) => k, path: true },
  { name: 'nowait-retry', params: {}, split: (k) => k, path: false },
  { name: 'blocking-under-lock', params: {}, split: (k) => k, path: false },
  // Needs 2 per 2M chunk, consumes 1: the last table stays stranded in the cache (false-positive OOM).
  { name: 'chunked-cache', params: { chunkPages: CHUNK_PAGES_2M }, split: (k) => k - 1, path: true },
  // 513 tables or nothing.
  { name: 'chunked-cache', params: { chunkPages: CHUNK_PAGES_1G }, split: () => 0, path: true },
];

for (const ex of EXHAUSTION) {
  const label = ex.name === 'chunked-cache' ? `${ex.name} (${ex.params.chunkPages === CHUNK_PAGES_1G ? '1G' : '2M'} chunks)` : ex.name;
  test(`exhaustion: ${label} stops with ENOMEM, unsplit huge pages stay mapped and correct`, (t) => {
    const free = 6;
    const g = mappedGuest({ hugePages: T, poolFree: free });
    const { r, stats } = split(g, designOf(g, ex.name, ex.params), { pathShared: ex.path });
    const want = ex.split(free);
    t.false(r.ok);
    t.is(r.code, 'ENOMEM');
    t.is(r.hugePagesSplit, want);
    t.is(stats['splitEnomem'], 1);
    t.deepEqual(g.vm.pageStats(), { pages4k: want * 512, pages2m: T - want, pages1g: 0 });
    assertInvariants(t, g.vm);
    assertAllMapped(t, g);
    t.is(g.vm.poolAccounting().free, free - want, 'every table not installed went back to the pool');
  });
}

// ---- control -----------------------------------------------------------------------------------

/**
 * CONTROL: the real cache design with its leftover-freeing step broken (a leak): leftovers are
 * popped out of the cache and never freed. Everything else is the shipped design.
 */
class LeakyCacheDesign extends CacheSplitDesign {
  override endIoctl(): number {
    while (this.cache.nobjs > 0) this.cache.pop();
    return 0;
  }
  override release(): number {
    return this.endIoctl();
  }
}

test('control: a cache design that leaks its leftovers is caught by the invariant checker', (t) => {
  const g = mappedGuest({ hugePages: T });
  split(g, new LeakyCacheDesign(g.vm));
  t.deepEqual(g.vm.pageStats(), { pages4k: g.npages, pages2m: 0, pages1g: 0 }, 'the split itself is right');
  const inv = checkInvariants(g.vm);
  t.false(inv.ok, 'the leak must be reported');
  t.true(
    inv.violations.some((v) => v.kind === 'pool-accounting'),
    formatViolations(inv),
  );
});

// ---- memory traffic of restarts ----------------------------------------------------------------

test('restart reads: each allocation restart re-reads 1 + 2 x (levels - 2) SPTEs for 2M splits, measured against a no-restart walk', (t) => {
  for (const levels of [4, 5] as const) {
    const drop = measureRestartReads({ design: 'drop-always', levels, backingLevel: 2, pages: 32 * 512 });
    t.is(drop.restarts, 32);
    t.is(drop.extraReads, 32 * (1 + 2 * (levels - 2)), `drop-always, ${levels} levels`);
    t.is(drop.extraReads, drop.modelReads);
    const cache = measureRestartReads({ design: 'cache', levels, backingLevel: 2, pages: 32 * 512, cacheCapacity: 8 });
    t.is(cache.restarts, 4);
    t.is(cache.extraReads, 4 * (1 + 2 * (levels - 2)), `cache, ${levels} levels`);
    const nowait = measureRestartReads({ design: 'nowait-retry', levels, backingLevel: 2, pages: 32 * 512 });
    t.is(nowait.extraReads, 0);
  }
});

test('cache carries over between the split calls of one ioctl (one per CLEAR word) and frees leftovers at its end', (t) => {
  const g = mappedGuest({ hugePages: T });
  const design = designOf(g, 'cache', { cacheCapacity: 40 });
  g.vm.mmuLock.writeLock();
  // One call per 2M page, as CLEAR_DIRTY_LOG's per-word calls reach each huge page.
  let drops = 0;
  for (let i = 0; i < T; i++) {
    drops += splitHugePagesYieldSafe(g.vm, BASE + i * 512, BASE + i * 512 + 64, { shared: false, design, reschedMs: Infinity }).lockDrops;
  }
  g.vm.mmuLock.writeUnlock();
  t.is(drops, 1, 'one refill serves all the calls');
  t.is(endSplitIoctl(design), 40 - T);
  t.is(g.vm.workerStats(0)['leftoverFreed'], 40 - T);
  assertInvariants(t, g.vm);
});
