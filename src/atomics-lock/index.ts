// Public API of the atomics-lock package (preliminary bodies; see rwlock.ts).
export { RWLOCK_INT32S, RwLock } from './rwlock.js';
export type { RwLockOptions, RwLockStats } from './rwlock.js';
