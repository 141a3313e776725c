/**
 * The peer benchmarks' shared words and the locks under test, read by both the driver
 * (bench/_peer_rounds.ts) and its workers (bench/_peer.worker.ts).
 */
import type aio from 'asymmetric-io-mutex';
import { RWLOCK_INT32S } from 'atomics-lock';

/** The locks under test (one table: the driver's rows follow it). */
export const IMPLS = [
  { code: 0, name: 'atomics-lock RwLock', modes: ['read', 'write'] },
  { code: 1, name: 'multithreading RwLock (blockingRead/blockingWrite)', modes: ['read', 'write'] },
  { code: 2, name: 'multithreading Mutex (blockingLock)', modes: ['write'] },
  { code: 3, name: 'asymmetric-io-mutex (await lock, unlock)', modes: ['read', 'write'] },
  { code: 4, name: 'no lock (control for the exclusion check)', modes: ['write'] },
] as const;
export type Impl = (typeof IMPLS)[number];
export type Mode = 'read' | 'write';
export const IMPL_OURS = 0;
export const IMPL_MT_RWLOCK = 1;
export const IMPL_MT_MUTEX = 2;
export const IMPL_AIO = 3;
export const MODE_READ = 0;
export const MODE_WRITE = 1;

// Shared layout (Int32 indices); every control word and slot on its own 128-byte line.
export const LOCK_BASE = 0;
const CTL = RWLOCK_INT32S;
export const GO = CTL; // round number; -1 = exit
export const STOP = CTL + 32; // round number that must stop
export const DONE = CTL + 64; // workers finished with the current round
export const MODE = CTL + 96;
export const IMPL = CTL + 128;
export const READY = CTL + 160;
export const OCCUPANCY = CTL + 192; // write mode: holders inside the critical section
export const VIOLATIONS = CTL + 224; // write mode: entries that found somebody else inside
export const SLOTS = CTL + 256; // worker i's op count: SLOTS + 32 * i
export function peerInt32s(workers: number): number {
  return SLOTS + 32 * workers;
}

export interface PeerWorkerData {
  readonly sab: SharedArrayBuffer;
  /** multithreading's RwLock and Mutex keep their state in a buffer of their own. */
  readonly mtRwLockState: SharedArrayBuffer;
  readonly mtMutexState: SharedArrayBuffer;
  /** asymmetric-io-mutex: the coupling properties of the mutex the driver initialised. */
  readonly aioCoupling: InstanceType<typeof aio.default>['propertiesForCoupling'];
  readonly index: number;
}
