// PRELIMINARY: API shape only; real implementation follows.
export const RWLOCK_INT32S = 128;
export interface RwLockOptions { spinLimit?: number; debug?: boolean; holderId?: number }
export interface RwLockStats {
  readAcquisitions: number; writeAcquisitions: number; contendedReads: number; contendedWrites: number;
  readWaitNs: number; writeWaitNs: number; parks: number;
}
export class RwLock {
  static initialize(view: Int32Array, base: number): void { view.fill(0, base, base + RWLOCK_INT32S); }
  readonly debug: boolean;
  private readonly view: Int32Array;
  private readonly base: number;
  constructor(view: Int32Array, base: number, opts: RwLockOptions = {}) {
    this.view = view; this.base = base; this.debug = opts.debug ?? process.env['ATOMICS_LOCK_DEBUG'] === '1';
  }
  readLock(_timeoutMs?: number): boolean { return true; }
  readUnlock(): void {}
  writeLock(_timeoutMs?: number): boolean { return true; }
  writeUnlock(): void {}
  tryReadLock(): boolean { return true; }
  tryWriteLock(): boolean { return true; }
  isContended(): boolean { return this.view[this.base] === -1; }
  assertHeldRead(): void {}
  assertHeldWrite(): void {}
  assertHeld(): void {}
  stats(): RwLockStats { return RwLock.sharedStats(this.view, this.base); }
  publishStats(): void {}
  static sharedStats(_view: Int32Array, _base: number): RwLockStats {
    return { readAcquisitions: 0, writeAcquisitions: 0, contendedReads: 0, contendedWrites: 0, readWaitNs: 0, writeWaitNs: 0, parks: 0 };
  }
}
