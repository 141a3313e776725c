/**
 * epoch-rcu used from plain JavaScript (ESM) in two worker threads, through its package name:
 * the check the package tests run in this repository and, copied into a scratch project, against
 * the installed tarball (native-free-tests/package-tarballs.test.ts).
 *
 *   node two-threads.mjs [--broken]   prints one JSON line; exit 0: grace periods held, 1: not
 *
 * Thread 1 (a reader) enters a read-side section, loads the published pointer and tells thread 0;
 * it stays inside until the writer has checked the round or HOLD_MS pass, then marks the section
 * done and leaves. Thread 0 (the writer) publishes a new pointer and waits for a grace period,
 * which must not end before the reader's section has: the writer must find the section marked
 * done when `synchronize()` returns. Repeated ROUNDS times (each costs HOLD_MS when the RCU
 * works). `--broken` is the control: the writer skips `synchronize()`, checks while the reader is
 * still held inside, and must catch it every round.
 */
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { RcuDomain, rcuInt32s } from 'epoch-rcu';

const READERS = 2;
const POINTER = rcuInt32s(READERS);
const READING = POINTER + 1;
const SECTION_DONE = POINTER + 2;
const EARLY_ENDS = POINTER + 3;
const CHECKED = POINTER + 4;
const WORDS = POINTER + 5;
const ROUNDS = 3;
const HOLD_MS = 500;

function writer(view, broken) {
  const rcu = new RcuDomain(view, 0, READERS).registerReader(0);
  for (let round = 1; round <= ROUNDS; round++) {
    Atomics.wait(view, READING, round - 1); // until the reader is inside its section for this round
    Atomics.exchange(view, POINTER, round + 100); // publish the new version
    if (!broken) rcu.synchronize();
    if (Atomics.load(view, SECTION_DONE) !== round) Atomics.add(view, EARLY_ENDS, 1);
    Atomics.store(view, CHECKED, round);
    Atomics.notify(view, CHECKED);
  }
  rcu.unregister();
}

function reader(view) {
  const rcu = new RcuDomain(view, 0, READERS).registerReader(1);
  for (let round = 1; round <= ROUNDS; round++) {
    rcu.readLock();
    Atomics.load(view, POINTER); // the reference the writer's grace period must wait out
    Atomics.store(view, READING, round);
    Atomics.notify(view, READING);
    Atomics.wait(view, CHECKED, round - 1, HOLD_MS); // inside the section until checked, or HOLD_MS
    Atomics.store(view, SECTION_DONE, round);
    rcu.readUnlock();
    Atomics.wait(view, CHECKED, round - 1); // the writer has checked this round
  }
  rcu.unregister();
}

async function main() {
  const broken = process.argv.includes('--broken');
  const sab = new SharedArrayBuffer(WORDS * 4);
  const view = new Int32Array(sab);
  RcuDomain.initialize(view, 0, READERS);
  const exits = ['writer', 'reader'].map(
    (role) =>
      new Promise((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url), { workerData: { sab, role, broken } });
        w.on('error', reject);
        w.on('exit', resolve);
      }),
  );
  const codes = await Promise.all(exits);
  const result = { broken, workerExitCodes: codes, rounds: Atomics.load(view, CHECKED), earlyEnds: Atomics.load(view, EARLY_ENDS) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = codes.every((c) => c === 0) && result.rounds === ROUNDS && result.earlyEnds === 0 ? 0 : 1;
}

if (isMainThread) await main();
else if (workerData.role === 'writer') writer(new Int32Array(workerData.sab), workerData.broken);
else reader(new Int32Array(workerData.sab));
