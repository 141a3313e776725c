/**
 * Worker for bench/spin-pause.bench.ts: the other end of a ping-pong. Each round (ROUND changes)
 * it waits for every odd turn of the ball word, spinning with or without Atomics.pause per poll as
 * the round says, and passes the next even turn back.
 */
import { isMainThread, workerData } from 'node:worker_threads';

export const BALL = 0;
export const ROUND = 32; // round number; -1 = exit
export const PAUSE = 64; // 1: poll with Atomics.pause
export const TURNS = 96; // turns per round (even)
export const SPIN_INT32S = 128;

type AtomicsWithPause = typeof Atomics & { pause: () => void };

function run(v: Int32Array): void {
  let seen = 0;
  for (;;) {
    while (Atomics.load(v, ROUND) === seen) Atomics.wait(v, ROUND, seen);
    seen = Atomics.load(v, ROUND);
    if (seen < 0) return;
    const usePause = Atomics.load(v, PAUSE) === 1;
    const turns = Atomics.load(v, TURNS);
    for (let turn = 1; turn < turns; turn += 2) {
      if (usePause) {
        while (Atomics.load(v, BALL) !== turn) (Atomics as AtomicsWithPause).pause();
      } else {
        while (Atomics.load(v, BALL) !== turn);
      }
      Atomics.store(v, BALL, turn + 1);
    }
  }
}

if (!isMainThread) run(new Int32Array(workerData as SharedArrayBuffer));
