/**
 * Question: with 2 and 8 worker threads contending for one lock, what aggregate cost per lock+unlock
 * pair, and how fair, is our RwLock next to the registry's SharedArrayBuffer locks
 * (multithreading's RwLock and Mutex, asymmetric-io-mutex), each through its fastest documented API?
 * Write mode checks exclusion in every pair (and a no-lock control shows the check can see an
 * overlap).
 *
 * The harness is bench/_peer_rounds.ts. Ratios are ours/peer: below 1 means ours is faster; the
 * `faster` column names the winner plainly. Fairness is the slowest worker's pairs / the fastest's,
 * summed over the rounds.
 */
import { availableParallelism } from 'node:os';
import { measurePeers, printPeerTable, ROUNDS_NOTE } from './_peer_rounds.js';

const WORKER_COUNTS = [2, 8] as const;

console.log(`# peer locks, contended, on ${availableParallelism()} cores: ${ROUNDS_NOTE}`);
let ok = true;
for (const n of WORKER_COUNTS) {
  ok = printPeerTable(`${n} workers contending: aggregate median ns per lock+unlock pair, ours beside each peer`, n, await measurePeers(n)) && ok;
}
if (!ok) process.exitCode = 1;
