/**
 * The package's public surface from plain JavaScript: initialise / attach, the try variants'
 * lost races as return values, and the stable error codes. The lock's full unit and torture tests
 * live with the emulator (native-free-tests/rwlock.test.ts, rwlock-torture.test.ts).
 */
import test from 'ava';
import { AtomicsLockError, RWLOCK_INT32S, RwLock, ScalableRwLock, scalableRwLockInt32s } from 'atomics-lock';

function attached() {
  const view = new Int32Array(new SharedArrayBuffer(RWLOCK_INT32S * 4));
  RwLock.initialize(view, 0);
  return new RwLock(view, 0);
}

test('readers share, a writer excludes, and the try variants report a lost race as false', (t) => {
  const a = attached();
  t.true(a.tryReadLock());
  t.true(a.tryReadLock());
  t.false(a.tryWriteLock());
  a.readUnlock();
  a.readUnlock();
  t.true(a.tryWriteLock());
  t.false(a.tryReadLock());
  t.false(a.writeLock(0));
  a.writeUnlock();
  t.true(a.readLock(0));
  a.readUnlock();
});

test('bad arguments and misuse throw AtomicsLockError with a stable code', (t) => {
  const notShared = new Int32Array(RWLOCK_INT32S);
  t.is(t.throws(() => RwLock.initialize(notShared, 0), { instanceOf: AtomicsLockError }).code, 'ERR_INVALID_ARG');
  const a = attached();
  t.is(t.throws(() => a.writeUnlock(), { instanceOf: AtomicsLockError }).code, 'ERR_LOCK_NOT_HELD');
  t.is(t.throws(() => a.readLock(-1), { instanceOf: AtomicsLockError }).code, 'ERR_INVALID_ARG');
});

test('ScalableRwLock: a registered reader and a writer exclude each other', (t) => {
  const view = new Int32Array(new SharedArrayBuffer(scalableRwLockInt32s(2) * 4));
  ScalableRwLock.initialize(view, 0, 2);
  const reader = new ScalableRwLock(view, 0, 2, { readerSlot: 0 });
  const writer = new ScalableRwLock(view, 0, 2, { readerSlot: 1 });
  t.true(reader.tryReadLock());
  t.false(writer.tryWriteLock());
  reader.readUnlock();
  t.true(writer.tryWriteLock());
  t.false(reader.tryReadLock());
  writer.writeUnlock();
  reader.release();
  writer.release();
});
