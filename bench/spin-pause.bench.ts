/**
 * Question: what does Atomics.pause (used by atomics-lock's spin loops where the runtime has it,
 * packages/atomics-lock/src/spin_pause.ts) cost per poll, and does it shorten a cross-thread
 * hand-off between two spinning threads?
 *
 * 1. One thread: ns per poll of a spin loop, `Atomics.load` alone vs `Atomics.load` + `Atomics.pause()`
 *    (the pause makes each poll longer, so a fixed spinLimit spins for longer in time).
 * 2. Two threads ping-pong a ball word, each spinning until it is its turn: median round-trip ns,
 *    polling with and without Atomics.pause, in interleaved rounds.
 *
 * On Node 20 (no Atomics.pause) only the plain figures are printed. On a shared, oversubscribed
 * machine the ping-pong measures the scheduler more than the CPU: read it as noisy.
 */
import { Worker } from 'node:worker_threads';
import { HAS_ATOMICS_PAUSE } from 'atomics-lock';
import { median, medianNsPerOp, round } from './_lib.js';
import type { BatchedTask } from './_lib.js';
import { BALL, PAUSE, ROUND, SPIN_INT32S, TURNS } from './_spin.worker.js';

const ROUNDS = 9;
const ROUND_TRIPS = 20_000;

type AtomicsWithPause = typeof Atomics & { pause: () => void };

console.log(
  `# spin-loop back-off on ${process.version}: Atomics.pause ${HAS_ATOMICS_PAUSE ? 'available (atomics-lock spin loops use it)' : 'not available (atomics-lock spin loops poll without it)'}`,
);

const word = new Int32Array(new SharedArrayBuffer(128));
const tasks: BatchedTask[] = [
  {
    name: 'poll: Atomics.load',
    body: (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += Atomics.load(word, 0);
      if (s !== 0) throw new Error('the polled word changed');
    },
  },
];
if (HAS_ATOMICS_PAUSE) {
  tasks.push({
    name: 'poll: Atomics.load + Atomics.pause()',
    body: (n) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        s += Atomics.load(word, 0);
        (Atomics as AtomicsWithPause).pause();
      }
      if (s !== 0) throw new Error('the polled word changed');
    },
  });
}
const single = await medianNsPerOp(tasks, { inner: 20_000, timeMs: 500 });
console.log('\n## One thread: median ns per spin-loop poll');
console.table([...single].map(([name, ns]) => ({ poll: name, 'ns/poll': round(ns) })));

const sab = new SharedArrayBuffer(SPIN_INT32S * 4);
const v = new Int32Array(sab);
const peer = new Worker(new URL('./_spin.worker.js', import.meta.url), { workerData: sab });
const exited = new Promise<void>((resolve, reject) => peer.on('exit', () => resolve()).on('error', reject));
let roundNo = 0;
function pingPong(usePause: boolean): number {
  Atomics.store(v, BALL, 0);
  Atomics.store(v, PAUSE, usePause ? 1 : 0);
  Atomics.store(v, TURNS, 2 * ROUND_TRIPS);
  Atomics.store(v, ROUND, ++roundNo);
  Atomics.notify(v, ROUND);
  const t0 = performance.now();
  for (let turn = 1; turn < 2 * ROUND_TRIPS; turn += 2) {
    Atomics.store(v, BALL, turn);
    if (usePause) {
      while (Atomics.load(v, BALL) !== turn + 1) (Atomics as AtomicsWithPause).pause();
    } else {
      while (Atomics.load(v, BALL) !== turn + 1);
    }
  }
  return ((performance.now() - t0) * 1e6) / ROUND_TRIPS;
}
const variants = HAS_ATOMICS_PAUSE ? [false, true] : [false];
for (const p of variants) pingPong(p); // warm-up
const samples = new Map<boolean, number[]>(variants.map((p) => [p, []]));
for (let r = 0; r < ROUNDS; r++) for (const p of variants) samples.get(p)!.push(pingPong(p));
Atomics.store(v, ROUND, -1);
Atomics.notify(v, ROUND);
await exited;
console.log(`\n## Two threads ping-pong, median ns per round trip over ${ROUNDS} interleaved rounds of ${ROUND_TRIPS}`);
console.table(variants.map((p) => ({ polling: p ? 'Atomics.load + Atomics.pause()' : 'Atomics.load', 'ns/round trip': round(median(samples.get(p)!)) })));
