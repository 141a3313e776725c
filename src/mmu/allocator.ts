/**
 * The page allocator model: PtPool plus memory pressure, seeded per worker.
 *
 * KVM allocates TDP page tables with two kinds of GFP flags, and the eager-split debate is about
 * their difference (kvm-eager-split.md §1.5, §6):
 *   - GFP_NOWAIT (allocNowait): no direct reclaim, never sleeps, so it is legal under mmu_lock and
 *     inside RCU. It fails when free memory is below the zone watermark, and it can take a long
 *     tail of CPU time (zone-lock contention, per-cpu list refill). We model both: a failure below
 *     `watermark`, a small probability of failure above it, and a busy spin of real time.
 *   - GFP_KERNEL (allocBlocking): may enter direct reclaim and sleep. We model reclaim as a real
 *     wait drawn from a heavy-tailed lognormal, taken always below the watermark and with a small
 *     probability above it. Real time is spent (Atomics.wait on a private word for long waits, a
 *     busy spin for short ones) so that, done under mmu_lock, it shows in lock hold times exactly
 *     as a sleeping allocation in the kernel would. It fails (-1, ENOMEM) only when the pool is
 *     truly exhausted.
 *
 * Determinism: each worker's allocator draws from its own Rng(seed + workerId) in call order, so
 * the pressure decisions of a run are reproducible from --seed (the real-time delays, and which
 * worker wins a race for the last table, are not).
 *
 * Counting: successful allocations by path and failures go into this worker's stat slot
 * (WS.allocNowait / ALLOC_BLOCKING / ALLOC_FAILED).
 */

import type { WorkerStats } from '../stats/worker_slot.js';
import { invalidOption } from '../errors.js';
import { WS } from '../stats/worker_stats.js';
import type { PtPool } from './pt_pool.js';
import { Rng } from './rng.js';

export type PressureProfileName = 'none' | 'moderate' | 'heavy';

export interface PressureParams {
  /** Profile name, or 'custom' when parsed from key=value pairs. */
  readonly name: string;
  /** Fraction of pool capacity: below `watermark * capacity` free tables, GFP_NOWAIT fails and GFP_KERNEL reclaims. [0, 1). */
  readonly watermark: number;
  /** Probability that a GFP_NOWAIT allocation fails although free tables are above the watermark. [0, 1]. */
  readonly nowaitFailP: number;
  /** Probability that a (successful) GFP_NOWAIT allocation takes a long-tail latency. [0, 1]. */
  readonly nowaitSlowP: number;
  /** The long-tail latency is log-uniform in [nowaitSlowMinUs, nowaitSlowMaxUs] microseconds, busy CPU time. */
  readonly nowaitSlowMinUs: number;
  readonly nowaitSlowMaxUs: number;
  /** Probability that a GFP_KERNEL allocation enters reclaim although free tables are above the watermark. [0, 1]. */
  readonly reclaimP: number;
  /** Reclaim latency: lognormal with this median (us) ... */
  readonly reclaimP50Us: number;
  /** ... and this sigma of ln(latency) (1.0: p99 is about 10x the median; heavy tail) ... */
  readonly reclaimSigma: number;
  /** ... clamped here (us), so one draw cannot stall a test run. */
  readonly reclaimMaxUs: number;
  /** Multiplies every real delay (1 = real time; 0 = draw, count and record, but spend no time: tests). */
  readonly timeScale: number;
}

/**
 * The named profiles.
 *
 * none: an idealised allocator. No injected latency, no failures other than a truly empty pool
 *   (watermark 0). The baseline against which every pressure effect is measured; satisfies the
 *   published anchor trivially (no allocation over 20 us, none failed).
 *
 * moderate: a healthy production host, calibrated on the published anchor (v1 cover letter of the
 *   5.18 series, §1.5): "Across 40 runs of dirty_log_perf_test using 1GiB HugeTLB with 96 vCPUs
 *   there were only 4 allocations that took longer than 20 microseconds and the longest was 60
 *   microseconds. None of the GFP_NOWAIT allocations failed." Each run split 96 GiB of 1G pages
 *   to 4K: 96 x 513 = 49,248 tables, so 40 runs made about 1.97 million GFP_NOWAIT allocations,
 *   4 of them over 20 us: nowaitSlowP = 4 / 1.97e6 = 2e-6, latency in [20, 60] us, nowaitFailP 0.
 *   The watermark (1% of the pool) is only reached if the pool is nearly full, which the anchor's
 *   runs never were: "none failed". Reclaim on the GFP_KERNEL path is rare (1e-4) and short
 *   (median 50 us, sigma 1): a host with free memory rarely reclaims directly.
 *
 * heavy: a host under intense memory pressure, the "cry-for-help" migration David Matlack wants
 *   reclaim to run on the splitting thread for (§6, Apr 2024): the watermark is 5% of the pool so
 *   GFP_NOWAIT fails for the last 5% of tables; above it, 0.2% of GFP_NOWAIT calls fail anyway
 *   (fragmentation, per-cpu lists drained) so the fallback path runs all the time; 1% take a tail
 *   of 20-500 us; GFP_KERNEL reclaims 5% of the time with a median of 200 us and sigma 1.2
 *   (p99 about 3 ms), clamped at 20 ms. These are order-of-magnitude choices, not measurements:
 *   direct reclaim of a few pages typically costs 100s of us, and the tail runs to milliseconds.
 */
