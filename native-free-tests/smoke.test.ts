import test from 'ava';
import { runAllConcurrently } from '../src/thread_pool.js';
import { EmulatorError } from '../src/errors.js';

const fixture = new URL('./fixtures/echo.worker.js', import.meta.url);

test('thread pool runs every task at once on shared memory', async (t) => {
  const sab = new SharedArrayBuffer(64);
  const n = 4;
  // Each task increments, then waits until all n have arrived: it only finishes if all run at once.
  const results = await runAllConcurrently<number>(
    fixture,
    Array.from({ length: n }, (_, i) => ({ sab, n, id: i })),
    {
      timeoutMs: 20_000,
    },
  );
  t.deepEqual(results, [0, 1, 2, 3]);
  t.is(Atomics.load(new Int32Array(sab), 0), n);
});

test('a task that throws rejects the set without hanging the others', async (t) => {
  const sab = new SharedArrayBuffer(64);
  const tasks = [
    { sab, n: 3, id: 0 },
    { sab, n: 3, id: 1, fail: true },
    { sab, n: 3, id: 2 },
  ];
  const err = await t.throwsAsync(runAllConcurrently(fixture, tasks, { timeoutMs: 20_000 }));
  t.regex(err?.message ?? '', /task 1 failed on purpose/);
});

test('a set that never finishes is stopped by its timeout', async (t) => {
  const sab = new SharedArrayBuffer(64);
  // n = 3 but only 2 tasks: the barrier never opens.
  const tasks = [
    { sab, n: 3, id: 0 },
    { sab, n: 3, id: 1 },
  ];
  const err = await t.throwsAsync(runAllConcurrently(fixture, tasks, { timeoutMs: 1_000 }));
  t.true(err instanceof EmulatorError);
  t.is((err as EmulatorError).code, 'ERR_TIMEOUT');
});
