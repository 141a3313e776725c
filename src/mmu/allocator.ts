/**
 * The page allocator model: PtPool plus host memory pressure, seeded per worker.
 *
 * KVM allocates TDP page tables with two kinds of GFP flags, and the eager-split debate is about
 * their difference (kvm-eager-split.md §1.4, §1.5, §6). The two differ ONLY in
 * __GFP_DIRECT_RECLAIM: both first try the free lists (get_page_from_freelist); GFP_NOWAIT gives up
 * where GFP_KERNEL goes on into direct reclaim. So one allocation is ONE draw from the host's
 * state, and the same draw decides both flavours:
 *   - the fast path fails (host below the low watermark, or per-cpu lists empty and the zone
 *     fragmented): GFP_NOWAIT (allocNowait) returns -1; GFP_KERNEL (allocBlocking) reclaims, a real
 *     wait drawn from a heavy-tailed lognormal, then succeeds;
 *   - the fast path succeeds, rarely after a long tail (zone-lock contention, per-cpu list refill):
 *     both flavours spend that busy time and succeed.
 * Same seed, same call sequence: GFP_NOWAIT fails exactly where GFP_KERNEL reclaims.
 *
 * The host is an INPUT: `hostFree` (free memory as a fraction of host RAM) against `watermark`
 * (the zone low watermark, same unit). The emulator's page-table pool is not the host: the
 * splitter's own tables never move the host below its watermark. The pool matters only when its
 * free list is empty: then the allocation enters the pressure path (pool_reclaim.ts: reap tables
 * whose grace period ended; GFP_KERNEL outside RCU and mmu_lock also pushes grace periods), and
 * only if that finds nothing is it ENOMEM.
 *
 * Two allocations per split: tdp_mmu_alloc_sp_for_split allocates the kvm_mmu_page header
 * (kmem_cache_zalloc) and then the page table (get_zeroed_page), and kvm_mmu_memory_cache top-ups
 * fill header and page caches alike. allocNowait/allocBlocking model that pair: two draws, header
 * first; a failed page frees the header. Headers are counted in WS.spHeaderAllocs.
 *
 * Real time is spent (Atomics.wait on a private word for long waits, a busy spin for short ones)
 * so that, done under mmu_lock, it shows in lock hold times exactly as a sleeping allocation in
 * the kernel would.
 *
 * Determinism: each worker's allocator draws from its own Rng(seed + workerId), a fixed number of
 * Rng steps per draw whatever the outcome, so the pressure decisions of a run are reproducible
 * from --seed (the real-time delays, and which worker wins a race for the last table, are not).
 *
 * Counting into this worker's stat slot: successful sp allocations by flavour
 * (WS.allocNowait / ALLOC_BLOCKING), failures (ALLOC_FAILED), headers
 * (SP_HEADER_ALLOCS) and GFP_KERNEL allocations that reclaimed (RECLAIMS).
 */

import type { WorkerStats } from '../stats/worker_slot.js';
import { invalidOption } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import type { PtPool } from './pt_pool.js';
import type { PoolReclaim } from './pool_reclaim.js';
import { Rng } from './rng.js';

export type PressureProfileName = 'none' | 'moderate' | 'heavy';

export interface PressureParams {
  /** Profile name, or 'custom' when parsed from key=value pairs. */
  readonly name: string;
  /** Host free memory, a fraction of host RAM [0, 1]: an input of the profile, not the pool's occupancy. */
  readonly hostFree: number;
  /** The zone low watermark, same unit [0, 1): with hostFree below it every fast path fails. */
  readonly watermark: number;
  /** Probability that the fast path fails although the host is above the watermark [0, 1]. */
  readonly failP: number;
  /** Probability that a successful fast path takes a long-tail latency [0, 1]. */
  readonly slowP: number;
  /** The long-tail latency is log-uniform in [slowMinUs, slowMaxUs] microseconds, busy CPU time. */
  readonly slowMinUs: number;
  readonly slowMaxUs: number;
  /** Reclaim latency (GFP_KERNEL after a failed fast path): lognormal with this median (us) ... */
  readonly reclaimP50Us: number;
  /** ... and this sigma of ln(latency) (1.0: p99 is about 10x the median; heavy tail) ... */
  readonly reclaimSigma: number;
  /** ... clamped here (us), so one draw cannot stall a test run. */
  readonly reclaimMaxUs: number;
  /** Multiplies every real delay (1 = real time; 0 = draw, count and record, but spend no time: tests). */
  readonly timeScale: number;
}

