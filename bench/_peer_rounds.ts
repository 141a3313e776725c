/**
 * The peer benchmarks' harness: the rounds of bench/rwlock-contended.bench.ts, run over every lock
 * of IMPLS (bench/_peer_layout.ts) in bench/_peer.worker.ts, and the table that puts ours beside each peer.
 *
 * Method. N workers are spawned and attached in setup (never timed) and parked between rounds. A
 * round: the driver names a lock and a mode, wakes every worker, sleeps ROUND_MS, then tells them
 * to stop; each worker counts the lock+unlock pairs it completed. Aggregate ns/op = the round's
 * wall time / total pairs (with more workers than cores it includes the OS time-slicing, as a real
 * workload would). All (lock, mode) pairs run in interleaved rounds, so drift on a shared machine
 * hits them alike; figures are medians over ROUNDS rounds. Fairness: each worker's pairs summed
 * over the rounds, slowest/fastest. With one worker this is the uncontended figure.
 */
import { Worker } from 'node:worker_threads';
import aio from 'asymmetric-io-mutex';
import { RwLock } from 'atomics-lock';
import { median, round } from './_lib.js';
import { DONE, GO, IMPL, IMPL_OURS, IMPLS, LOCK_BASE, MODE, MODE_READ, MODE_WRITE, READY, SLOTS, STOP, VIOLATIONS, peerInt32s } from './_peer_layout.js';
import type { Impl, Mode, PeerWorkerData } from './_peer_layout.js';

const ROUND_MS = 40;
const ROUNDS = 9;

export interface PeerResult {
  readonly impl: Impl;
  readonly mode: Mode;
  /** Median aggregate ns per lock+unlock pair over the rounds. */
  readonly nsPerOp: number;
  /** Each worker's pairs, summed over the rounds. */
  readonly perWorkerOps: readonly number[];
  /** Write mode: entries into the critical section that found another holder inside. */
  readonly violations: number;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Every (lock, mode) pair of IMPLS with `workers` workers. */
export async function measurePeers(workers: number): Promise<PeerResult[]> {
  const sab = new SharedArrayBuffer(peerInt32s(workers) * 4);
  const v = new Int32Array(sab);
  RwLock.initialize(v, LOCK_BASE);
  const aioOwner = new aio.default();
  if (!aioOwner.initialize(new SharedArrayBuffer(128))) throw new Error('asymmetric-io-mutex: initialize failed');
  const shared = {
    sab,
    mtRwLockState: new SharedArrayBuffer(4),
    mtMutexState: new SharedArrayBuffer(4),
    aioCoupling: aioOwner.propertiesForCoupling,
  };
  const ws: Worker[] = [];
  for (let index = 0; index < workers; index++) {
    const data: PeerWorkerData = { ...shared, index };
    ws.push(new Worker(new URL('./_peer.worker.js', import.meta.url), { workerData: data }));
  }
  const exited = ws.map((w) => new Promise<void>((resolve, reject) => w.on('exit', () => resolve()).on('error', reject)));
  while (Atomics.load(v, READY) < workers) await new Promise((r) => setTimeout(r, 5));

  const pairs = IMPLS.flatMap((impl) => impl.modes.map((mode) => ({ impl, mode })));
  let roundNo = 0;
  const runRound = (impl: Impl, mode: Mode, ms: number): { ns: number; ops: number[]; violations: number } => {
    roundNo++;
    Atomics.store(v, IMPL, impl.code);
    Atomics.store(v, MODE, mode === 'write' ? MODE_WRITE : MODE_READ);
    Atomics.store(v, DONE, 0);
    Atomics.store(v, VIOLATIONS, 0);
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
    return { ns: ((t1 - t0) * 1e6) / total, ops, violations: Atomics.load(v, VIOLATIONS) };
  };

  for (const p of pairs) runRound(p.impl, p.mode, ROUND_MS); // warm-up: JIT and caches
  const samples = pairs.map(() => [] as number[]);
  const perWorker = pairs.map(() => new Array<number>(workers).fill(0));
  const violations = pairs.map(() => 0);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, p] of pairs.entries()) {
      const res = runRound(p.impl, p.mode, ROUND_MS);
      samples[k]!.push(res.ns);
      res.ops.forEach((o, i) => {
        perWorker[k]![i]! += o;
      });
      violations[k]! += res.violations;
    }
  }
  Atomics.store(v, GO, -1);
  Atomics.notify(v, GO);
  // The workers return from their loop, but a loaded multithreading keeps a worker's event loop
  // alive, so they are ended here once idle.
  await Promise.all(ws.map((w) => w.terminate()));
  await Promise.all(exited);
  return pairs.map((p, k) => ({ ...p, nsPerOp: median(samples[k]!), perWorkerOps: perWorker[k]!, violations: violations[k]! }));
}

function fairness(ops: readonly number[]): string {
  const min = Math.min(...ops);
  const max = Math.max(...ops);
  return ops.length === 1 ? '-' : `${min}/${max} (${max === 0 ? '-' : round(min / max)})`;
}

/**
 * Prints ours beside each peer for every mode: ns/op, ours/peer (below 1: ours is faster), who
 * wins, fairness and exclusion violations. Returns false if our lock let two writers in, or if
 * the control (no lock) showed no overlap with several workers (a blind detector).
 */
export function printPeerTable(title: string, workers: number, results: readonly PeerResult[]): boolean {
  console.log(`\n## ${title}`);
  const rows: Record<string, string | number>[] = [];
  let ok = true;
  for (const mode of ['read', 'write'] as const) {
    const ours = results.find((r) => r.impl.code === IMPL_OURS && r.mode === mode)!;
    for (const r of results.filter((x) => x.mode === mode)) {
      const isOurs = r === ours;
      const isControl = r.impl.code === IMPLS[IMPLS.length - 1]!.code;
      const ratio = ours.nsPerOp / r.nsPerOp;
      rows.push({
        mode,
        lock: r.impl.name,
        'ns/op (median)': round(r.nsPerOp),
        'ours/peer': isOurs || isControl ? '-' : `${ratio.toFixed(3)}x`,
        faster: isOurs || isControl ? '-' : ratio < 1 ? 'ours' : 'PEER',
        'fairness min/max ops': fairness(r.perWorkerOps),
        'exclusion violations': mode === 'write' ? r.violations : '-',
      });
      if (mode === 'write' && isOurs && r.violations !== 0) ok = false;
      if (mode === 'write' && isControl && workers > 1 && r.violations === 0) {
        console.log('control: the no-lock run showed no overlap, so the exclusion check could not be shown to work in this run');
        ok = false;
      }
    }
  }
  console.table(rows);
  return ok;
}

export const ROUNDS_NOTE = `${ROUNDS} interleaved rounds of ${ROUND_MS} ms per (lock, mode); aggregate ns/op = wall / total lock+unlock pairs`;
