/**
 * Walk costs at 4 vs 5 levels, and the cost of one restart from the root (printed; the
 * 2021 argument is that every drop of mmu_lock costs a re-walk from the root, "especially when
 * using 5-level paging").
 *
 * For each root depth, a guest of GFNS pages mapped at 4K (all leaves present):
 *   A. tdp_iter pre-order walk of the whole slot down to 4K: ns per SPTE visited (and reads);
 *   B. tdp_iter walk down to 2M (what the split walk visits): ns per SPTE visited;
 *   C. one restart from the root to a 4K entry (TdpIter.restart + steps down to the leaf, as
 *      next() does after a yield): ns per restart and SPTE reads per restart;
 *   D. the lean single-gfn lookup (walkGfn: hardware walker / fast fault): ns per lookup.
 * Floor, same run: one plain BigInt64Array load and present-bit test per SPTE read the walk made.
 */
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { TdpIter } from '../src/mmu/tdp_iter.js';
import { walkGfn } from '../src/mmu/tdp_mmu_fault.js';
import { PG_LEVEL_2M, PG_LEVEL_4K } from '../src/mmu/spte.js';
import { median, printRatioTable } from './_lib.js';
import type { RatioRow } from './_lib.js';

const GFNS = 65536;
const ROUNDS = 21;
const RESTARTS = 20000;

function build(levels: 4 | 5): Vm {
  const vm = attachVm(createVm({ levels, memslots: layoutMemslots(GFNS, 1), backingLevel: 1, workers: 1, pressure: PRESSURE_PROFILES.none, seed: 1 }), 0);
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  for (let g = s.baseGfn; g < s.baseGfn + GFNS; g++) guestAccess(vm, g, 'read', out);
  return vm;
}

interface Figures {
  walk4k: number;
  walk4kReadsPerVisit: number;
  walk2m: number;
  restart: number;
  restartReads: number;
  lookup: number;
  floorRead: number;
}

/** One round of every measurement on `vm`: [A, B, C, D, floor] ns, plus read counts. */
function round(vm: Vm, it: TdpIter, gfns: Float64Array): { ns: number[]; readsPerVisit: number; restartReads: number } {
  const s = vm.config.memslots[0]!;
  const start = s.baseGfn;
  const end = s.baseGfn + GFNS;
  const spt = vm.spt;
  // A: full walk to 4K.
  let visits = 0;
  let r0 = it.spteReads;
  let t0 = performance.now();
  for (it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, start); it.valid && it.gfn < end; it.next()) visits++;
  const aNs = ((performance.now() - t0) * 1e6) / visits;
  const reads = it.spteReads - r0;
  // B: walk to 2M (repeated: one walk to 2M visits only ~130 SPTEs here).
  let visits2 = 0;
  t0 = performance.now();
  for (let k = 0; k < 100; k++) {
    for (it.start(vm.root, vm.rootLevel, PG_LEVEL_2M, start); it.valid && it.gfn < end; it.next()) visits2++;
  }
  const bNs = ((performance.now() - t0) * 1e6) / visits2;
  // C: restarts: position at a 4K gfn from the root and step down to the leaf (what next() does after a yield).
  r0 = it.spteReads;
  t0 = performance.now();
  for (let i = 0; i < RESTARTS; i++) {
    it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, gfns[i]!);
    while (it.level > PG_LEVEL_4K) it.next();
  }
  const cNs = ((performance.now() - t0) * 1e6) / RESTARTS;
  const restartReads = (it.spteReads - r0) / RESTARTS;
  // Lean lookups.
  t0 = performance.now();
  for (let i = 0; i < RESTARTS; i++) walkGfn(spt, vm.root, vm.rootLevel, gfns[i]!);
  const dNs = ((performance.now() - t0) * 1e6) / RESTARTS;
  // Floor: `reads` plain loads + present-bit tests over the same tables (sequential, as the walk mostly is).
  const n = Math.min(reads, spt.length);
  let sink = 0;
  t0 = performance.now();
  for (let i = 0; i < n; i++) if ((spt[i]! & 0x800n) !== 0n) sink++;
  const fNs = ((performance.now() - t0) * 1e6) / n;
  if (sink === -1) console.log('');
  return { ns: [aNs, bNs, cNs, dNs, fNs], readsPerVisit: reads / visits, restartReads };
}