/**
 * The named profiles, each with its calibration.
 *
 * none: an idealised allocator and host. No injected latency, no failures other than a truly
 *   empty pool. The baseline against which every pressure effect is measured.
 *
 * moderate: a healthy production host, calibrated on the published anchor (v1 cover letter of the
 *   5.18 series, kvm-eager-split.md §1.5): "Across 40 runs of dirty_log_perf_test using 1GiB
 *   HugeTLB with 96 vCPUs there were only 4 allocations that took longer than 20 microseconds and
 *   the longest was 60 microseconds. None of the GFP_NOWAIT allocations failed." Each run split
 *   96 GiB of 1G pages to 4K: 96 x 513 = 49,248 sp allocations, each two draws (header and page),
 *   so 40 runs made 1.97 M sp allocations and 3.94 M draws. 4 slow ones: slowP = 4 / 3.94e6 = 1e-6
 *   per draw, log-uniform in [20, 60] us. "None failed": failP = 1e-7, at which 3.94 M draws see no
 *   failure with probability 0.67 (e^-0.39); a healthy host still reclaims, very rarely, on the
 *   GFP_KERNEL path (median 50 us, sigma 1). Host 30 % free, well above a 1 % watermark.
 *
 * heavy: a host under intense memory pressure, the "cry-for-help" migration David Matlack wants
 *   reclaim to run on the splitting thread for (§6, Apr 2024): free memory just above the low
 *   watermark (6 % against 5 %: kswapd is running), the fast path fails for 5 % of draws
 *   (per-cpu lists drained, fragmentation), so GFP_NOWAIT fails and GFP_KERNEL reclaims on 5 % of
 *   draws, about one split in ten; 1 % of successful fast paths take a tail of 20-500 us; reclaim
 *   has a median of 200 us and sigma 1.2 (p99 about 3 ms), clamped at 20 ms. These are
 *   order-of-magnitude choices, not measurements: direct reclaim of a few pages typically costs
 *   100s of us, and the tail runs to milliseconds. `hostFree` below `watermark` (e.g.
 *   'heavy,hostFree=0.04') gives the extreme: every draw fails its fast path.
 */
export const PRESSURE_PROFILES: Readonly<Record<PressureProfileName, PressureParams>> = Object.freeze({
  none: Object.freeze({
    name: 'none',
    hostFree: 1,
    watermark: 0,
    failP: 0,
    slowP: 0,
    slowMinUs: 0,
    slowMaxUs: 0,
    reclaimP50Us: 0,
    reclaimSigma: 0,
    reclaimMaxUs: 0,
    timeScale: 1,
  }),
  moderate: Object.freeze({
    name: 'moderate',
    hostFree: 0.3,
    watermark: 0.01,
    failP: 1e-7,
    slowP: 1e-6,
    slowMinUs: 20,
    slowMaxUs: 60,
    reclaimP50Us: 50,
    reclaimSigma: 1.0,
    reclaimMaxUs: 2000,
    timeScale: 1,
  }),
  heavy: Object.freeze({
    name: 'heavy',
    hostFree: 0.06,
    watermark: 0.05,
    failP: 0.05,
    slowP: 0.01,
    slowMinUs: 20,
    slowMaxUs: 500,
    reclaimP50Us: 200,
    reclaimSigma: 1.2,
    reclaimMaxUs: 20000,
    timeScale: 1,
  }),
});

const NUMERIC_KEYS = [
  'hostFree',
  'watermark',
  'failP',
  'slowP',
  'slowMinUs',
  'slowMaxUs',
  'reclaimP50Us',
  'reclaimSigma',
  'reclaimMaxUs',
  'timeScale',
] as const;
type NumericKey = (typeof NUMERIC_KEYS)[number];

function isProfileName(s: string): s is PressureProfileName {
  return s === 'none' || s === 'moderate' || s === 'heavy';
}

/**
 * Parse a --pressure value: a profile name ('none' | 'moderate' | 'heavy'), or comma-separated
 * key=value pairs optionally starting with a profile name to modify
 * ('heavy,hostFree=0.04', 'failP=0.01,reclaimP50Us=300'); keys not given come from the named
 * profile, or from 'none'. Throws ERR_INVALID_OPTION naming --pressure.
 */
