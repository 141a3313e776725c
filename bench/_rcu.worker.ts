/**
 * Busy workers for bench/rcu-synchronize.bench.ts (a plain worker_threads script, spawned in a
 * task's beforeAll so thread start-up is never timed). Roles:
 *  - 'epoch': readLock; Atomics.load(ptr); readUnlock, flat out;
 *  - 'qsbr':  DEREFS_PER_QS Atomics.load(ptr), then quiescentState(), flat out;
 *  - 'echo':  no RCU: copies the request word to the response word (the ping-pong floor);
 *  - 'ticker': no RCU: stores an incrementing counter flat out (the "notice a busy thread's
 *    next store" floor: what a grace period with one busy reader must at least wait for).
 * Every role polls the stop word between batches, then unregisters and exits.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { RcuDomain } from 'epoch-rcu';

export interface RcuBenchWorkerData {
  readonly role: 'epoch' | 'qsbr' | 'echo' | 'ticker';
  readonly sab: SharedArrayBuffer;
  readonly maxReaders: number;
  readonly slot: number;
  /** Int32 index of the control words (after the RCU region). */
  readonly ctrl: number;
}

/** Control words, relative to `ctrl`. */
export const W_STOP = 0;
export const W_READY = 1;
export const W_PTR = 2;
export const W_REQ = 16; // ping-pong request (own line)
export const W_RESP = 32; // ping-pong response (own line)
export const W_TICK = 48; // ticker counter (own line)
export const CTRL_WORDS = 64;
const DEREFS_PER_QS = 64;
const BATCH = 256;

function run(d: RcuBenchWorkerData): void {
  const v = new Int32Array(d.sab);
  const stop = d.ctrl + W_STOP;
  const ptr = d.ctrl + W_PTR;
  let sink = 0;
  if (d.role === 'echo') {
    Atomics.add(v, d.ctrl + W_READY, 1);
    let last = Atomics.load(v, d.ctrl + W_REQ);
    while (Atomics.load(v, stop) === 0) {
      for (let i = 0; i < BATCH; i++) {
        const r = Atomics.load(v, d.ctrl + W_REQ);
        if (r !== last) {
          last = r;
          Atomics.store(v, d.ctrl + W_RESP, r);
        }
      }
    }
    return;
  }
  if (d.role === 'ticker') {
    Atomics.add(v, d.ctrl + W_READY, 1);
    let t = 0;
    while (Atomics.load(v, stop) === 0) {
      for (let i = 0; i < BATCH; i++) Atomics.store(v, d.ctrl + W_TICK, ++t);
    }
    return;
  }
  const rcu = new RcuDomain(v, 0, d.maxReaders).registerReader(d.slot, { mode: d.role });
  Atomics.add(v, d.ctrl + W_READY, 1);
  if (d.role === 'epoch') {
    while (Atomics.load(v, stop) === 0) {
      for (let i = 0; i < BATCH; i++) {
        rcu.readLock();
        sink += Atomics.load(v, ptr);
        rcu.readUnlock();
      }
    }
  } else {
    while (Atomics.load(v, stop) === 0) {
      for (let i = 0; i < BATCH / DEREFS_PER_QS; i++) {
        for (let j = 0; j < DEREFS_PER_QS; j++) sink += Atomics.load(v, ptr);
        rcu.quiescentState();
      }
    }
  }
  rcu.unregister();
  if (sink === 0.5) console.log(sink);
}

// The bench imports the constants above; only a worker runs the loop.
if (!isMainThread) run(workerData as RcuBenchWorkerData);