// Both depths are measured in every round, alternately, so machine noise hits them alike.
const vms = { 4: build(4), 5: build(5) } as const;
const samples: Record<4 | 5, number[][]> = { 4: [[], [], [], [], []], 5: [[], [], [], [], []] };
const reads: Record<4 | 5, { readsPerVisit: number; restartReads: number }> = {
  4: { readsPerVisit: 0, restartReads: 0 },
  5: { readsPerVisit: 0, restartReads: 0 },
};
const iters = { 4: new TdpIter(vms[4].spt), 5: new TdpIter(vms[5].spt) } as const;
const gfnsOf = (vm: Vm): Float64Array => {
  const g = new Float64Array(RESTARTS);
  const base = vm.config.memslots[0]!.baseGfn;
  for (let i = 0; i < RESTARTS; i++) g[i] = base + ((i * 7919) % GFNS);
  return g;
};
const gfns = { 4: gfnsOf(vms[4]), 5: gfnsOf(vms[5]) } as const;
for (let r = 0; r < ROUNDS + 5; r++) {
  for (const levels of [4, 5] as const) {
    const x = round(vms[levels], iters[levels], gfns[levels]);
    reads[levels] = { readsPerVisit: x.readsPerVisit, restartReads: x.restartReads };
    if (r >= 5)
      x.ns.forEach((v, i) => {
        samples[levels][i]!.push(v);
      });
  }
}

const rows: RatioRow[] = [];
const figs: Record<number, Figures> = {};
for (const levels of [4, 5] as const) {
  const m = samples[levels].map((xs) => median(xs));
  const fg: Figures = {
    walk4k: m[0]!,
    walk4kReadsPerVisit: reads[levels].readsPerVisit,
    walk2m: m[1]!,
    restart: m[2]!,
    restartReads: reads[levels].restartReads,
    lookup: m[3]!,
    floorRead: m[4]!,
  };
  figs[levels] = fg;
  rows.push(
    {
      figure: `${levels}-level: iterator walk to 4K, per SPTE visited`,
      value: fg.walk4k,
      floorName: `${fg.walk4kReadsPerVisit.toFixed(2)} SPTE loads`,
      floor: fg.floorRead * fg.walk4kReadsPerVisit,
    },
    { figure: `${levels}-level: iterator walk to 2M, per SPTE visited`, value: fg.walk2m, floorName: '1 SPTE load', floor: fg.floorRead },
    {
      figure: `${levels}-level: one restart from the root to 4K`,
      value: fg.restart,
      floorName: `${fg.restartReads.toFixed(0)} SPTE loads`,
      floor: fg.floorRead * fg.restartReads,
    },
    { figure: `${levels}-level: walkGfn lookup (hardware walk)`, value: fg.lookup, floorName: `${levels} SPTE loads`, floor: fg.floorRead * levels },
  );
}
printRatioTable(`walk costs, ${GFNS} pages mapped at 4K (median of ${ROUNDS} rounds; floors are plain loads measured in the same run)`, rows);
const f4 = figs[4]!;
const f5 = figs[5]!;
console.log(
  `one restart costs ${f4.restart.toFixed(1)} ns (${f4.restartReads} SPTE reads) at 4 levels and ` +
    `${f5.restart.toFixed(1)} ns (${f5.restartReads} reads) at 5 levels: +${(((f5.restart - f4.restart) / f4.restart) * 100).toFixed(0)} % for the extra level`,
);
