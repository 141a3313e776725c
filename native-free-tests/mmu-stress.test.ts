/**
 * MMU concurrency stress: vCPU workers fault and fast-fault random gfns while a splitter
 * splits, a zapper zaps and recovers, and a harvester cycles dirty-logging periods (enable with
 * eager split, get/clear, disable with recovery). At the end:
 *   - the invariant checker finds nothing (translation, tables, pool accounting, page stats,
 *     "writable => dirty bit" while logging is on);
 *   - no walker read a POISON_SPTE (a table freed before its grace period) and no translation
 *     disagreed with the backing;
 *   - every write a vCPU completed in a logging period was reported by a harvest (nothing lost;
 *     the epoch protocol is described in fixtures/mmu-stress.worker.ts).
 * The run lasts until every harvester mode has had a period ended by disable (recovery), so the
 * short tier exercises each dirty-logging mode: GET with eager split at enable, initially-set with
 * the eager split in CLEAR under the write lock, GET without eager split.
 * Controls: each detector (poisoned reads, translation errors, lost writes, the invariant checker)
 * has its own, the first real run's configuration with one bug injected once at a chosen point
 * (fixtures/mmu-stress.worker.ts); each asserts that its detector fires and the others do not.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { runAllConcurrently } from '../src/thread_pool.js';
import { attachVm, createVm, layoutMemslots, worstCaseTreeTables } from '../src/vm.js';
import type { DirtyTrackMode, VmConfig } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { checkInvariants, formatViolations } from '../src/mmu/invariants.js';
import type { InvariantReport } from '../src/mmu/invariants.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { stressSeconds } from './_tier.js';
import {
  C_CLEAR_SPLIT_CALLS,
  C_CLEAR_SPLITS,
  C_HARVESTS,
  C_INJECTED,
  C_MODES_HARVESTED,
  C_PERIODS,
  C_PERIODS_DONE,
  C_STOP,
  HARVEST_MODES,
  KIND_FINAL,
  KIND_LOG,
  stressLayout,
} from './fixtures/mmu-stress.worker.js';
import type { Role, StressInjection, StressResult, StressTask } from './fixtures/mmu-stress.worker.js';

const worker = new URL('./fixtures/mmu-stress.worker.js', import.meta.url);
const VCPUS = 4;
const M = pagesPerHpage(2);

interface Outcome {
  readonly results: StressResult[];
  readonly stats: Record<string, number>;
  readonly report: InvariantReport;
  readonly writesChecked: number;
  readonly writesUnchecked: number;
  readonly lost: number;
  /** Writes reported later than the next harvest (legal: a fault's dirty mark can trail its write). */
  readonly late: number;
  readonly lostExamples: string[];
  readonly harvests: number;
  readonly periods: number;
  /** Periods ended by disable (recovery). */
  readonly periodsDone: number;
  /** Bit m: a period of HARVEST_MODES[m] reached its FINAL harvest. */
  readonly modesHarvested: number;
  /** CLEARs that ran the eager split (write lock), and the huge pages they split. */
  readonly clearSplitCalls: number;
  readonly clearSplits: number;
  /** A control's fault was applied. */
  readonly injected: boolean;
  readonly workerErrors: string[];
}

