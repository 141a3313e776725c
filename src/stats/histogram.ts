/**
 * A log-linear latency histogram (HdrHistogram's idea in 60 lines): values in nanoseconds fall
 * into 2^k ranges, each split into SUB_BUCKETS linear sub-buckets, so any percentile is exact to
 * within 1/SUB_BUCKETS (about 3 %) at every scale from 1 ns to hours.
 *
 * Each worker records into its own histogram (no sharing, no atomics on the hot path) and sends
 * `toData()` back with its task result; the main thread merges them. Recording costs a
 * Math.clz32 and an array increment.
 */

/** Sub-buckets per power of two: resolution 1/32, about 3 %. */
const SUB_BITS = 5;
const SUB_BUCKETS = 1 << SUB_BITS;
/** Powers of two covered: values up to 2^40 ns (about 18 minutes); larger ones clamp. */
const MAX_EXP = 40;
const BUCKETS = (MAX_EXP - SUB_BITS + 1) * SUB_BUCKETS;

/** Plain-data form, safe to postMessage. */
export interface HistogramData {
  readonly counts: number[];
  readonly count: number;
  readonly sum: number;
  readonly max: number;
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

function bucketOf(v: number): number {
  if (v < SUB_BUCKETS) return v < 0 ? 0 : Math.floor(v);
  const iv = v >= 2 ** MAX_EXP ? 2 ** MAX_EXP - 1 : Math.floor(v);
  // exponent e such that 2^e <= iv < 2^(e+1); values below 2^32 use clz32 directly.
  const e = iv < 2 ** 32 ? 31 - Math.clz32(iv) : 32 + (31 - Math.clz32(Math.floor(iv / 2 ** 32)));
  // A shift below 2^31 (2 ** x compiles to a Math.pow call: about 150 ns per record on a hot path).
  const sub = (iv < 2 ** 31 ? iv >>> (e - SUB_BITS) : Math.floor(iv / 2 ** (e - SUB_BITS))) - SUB_BUCKETS;
  return (e - SUB_BITS + 1) * SUB_BUCKETS + sub;
}

/** The smallest value that lands in bucket b (a percentile is reported as its bucket's midpoint). */
function bucketLow(b: number): number {
  if (b < SUB_BUCKETS) return b;
  const e = Math.floor(b / SUB_BUCKETS) - 1 + SUB_BITS;
  const sub = b % SUB_BUCKETS;
  return (SUB_BUCKETS + sub) * 2 ** (e - SUB_BITS);
}

function bucketMid(b: number): number {
  if (b < SUB_BUCKETS) return b;
  return bucketLow(b) + (bucketLow(b + 1) - bucketLow(b)) / 2;
}

export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #max = 0;

  record(ns: number): void {
    this.#counts[bucketOf(ns)]! += 1;
    this.#count++;
    this.#sum += ns;
    if (ns > this.#max) this.#max = ns;
  }

  get count(): number {
    return this.#count;
  }

  merge(other: Histogram | HistogramData): void {
    const d = other instanceof Histogram ? other.toData() : other;
    for (let i = 0; i < d.counts.length; i += 2) {
      this.#counts[d.counts[i]!]! += d.counts[i + 1]!;
    }
    this.#count += d.count;
    this.#sum += d.sum;
    if (d.max > this.#max) this.#max = d.max;
  }

  /** Sparse plain data: [bucket, count, bucket, count, ...]. */
  toData(): HistogramData {
    const counts: number[] = [];
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.#counts[i]!;
      if (c !== 0) counts.push(i, c);
    }
    return { counts, count: this.#count, sum: this.#sum, max: this.#max };
  }

  static fromData(d: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(d);
    return h;
  }

  /** The value at quantile q (0..1); the exact max for q = 1; 0 when empty. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    if (q >= 1) return this.#max;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(bucketMid(i), this.#max);
    }
    return this.#max;
  }

  percentiles(): Percentiles {
    return {
      count: this.#count,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: this.#max,
      mean: this.#count === 0 ? 0 : this.#sum / this.#count,
    };
  }
}
