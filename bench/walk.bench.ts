/**
 * Walk costs at 4 vs 5 levels, and the cost of one restart from the root (issue 3: printed; the
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
  const vm = attachVm(
    createVm({ levels, memslots: layoutMemslots(GFNS, 1), backingLevel: 1, workers: 1, pressure: PRESSURE_PROFILES.none, seed: 1 }),
    0,
  );
  const s = vm.config.memslots[0]!;
  const out = createAccessResult();
  for (let g = s.baseGfn; g < s.baseGfn + GFNS; g++) guestAccess(vm, g, false, out);
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

function measure(vm: Vm): Figures {
  const s = vm.config.memslots[0]!;
  const start = s.baseGfn;
  const end = s.baseGfn + GFNS;
  const it = new TdpIter(vm.spt);
  const spt = vm.spt;
  const a: number[] = [];
  const b: number[] = [];
  const c: number[] = [];
  const d: number[] = [];
  const f: number[] = [];
  let readsPerVisit = 0;
  let restartReads = 0;
  let sink = 0;
  const gfns = new Float64Array(RESTARTS);
  for (let i = 0; i < RESTARTS; i++) gfns[i] = start + ((i * 7919) % GFNS);
  for (let r = 0; r < ROUNDS + 3; r++) {
    // A: full walk to 4K.
    let visits = 0;
    let r0 = it.spteReads;
    let t0 = performance.now();
    for (it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, start); it.valid && it.gfn < end; it.next()) visits++;
    const aNs = ((performance.now() - t0) * 1e6) / visits;
    const reads = it.spteReads - r0;
    readsPerVisit = reads / visits;
    // B: walk to 2M.
    // (repeated: one walk to 2M visits only ~130 SPTEs here)
    let visits2 = 0;
    t0 = performance.now();
    for (let k = 0; k < 100; k++) {
      for (it.start(vm.root, vm.rootLevel, PG_LEVEL_2M, start); it.valid && it.gfn < end; it.next()) visits2++;
    }
    const bNs = ((performance.now() - t0) * 1e6) / visits2;
    // C: restarts: position at a 4K gfn, then restart from the root and step down to the leaf.
    r0 = it.spteReads;
    t0 = performance.now();
    for (let i = 0; i < RESTARTS; i++) {
      it.start(vm.root, vm.rootLevel, PG_LEVEL_4K, gfns[i]!);
      while (it.level > PG_LEVEL_4K) it.next();
    }
    const cNs = ((performance.now() - t0) * 1e6) / RESTARTS;
    restartReads = (it.spteReads - r0) / RESTARTS;
    // D: lean lookups.
    t0 = performance.now();
    for (let i = 0; i < RESTARTS; i++) walkGfn(spt, vm.root, vm.rootLevel, gfns[i]!);
    const dNs = ((performance.now() - t0) * 1e6) / RESTARTS;
    // Floor: `reads` plain loads over the same tables (sequential, as the walk mostly is).
    const n = Math.min(reads, spt.length);
    t0 = performance.now();
    for (let i = 0; i < n; i++) if ((spt[i]! & 0x800n) !== 0n) sink++;
    const fNs = ((performance.now() - t0) * 1e6) / n;
    if (r >= 3) {
      a.push(aNs);
      b.push(bNs);
      c.push(cNs);
      d.push(dNs);
      f.push(fNs);
    }
  }
  if (sink === -1) console.log('');
  return {
    walk4k: median(a),
    walk4kReadsPerVisit: readsPerVisit,
    walk2m: median(b),
    restart: median(c),
    restartReads,
    lookup: median(d),
    floorRead: median(f),
  };
}

const rows: RatioRow[] = [];
const figs: Record<number, Figures> = {};
for (const levels of [4, 5] as const) {
  const fg = measure(build(levels));
  figs[levels] = fg;
  rows.push(
    { figure: `${levels}-level: iterator walk to 4K, per SPTE visited`, value: fg.walk4k, floorName: `${fg.walk4kReadsPerVisit.toFixed(2)} SPTE loads`, floor: fg.floorRead * fg.walk4kReadsPerVisit },
    { figure: `${levels}-level: iterator walk to 2M, per SPTE visited`, value: fg.walk2m, floorName: '1 SPTE load', floor: fg.floorRead },
    { figure: `${levels}-level: one restart from the root to 4K`, value: fg.restart, floorName: `${fg.restartReads.toFixed(0)} SPTE loads`, floor: fg.floorRead * fg.restartReads },
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
