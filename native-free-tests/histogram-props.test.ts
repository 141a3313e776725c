/**
 * The latency histogram (src/stats/histogram.ts) against a sorted array of the recorded values:
 * every quantile is within the documented error (1/32 of the exact order statistic, or 1 below
 * 32 ns where buckets are 1 ns wide), q = 1 is the exact max, count and mean are exact; merging is
 * commutative and associative and equals recording everything into one histogram; plain data
 * round-trips.
 *
 * Values are integers below 2^40 ns (the range the histogram resolves; larger ones clamp) for
 * the merge laws, so that sums are exact and the laws can be checked with deepEqual (double
 * addition is not associative); the quantile property also takes fractional values.
 *
 * The control: a reference one rank off (the order statistic at floor(q*n) instead of
 * ceil(q*n)) must be refuted by the same quantile property: the bound is tight enough to tell.
 */
import test from 'ava';
import fc from 'fast-check';
import { Histogram } from '../src/stats/histogram.js';
import type { HistogramData } from '../src/stats/histogram.js';
import { assertProperty, assertRefuted } from './_fc.js';

const RUNS = 200;
const MAX_NS = 2 ** 40 - 1;

/** Latencies at every scale: tiny, bucket edges, anywhere up to 2^40 ns. */
const intNsArb = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.constantFrom(31, 32, 33, 63, 64, 1023, 1024, 2 ** 31, 2 ** 32, MAX_NS),
  fc.integer({ min: 0, max: MAX_NS }),
);
const nsArb = fc.oneof(intNsArb, fc.double({ min: 0, max: MAX_NS, noNaN: true, noDefaultInfinity: true }));
const valuesArb = (v: fc.Arbitrary<number>) => fc.array(v, { minLength: 1, maxLength: 300 });
const QUANTILES = [0.5, 0.9, 0.99, 0.999];

function histogramOf(values: readonly number[]): Histogram {
  const h = new Histogram();
  for (const v of values) h.record(v);
  return h;
}

/** The exact order statistic the histogram approximates: the ceil(q*n)-th smallest (`rankShift` -1: the control). */
function exactQuantile(sorted: readonly number[], q: number, rankShift = 0): number {
  const rank = Math.max(1, Math.ceil(q * sorted.length) + rankShift);
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

function quantilesWithinBucketError(rankShift: number) {
  return fc.property(valuesArb(nsArb), fc.double({ min: 0.001, max: 0.999, noNaN: true }), (values, qRandom) => {
    const h = histogramOf(values);
    const sorted = [...values].sort((a, b) => a - b);
    for (const q of [...QUANTILES, qRandom]) {
      const exact = exactQuantile(sorted, q, rankShift);
      const got = h.quantile(q);
      if (Math.abs(got - exact) > Math.max(1, exact / 32)) throw new Error(`q ${q}: histogram ${got}, exact ${exact}`);
    }
    if (h.quantile(1) !== sorted.at(-1)) throw new Error(`max: ${h.quantile(1)} vs ${sorted.at(-1)}`);
    const p = h.percentiles();
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return p.count === values.length && Math.abs(p.mean - mean) <= 1e-9 * mean;
  });
}

test('every quantile is within the documented bucket error of the sorted-array order statistic', async (t) => {
  await assertProperty(t, quantilesWithinBucketError(0), RUNS);
});

test('control: a reference one rank off is refuted by the same bound', async (t) => {
  await assertRefuted(t, quantilesWithinBucketError(-1), RUNS);
});

/** Merge `parts` left to right into a fresh histogram, as data. */
function merged(...parts: readonly (Histogram | HistogramData)[]): HistogramData {
  const h = new Histogram();
  for (const p of parts) h.merge(p);
  return h.toData();
}

test('merge is commutative and associative, and equals recording everything in one histogram', async (t) => {
  const prop = fc.property(valuesArb(intNsArb), valuesArb(intNsArb), valuesArb(intNsArb), (xs, ys, zs) => {
    const [a, b, c] = [histogramOf(xs), histogramOf(ys), histogramOf(zs)];
    const ab = merged(a, b);
    const same = (p: HistogramData, q: HistogramData): boolean => JSON.stringify(p) === JSON.stringify(q);
    return (
      same(ab, merged(b, a)) &&
      same(merged(ab, c), merged(a, Histogram.fromData(merged(b, c)))) &&
      same(merged(ab, c), histogramOf([...xs, ...ys, ...zs]).toData()) &&
      same(Histogram.fromData(a.toData()).toData(), a.toData())
    );
  });
  await assertProperty(t, prop, RUNS);
});
