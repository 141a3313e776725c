/**
 * `oltp`: a database-like guest, the kind whose throughput dipped in the 2024 CLEAR_DIRTY_LOG
 * reports (kvm-faults-and-dirty-tracking.md §5, §7). Each access of a pass is one of:
 *
 *   - an instruction fetch (`exec` percent): a page of the CODE AREA, uniformly: `code` 2M regions
 *     of text (guest kernel, database server, libraries) shared by every vCPU. It lies at the start
 *     of vCPU 0's region (the regions are laid back to back, config.ts), at most half of it, and
 *     vCPU 0's populate pass writes it once, as loading a binary does; with NX huge pages those
 *     writes map it with non-executable huge pages, so fetches from it take execute faults;
 *   - a log append (`log` percent): a write to the next page of the vCPU's LOG, the last `logmb`
 *     MiB of its region (at most an eighth), written sequentially and wrapping (a redo log);
 *   - a buffer-pool access (the rest): a read, or a write with probability `write` percent, to a
 *     page of the vCPU's BUFFER POOL (its region minus code and log), Zipf-distributed: the pool
 *     is cut into up to 4096 buckets, bucket ranks follow a Zipf law whose skew is solved at
 *     creation so that the hottest `hot` fraction of the pool takes `share` percent of the pool's
 *     accesses, and the ranks are scattered over the pool by a seeded shuffle (hot pages sit in
 *     many huge pages, as a buffer pool's hot rows do), the page within a bucket uniform.
 *
 * A pass makes as many accesses as the region has pages (memstress's pass length, so passes of
 * the two guests are comparable); the populate pass writes every page of the region once, in
 * order. Deterministic from -r: each vCPU's stream is seeded with seed + vCPU index. Nothing is
 * allocated per access: the Zipf sampler is an inverse-CDF table (65,536 entries) built once.
 *
 * THE PRESET (`--workload oltp` alone, used unchanged by `npm run reproduce`):
 *   hot=0.2, share=80  the 80/20 rule OLTP skew is usually summarised with (YCSB's zipfian 0.99
 *                      over a large table is of that order): a working set of a fifth of the pool;
 *   write=30           sysbench oltp_read_write: 4 writing statements to 14 reading ones per
 *                      transaction, about 22 %, and TPC-C's new-order/payment mix, about 40 %:
 *                      30 % lies between;
 *   log=5              a few redo records per transaction of a few dozen page accesses;
 *   logmb=4            a small log buffer: two 2M pages, so it sits in huge pages until split;
 *   exec=2             instruction fetches worth modelling are those that reach a page not
 *                      fetched from recently (most fetches stay in the same page and TLB entry):
 *                      one in fifty accesses;
 *   code=256           "a few hundred 2M regions" of text: 512 MiB, enough that execute faults
 *                      on not-yet-split huge pages keep arriving through a whole first pass.
 * None of these was tuned to produce a dip; change one with `oltp:key=value`. The selftest's -w and
 * -a do not apply to this guest (its `write` knob and its own access law replace them).
 */
import { Rng } from '../mmu/rng.js';
import type { PassKind, Workload, WorkloadAccess, WorkloadDefinition, WorkloadKnob, WorkloadParams } from './workload.js';

/** The preset, one value per knob (reasons above). */
export const OLTP_PRESET = Object.freeze({ hot: 0.2, share: 80, write: 30, log: 5, logmb: 4, exec: 2, code: 256 });

/** Pages per 2M region. */
const PAGES_2M = 512;
/** Buffer-pool buckets the Zipf law ranks (fewer when the pool is smaller). */
const MAX_BUCKETS = 4096;
/** Inverse-CDF table entries (indexed by the top 16 bits of a draw). */
const ICDF_SIZE = 65536;

/** Sum of k^-s for k = 1..n. */
function harmonic(n: number, s: number): number {
  let h = 0;
  for (let k = 1; k <= n; k++) h += k ** -s;
  return h;
}

