/**
 * Workers for the peer benchmarks (bench/peer-uncontended.bench.ts, bench/peer-contended.bench.ts;
 * the rounds are driven by bench/_peer_rounds.ts). A plain worker_threads script: the driver spawns
 * the workers in setup, so thread start-up is never timed.
 *
 * Each worker attaches to every lock under test, then, round after round, runs the round's lock
 * (IMPL) in the round's mode (MODE) flat out until STOP names that round, writes its operation count
 * into its own padded slot and reports DONE. Every lock is called through its fastest documented
 * API: our RwLock's readLock/writeLock; multithreading's blockingRead/blockingWrite and
 * blockingLock (its synchronous variants), each releasing through the guard's dispose(); and
 * asymmetric-io-mutex's lock()/unlock(), whose lock() is only asynchronous (a Promise per call).
 *
 * Write mode checks exclusion: inside the critical section a worker adds one to an occupancy word
 * and counts a violation if anybody else was inside. IMPL_NONE (no lock at all) is the detector's
 * control: it must show violations whenever two workers run at once.
 */
import { availableParallelism } from 'node:os';
import { isMainThread, workerData } from 'node:worker_threads';
import aio from 'asymmetric-io-mutex';
import { RwLock } from 'atomics-lock';
import {
  DONE,
  GO,
  IMPL,
  IMPL_AIO,
  IMPL_MT_MUTEX,
  IMPL_MT_RWLOCK,
  IMPL_OURS,
  LOCK_BASE,
  MODE,
  MODE_WRITE,
  OCCUPANCY,
  READY,
  SLOTS,
  STOP,
  VIOLATIONS,
} from './_peer_layout.js';
import type { PeerWorkerData } from './_peer_layout.js';

/** Operations between two STOP checks (a check costs one load: < 0.1 ns per op at this batch). */
const BATCH = 64;

/**
 * multithreading reads `navigator.hardwareConcurrency` when it loads; Node 20 has no `navigator`
 * (Node 21 added it), so it is given one with the same figure before the import.
 */
async function loadMultithreading(): Promise<typeof import('multithreading')> {
  const g = globalThis as { navigator?: unknown };
  if (g.navigator === undefined) g.navigator = { hardwareConcurrency: availableParallelism() };
  return import('multithreading');
}

async function run(d: PeerWorkerData): Promise<void> {
  const mt = await loadMultithreading();
  const v = new Int32Array(d.sab);
  const ours = new RwLock(v, LOCK_BASE, { debug: false });
  // Attached the way their deserialisers attach a moved handle: the constructor's state-buffer argument.
  const mtRwLock = new mt.RwLock(undefined, d.mtRwLockState);
  const mtMutex = new mt.Mutex(undefined, d.mtMutexState);
  const aioMutex = new aio.default(undefined, undefined, d.aioCoupling);
  const enter = (): void => {
    if (Atomics.add(v, OCCUPANCY, 1) !== 0) Atomics.add(v, VIOLATIONS, 1);
    Atomics.sub(v, OCCUPANCY, 1);
  };
  const stopped = (round: number): boolean => Atomics.load(v, STOP) === round;

  Atomics.add(v, READY, 1);
  Atomics.notify(v, READY);
  let last = 0;
  for (;;) {
    let round = Atomics.load(v, GO);
    while (round === last) {
      Atomics.wait(v, GO, last);
      round = Atomics.load(v, GO);
    }
    if (round < 0) return;
    last = round;
    const impl = Atomics.load(v, IMPL);
    const write = Atomics.load(v, MODE) === MODE_WRITE;
    let ops = 0;
    if (impl === IMPL_OURS && !write) {
      do {
        for (let i = 0; i < BATCH; i++) {
          ours.readLock();
          ours.readUnlock();
        }
        ops += BATCH;
      } while (!stopped(round));
    } else if (impl === IMPL_OURS) {
      do {
        for (let i = 0; i < BATCH; i++) {
          ours.writeLock();
          enter();
          ours.writeUnlock();
        }
        ops += BATCH;
      } while (!stopped(round));
    } else if (impl === IMPL_MT_RWLOCK && !write) {
      do {
        for (let i = 0; i < BATCH; i++) mtRwLock.blockingRead().dispose();
        ops += BATCH;
      } while (!stopped(round));
    } else if (impl === IMPL_MT_RWLOCK) {
      do {
        for (let i = 0; i < BATCH; i++) {
          const g = mtRwLock.blockingWrite();
          enter();
          g.dispose();
        }
        ops += BATCH;
      } while (!stopped(round));
    } else if (impl === IMPL_MT_MUTEX) {
      do {
        for (let i = 0; i < BATCH; i++) {
          const g = mtMutex.blockingLock();
          enter();
          g.dispose();
        }
        ops += BATCH;
      } while (!stopped(round));
    } else if (impl === IMPL_AIO) {
      // lock() is asynchronous only; a contended attempt sleeps at least 10 ms, so STOP is checked
      // after every operation (one load beside a Promise per call). maxTries: never give up.
      const mode = write ? 'w' : 'r';
      do {
        await aioMutex.lock('i', mode, Number.MAX_SAFE_INTEGER);
        if (write) enter();
        aioMutex.unlock('i', mode);
        ops++;
      } while (!stopped(round));
    } else {
      do {
        for (let i = 0; i < BATCH; i++) enter();
        ops += BATCH;
      } while (!stopped(round));
    }
    Atomics.store(v, SLOTS + 32 * d.index, ops);
    Atomics.add(v, DONE, 1);
    Atomics.notify(v, DONE);
  }
}

if (!isMainThread) await run(workerData as PeerWorkerData);
