/**
 * atomics-lock used from plain JavaScript (ESM) in two worker threads, through its package name:
 * the check the package tests run in this repository and, copied into a scratch project, against
 * the installed tarball (native-free-tests/package-tarballs.test.ts).
 *
 *   node two-threads.mjs [--broken]   prints one JSON line; exit 0: exclusion held, 1: it did not
 *
 * Exclusion is detected by an occupancy word: whoever enters the write-side critical section adds
 * one to it and finds it non-zero only if somebody else is inside. First a deterministic probe:
 * thread 0 takes the write lock and stays inside until thread 1 says it has entered too (or
 * PROBE_MS pass); with the lock, thread 1 cannot enter before thread 0 leaves. Then both threads
 * run ITERATIONS critical sections that increment a counter with a plain load and store, which
 * loses updates unless the lock excludes. `--broken` is the control: thread 1 skips the lock, so
 * the probe must catch it every time.
 */
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { RWLOCK_INT32S, RwLock } from 'atomics-lock';

const OCCUPANCY = RWLOCK_INT32S;
const COUNTER = OCCUPANCY + 1;
const VIOLATIONS = OCCUPANCY + 2;
const HOLDING = OCCUPANCY + 3;
const ENTERED = OCCUPANCY + 4;
const WORDS = OCCUPANCY + 5;
const ITERATIONS = 20_000;
const PROBE_MS = 500;

function enterCritical(view) {
  if (Atomics.add(view, OCCUPANCY, 1) !== 0) Atomics.add(view, VIOLATIONS, 1);
}

function leaveCritical(view) {
  Atomics.sub(view, OCCUPANCY, 1);
}

function worker({ sab, role, broken }) {
  const view = new Int32Array(sab);
  const lock = new RwLock(view, 0);
  const skipLock = broken && role === 1;
  const acquire = () => skipLock || lock.writeLock();
  const release = () => skipLock || lock.writeUnlock();

  if (role === 0) {
    acquire();
    enterCritical(view);
    Atomics.store(view, HOLDING, 1);
    Atomics.notify(view, HOLDING);
    Atomics.wait(view, ENTERED, 0, PROBE_MS);
    leaveCritical(view);
    release();
  } else {
    Atomics.wait(view, HOLDING, 0);
    acquire();
    enterCritical(view);
    Atomics.store(view, ENTERED, 1);
    Atomics.notify(view, ENTERED);
    leaveCritical(view);
    release();
  }

  for (let i = 0; i < ITERATIONS; i++) {
    acquire();
    enterCritical(view);
    const seen = Atomics.load(view, COUNTER);
    Atomics.store(view, COUNTER, seen + 1);
    leaveCritical(view);
    release();
  }
}

async function main() {
  const broken = process.argv.includes('--broken');
  const sab = new SharedArrayBuffer(WORDS * 4);
  const view = new Int32Array(sab);
  RwLock.initialize(view, 0);
  const exits = [0, 1].map(
    (role) =>
      new Promise((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url), { workerData: { sab, role, broken } });
        w.on('error', reject);
        w.on('exit', resolve);
      }),
  );
  const codes = await Promise.all(exits);
  const result = {
    broken,
    workerExitCodes: codes,
    violations: Atomics.load(view, VIOLATIONS),
    counter: Atomics.load(view, COUNTER),
    expected: 2 * ITERATIONS,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  const ok = codes.every((c) => c === 0) && result.violations === 0 && result.counter === result.expected;
  process.exitCode = ok ? 0 : 1;
}

if (isMainThread) await main();
else worker(workerData);