async function stress(
  levels: 4 | 5,
  backingLevel: 2 | 3,
  pages: number,
  inject: StressInjection = 'none',
  dirtyTrack: DirtyTrackMode = 'wrprot',
): Promise<Outcome> {
  const roles: Role[] = ['splitter', 'zapper', 'harvester', 'reader', ...new Array<Role>(VCPUS).fill('vcpu')];
  const memslots = layoutMemslots(pages, 1);
  const config: VmConfig = {
    levels,
    memslots,
    backingLevel,
    workers: roles.length + 1,
    pressure: PRESSURE_PROFILES.none,
    seed: 7,
    dirtyTrack,
    // Room for churn: in periods without dirty logging a fault on a split region collapses it back
    // to one huge leaf (freeing 513 tables for a 1G page) while the splitter splits it again, and
    // several threads can each hold a generation of freed tables in their grace periods.
    poolTables: 8 * worstCaseTreeTables({ levels, memslots }) + 2048,
  };
  const shared = createVm(config);
  const main = attachVm(shared, 0);
  const words = main.dirtyBitmap(0).length;
  // Populate: one write per huge page, so the first dirty-logging period has huge pages to split.
  const out = createAccessResult();
  const slot = memslots[0]!;
  for (let g = slot.baseGfn; g < slot.baseGfn + slot.npages; g += pagesPerHpage(backingLevel)) guestAccess(main, g, 'write', out);
  const seconds = stressSeconds(1.5, 3, 30);
  // About 12 epochs per dirty-logging period, at most ~10 periods a second.
  const layout = stressLayout(words, VCPUS, 256 + Math.ceil(seconds * 120));
  const ctl = new SharedArrayBuffer(layout.totalInt32s * 4);
  const c = new Int32Array(ctl);
  let vcpuIndex = 0;
  const tasks: StressTask[] = roles.map((role, i) => ({
    role,
    workerId: i + 1,
    vcpuIndex: role === 'vcpu' ? vcpuIndex++ : -1,
    vm: shared,
    ctl,
    layout,
    seconds,
    seed: 1000 + i * 7919,
    inject,
  }));
  // Stop after `seconds`, but not before every harvester mode has had a whole period (enable,
  // harvests, FINAL, disable with recovery; a loaded machine can spend the whole short tier in the
  // first enable-time split of a 1G page), nor before a control's fault has been applied.
  let timer: NodeJS.Timeout | undefined;
  const stopWhenDone = (): void => {
    if (c[C_HARVESTS]! >= 3 && c[C_PERIODS_DONE]! >= HARVEST_MODES.length && (inject === 'none' || c[C_INJECTED] !== 0)) Atomics.store(c, C_STOP, 1);
    else timer = setTimeout(stopWhenDone, 50);
  };
  timer = setTimeout(stopWhenDone, seconds * 1000);
  let results: StressResult[];
  try {
    results = await runAllConcurrently<StressResult>(worker, tasks, {
      timeoutMs: seconds * 1000 + 60_000, // a hang guard; a loaded shared machine can take 30 s and more
      // Assert every lock and RCU context the MMU functions state (debug holder tracking).
      env: { ATOMICS_LOCK_DEBUG: '1', RCU_DEBUG: '1' },
    });
  } finally {
    clearTimeout(timer);
  }

  // Every worker detached (its RCU callbacks ran, its cache was freed): the MMU is quiescent.
  main.rcu.barrier();
  const report = checkInvariants(main);

  // Nothing lost: a write completed at epoch e of a logging period (W[e], or a spanning record
  // (p, e, e2)) must be reported by a harvest in [e, f], f the period's FINAL epoch (protocol in
  // fixtures/mmu-stress.worker.ts). Writes missing from H[e] | H[e+1] but reported later are "late".
  const kind = (e: number): number => c[layout.kindBase + e]!;
  const lastEpoch = c[1]!; // C_EPOCH
  // finalOf[e]: the FINAL epoch closing e's logging period, or -1 (e not logging, or no FINAL yet).
  const finalOf = new Int32Array(lastEpoch + 2).fill(-1);
  for (let e = lastEpoch; e >= 0; e--) {
    const k = kind(e);
    if (k === KIND_FINAL) finalOf[e] = e;
    else if (k === KIND_LOG) finalOf[e] = finalOf[e + 1]!;
  }
  const h = (e: number, w: number): number => c[layout.hBase + e * words + w]!;
  let checked = 0;
  let unchecked = 0;
  let lost = 0;
  let late = 0;
  const lostExamples: string[] = [];
  const popcount = (x: number): number => {
    let n = 0;
    for (let v = x >>> 0; v !== 0; v &= v - 1) n++;
    return n;
  };
  const coveredBy = (e: number, f: number, w: number): number => {
    let u = 0;
    for (let k = e; k <= f; k++) u |= h(k, w);
    return u;
  };
  for (let e = 0; e <= lastEpoch; e++) {
    const f = finalOf[e]!;
    for (let w = 0; w < words; w++) {
      const wBits = c[layout.wBase + e * words + w]!;
      if (wBits === 0) continue;
      if (f < 0 || kind(e) === KIND_FINAL) {
        unchecked += popcount(wBits);
        continue;
      }
      checked += popcount(wBits);
      const missing = wBits & ~coveredBy(e, f, w);
      late += popcount(wBits & ~(h(e, w) | h(e + 1, w)) & ~missing);
      if (missing !== 0) {
        lost += popcount(missing);
        if (lostExamples.length < 10) lostExamples.push(`epoch ${e} (final ${f}): pages ${w * 32}+mask 0x${(missing >>> 0).toString(16)}`);
      }
    }
  }
  for (let v = 0; v < VCPUS; v++) {
    const base = layout.spanBase + v * (1 + 3 * layout.spanCap);
    const n = c[base]!;
    for (let i = 0; i < n; i++) {
      const p = c[base + 1 + 3 * i]!;
      const e = c[base + 2 + 3 * i]!;
      const e2 = c[base + 3 + 3 * i]!;
      const f = finalOf[e]!;
      if (f < 0 || e2 >= f || kind(e) === KIND_FINAL) {
        unchecked++;
        continue;
      }
      checked++;
      if ((coveredBy(e, f, p >>> 5) & (1 << (p & 31))) === 0) {
        lost++;
        if (lostExamples.length < 10) lostExamples.push(`page ${p} written across epochs ${e}..${e2} (final ${f})`);
      }
    }
  }
  return {
    results,
    stats: main.sumStats(),
    report,
    writesChecked: checked,
    writesUnchecked: unchecked,
    lost,
    late,
    lostExamples,
    harvests: c[C_HARVESTS]!,
    periods: c[C_PERIODS]!,
    periodsDone: c[C_PERIODS_DONE]!,
    modesHarvested: c[C_MODES_HARVESTED]!,
    clearSplitCalls: c[C_CLEAR_SPLIT_CALLS]!,
    clearSplits: c[C_CLEAR_SPLITS]!,
    injected: c[C_INJECTED] !== 0,
    workerErrors: results.filter((r) => r.error !== null).map((r) => r.error!),
  };
}

