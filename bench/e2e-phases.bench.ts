/**
 * The emulator's own phases beside the micro floors they should approach, measured in one run
 * (issue 13). Where the other benches time one function on a prepared tree, this one drives a VM
 * through the emulator's doorway (src/emulate/mmu_ops.ts, the calls the vCPU and splitter
 * workers make) on a fixed configuration, so allocation, the page-table pool, stats, timing
 * calls, lock and RCU bookkeeping and first touch of fresh shared memory are all inside the
 * figures, as in `npm run emulate`. One thread (figures are per core), host costs off
 * (NO_HOST_COSTS: only the emulator's own work is timed), no tracing.
 *
 * Fixed configuration: 4-level TDP, one memslot of GIB GiB backed by 2M pages, the shipped split
 * design (drop-always), mmu_lock resched default. Each round builds fresh VMs (as each run does):
 *   VM P (PML dirty tracking):
 *     populate (write every page)                              -> populate ns per page
 *     enable with -g (eager split + clear D under the read lock) -> split walk ns per 4K SPTE,
 *                                                                  D-bit clearing ns per SPTE
 *     write pass (D clear: PML logs every write)                -> PML write, logged
 *     write pass (D already set)                                -> PML write, D set
 *     read pass                                                 -> read hit
 *     disable; write pass (maps huge again); enable with manual protect + initially set; GET;
 *     CLEAR                                                     -> split walk in CLEAR
 *     write pass; GET; CLEAR (no split left)                    -> D-bit clearing in CLEAR
 *   VM W (write protection):
 *     populate; enable with -g (eager split + write protection) -> write protection ns per SPTE
 *     write pass (every write a lockless fast fault)            -> fast fault
 * Floors, on the same number of 4K SPTEs / gfns, in the same run:
 *   - store 512 precomputed SPTEs into a table (the split's child fill);
 *   - a 512-entry cmpxchg pass: load each SPTE, cmpxchg it to itself with one flag bit cleared;
 *   - a bare 4-level walk per gfn in the pass's order (one BigInt64Array load per level, child
 *     index from the PFN field), and the same plus one cmpxchg on the leaf.
 * Targets (issue 13): split <= 3x, write protection / D clearing <= 2x, fast fault <= 2x,
 * PML write with D set <= 1.5x. Medians over ROUNDS rounds after one unrecorded warm-up round.
 * The machine is shared: read the ratios, which come from one run, not the absolute figures.
 */
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { DirtyTrackMode, Vm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { NO_HOST_COSTS } from '../src/mmu/host_costs.js';
import { clearCall, disableAll, enableAll, getAll, newAccessResult, newDirtyBitmaps, vcpuAccess, vcpuRunBegin, vcpuRunEnd } from '../src/emulate/mmu_ops.js';
import type { AccessKind, DirtyLogMode } from '../src/emulate/mmu_ops.js';
import { makeLeafSpte, PT_ENTRIES, SPTE_D_MASK } from '../src/mmu/spte.js';
import { median, printRatioTable } from './_lib.js';

const GIB = 1;
const PAGES = GIB * 262_144;
const ROUNDS = 5;

/** The splitter's tuning as `npm run emulate` passes it by default (options.ts defaults). */
const SPLIT = { cacheCapacity: 40, chunkPages: 262_144, reschedMs: 1, yieldOnContention: false };
const G_MODE: DirtyLogMode = { manualProtect: false, eagerSplit: true, splitAlloc: 'drop-always', split: SPLIT };
const MANUAL_MODE: DirtyLogMode = { ...G_MODE, manualProtect: true };

function newVm(dirtyTrack: DirtyTrackMode): Vm {
  return attachVm(
    createVm({
      levels: 4,
      memslots: layoutMemslots(PAGES, 1),
      backingLevel: 2,
      workers: 1,
      pressure: PRESSURE_PROFILES.none,
      seed: 1,
      dirtyTrack,
      hostCosts: NO_HOST_COSTS,
      faultModel: 'tdp',
      hugePageFault: 'split',
    }),
    0,
  );
}

/** One vCPU pass over every page in gfn order (memstress's sequential pass); ns per access. */
function pass(vm: Vm, kind: AccessKind, expect: (o: ReturnType<typeof newAccessResult>) => boolean, what: string): number {
  const out = newAccessResult();
  const first = vm.config.memslots[0]!.baseGfn;
  vcpuRunBegin(vm);
  const t0 = performance.now();
  let bad = 0;
  for (let p = 0; p < PAGES; p++) {
    vcpuAccess(vm, first + p, kind, out);
    if (!expect(out)) bad++;
  }
  const ns = ((performance.now() - t0) * 1e6) / PAGES;
  vcpuRunEnd(vm);
  if (bad > 0) throw new Error(`${what}: ${bad} of ${PAGES} accesses were not what the phase is about`);
  return ns;
}

const hit = (o: ReturnType<typeof newAccessResult>): boolean => o.outcome === 'hit';
const pmlLogged = (o: ReturnType<typeof newAccessResult>): boolean => o.outcome === 'hit' && o.faultKind === 'pml';
const fastFault = (o: ReturnType<typeof newAccessResult>): boolean => o.outcome === 'fast';
const any = (): boolean => true;

interface Round {
  populate: number;
  splitEnable: number;
  dClearEnable: number;
  pmlLogged: number;
  pmlDSet: number;
  readHit: number;
  splitClear: number;
  dClearClear: number;
  wrprotEnable: number;
  fastFault: number;
}

function round(): Round {
  const vm = newVm('pml');
  const bitmaps = newDirtyBitmaps(vm);
  const populate = pass(vm, 'write', any, 'populate');
  const en = enableAll(vm, G_MODE);
  const splitEnable = (en.splitMs * 1e6) / PAGES;
  const dClearEnable = (en.wrprotMs * 1e6) / PAGES;
  const logged = pass(vm, 'write', pmlLogged, 'PML write, D clear');
  const dSet = pass(vm, 'write', hit, 'PML write, D set');
  const readHit = pass(vm, 'read', hit, 'read hit');
  disableAll(vm);
  pass(vm, 'write', any, 'populate again'); // disable zapped the 4K tables: map the pages huge again
  enableAll(vm, MANUAL_MODE);
  getAll(vm, MANUAL_MODE, bitmaps);
  const split = clearCall(vm, MANUAL_MODE, bitmaps, 0, 0, PAGES, 'whole');
  const splitClear = (split.splitMs * 1e6) / PAGES;
  if (vm.pageStats().pages4k !== PAGES) throw new Error('the CLEAR did not split every huge page');
  pass(vm, 'write', pmlLogged, 'PML write after CLEAR');
  getAll(vm, MANUAL_MODE, bitmaps);
  const c0 = performance.now();
  const noSplit = clearCall(vm, MANUAL_MODE, bitmaps, 0, 0, PAGES, 'whole');
  const dClearClear = ((performance.now() - c0) * 1e6) / PAGES;
  if (noSplit.splitMs * 1e6 > 0.5 * dClearClear * PAGES) throw new Error('the second CLEAR was expected to find nothing left to split');
  disableAll(vm);
  vm.detach();

  const wp = newVm('wrprot');
  pass(wp, 'write', any, 'populate (wrprot VM)');
  const wen = enableAll(wp, G_MODE);
  const wrprotEnable = (wen.wrprotMs * 1e6) / PAGES;
  const ff = pass(wp, 'write', fastFault, 'fast fault');
  disableAll(wp);
  wp.detach();
  return {
    populate,
    splitEnable,
    dClearEnable,
    pmlLogged: logged,
    pmlDSet: dSet,
    readHit,
    splitClear,
    dClearClear,
    wrprotEnable,
    fastFault: ff,
  };
}

// --- floors ---------------------------------------------------------------------------------

const TABLES = PAGES / PT_ENTRIES;
const floorSpt = new BigInt64Array(new SharedArrayBuffer(PAGES * 8));
const floorValues = new BigInt64Array(PT_ENTRIES);
for (let i = 0; i < PT_ENTRIES; i++) floorValues[i] = makeLeafSpte(0x10000000 + i, 1, { writable: true }) | SPTE_D_MASK;

/** 512 stores of precomputed SPTEs per table, over as many tables as the guest has; ns per SPTE. */
function floorStore(): number {
  const t0 = performance.now();
  for (let t = 0; t < TABLES; t++) {
    const o = t * PT_ENTRIES;
    for (let i = 0; i < PT_ENTRIES; i++) floorSpt[o + i] = floorValues[i]!;
  }
  return ((performance.now() - t0) * 1e6) / PAGES;
}

const s64 = new BigInt64Array(1);
const s32 = new Int32Array(s64.buffer);
const D_LO = Number(SPTE_D_MASK);

/** Per SPTE: load, then cmpxchg to the value with D cleared (built on Int32 halves); ns per SPTE. */
function floorCmpxchg(): number {
  floorStore(); // every entry has D set again
  const t0 = performance.now();
  for (let t = 0; t < TABLES; t++) {
    const o = t * PT_ENTRIES;
    for (let i = 0; i < PT_ENTRIES; i++) {
      const old = floorSpt[o + i]!;
      s64[0] = old;
      s32[0] = s32[0]! & ~D_LO;
      if (Atomics.compareExchange(floorSpt, o + i, old, s64[0]!) !== old) throw new Error('floor cmpxchg lost');
    }
  }
  return ((performance.now() - t0) * 1e6) / PAGES;
}

/** A 4K-mapped tree of the same guest for the walk floors (built once: floors touch no allocator). */
const walkVm = newVm('pml');
const walkBitmaps = newDirtyBitmaps(walkVm);
pass(walkVm, 'write', any, 'walk floor populate');
enableAll(walkVm, MANUAL_MODE);
getAll(walkVm, MANUAL_MODE, walkBitmaps);
clearCall(walkVm, MANUAL_MODE, walkBitmaps, 0, 0, PAGES, 'whole');
if (walkVm.pageStats().pages4k !== PAGES) throw new Error('walk floor tree is not all 4K');
const WALK_PAGES = [0, 1, 512, 512 ** 2, 512 ** 3];

/** Bare 4-level walk per gfn in pass order, plus (withCmpxchg) one cmpxchg on the leaf that sets D. */
function floorWalk(withCmpxchg: boolean): number {
  const spt = walkVm.spt;
  const root = walkVm.root;
  const first = walkVm.config.memslots[0]!.baseGfn;
  let sink = 0;
  const t0 = performance.now();
  for (let p = 0; p < PAGES; p++) {
    const gfn = first + p;
    let table = root;
    let idx = 0;
    let spte = 0n;
    for (let level = 4; level >= 1; level--) {
      idx = table * 512 + (Math.floor(gfn / WALK_PAGES[level]!) & 511);
      spte = spt[idx]!;
      s64[0] = spte;
      table = (s32[0]! >>> 12) + (s32[1]! & 0xfffff) * 1048576;
    }
    if (withCmpxchg) {
      s32[0] = s32[0]! | D_LO;
      if (Atomics.compareExchange(spt, idx, spte, s64[0]!) !== spte) throw new Error('floor cmpxchg lost');
    } else {
      sink += s32[0]! & 1;
    }
  }
  const ns = ((performance.now() - t0) * 1e6) / PAGES;
  if (sink < 0) throw new Error('unreachable');
  return ns;
}

// --- the run ----------------------------------------------------------------------------------

const rounds: Round[] = [];
const store: number[] = [];
const cmpxchg: number[] = [];
const walk: number[] = [];
const walkCas: number[] = [];
for (let r = -1; r < ROUNDS; r++) {
  const x = round();
  const fs = floorStore();
  const fc = floorCmpxchg();
  const fw = floorWalk(false);
  const fwc = floorWalk(true);
  if (r < 0) continue; // warm-up round (JIT), as the workers' jit_warmup.ts does before a run
  rounds.push(x);
  store.push(fs);
  cmpxchg.push(fc);
  walk.push(fw);
  walkCas.push(fwc);
}
const m = (k: keyof Round): number => median(rounds.map((x) => x[k]));
const fStore = median(store);
const fCas = median(cmpxchg);
const fWalk = median(walk);
const fWalkCas = median(walkCas);
printRatioTable(`the emulator's phases, one thread, ${GIB} GiB of 2M pages (${PAGES} 4K SPTEs), --host-costs none, median of ${ROUNDS} rounds`, [
  { figure: 'split walk in enable (-g, read lock), per 4K SPTE', value: m('splitEnable'), floorName: 'store 512 SPTEs / 512', floor: fStore, target: 3 },
  { figure: 'split walk in CLEAR (write lock), per 4K SPTE', value: m('splitClear'), floorName: 'store 512 SPTEs / 512', floor: fStore, target: 3 },
  { figure: 'write protection in enable (wrprot), per SPTE', value: m('wrprotEnable'), floorName: '512-entry cmpxchg / 512', floor: fCas, target: 2 },
  { figure: 'D-bit clearing in enable (PML), per SPTE', value: m('dClearEnable'), floorName: '512-entry cmpxchg / 512', floor: fCas, target: 2 },
  { figure: 'D-bit clearing in CLEAR (PML, whole call), per SPTE', value: m('dClearClear'), floorName: '512-entry cmpxchg / 512', floor: fCas, target: 2 },
  { figure: 'guest write, PML, D already set, per access', value: m('pmlDSet'), floorName: 'bare 4-level walk', floor: fWalk, target: 1.5 },
  { figure: 'guest read hit, per access', value: m('readHit'), floorName: 'bare 4-level walk', floor: fWalk },
  { figure: 'guest write, PML logs it (sets D), per access', value: m('pmlLogged'), floorName: 'bare walk + cmpxchg', floor: fWalkCas },
  { figure: 'guest write, lockless fast fault, per access', value: m('fastFault'), floorName: 'bare walk + cmpxchg', floor: fWalkCas, target: 2 },
  { figure: 'populate (first touch maps 2M), per page', value: m('populate'), floorName: 'bare 4-level walk', floor: fWalk },
]);
