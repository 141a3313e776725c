/**
 * Question: how does RwLock read throughput hold up when 1, 2, 4, 8 and 32 workers read-lock one
 * lock on this 2-core machine, next to the same number of workers doing the bare minimum a shared
 * lock word costs (two Atomics.add on one shared word)? Plus a 90/10 read/write mix.
 *
 * Method. Workers are spawned in setup (never timed) and parked between rounds. A round: the main
 * thread sets the mode, wakes every worker, sleeps ROUND_MS, then tells them to stop; each worker
 * counts the operations it completed. Aggregate ns/op = the round's wall time / total operations
 * (so with more workers than cores it includes the OS time-slicing, as a real workload would).
 * Modes run in interleaved rounds (floor, read, mix, floor, read, mix, ...), so drift in this
 * noisy shared VM hits them alike; figures are medians over ROUNDS rounds. (tinybench samples
 * one task after another, which is why the rounds are driven here; the statistics are the same
 * medians bench/_lib.ts uses.)
 *
 * Targets: 2 workers read-locking <= 1.1x the 2-worker fetch-add-pair floor; 32 workers
 * aggregate read throughput >= 50 % of the 2-worker figure (ns/op at most 2x); no thread starved
 * (per-thread ops over all rounds: max/2 > min is flagged "???"). The scalable-reader mode
 * (ScalableRwLock, one slot per worker): aggregate ns/op at most half of glibc pthread_rwlock's
 * 33.5 ns with 2 threads on this machine (a C figure from machine-floors.md, not re-measured here;
 * its own same-run floor is the fetch-add pair on one word, printed beside it).
 */
import { Worker } from 'node:worker_threads';
import { RwLock, ScalableRwLock } from 'atomics-lock';
import { median, printRatioTable, round } from './_lib.js';
import type { RatioRow } from './_lib.js';
import {
  DONE,
  GO,
  LOCK_BASE,
  MODE,
  MODE_FLOOR,
  MODE_MIX,
  MODE_READ,
  MODE_SCALABLE_READ,
  MAX_WORKERS,
  READY,
  SCALABLE_BASE,
  SLOTS,
  STOP,
  benchInt32s,
} from './_rwlock.worker.js';
import type { RwLockBenchWorkerData } from './_rwlock.worker.js';

const WORKER_COUNTS = [1, 2, 4, 8, 32] as const;
const ROUND_MS = 40;
const ROUNDS = 11;
const MODES = [MODE_FLOOR, MODE_READ, MODE_MIX, MODE_SCALABLE_READ] as const;
/** glibc pthread_rwlock, 2 threads read-locking one lock, aggregate ns/op (machine-floors.md). */
const GLIBC_RWLOCK_2T_NS = 33.5;

interface ModeResult {
  nsPerOp: number; // median over rounds
  perThreadOps: number[]; // summed over rounds
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function measure(workers: number): Promise<ModeResult[]> {
  const sab = new SharedArrayBuffer(benchInt32s(workers) * 4);
  const v = new Int32Array(sab);
  RwLock.initialize(v, LOCK_BASE);
  ScalableRwLock.initialize(v, SCALABLE_BASE, MAX_WORKERS);
  // Setup (not timed): spawn and wait until every worker has attached.
  const ws: Worker[] = [];
  for (let index = 0; index < workers; index++) {
    const data: RwLockBenchWorkerData = { sab, index };
    ws.push(new Worker(new URL('./_rwlock.worker.js', import.meta.url), { workerData: data }));
  }
  const exited = ws.map((w) => new Promise<void>((resolve, reject) => w.on('exit', () => resolve()).on('error', reject)));
  while (Atomics.load(v, READY) < workers) await new Promise((r) => setTimeout(r, 5));

  let roundNo = 0;
  const runRound = (mode: number, ms: number): { ns: number; ops: number[] } => {
    roundNo++;
    Atomics.store(v, MODE, mode);
    Atomics.store(v, DONE, 0);
    const t0 = performance.now();
    Atomics.store(v, GO, roundNo);
    Atomics.notify(v, GO);
    sleepMs(ms);
    Atomics.store(v, STOP, roundNo);
    const t1 = performance.now();
    for (let d = Atomics.load(v, DONE); d < workers; d = Atomics.load(v, DONE)) Atomics.wait(v, DONE, d, 1000);
    const ops: number[] = [];
    for (let i = 0; i < workers; i++) ops.push(Atomics.load(v, SLOTS + 32 * i));
    const total = ops.reduce((a, b) => a + b, 0);
    return { ns: ((t1 - t0) * 1e6) / total, ops };
  };

  for (const m of MODES) runRound(m, ROUND_MS); // warm-up: JIT and caches
  const samples: number[][] = MODES.map(() => []);
  const perThread: number[][] = MODES.map(() => new Array<number>(workers).fill(0));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, m] of MODES.entries()) {
      const res = runRound(m, ROUND_MS);
      samples[k]!.push(res.ns);
      res.ops.forEach((o, i) => {
        perThread[k]![i]! += o;
      });
    }
  }
  Atomics.store(v, GO, -1);
  Atomics.notify(v, GO);
  await Promise.all(exited);
  const s = RwLock.sharedStats(v, LOCK_BASE);
  console.log(
    `${workers} worker(s): lock counters: reads ${s.readAcquisitions} (contended ${s.contendedReads}), writes ${s.writeAcquisitions} ` +
      `(contended ${s.contendedWrites}), parks ${s.parks}`,
  );
  return MODES.map((_, k) => ({ nsPerOp: median(samples[k]!), perThreadOps: perThread[k]! }));
}