function summary(o: Outcome): string {
  const s = o.stats;
  const n = (k: string): number => s[k] ?? 0;
  return [
    `accesses ${n('accesses')}, fast faults ${n('fastFaults')}, slow faults ${n('slowFaults')}, retries ${n('faultRetries')}`,
    `huge pages split ${n('hugePagesSplit')}, lock drops ${n('lockDrops')}, yields ${n('yields')}, restarts ${n('restarts')}, zapped tables ${n('zappedTables')}`,
    `dirty-log periods ${o.periods} (${o.periodsDone} ended by recovery, modes harvested 0b${o.modesHarvested.toString(2)}), CLEAR splits ${o.clearSplits} in ${o.clearSplitCalls} CLEARs`,
    `harvests ${o.harvests}, writes checked ${o.writesChecked} (unchecked ${o.writesUnchecked}), lost ${o.lost}, reported late ${o.late}`,
    `poison reads ${n('poisonReads')}, translation errors ${n('xlateErrors')}, invariant violations ${o.report.count}`,
  ].join('\n');
}

function assertHealthy(t: ExecutionContext, o: Outcome): void {
  t.log(summary(o));
  t.deepEqual(o.workerErrors, [], 'no worker failed');
  t.true(o.report.ok, formatViolations(o.report));
  t.is(o.stats['poisonReads'], 0, 'no walker read a freed (poisoned) table');
  t.is(o.stats['xlateErrors'], 0, 'every translation matched the backing');
  t.is(o.lost, 0, `writes missing from the dirty log: ${o.lostExamples.join('; ')}`);
  // The run exercised what it claims to.
  t.true(o.writesChecked > 0, 'writes were checked against the dirty log');
  t.true((o.stats['fastFaults'] ?? 0) > 0, 'fast faults happened');
  t.true((o.stats['slowFaults'] ?? 0) > 0, 'slow faults happened');
  t.true((o.stats['hugePagesSplit'] ?? 0) > 0, 'huge pages were split');
  t.true((o.stats['zappedTables'] ?? 0) > 0, 'tables were zapped and freed through RCU');
  t.is(o.modesHarvested, (1 << HARVEST_MODES.length) - 1, 'every harvester mode had a period');
  t.true(o.periodsDone >= HARVEST_MODES.length, 'every mode ended with disable and recovery');
  t.true(o.clearSplits > 0, 'CLEAR split huge pages under the write lock');
}

