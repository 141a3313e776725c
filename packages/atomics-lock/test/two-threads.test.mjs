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

test('two worker threads never hold the write lock together, and no increment is lost', (t) => {
  const { status, out, result } = run([]);
  t.is(status, 0, out);
  t.is(result.violations, 0, out);
  t.is(result.counter, result.expected, out);
});

test('control: a thread that skips the lock is caught by the overlap probe', (t) => {
  const { status, out, result } = run(['--broken']);
  t.is(status, 1, out);
  t.true(result.violations >= 1, out);
});
