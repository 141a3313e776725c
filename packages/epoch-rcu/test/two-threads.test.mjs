/**
 * The package's two-thread check (two-threads.mjs) and its control, run as child processes so
 * each gets fresh worker threads. The same script runs against the packed tarball in a scratch
 * project (native-free-tests/package-tarballs.test.ts).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./two-threads.mjs', import.meta.url));

function run(args) {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  return { status: r.status, out, result: JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') };
}

test('a grace period in one worker thread waits for the read-side section in the other', (t) => {
  const { status, out, result } = run([]);
  t.is(status, 0, out);
  t.is(result.earlyEnds, 0, out);
  t.is(result.rounds, 3, out);
});

test('control: a writer that skips the grace period is caught in every round', (t) => {
  const { status, out, result } = run(['--broken']);
  t.is(status, 1, out);
  t.is(result.earlyEnds, result.rounds, out);
});
