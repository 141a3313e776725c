/**
 * Question: one thread, nobody else: what does a read and a write lock+unlock pair cost with our
 * RwLock, next to the registry's SharedArrayBuffer locks (multithreading's RwLock and Mutex,
 * asymmetric-io-mutex), each through its fastest documented API?
 *
 * The harness is bench/_peer_rounds.ts with one worker (the same rounds as the contended bench, so
 * both questions are measured alike). Ratios are ours/peer: below 1 means ours is faster; the
 * `faster` column names the winner plainly.
 */
import { measurePeers, printPeerTable, ROUNDS_NOTE } from './_peer_rounds.js';

console.log(`# peer locks, uncontended (1 worker thread): ${ROUNDS_NOTE}`);
const ok = printPeerTable('uncontended: median ns per lock+unlock pair, ours beside each peer', 1, await measurePeers(1));
if (!ok) process.exitCode = 1;