export function parsePressure(spec: string): PressureParams {
  const s = spec.trim();
  if (s === '') throw invalidOption('--pressure', 'is empty; expected none, moderate, heavy or key=value pairs');
  const parts = s.split(',').map((p) => p.trim());
  let base: PressureParams = PRESSURE_PROFILES.none;
  let start = 0;
  const first = parts[0]!;
  if (!first.includes('=')) {
    if (!isProfileName(first)) {
      throw invalidOption('--pressure', `unknown profile '${first}'; expected none, moderate, heavy or key=value pairs`);
    }
    base = PRESSURE_PROFILES[first];
    start = 1;
  }
  if (start === parts.length) return base;
  const out: Record<NumericKey, number> = { ...base };
  for (const part of parts.slice(start)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw invalidOption('--pressure', `'${part}' is not key=value (a profile name may only come first)`);
    const key = part.slice(0, eq).trim();
    const raw = part.slice(eq + 1).trim();
    if (!(NUMERIC_KEYS as readonly string[]).includes(key)) {
      throw invalidOption('--pressure', `unknown key '${key}'; known: ${NUMERIC_KEYS.join(', ')}`);
    }
    const v = Number(raw);
    if (raw === '' || !Number.isFinite(v)) throw invalidOption('--pressure', `${key}=${raw} is not a finite number`);
    out[key as NumericKey] = v;
  }
  const p: PressureParams = { ...out, name: 'custom' };
  validatePressure(p);
  return Object.freeze(p);
}

/** Range checks; throws ERR_INVALID_OPTION naming --pressure. */
export function validatePressure(p: PressureParams): void {
  const bad = (why: string): never => {
    throw invalidOption('--pressure', why);
  };
  if (!(p.hostFree >= 0 && p.hostFree <= 1)) bad(`hostFree=${p.hostFree} must be a fraction in [0, 1]`);
  if (!(p.watermark >= 0 && p.watermark < 1)) bad(`watermark=${p.watermark} must be in [0, 1)`);
  for (const k of ['failP', 'slowP'] as const) {
    if (!(p[k] >= 0 && p[k] <= 1)) bad(`${k}=${p[k]} must be a probability in [0, 1]`);
  }
  for (const k of ['slowMinUs', 'slowMaxUs', 'reclaimP50Us', 'reclaimSigma', 'reclaimMaxUs', 'timeScale'] as const) {
    if (!(p[k] >= 0)) bad(`${k}=${p[k]} must be >= 0`);
  }
  if (p.slowMinUs > p.slowMaxUs) bad(`slowMinUs=${p.slowMinUs} exceeds slowMaxUs=${p.slowMaxUs}`);
  if (p.reclaimP50Us > p.reclaimMaxUs) bad(`reclaimP50Us=${p.reclaimP50Us} exceeds reclaimMaxUs=${p.reclaimMaxUs}`);
  if (p.slowP > 0 && p.slowMinUs <= 0) bad('slowMinUs must be > 0 when slowP > 0');
}

/** Waits at least this long use Atomics.wait (the thread sleeps, as reclaim does); shorter ones spin. */
const SLEEP_THRESHOLD_US = 100;

/** Why an allocation failed (or 'ok'): the host below its watermark, a transient fast-path failure, an empty pool. */
export type AllocReason = 'ok' | 'watermark' | 'transient' | 'exhausted';

/** How the last call went (for tests and the emulator's traces). */
export interface AllocOutcome {
  readonly path: 'nowait' | 'blocking';
  readonly table: number;
  /** Injected delay of this call (slow fast paths plus reclaims), microseconds before timeScale. */
  readonly delayUs: number;
  readonly reason: AllocReason;
  /** Draws of this call whose fast path failed and that reclaimed (GFP_KERNEL only). */
  readonly reclaims: number;
}

/**
 * The pressure model's draws, separate from the pool so they can be tested (and their
 * distributions checked against the published anchor) without allocating anything.
 * One draw per allocation; each draw takes exactly four Rng steps whatever its outcome, so equal
 * seeds give equal decision streams whichever flavours the caller asks for. The draw's result is
 * left in fields (no object per draw: this is on the split's hot path).
 */
