/**
 * Workers for bench/rwlock-contended.bench.ts (a plain worker_threads script; the bench spawns
 * them in setup, so thread start-up is never timed).
 *
 * Each worker waits for a round (GO changes), runs the round's operation flat out until STOP
 * names that round (checked once per BATCH operations, so the check costs < 0.1 ns per op),
 * writes its operation count into its own padded slot, and reports DONE. Modes:
 *   MODE_FLOOR   two Atomics.add on one shared word (the cache-line floor of a shared lock word)
 *   MODE_READ    readLock + readUnlock on one RwLock
 *   MODE_MIX     90 % read, 10 % write lock+unlock on one RwLock (every tenth op writes)
 *   MODE_SCALABLE_READ  readLock + readUnlock on one ScalableRwLock (each worker its own slot)
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { RwLock, RWLOCK_INT32S, ScalableRwLock, scalableRwLockInt32s } from 'atomics-lock';

export const MODE_FLOOR = 0;
export const MODE_READ = 1;
export const MODE_MIX = 2;
export const MODE_SCALABLE_READ = 3;

// Shared layout (Int32 indices); every word or slot on its own 128-byte line.
export const LOCK_BASE = 0;
export const MAX_WORKERS = 32;
export const SCALABLE_BASE = RWLOCK_INT32S;
export const CTL = SCALABLE_BASE + scalableRwLockInt32s(MAX_WORKERS);
export const GO = CTL; // round number; -1 = exit
export const STOP = CTL + 32; // round number that must stop
export const DONE = CTL + 64; // workers finished with the current round
export const MODE = CTL + 96;
export const READY = CTL + 128;
export const FLOOR_WORD = CTL + 160;
export const SLOTS = CTL + 192; // worker i's op count: SLOTS + 32 * i
export function benchInt32s(workers: number): number {
  return SLOTS + 32 * workers;
}

export interface RwLockBenchWorkerData {
  readonly sab: SharedArrayBuffer;
  readonly index: number;
}

const BATCH = 64;

function run(d: RwLockBenchWorkerData): void {
  const v = new Int32Array(d.sab);
  const lock = new RwLock(v, LOCK_BASE, { debug: false });
  const scalable = new ScalableRwLock(v, SCALABLE_BASE, MAX_WORKERS, { debug: false, readerSlot: d.index });
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
    const mode = Atomics.load(v, MODE);
    let ops = 0;
    if (mode === MODE_FLOOR) {
      do {
        for (let i = 0; i < BATCH; i++) {
          Atomics.add(v, FLOOR_WORD, 1);
          Atomics.add(v, FLOOR_WORD, -1);
        }
        ops += BATCH;
      } while (Atomics.load(v, STOP) !== round);
    } else if (mode === MODE_READ) {
      do {
        for (let i = 0; i < BATCH; i++) {
          lock.readLock();
          lock.readUnlock();
        }
        ops += BATCH;
      } while (Atomics.load(v, STOP) !== round);
    } else if (mode === MODE_SCALABLE_READ) {
      do {
        for (let i = 0; i < BATCH; i++) {
          scalable.readLock();
          scalable.readUnlock();
        }
        ops += BATCH;
      } while (Atomics.load(v, STOP) !== round);
    } else {
      do {
        for (let i = 0; i < BATCH; i++) {
          if (i % 10 === 0) {
            lock.writeLock();
            lock.writeUnlock();
          } else {
            lock.readLock();
            lock.readUnlock();
          }
        }
        ops += BATCH;
      } while (Atomics.load(v, STOP) !== round);
    }
    Atomics.store(v, SLOTS + 32 * d.index, ops);
    lock.publishStats();
    scalable.publishStats();
    Atomics.add(v, DONE, 1);
    Atomics.notify(v, DONE);
  }
}

if (!isMainThread) run(workerData as RwLockBenchWorkerData);