export const PRESSURE_PROFILES: Readonly<Record<PressureProfileName, PressureParams>> = Object.freeze({
  none: Object.freeze({
    name: 'none',
    watermark: 0,
    nowaitFailP: 0,
    nowaitSlowP: 0,
    nowaitSlowMinUs: 0,
    nowaitSlowMaxUs: 0,
    reclaimP: 0,
    reclaimP50Us: 0,
    reclaimSigma: 0,
    reclaimMaxUs: 0,
    timeScale: 1,
  }),
  moderate: Object.freeze({
    name: 'moderate',
    watermark: 0.01,
    nowaitFailP: 0,
    nowaitSlowP: 2e-6,
    nowaitSlowMinUs: 20,
    nowaitSlowMaxUs: 60,
    reclaimP: 1e-4,
    reclaimP50Us: 50,
    reclaimSigma: 1.0,
    reclaimMaxUs: 2000,
    timeScale: 1,
  }),
  heavy: Object.freeze({
    name: 'heavy',
    watermark: 0.05,
    nowaitFailP: 0.002,
    nowaitSlowP: 0.01,
    nowaitSlowMinUs: 20,
    nowaitSlowMaxUs: 500,
    reclaimP: 0.05,
    reclaimP50Us: 200,
    reclaimSigma: 1.2,
    reclaimMaxUs: 20000,
    timeScale: 1,
  }),
});

const NUMERIC_KEYS = [
  'watermark',
  'nowaitFailP',
  'nowaitSlowP',
  'nowaitSlowMinUs',
  'nowaitSlowMaxUs',
  'reclaimP',
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
 * ('heavy,watermark=0.1', 'watermark=0.05,nowaitFailP=0.01,reclaimP50Us=300'); keys not given
 * come from the named profile, or from 'none'. Throws ERR_INVALID_OPTION naming --pressure.
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
  if (!(p.watermark >= 0 && p.watermark < 1)) bad(`watermark=${p.watermark} must be in [0, 1)`);
  for (const k of ['nowaitFailP', 'nowaitSlowP', 'reclaimP'] as const) {
    if (!(p[k] >= 0 && p[k] <= 1)) bad(`${k}=${p[k]} must be a probability in [0, 1]`);
  }
  for (const k of ['nowaitSlowMinUs', 'nowaitSlowMaxUs', 'reclaimP50Us', 'reclaimSigma', 'reclaimMaxUs', 'timeScale'] as const) {
    if (!(p[k] >= 0)) bad(`${k}=${p[k]} must be >= 0`);
  }
  if (p.nowaitSlowMinUs > p.nowaitSlowMaxUs) bad(`nowaitSlowMinUs=${p.nowaitSlowMinUs} exceeds nowaitSlowMaxUs=${p.nowaitSlowMaxUs}`);
  if (p.reclaimP50Us > p.reclaimMaxUs) bad(`reclaimP50Us=${p.reclaimP50Us} exceeds reclaimMaxUs=${p.reclaimMaxUs}`);
  if (p.nowaitSlowP > 0 && p.nowaitSlowMinUs <= 0) bad('nowaitSlowMinUs must be > 0 when nowaitSlowP > 0');
}

/** Waits at least this long use Atomics.wait (the thread sleeps, as reclaim does); shorter ones spin. */
const SLEEP_THRESHOLD_US = 100;

export type AllocReason = 'ok' | 'watermark' | 'transient' | 'exhausted';

/** How the last call went (for tests and the emulator's traces). */
export interface AllocOutcome {
  readonly path: 'nowait' | 'blocking';
  readonly table: number;
  /** Injected delay drawn for this call, microseconds (before timeScale). */
  readonly delayUs: number;
  readonly reason: AllocReason;
}

/**
 * The pressure model's draws, separate from the pool so they can be tested (and their
 * distributions checked against the published anchor) without allocating anything.
 * Every draw consumes the Rng in a fixed order, so equal seeds give equal decision streams.
 */
export class PressureModel {
  readonly params: PressureParams;
  readonly #rng: Rng;

  constructor(params: PressureParams, seed: number) {
    validatePressure(params);
    this.params = params;
    this.#rng = new Rng(seed);
  }