export class PressureModel {
  readonly params: PressureParams;
  readonly #rng: Rng;
  /** Nothing can ever fail or be slow: draws are skipped (they would all say "fast, ok"). */
  readonly #inert: boolean;
  readonly #belowWatermark: boolean;
  /** Result of the last draw: the fast path failed ('watermark' | 'transient') or not ('ok'). */
  reason: 'ok' | 'watermark' | 'transient' = 'ok';
  /** Last draw, fast path ok: its busy latency (us; 0 most of the time). */
  slowUs = 0;
  /** Last draw, fast path failed: what direct reclaim would cost a GFP_KERNEL caller (us). */
  reclaimUs = 0;

  constructor(params: PressureParams, seed: number) {
    validatePressure(params);
    this.params = params;
    this.#rng = new Rng(seed);
    this.#belowWatermark = params.hostFree < params.watermark;
    this.#inert = !this.#belowWatermark && params.failP === 0 && params.slowP === 0;
  }

  /**
   * One draw: 'watermark' or 'transient' when the fast path fails (GFP_NOWAIT fails, GFP_KERNEL
   * reclaims `reclaimUs`); 'ok' when it succeeds after `slowUs` of busy time.
   */
  draw(): 'ok' | 'watermark' | 'transient' {
    this.slowUs = 0;
    this.reclaimUs = 0;
    if (this.#inert) {
      this.reason = 'ok';
      return 'ok';
    }
    const p = this.params;
    const rng = this.#rng;
    const u = rng.nextFloat();
    const v = rng.nextFloat();
    const z = rng.nextNormal();
    if (this.#belowWatermark || u < p.failP) {
      this.reason = this.#belowWatermark ? 'watermark' : 'transient';
      // Lognormal: median reclaimP50Us, ln-sigma reclaimSigma; clamped so one draw cannot stall a run.
      this.reclaimUs = p.reclaimP50Us > 0 ? Math.min(p.reclaimMaxUs, p.reclaimP50Us * Math.exp(p.reclaimSigma * z)) : 0;
      return this.reason;
    }
    this.reason = 'ok';
    // The tail band sits right above the failure band of u, so the two never overlap.
    if (u < p.failP + p.slowP) {
      // Log-uniform: as many draws per octave near the minimum as near the maximum.
      const lo = Math.log(p.slowMinUs);
      const hi = Math.log(p.slowMaxUs);
      this.slowUs = Math.exp(lo + (hi - lo) * v);
    }
    return 'ok';
  }
}

export class PageAllocator {
  readonly pool: PtPool;
  readonly params: PressureParams;
  readonly model: PressureModel;
  /** The pressure path for an empty free list; undefined = report ENOMEM at once (bare pools in tests, or the control). */
  readonly reclaim: PoolReclaim | undefined;
  readonly #stats: WorkerStats;
  /** Private word for Atomics.wait (nobody ever notifies it: the wait always times out). */
  readonly #sleepWord = new Int32Array(new SharedArrayBuffer(4));
  // The last call's outcome, in fields (read through `last`, which builds an object: tests only).
  #lastPath: 'nowait' | 'blocking' = 'nowait';
  #lastTable = -1;
  #lastDelayUs = 0;
  #lastReason: AllocReason = 'ok';
  #lastReclaims = 0;

  constructor(pool: PtPool, params: PressureParams, seed: number, stats: WorkerStats, reclaim?: PoolReclaim) {
    this.pool = pool;
    this.params = params;
    this.model = new PressureModel(params, seed);
    this.reclaim = reclaim;
    this.#stats = stats;
  }