/**
 * The Zipf skew s for which the top `hotBuckets` of `n` ranks take `share` (0..1) of the mass:
 * bisection (the share grows with s). 0 (uniform) if the share is already met uniformly.
 */
export function solveZipfSkew(n: number, hotBuckets: number, share: number): number {
  if (hotBuckets >= n || share <= hotBuckets / n) return 0;
  let lo = 0;
  let hi = 16;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (harmonic(hotBuckets, mid) / harmonic(n, mid) < share) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Inverse-CDF table: entry j is the rank (0-based) whose CDF first reaches (j + 0.5) / ICDF_SIZE. */
function inverseCdf(n: number, s: number): Uint16Array {
  const table = new Uint16Array(ICDF_SIZE);
  const total = harmonic(n, s);
  let rank = 0;
  let cdf = 1 / total;
  for (let j = 0; j < ICDF_SIZE; j++) {
    const u = (j + 0.5) / ICDF_SIZE;
    while (cdf < u && rank < n - 1) {
      rank++;
      cdf += (rank + 1) ** -s / total;
    }
    table[j] = rank;
  }
  return table;
}

class Oltp implements Workload {
  readonly #firstGfn: number;
  readonly #npages: number;
  readonly #rng: Rng;
  readonly #writePct: number;
  readonly #execPct: number;
  /** exec + log: draws below it are fetches or log appends. */
  readonly #nonPoolPct: number;
  readonly #codeBase: number;
  readonly #codePages: number;
  readonly #logBase: number;
  readonly #logPages: number;
  readonly #poolBase: number;
  readonly #poolPages: number;
  readonly #buckets: number;
  /** Rank -> bucket (the seeded shuffle). */
  readonly #perm: Int32Array;
  readonly #icdf: Uint16Array;
  /** Pool pages per bucket (fractional). */
  readonly #span: number;
  /** Zipf skew solved at creation (for tests and reports). */
  readonly skew: number;
  #logNext = 0;
  #populate = true;

  constructor(p: WorkloadParams) {
    const k = { ...OLTP_PRESET, ...p.knobs };
    if (k.exec + k.log > 100) throw new RangeError(`oltp: exec=${k.exec} plus log=${k.log} exceeds 100 percent`);
    this.#firstGfn = p.region.firstGfn;
    const n = p.region.npages;
    this.#npages = n;
    this.#rng = new Rng((p.seed + p.vcpuId) | 0);
    this.#writePct = k.write;
    this.#execPct = k.exec;
    this.#nonPoolPct = k.exec + k.log;
    // The code area: the start of vCPU 0's region (regions are equal and back to back).
    const region0 = p.region.firstGfn - p.vcpuId * n;
    this.#codePages = Math.max(1, Math.min(k.code * PAGES_2M, Math.floor(n / 2)));
    this.#codeBase = region0;
    this.#logPages = Math.max(1, Math.min(Math.round((k.logmb * 1024 * 1024) / 4096), Math.floor(n / 8)));
    this.#logBase = p.region.firstGfn + n - this.#logPages;
    const poolStart = p.vcpuId === 0 ? this.#codePages : 0;
    this.#poolBase = p.region.firstGfn + poolStart;
    this.#poolPages = Math.max(1, n - this.#logPages - poolStart);
    const buckets = Math.min(MAX_BUCKETS, this.#poolPages);
    this.#buckets = buckets;
    this.#span = this.#poolPages / buckets;
    this.skew = solveZipfSkew(buckets, Math.max(1, Math.round(k.hot * buckets)), k.share / 100);
    this.#icdf = inverseCdf(buckets, this.skew);
    // The shuffle draws from its own stream, so the access stream does not depend on pool size.
    const shuffle = new Rng((p.seed * 0x9e3779b1 + p.vcpuId + 1) | 0);
    const perm = new Int32Array(buckets);
    for (let i = 0; i < buckets; i++) perm[i] = i;
    for (let i = buckets - 1; i > 0; i--) {
      const j = shuffle.nextU32() % (i + 1);
      const t = perm[i]!;
      perm[i] = perm[j]!;
      perm[j] = t;
    }
    this.#perm = perm;
  }

  beginPass(pass: PassKind): number {
    this.#populate = pass === 'populate';
    return this.#npages;
  }

  next(i: number, out: WorkloadAccess): void {
    if (this.#populate) {
      out.gfn = this.#firstGfn + i;
      out.kind = 'write';
      return;
    }
    const rng = this.#rng;
    const r = rng.nextU32() % 100;
    if (r < this.#execPct) {
      out.gfn = this.#codeBase + (rng.nextU32() % this.#codePages);
      out.kind = 'exec';
      return;
    }
    if (r < this.#nonPoolPct) {
      out.gfn = this.#logBase + this.#logNext;
      this.#logNext = this.#logNext + 1 === this.#logPages ? 0 : this.#logNext + 1;
      out.kind = 'write';
      return;
    }
    const bucket = this.#perm[this.#icdf[rng.nextU32() >>> 16]!]!;
    const page = Math.min(this.#poolPages - 1, Math.floor((bucket + rng.nextFloat()) * this.#span));
    out.gfn = this.#poolBase + page;
    out.kind = rng.nextU32() % 100 < this.#writePct ? 'write' : 'read';
  }

  /** Test hook: the areas (first gfn, pages). */
  areas(): { code: readonly [number, number]; log: readonly [number, number]; pool: readonly [number, number]; buckets: number } {
    return {
      code: [this.#codeBase, this.#codePages],
      log: [this.#logBase, this.#logPages],
      pool: [this.#poolBase, this.#poolPages],
      buckets: this.#buckets,
    };
  }
}

const KNOBS: readonly WorkloadKnob[] = [
  { key: 'hot', help: 'fraction of the buffer pool in the hot set', min: 0.001, max: 1, integer: false, shownDefault: String(OLTP_PRESET.hot) },
  {
    key: 'share',
    help: "percent of the pool's accesses that go to the hot set (sets the Zipf skew)",
    min: 1,
    max: 100,
    integer: false,
    shownDefault: String(OLTP_PRESET.share),
  },
  { key: 'write', help: 'percent of buffer-pool accesses that are writes', min: 0, max: 100, integer: true, shownDefault: String(OLTP_PRESET.write) },
  { key: 'log', help: 'percent of accesses that append to the log', min: 0, max: 100, integer: true, shownDefault: String(OLTP_PRESET.log) },
  {
    key: 'logmb',
    help: "the log's size, MiB (at most an eighth of the vCPU's region)",
    min: 0.004,
    max: 65536,
    integer: false,
    shownDefault: String(OLTP_PRESET.logmb),
  },
  {
    key: 'exec',
    help: 'percent of accesses that are instruction fetches from the code area',
    min: 0,
    max: 100,
    integer: true,
    shownDefault: String(OLTP_PRESET.exec),
  },
  {
    key: 'code',
    help: "2M regions of code shared by all vCPUs (at most half of vCPU 0's region)",
    min: 1,
    max: 1_000_000,
    integer: true,
    shownDefault: String(OLTP_PRESET.code),
  },
];

export const oltp: WorkloadDefinition = Object.freeze({
  name: 'oltp',
  summary: `database-like guest: Zipf buffer pool, sequential log, code fetches (preset ${Object.entries(OLTP_PRESET)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')})`,
  knobs: KNOBS,
  checkKnobs: (knobs: Readonly<Record<string, number>>): string | undefined => {
    const k = { ...OLTP_PRESET, ...knobs };
    return k.exec + k.log > 100 ? `exec=${k.exec} plus log=${k.log} exceeds 100 percent` : undefined;
  },
  create: (p: WorkloadParams): Workload => new Oltp(p),
});

/** For tests: build an oltp instance with its areas and solved skew visible. */
export function createOltpForTest(p: WorkloadParams): Workload & { readonly skew: number; areas: Oltp['areas'] } {
  return new Oltp(p);
}
