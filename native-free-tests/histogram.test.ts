import test from 'ava';
import { Histogram } from '../src/stats/histogram.js';

test('percentiles are within 4 % of the exact order statistic at every scale', (t) => {
  for (const scale of [1, 37, 1_000, 45_000, 3e6, 2e9]) {
    const h = new Histogram();
    const xs: number[] = [];
    for (let i = 1; i <= 10_000; i++) {
      const v = Math.round(scale * (1 + ((i * 7919) % 10_000) / 1000));
      xs.push(v);
      h.record(v);
    }
    xs.sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      const exact = xs[Math.ceil(q * xs.length) - 1]!;
      const got = h.quantile(q);
      t.true(Math.abs(got - exact) <= Math.max(1, exact * 0.04), `scale ${scale} q ${q}: ${got} vs ${exact}`);
    }
    t.is(h.quantile(1), xs[xs.length - 1]!);
  }
});

test('merging plain data equals recording everything in one histogram', (t) => {
  const a = new Histogram();
  const b = new Histogram();
  const all = new Histogram();
  for (let i = 0; i < 5000; i++) {
    const v = (i * 104729) % 1_000_003;
    (i % 2 === 0 ? a : b).record(v);
    all.record(v);
  }
  const m = Histogram.fromData(a.toData());
  m.merge(b.toData());
  t.deepEqual(m.percentiles(), all.percentiles());
});