  /** The outcome of the most recent allocNowait/allocBlocking call. */
  get last(): AllocOutcome {
    return { path: this.#lastPath, table: this.#lastTable, delayUs: this.#lastDelayUs, reason: this.#lastReason, reclaims: this.#lastReclaims };
  }

  /**
   * GFP_NOWAIT for one sp (header, then page table): returns a table (zeroed, IN_USE) or -1.
   * Fails when either draw's fast path fails (the header is then freed, as
   * __tdp_mmu_alloc_sp_for_split does) or when the pool is empty even after reaping the tables
   * whose grace period has ended (pool_reclaim.ts; never waits for one). A success may busy-spin a
   * long-tail latency (real CPU time; never sleeps, so it is legal under mmu_lock and RCU).
   */
  allocNowait(): number {
    const m = this.model;
    this.#lastPath = 'nowait';
    this.#lastReclaims = 0;
    const header = m.draw();
    let delayUs = m.slowUs;
    // The page's draw is taken even when the header failed (the kernel would not try the page),
    // so both flavours consume the stream two draws per call and stay in step.
    const page = m.draw();
    if (header !== 'ok') return this.#fail(header, 0);
    this.#stats.add(WS.spHeaderAllocs, 1);
    if (page !== 'ok') return this.#fail(page, delayUs);
    delayUs += m.slowUs;
    if (delayUs > 0) spinUs(delayUs * this.params.timeScale);
    let t = this.pool.allocRaw();
    // Empty free list: reap what is ripe, never wait (GFP_NOWAIT).
    if (t < 0 && this.reclaim !== undefined) t = this.reclaim.allocRawUnderPressure(false);
    if (t < 0) return this.#fail('exhausted', delayUs);
    this.#stats.add(WS.allocNowait, 1);
    this.#ok(t, delayUs);
    return t;
  }

  /**
   * GFP_KERNEL for one sp (header, then page table): returns a table (zeroed, IN_USE) or -1 only
   * when the pool is truly empty (ENOMEM) after the pressure path: outside RCU and mmu_lock that
   * includes waiting for grace periods, so -1 then means live tables fill the pool. Each of the two draws whose fast path fails waits out a
   * reclaim latency (real time: sleeps via Atomics.wait when long), counted in RECLAIMS. May sleep:
   * in KVM this is called with mmu_lock dropped; a design that calls it under the lock pays the
   * wait as hold time.
   */
  allocBlocking(): number {
    const m = this.model;
    this.#lastPath = 'blocking';
    let reclaims = 0;
    let delayUs = 0;
    for (let i = 0; i < 2; i++) {
      if (m.draw() !== 'ok') {
        reclaims++;
        delayUs += m.reclaimUs;
      } else {
        delayUs += m.slowUs;
      }
    }
    this.#lastReclaims = reclaims;
    if (reclaims > 0) this.#stats.add(WS.reclaims, reclaims);
    this.#stats.add(WS.spHeaderAllocs, 1);
    if (delayUs > 0) this.#wait(delayUs * this.params.timeScale);
    let t = this.pool.allocRaw();
    // Empty free list: reap, and push grace periods if this thread may sleep (pool_reclaim.ts).
    if (t < 0 && this.reclaim !== undefined) t = this.reclaim.allocRawUnderPressure(true);
    if (t < 0) return this.#fail('exhausted', delayUs);
    this.#stats.add(WS.allocBlocking, 1);
    this.#ok(t, delayUs);
    return t;
  }

  /** Return a never-published table to the pool (pool.freeUnpublished). */
  freeUnpublished(t: number): void {
    this.pool.freeUnpublished(t);
  }

  #ok(t: number, delayUs: number): void {
    this.#lastTable = t;
    this.#lastDelayUs = delayUs;
    this.#lastReason = 'ok';
  }

  #fail(reason: Exclude<AllocReason, 'ok'>, delayUs: number): number {
    this.#stats.add(WS.allocFailed, 1);
    this.#lastTable = -1;
    this.#lastDelayUs = delayUs;
    this.#lastReason = reason;
    return -1;
  }

  /** Spend `us` of real time: sleep for long waits (reclaim sleeps), spin the remainder. */
  #wait(us: number): void {
    if (us <= 0) return;
    const deadline = performance.now() + us / 1000;
    if (us >= SLEEP_THRESHOLD_US) {
      // Sleep a bit less than asked (timer slack), then spin to the deadline.
      Atomics.wait(this.#sleepWord, 0, 0, (us - SLEEP_THRESHOLD_US / 2) / 1000);
    }
    while (performance.now() < deadline) {
      // busy: the rest of the reclaim latency
    }
  }
}

/** Busy-spin `us` microseconds of real time (GFP_NOWAIT never sleeps). */
function spinUs(us: number): void {
  if (us <= 0) return;
  const deadline = performance.now() + us / 1000;
  while (performance.now() < deadline) {
    // busy
  }
}
