/**
 * Duration tiers for stress and torture tests (liburcu's 1/3/30-second runs).
 *
 * STRESS_TIER=short (default) keeps the whole suite well under 10 minutes on 2 cores;
 * STRESS_TIER=ci is what .ci/run uses; STRESS_TIER=long is for soak runs by hand.
 * STRESS_SECONDS=N overrides the per-test duration directly.
 */
export type StressTier = 'short' | 'ci' | 'long';

export function stressTier(): StressTier {
  const t = process.env['STRESS_TIER'];
  if (t === undefined || t === '' || t === 'short') return 'short';
  if (t === 'ci' || t === 'long') return t;
  throw new Error(`STRESS_TIER must be short, ci or long, got ${JSON.stringify(t)}`);
}

/** Seconds one stress run should last: `short`, `ci` and `long` values per tier. */
export function stressSeconds(short = 1.5, ci = 3, long = 30): number {
  const override = process.env['STRESS_SECONDS'];
  if (override !== undefined && override !== '') {
    const s = Number(override);
    if (!(s > 0)) throw new Error(`STRESS_SECONDS must be a positive number, got ${override}`);
    return s;
  }
  const tier = stressTier();
  return tier === 'short' ? short : tier === 'ci' ? ci : long;
}
