/**
 * atomics-lock: a queued reader/writer lock (Linux qrwlock semantics) in a SharedArrayBuffer,
 * for worker_threads. Self-contained: imports nothing outside this folder. See README.md.
 */
export { RwLock, RWLOCK_INT32S, DEBUG_MAX_HOLDERS, DEFAULT_SPIN_LIMIT } from './rwlock.js';
export type { RwLockOptions, RwLockStats, RwLockState } from './rwlock.js';
export { AtomicsLockError } from './errors.js';
export type { AtomicsLockErrorCode } from './errors.js';
export { ScalableRwLock, scalableRwLockInt32s } from './scalable.js';
export type { ScalableRwLockOptions } from './scalable.js';
export { HAS_ATOMICS_PAUSE } from './spin_pause.js';
