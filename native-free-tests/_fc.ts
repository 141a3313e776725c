/**
 * Property-based tests with fast-check (the *-props.test.ts files): one fixed seed by default, so a
 * run is reproducible and CI is deterministic; FC_SEED=<integer> explores another part of the
 * input space (or replays a reported failure). A failed property fails the test with fast-check's
 * report: the seed, the shrink path and the smallest counterexample found.
 *
 * Every property has to be able to fail: `assertRefuted` runs the same property over a
 * deliberately broken variant and asserts that fast-check finds a counterexample.
 */
import fc from 'fast-check';
import type { ExecutionContext } from 'ava';

/** The default seed (any fixed integer: the date the property tests were written). */
const DEFAULT_SEED = 20261202;

function seedFromEnv(): number {
  const raw = process.env['FC_SEED'];
  if (raw === undefined || raw.trim() === '') return DEFAULT_SEED;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`FC_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The seed every property of this process runs with. */
const FC_SEED = seedFromEnv();

type AnyProperty<Ts> = fc.IProperty<Ts> | fc.IAsyncProperty<Ts>;

/** Check `prop` over `numRuns` inputs; on failure, fail the test with the seed and the counterexample. */
export async function assertProperty<Ts>(t: ExecutionContext, prop: AnyProperty<Ts>, numRuns: number): Promise<void> {
  const details = await fc.check(prop, { seed: FC_SEED, numRuns });
  if (details.failed) t.fail(`${fc.defaultReportMessage(details) ?? 'property failed'}\n${errorOf(details)}\n(rerun with FC_SEED=${FC_SEED})`);
  else t.is(details.numRuns, numRuns, 'every run checked');
}

/**
 * The control: `prop` over a broken variant must be refuted within `numRuns` inputs. Logs the
 * counterexample, so a reader sees what the property caught.
 */
export async function assertRefuted<Ts>(t: ExecutionContext, prop: AnyProperty<Ts>, numRuns: number): Promise<void> {
  const details = await fc.check(prop, { seed: FC_SEED, numRuns });
  t.true(details.failed, `the broken variant passed ${numRuns} runs (FC_SEED=${FC_SEED}): the property cannot fail`);
  if (details.failed) t.log(`refuted after ${details.numRuns} run(s), shrunk to: ${fc.stringify(details.counterexample)}`.slice(0, 600), errorOf(details));
}

/** What the property said about its counterexample (its thrown error), if anything. */
function errorOf(details: { readonly errorInstance?: unknown }): string {
  const e = details.errorInstance;
  return e instanceof Error ? `error: ${e.message}` : '';
}