  /**
   * GFP_NOWAIT decision with `free` tables free and a watermark of `watermarkTables`:
   * 'watermark' (fail), 'transient' (fail), or 'ok' with a busy delay (0 most of the time).
   */
  nowait(free: number, watermarkTables: number): { reason: 'ok' | 'watermark' | 'transient'; delayUs: number } {
    const p = this.params;
    if (watermarkTables > 0 && free < watermarkTables) return { reason: 'watermark', delayUs: 0 };
    if (this.#rng.chance(p.nowaitFailP)) return { reason: 'transient', delayUs: 0 };
    if (!this.#rng.chance(p.nowaitSlowP)) return { reason: 'ok', delayUs: 0 };
    // Log-uniform: as many draws per octave near the minimum as near the maximum.
    const lo = Math.log(p.nowaitSlowMinUs);
    const hi = Math.log(p.nowaitSlowMaxUs);
    return { reason: 'ok', delayUs: Math.exp(lo + (hi - lo) * this.#rng.nextFloat()) };
  }

  /** GFP_KERNEL reclaim delay (us): always drawn below the watermark, else with probability reclaimP; 0 = no reclaim. */
  reclaim(belowWatermark: boolean): number {
    const p = this.params;
    if (!belowWatermark && !this.#rng.chance(p.reclaimP)) return 0;
    if (p.reclaimP50Us <= 0) return 0;
    // Lognormal: median reclaimP50Us, ln-sigma reclaimSigma; clamped so one draw cannot stall a run.
    return Math.min(p.reclaimMaxUs, p.reclaimP50Us * Math.exp(p.reclaimSigma * this.#rng.nextNormal()));
  }
}

export class PageAllocator {
  readonly pool: PtPool;
  readonly params: PressureParams;
  readonly model: PressureModel;
  readonly #stats: WorkerStats;
  /** Private word for Atomics.wait (nobody ever notifies it: the wait always times out). */
  readonly #sleepWord = new Int32Array(new SharedArrayBuffer(4));
  #last: AllocOutcome = { path: 'nowait', table: -1, delayUs: 0, reason: 'ok' };

  constructor(pool: PtPool, params: PressureParams, seed: number, stats: WorkerStats) {
    this.pool = pool;
    this.params = params;
    this.model = new PressureModel(params, seed);
    this.#stats = stats;
  }

  /** The outcome of the most recent allocNowait/allocBlocking call. */
  get last(): AllocOutcome {
    return this.#last;
  }

  /** Free tables below which GFP_NOWAIT fails and GFP_KERNEL reclaims. */
  get watermarkTables(): number {
    return Math.ceil(this.params.watermark * this.pool.capacity);
  }

  /**
   * GFP_NOWAIT: returns a table (zeroed, IN_USE) or -1. Fails below the watermark, with
   * probability nowaitFailP above it, or when the pool is empty. A success may busy-spin a
   * long-tail latency (real CPU time; never sleeps, so it is legal under mmu_lock and RCU).
   */
  allocNowait(): number {
    const d = this.model.nowait(this.pool.freeCount(), this.watermarkTables);
    if (d.reason !== 'ok') return this.#fail('nowait', d.reason);
    if (d.delayUs > 0) spinUs(d.delayUs * this.params.timeScale);
    const t = this.pool.allocRaw();
    if (t < 0) return this.#fail('nowait', 'exhausted', d.delayUs);
    this.#stats.add(WS.allocNowait, 1);
    this.#last = { path: 'nowait', table: t, delayUs: d.delayUs, reason: 'ok' };
    return t;
  }

  /**
   * GFP_KERNEL: returns a table (zeroed, IN_USE) or -1 only when the pool is truly empty (ENOMEM).
   * Below the watermark, or with probability reclaimP, first waits out a reclaim latency drawn from
   * a lognormal (real time: sleeps via Atomics.wait when long). May sleep: in KVM this is called
   * with mmu_lock dropped; a design that calls it under the lock pays the wait as hold time.
   */
  allocBlocking(): number {
    const wm = this.watermarkTables;
    const delayUs = this.model.reclaim(wm > 0 && this.pool.freeCount() < wm);
    if (delayUs > 0) this.#wait(delayUs * this.params.timeScale);
    const t = this.pool.allocRaw();
    if (t < 0) return this.#fail('blocking', 'exhausted', delayUs);
    this.#stats.add(WS.allocBlocking, 1);
    this.#last = { path: 'blocking', table: t, delayUs, reason: 'ok' };
    return t;
  }

  /** Return a never-published table to the pool (pool.freeUnpublished). */
  freeUnpublished(t: number): void {
    this.pool.freeUnpublished(t);
  }

  #fail(path: 'nowait' | 'blocking', reason: Exclude<AllocReason, 'ok'>, delayUs = 0): number {
    this.#stats.add(WS.allocFailed, 1);
    this.#last = { path, table: -1, delayUs, reason };
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
