/**
 * need_resched() (src/mmu/mmu_resched.ts): set only while another thread of the run is runnable
 * and waiting for a core, and the holder's time slice is used up. A splitter on an idle host never
 * yields; on a busy host (runnable threads > cores) it does. chunked-cache (arm64) yields only
 * between chunks. The busy-host cases are the controls: the idle-host checks can fail.
 */
import test from 'ava';
import { attachVm, createVm, DEFAULT_FIRST_GFN } from '../src/vm.js';
import type { Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { runnableThreads, setRunnable } from '../src/mmu/mmu_resched.js';
import { splitHugePagesYieldSafe } from '../src/mmu/tdp_mmu_split.js';
import type { SplitResult } from '../src/mmu/tdp_mmu_split.js';
import { createSplitAllocDesign, releaseSplitAllocDesign, splitLockShared } from '../src/mmu/split_alloc_designs.js';
import type { SplitAllocDesign } from '../src/mmu/split_alloc.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { WS } from '../src/stats/worker_stats.js';
import { runWithJson } from './_emulate.js';

const BASE = DEFAULT_FIRST_GFN;
const HUGE = 64;
const M = pagesPerHpage(2);
const VCPUS = 4;
const CORES = 2;

interface Host {
  readonly vm: Vm;
  readonly vcpus: Vm[];
}

/** A guest of HUGE 2M pages on a CORES-core host, with VCPUS vCPU handles (parked: not runnable). */
function host(): Host {
  const shared = createVm({
    levels: 4,
    memslots: [{ baseGfn: BASE, npages: HUGE * M }],
    backingLevel: 2,
    workers: 1 + VCPUS,
    hostCores: CORES,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
  });
  const vm = attachVm(shared, 0);
  const out = createAccessResult();
  for (let i = 0; i < HUGE; i++) guestAccess(vm, BASE + i * M, 'write', out);
  vm.vcpuCache.freeAll();
  vm.resetAllStats();
  const vcpus: Vm[] = [];
  for (let i = 1; i <= VCPUS; i++) {
    const v = attachVm(shared, i);
    v.rcu.offline();
    vcpus.push(v);
  }
  return { vm, vcpus };
}

function run(h: Host, design: SplitAllocDesign, reschedMs: number): SplitResult {
  const shared = splitLockShared(design, true);
  if (shared) h.vm.mmuLock.readLock();
  else h.vm.mmuLock.writeLock();
  try {
    return splitHugePagesYieldSafe(h.vm, BASE, BASE + HUGE * M, { shared, design, reschedMs });
  } finally {
    if (shared) h.vm.mmuLock.readUnlock();
    else h.vm.mmuLock.writeUnlock();
  }
}

function design(h: Host, name: string, chunkPages?: number): SplitAllocDesign {
  const d = createSplitAllocDesign(name, h.vm, chunkPages !== undefined ? { chunkPages } : {});
  if (d === undefined) throw new Error(name);
  return d;
}

const YIELDING = ['drop-always', 'cache', 'nowait-retry', 'blocking-under-lock'] as const;

test('setRunnable counts each thread once however often it is called', (t) => {
  const h = host();
  t.is(runnableThreads(h.vm), 0);
  setRunnable(h.vcpus[0]!, true);
  setRunnable(h.vcpus[0]!, true);
  setRunnable(h.vcpus[1]!, true);
  t.is(runnableThreads(h.vm), 2);
  setRunnable(h.vcpus[0]!, false);
  setRunnable(h.vcpus[0]!, false);
  setRunnable(h.vcpus[2]!, false); // never runnable: no effect
  t.is(runnableThreads(h.vm), 1);
});

test('idle host (vCPUs parked): no design ever yields, even with a zero time slice; nowait-retry never restarts', (t) => {
  for (const name of YIELDING) {
    const h = host();
    const r = run(h, design(h, name), 0);
    t.true(r.ok, name);
    t.is(r.hugePagesSplit, HUGE, name);
    t.is(r.yields, 0, `${name}: no yield on an idle host`);
    if (name === 'nowait-retry') t.is(r.restarts, 0, 'nowait-retry without pressure: no restart at the enable path');
  }
  // Runnable threads up to the core count (the splitter and one vCPU on 2 cores) are still idle.
  const h = host();
  setRunnable(h.vcpus[0]!, true);
  t.is(run(h, design(h, 'nowait-retry'), 0).yields, 0);
});

test('busy host (runnable threads > cores): every walking design yields (the control for the idle-host test)', (t) => {
  for (const name of YIELDING) {
    const h = host();
    for (const v of h.vcpus) setRunnable(v, true);
    const r = run(h, design(h, name), 0);
    t.true(r.ok, name);
    t.is(r.hugePagesSplit, HUGE, name);
    t.true(r.yields > 0, `${name}: yields on a busy host`);
    t.is(r.restarts, r.lockDrops + r.yields, `${name}: each drop and yield restarts once`);
  }
  // A long time slice: a busy host yields only once the slice is used up (here never).
  const h = host();
  for (const v of h.vcpus) setRunnable(v, true);
  t.is(run(h, design(h, 'nowait-retry'), 1e9).yields, 0);
});

test('chunked-cache yields only between chunks: never inside one, and with a full cache only on a busy host', (t) => {
  const h = host();
  for (const v of h.vcpus) setRunnable(v, true);
  const d = design(h, 'chunked-cache', M);
  // First pass, 2M chunks: every chunk tops up (a lock drop, not a yield) and nothing yields inside.
  const first = run(h, d, 0);
  t.is(first.hugePagesSplit, HUGE);
  t.is(first.lockDrops, HUGE);
  t.is(first.yields, 0);
  t.is(first.restarts, 0, 'no restart inside a chunk');
  // Second pass over the split range: the first chunk refills the one table the last chunk used,
  // then the cache stays full, so every later chunk drops only to reschedule.
  const second = run(h, d, 0);
  t.is(second.hugePagesSplit, 0);
  t.is(second.lockDrops, 1);
  t.is(second.yields, HUGE - 1, 'one yield before each chunk after the first');
  // The same on an idle host: no yield at all.
  for (const v of h.vcpus) setRunnable(v, false);
  t.is(run(h, d, 0).yields, 0);
  releaseSplitAllocDesign(d);
});

test('cache counts the remote TLB flush the RFC made on every lock drop and every yield', (t) => {
  const h = host();
  const r = run(h, design(h, 'cache'), 1e9);
  t.is(r.lockDrops, Math.ceil(HUGE / 40));
  t.is(h.vm.stats.get(WS.rfcDropTlbFlushes), r.lockDrops);
  const busy = host();
  for (const v of busy.vcpus) setRunnable(v, true);
  const rb = run(busy, design(busy, 'cache'), 0);
  t.true(rb.yields > 0);
  t.is(busy.vm.stats.get(WS.rfcDropTlbFlushes), rb.lockDrops + rb.yields);
  // The other designs count none.
  const other = host();
  run(other, design(other, 'drop-always'), 1e9);
  t.is(other.vm.stats.get(WS.rfcDropTlbFlushes), 0);
});

test('end to end: with idle vCPUs and no pressure, nowait-retry never restarts or yields at the enable path (-g)', async (t) => {
  const { code, report } = await runWithJson(['--vcpus', '4', '-b', '64M', '-g', '--split-alloc', 'nowait-retry', '-q'], { timeoutMs: 120_000 });
  t.is(code, 0);
  const enable = (report.phases as { kind: string; counters: { restarts: number; yields: number; lockDrops: number } }[]).find((p) => p.kind === 'enable');
  t.truthy(enable);
  t.is(enable?.counters.restarts, 0);
  t.is(enable?.counters.yields, 0);
  t.is(enable?.counters.lockDrops, 0);
  t.true(report.split.splitterHugePagesSplit > 0, 'it did split');
});