test.serial('stress: 4 levels, 2M backing — invariants hold, no poisoned read, nothing lost', async (t) => {
  assertHealthy(t, await stress(4, 2, 32 * M));
});

test.serial('stress: PML dirty tracking (writes logged without faults, GET kicks running vCPUs) — nothing lost', async (t) => {
  const o = await stress(4, 2, 32 * M, 'none', 'pml');
  assertHealthy(t, o);
  t.true((o.stats['pmlWrites'] ?? 0) > 0, 'writes were logged by PML');
});

test.serial('stress: 5 levels, 1G backing (1G -> 2M -> 4K splits)', async (t) => {
  assertHealthy(t, await stress(5, 3, pagesPerHpage(3)));
});

/** What each detector counted in a run. */
function detectors(o: Outcome): Record<'poisonReads' | 'xlateErrors' | 'lostWrites' | 'invariantViolations', number> {
  return {
    poisonReads: o.stats['poisonReads'] ?? 0,
    xlateErrors: o.stats['xlateErrors'] ?? 0,
    lostWrites: o.lost,
    invariantViolations: o.report.count,
  };
}

/** One row per detector: the bug only it can see (fixtures/mmu-stress.worker.ts) and its count. */
const CONTROLS: readonly { inject: StressInjection; what: string; detector: keyof ReturnType<typeof detectors> }[] = [
  { inject: 'poison-read', what: 'a table pointer used after its read-side section and the free', detector: 'poisonReads' },
  { inject: 'translation-error', what: 'a leaf mapping the wrong pfn for one access', detector: 'xlateErrors' },
  { inject: 'lost-write', what: 'a harvest that loses a written page', detector: 'lostWrites' },
  { inject: 'table-leak', what: 'a table taken from the pool and never linked or freed', detector: 'invariantViolations' },
];

for (const c of CONTROLS) {
  test.serial(`control (${c.inject}): ${c.what} is caught by ${c.detector}, and by nothing else`, async (t) => {
    // The first real run's configuration; the fault is injected once, deterministically.
    const o = await stress(4, 2, 32 * M, c.inject);
    t.log(summary(o));
    t.deepEqual(o.workerErrors, [], 'no worker failed');
    t.true(o.injected, 'the fault was applied');
    const d = detectors(o);
    t.true(d[c.detector] > 0, `${c.detector} must fire`);
    for (const [k, n] of Object.entries(d))
      if (k !== c.detector) t.is(n, 0, `${k} must not fire${k === 'invariantViolations' ? `:\n${formatViolations(o.report)}` : ''}`);
    if (c.detector === 'invariantViolations')
      t.true(
        o.report.violations.every((v) => v.kind === 'pool-accounting'),
        formatViolations(o.report),
      );
  });
}