function spread(ops: readonly number[]): string {
  const max = Math.max(...ops);
  const min = Math.min(...ops);
  return `${min}/${max}${max / 2 > min ? ' ???' : ''}`;
}

console.log(`# RwLock contended: ${ROUNDS} interleaved rounds of ${ROUND_MS} ms per mode; aggregate ns/op = wall / total ops`);
const byWorkers = new Map<number, ModeResult[]>();
for (const n of WORKER_COUNTS) byWorkers.set(n, await measure(n));

const rows: RatioRow[] = [];
const starvation: Record<string, string>[] = [];
for (const n of WORKER_COUNTS) {
  const [floor, read, mix, scal] = byWorkers.get(n)!;
  rows.push({
    figure: `${n} worker(s) read`,
    value: read!.nsPerOp,
    floorName: `${n} worker(s) fetch-add pairs`,
    floor: floor!.nsPerOp,
    ...(n === 2 ? { target: 1.1 } : {}),
  });
  rows.push({ figure: `${n} worker(s) 90/10 mix`, value: mix!.nsPerOp, floorName: `${n} worker(s) fetch-add pairs`, floor: floor!.nsPerOp });
  rows.push({ figure: `${n} worker(s) scalable read`, value: scal!.nsPerOp, floorName: `${n} worker(s) fetch-add pairs`, floor: floor!.nsPerOp });
  starvation.push({
    workers: String(n),
    'floor ops min/max': spread(floor!.perThreadOps),
    'read ops min/max': spread(read!.perThreadOps),
    'mix ops min/max': spread(mix!.perThreadOps),
    'scalable ops min/max': spread(scal!.perThreadOps),
  });
}
printRatioTable('RwLock contended: aggregate median ns per lock+unlock pair vs the same workers on a shared word', rows);

const read2 = byWorkers.get(2)![1]!.nsPerOp;
const read32 = byWorkers.get(32)![1]!.nsPerOp;
printRatioTable('Scaling to 32 workers on 2 cores (target: throughput >= 50 % of 2 workers, i.e. ns/op <= 2x)', [
  { figure: '32 workers read, aggregate', value: read32, floorName: '2 workers read, aggregate', floor: read2, target: 2 },
]);
console.log(`32-worker read throughput = ${round((100 * read2) / read32)} % of the 2-worker figure`);

printRatioTable(
  'Scalable-reader mode vs glibc pthread_rwlock (a constant: 2 threads, 33.5 ns aggregate, from machine-floors.md, not measured in this run; target <= 0.5x = 16.7 ns)',
  [
    ...WORKER_COUNTS.map((n) => ({
      figure: `${n} worker(s) ScalableRwLock read`,
      value: byWorkers.get(n)![3]!.nsPerOp,
      floorName: 'CONSTANT: glibc pthread_rwlock 2T, machine-floors.md (not measured in this run)',
      floor: GLIBC_RWLOCK_2T_NS,
      ...(n === 2 ? { target: 0.5 } : {}),
    })),
  ],
);

console.log('\n## Per-thread operations over all rounds (min/max; ??? = max/2 > min, a starved thread)');
console.table(starvation);
