/**
 * The lockless fast fault beside its floor, measured in the same run (target: at most
 * 2 x the floor of a bare walk of the same depth plus one cmpxchg).
 *
 * Setup (outside the timed part, every round): a 4-level guest of GFNS pages mapped at 4K, then
 * write-protected as dirty logging does (enableDirtyLogging without initially-set). Timed:
 *   A. fastPageFaultRcu on GFNS distinct write-protected gfns, inside one RCU read-side section
 *      per batch (QSBR-style): walk, checks, cmpxchg W|D, slot-flag load, dirty-bitmap Atomics.or;
 *   B. the same with RCU readLock/readUnlock around every fault (epoch RCU, as guestAccess does);
 *   C. guestAccess (a write) on the same gfns: hardware walk, fault dispatch, fast fault, re-walk,
 *      fault timing (two clock reads) and histogram: what a vCPU pays for a dirty-logging write.
 * Floor: for each gfn, a bare root-to-leaf walk of the same depth (one BigInt64Array load per
 * level, child index from the PFN field) plus one Atomics.compareExchange on the leaf.
 * Figures are per fault; medians over ROUNDS rounds.
 */
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { fastPageFaultRcu } from '../src/mmu/tdp_mmu_fault.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { enableDirtyLogging } from '../src/mmu/dirty_log.js';
import { wrprotGfnRangeYieldSafe } from '../src/mmu/tdp_mmu_wrprot.js';
import { SPTE_W_MASK } from '../src/mmu/spte.js';
import { median, printRatioTable } from './_lib.js';

const GFNS = 16384;
const ROUNDS = 31;

const vm = attachVm(createVm({ levels: 4, memslots: layoutMemslots(GFNS, 1), backingLevel: 1, workers: 1, pressure: PRESSURE_PROFILES.none, seed: 1 }), 0);
const slot = vm.config.memslots[0]!;
const out = createAccessResult();
for (let g = slot.baseGfn; g < slot.baseGfn + GFNS; g++) guestAccess(vm, g, 'write', out);
enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });

// A fixed pseudo-random order, so neither side benefits from sequential prefetching more.
const order = new Float64Array(GFNS);
for (let i = 0; i < GFNS; i++) order[i] = slot.baseGfn + ((i * 7919) % GFNS);

function wrprotAll(): void {
  vm.mmuLock.readLock();
  wrprotGfnRangeYieldSafe(vm, slot.baseGfn, slot.baseGfn + GFNS, { shared: true });
  vm.mmuLock.readUnlock();
}

function timeA(): number {
  wrprotAll();
  const t0 = performance.now();
  vm.rcu.readLock();
  for (let i = 0; i < GFNS; i++) {
    if (fastPageFaultRcu(vm, 0, order[i]!) !== 'fixed') throw new Error('fast fault did not fix');
  }
  vm.rcu.readUnlock();
  return ((performance.now() - t0) * 1e6) / GFNS;
}

function timeB(): number {
  wrprotAll();
  const rcu = vm.rcu;
  const t0 = performance.now();
  for (let i = 0; i < GFNS; i++) {
    rcu.readLock();
    const r = fastPageFaultRcu(vm, 0, order[i]!);
    rcu.readUnlock();
    if (r !== 'fixed') throw new Error('fast fault did not fix');
  }
  return ((performance.now() - t0) * 1e6) / GFNS;
}

function timeC(): number {
  wrprotAll();
  const t0 = performance.now();
  for (let i = 0; i < GFNS; i++) {
    guestAccess(vm, order[i]!, 'write', out);
    if (out.outcome !== 'fast') throw new Error(`expected a fast fault, got ${out.outcome}`);
  }
  return ((performance.now() - t0) * 1e6) / GFNS;
}

// Floor: the same walk done bare, plus one cmpxchg that sets W on the leaf.
const spt = vm.spt;
const PAGES = [0, 1, 512, 512 ** 2, 512 ** 3];
const s64 = new BigInt64Array(1);
const s32 = new Int32Array(s64.buffer);
function timeFloor(): number {
  wrprotAll();
  const root = vm.root;
  const t0 = performance.now();
  for (let i = 0; i < GFNS; i++) {
    const gfn = order[i]!;
    let table = root;
    let idx = 0;
    let spte = 0n;
    for (let level = 4; level >= 1; level--) {
      idx = table * 512 + (Math.floor(gfn / PAGES[level]!) & 511);
      spte = spt[idx]!;
      s64[0] = spte;
      table = (s32[0]! >>> 12) + (s32[1]! & 0xfffff) * 1048576;
    }
    if (Atomics.compareExchange(spt, idx, spte, spte | SPTE_W_MASK) !== spte) throw new Error('floor cmpxchg lost');
  }
  return ((performance.now() - t0) * 1e6) / GFNS;
}

const a: number[] = [];
const b: number[] = [];
const c: number[] = [];
const f: number[] = [];
for (let w = 0; w < 3; w++) {
  timeFloor();
  timeA();
  timeB();
  timeC();
}
for (let r = 0; r < ROUNDS; r++) {
  f.push(timeFloor());
  a.push(timeA());
  b.push(timeB());
  c.push(timeC());
}
const floor = median(f);
printRatioTable(`lockless fast fault (4 levels, ${GFNS} write-protected 4K gfns, median of ${ROUNDS} rounds)`, [
  { figure: 'A. fastPageFaultRcu (RCU held per batch)', value: median(a), floorName: 'bare 4-level walk + cmpxchg', floor, target: 2 },
  { figure: 'B. fastPageFaultRcu + readLock/readUnlock each', value: median(b), floorName: 'bare 4-level walk + cmpxchg', floor },
  { figure: 'C. guestAccess write (walk, fast fault, re-walk, timing)', value: median(c), floorName: 'bare 4-level walk + cmpxchg', floor },
]);
