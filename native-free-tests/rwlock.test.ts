/**
 * Unit tests for atomics-lock's RwLock: try-locks, timeouts that report failure, writer
 * preference (a waiting writer blocks new readers), arrival order, isContended(), debug holder
 * assertions, misuse detection, counters, and argument checks with their codes.
 *
 * Tests that need a blocked waiter start a 'peer' from the torture fixture, which acquires once
 * and reports its stage through shared words; this file waits for stages asynchronously (never
 * blocking its own event loop for long).
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AtomicsLockError, DEBUG_MAX_HOLDERS, RwLock, RWLOCK_INT32S, ScalableRwLock, scalableRwLockInt32s } from 'atomics-lock';
import { runAllConcurrently } from '../src/thread_pool.js';
import { LOCK_BASE, PEER_BASE, PEER_ORDER, PEER_RELEASE, PEER_RESULT, PEER_STAGE, TORTURE_INT32S } from './fixtures/lock-torture.worker.js';
import type { PeerTask } from './fixtures/lock-torture.worker.js';

const fixture = new URL('./fixtures/lock-torture.worker.js', import.meta.url);
const IDLE = { cnts: 0, writerLocked: false, writerWaiting: false, readers: 0, parked: false, queued: 0 };

function newLock(): { sab: SharedArrayBuffer; view: Int32Array } {
  const sab = new SharedArrayBuffer(TORTURE_INT32S * 4);
  const view = new Int32Array(sab);
  RwLock.initialize(view, LOCK_BASE);
  return { sab, view };
}

/** Polls `cond` on timers (the event loop stays free) until true; fails the test after 10 s. */
async function until(t: ExecutionContext, what: string, cond: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) t.fail(`timed out waiting for: ${what}`); // never returns
    await new Promise((r) => setTimeout(r, 2));
  }
}

function peerWord(view: Int32Array, peer: number, field: number): number {
  return Atomics.load(view, PEER_BASE + 32 * peer + field);
}

/** Starts peers (each acquires once, in its own thread); resolves with their results. */
function startPeers(sab: SharedArrayBuffer, peers: readonly Omit<PeerTask, 'kind' | 'sab'>[]): Promise<boolean[]> {
  return runAllConcurrently<boolean>(
    fixture,
    peers.map((p) => ({ kind: 'peer', sab, ...p })),
    { timeoutMs: 30_000 },
  );
}

function code(t: ExecutionContext, fn: () => unknown, expected: AtomicsLockError['code'], re?: RegExp): void {
  const err = t.throws(fn);
  t.true(err instanceof AtomicsLockError, `expected an AtomicsLockError, got ${String(err)}`);
  t.is((err as AtomicsLockError).code, expected);
  if (re !== undefined) t.regex(err?.message ?? '', re);
}

// ---------------------------------------------------------------------------------------------
// Single-thread behaviour
// ---------------------------------------------------------------------------------------------

test('RWLOCK_INT32S is a whole number of 128-byte lines', (t) => {
  t.is(RWLOCK_INT32S % 32, 0);
});

test('try-locks: readers share, a writer excludes everyone, and the word returns to idle', (t) => {
  const { view } = newLock();
  const a = new RwLock(view, LOCK_BASE);
  const b = new RwLock(view, LOCK_BASE);
  t.true(a.tryReadLock());
  t.true(b.tryReadLock());
  t.is(a.describe().readers, 2);
  t.false(a.tryWriteLock(), 'write trylock fails while readers hold');
  a.readUnlock();
  b.readUnlock();
  t.deepEqual(a.describe(), IDLE);
  t.true(a.tryWriteLock());
  t.false(b.tryWriteLock());
  t.false(b.tryReadLock(), 'read trylock fails while a writer holds');
  t.true(a.describe().writerLocked);
  t.is(a.describe().readers, 0, 'a failed read trylock backs its bias out');
  a.writeUnlock();
  t.deepEqual(a.describe(), IDLE);
  t.true(a.readLock());
  a.readUnlock();
  t.true(a.writeLock());
  a.writeUnlock();
  t.deepEqual(a.describe(), IDLE);
});

test('blocking acquires with a timeout return false instead of waiting forever', (t) => {
  const { view } = newLock();
  const holder = new RwLock(view, LOCK_BASE);
  const other = new RwLock(view, LOCK_BASE, { spinLimit: 10 });
  t.true(holder.writeLock());
  const t0 = performance.now();
  t.false(other.readLock(20));
  t.false(other.writeLock(20));
  t.false(other.readLock(0), 'timeout 0 is a single attempt');
  t.false(other.writeLock(0));
  t.true(performance.now() - t0 >= 39, 'the timed attempts did wait for their timeouts');
  // Leaving the queue left nothing behind: no bias, no bit, no ticket.
  t.deepEqual(other.describe(), { ...IDLE, cnts: 0xff, writerLocked: true });
  t.false(other.isContended());
  holder.writeUnlock();
  t.true(other.readLock(1000));
  t.false(holder.writeLock(20), 'a reader holds: the writer times out');
  t.deepEqual(other.describe(), { ...IDLE, cnts: 512, readers: 1 }, 'a timed-out writer clears WAITING');
  other.readUnlock();
  t.true(holder.writeLock(1000));
  holder.writeUnlock();
  t.is(other.stats().timeouts, 4);
  t.is(holder.stats().timeouts, 1);
});

test('timeouts: invalid values are rejected with ERR_INVALID_ARG', (t) => {
  const { view } = newLock();
  const l = new RwLock(view, LOCK_BASE);
  code(t, () => l.readLock(-1), 'ERR_INVALID_ARG', /timeoutMs/);
  code(t, () => l.readLock(Number.NaN), 'ERR_INVALID_ARG', /timeoutMs/);
  code(t, () => l.writeLock(-0.5), 'ERR_INVALID_ARG', /timeoutMs/);
  code(t, () => l.writeLock('5' as unknown as number), 'ERR_INVALID_ARG', /timeoutMs/);
  t.deepEqual(l.describe(), IDLE, 'a rejected call changed nothing');
  t.true(l.readLock(Number.POSITIVE_INFINITY), 'Infinity means no timeout');
  l.readUnlock();
});

test('isContended: plain readers sharing the lock do not count', (t) => {
  const { view } = newLock();
  const a = new RwLock(view, LOCK_BASE);
  const b = new RwLock(view, LOCK_BASE);
  t.false(a.isContended());
  a.readLock();
  b.readLock();
  t.false(a.isContended());
  b.readUnlock();
  a.readUnlock();
  a.writeLock();
  t.false(a.isContended(), 'a holder alone is not contention');
  a.writeUnlock();
});

test('unlock without a hold throws ERR_LOCK_NOT_HELD and leaves the lock intact', (t) => {
  const { view } = newLock();
  const l = new RwLock(view, LOCK_BASE, { debug: false });
  code(t, () => l.readUnlock(), 'ERR_LOCK_NOT_HELD', /not held for read/);
  t.deepEqual(l.describe(), IDLE);
  code(t, () => l.writeUnlock(), 'ERR_LOCK_NOT_HELD', /not held for write/);
  t.deepEqual(l.describe(), IDLE);
  l.readLock();
  code(t, () => l.writeUnlock(), 'ERR_LOCK_NOT_HELD');
  t.deepEqual(l.describe(), { ...IDLE, cnts: 512, readers: 1 });
  l.readUnlock();
  t.deepEqual(l.describe(), IDLE);
});

test('debug mode records holders: assertHeld* and unlocks are checked per holder', (t) => {
  const { view } = newLock();
  const a = new RwLock(view, LOCK_BASE, { debug: true, holderId: 1 });
  const b = new RwLock(view, LOCK_BASE, { debug: true, holderId: 2 });
  t.true(a.debug);
  code(t, () => a.assertHeld(), 'ERR_LOCK_NOT_HELD');
  a.readLock();
  t.notThrows(() => a.assertHeldRead());
  t.notThrows(() => a.assertHeld());
  code(t, () => a.assertHeldWrite(), 'ERR_LOCK_NOT_HELD', /holder 1 does not hold the lock for write/);
  code(t, () => b.assertHeldRead(), 'ERR_LOCK_NOT_HELD', /"readerHolders":\[1\]/);
  code(t, () => b.readUnlock(), 'ERR_LOCK_NOT_HELD', /holder 2/);
  t.is(a.describe().readers, 1, "b's bad unlock did not drop a's hold");
  a.readUnlock();
  code(t, () => a.assertHeldRead(), 'ERR_LOCK_NOT_HELD');

  b.writeLock();
  t.notThrows(() => b.assertHeldWrite());
  t.notThrows(() => b.assertHeld());
  code(t, () => b.assertHeldRead(), 'ERR_LOCK_NOT_HELD');
  code(t, () => a.assertHeldWrite(), 'ERR_LOCK_NOT_HELD', /"writerHolder":2/);
  code(t, () => a.writeUnlock(), 'ERR_LOCK_NOT_HELD', /holder 1/);
  t.true(a.describe().writerLocked, "a's bad unlock did not release b's hold");
  b.writeUnlock();
  t.deepEqual(a.describe(), IDLE);
});

test('debug mode is off by default, on with ATOMICS_LOCK_DEBUG=1; assertions are no-ops when off', (t) => {
  const { view } = newLock();
  const saved = process.env['ATOMICS_LOCK_DEBUG'];
  try {
    delete process.env['ATOMICS_LOCK_DEBUG'];
    const off = new RwLock(view, LOCK_BASE);
    t.false(off.debug);
    t.notThrows(() => off.assertHeldWrite());
    t.notThrows(() => off.assertHeldRead());
    t.notThrows(() => off.assertHeld());
    process.env['ATOMICS_LOCK_DEBUG'] = '1';
    const on = new RwLock(view, LOCK_BASE, { holderId: 3 });
    t.true(on.debug);
    code(t, () => on.assertHeld(), 'ERR_LOCK_NOT_HELD');
    t.false(new RwLock(view, LOCK_BASE, { debug: false }).debug, 'the option overrides the environment');
  } finally {
    if (saved === undefined) delete process.env['ATOMICS_LOCK_DEBUG'];
    else process.env['ATOMICS_LOCK_DEBUG'] = saved;
  }
});

test('counters: acquisitions by mode, published into shared totals and reset', (t) => {
  const { view } = newLock();
  const a = new RwLock(view, LOCK_BASE);
  const b = new RwLock(view, LOCK_BASE);
  for (let i = 0; i < 3; i++) {
    a.readLock();
    a.readUnlock();
  }
  a.writeLock();
  t.false(b.readLock(5));
  a.writeUnlock();
  b.writeLock();
  b.writeUnlock();
  t.like(a.stats(), { readAcquisitions: 3, writeAcquisitions: 1, contendedReads: 0, timeouts: 0 });
  t.like(b.stats(), { readAcquisitions: 0, writeAcquisitions: 1, timeouts: 1 });
  t.true(b.stats().readWaitNs >= 4e6, 'the timed-out slow path counted its wait');
  a.publishStats();
  b.publishStats();
  t.like(a.stats(), { readAcquisitions: 0, writeAcquisitions: 0 });
  t.like(RwLock.sharedStats(view, LOCK_BASE), { readAcquisitions: 3, writeAcquisitions: 2, timeouts: 1 });
});

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

test('initialize/attach reject bad views, bases and options with ERR_INVALID_ARG', (t) => {
  const sab = new SharedArrayBuffer((RWLOCK_INT32S + 64) * 4);
  const view = new Int32Array(sab);
  code(t, () => RwLock.initialize(new Int32Array(RWLOCK_INT32S), 0), 'ERR_INVALID_ARG', /SharedArrayBuffer/);
  code(t, () => RwLock.initialize(new Uint32Array(sab) as unknown as Int32Array, 0), 'ERR_INVALID_ARG', /Int32Array/);
  code(t, () => RwLock.initialize(view, -16), 'ERR_INVALID_ARG', /base/);
  code(t, () => RwLock.initialize(view, 1.5), 'ERR_INVALID_ARG', /base/);
  code(t, () => RwLock.initialize(view, 128), 'ERR_INVALID_ARG', /does not fit/);
  code(t, () => RwLock.initialize(view, 8), 'ERR_INVALID_ARG', /64-byte boundary/);
  code(t, () => RwLock.initialize(new Int32Array(sab, 4), 0), 'ERR_INVALID_ARG', /64-byte boundary/);
  code(t, () => new RwLock(view, 16), 'ERR_INVALID_ARG', /no initialised lock/);
  RwLock.initialize(view, 16);
  t.notThrows(() => new RwLock(view, 16));
  code(t, () => new RwLock(view, 16, { spinLimit: -1 }), 'ERR_INVALID_ARG', /spinLimit/);
  code(t, () => new RwLock(view, 16, { spinLimit: 2.5 }), 'ERR_INVALID_ARG', /spinLimit/);
  code(t, () => new RwLock(view, 16, { holderId: DEBUG_MAX_HOLDERS }), 'ERR_INVALID_ARG', /holderId/);
  code(t, () => new RwLock(view, 16, { holderId: -1 }), 'ERR_INVALID_ARG', /holderId/);
  code(t, () => new RwLock(view, 16, { debug: 'yes' as unknown as boolean }), 'ERR_INVALID_ARG', /debug/);
  code(t, () => RwLock.sharedStats(view, 7), 'ERR_INVALID_ARG');
});

// ---------------------------------------------------------------------------------------------
// With a blocked peer thread
// ---------------------------------------------------------------------------------------------

test.serial('writer preference: a waiting writer blocks new readers, and timed-out readers leave the queue cleanly', async (t) => {
  const { sab, view } = newLock();
  const reader = new RwLock(view, LOCK_BASE);
  const late = new RwLock(view, LOCK_BASE, { spinLimit: 10 });
  t.true(reader.readLock());
  const peers = startPeers(sab, [{ peer: 0, mode: 'write', hold: true }]);
  // The writer queues, becomes head, sets WAITING and waits for our read hold to go.
  await until(t, 'writer waiting', () => reader.describe().writerWaiting);
  t.true(reader.isContended(), 'a queued writer is contention for a read holder');
  t.false(late.tryReadLock(), 'a new reader may not pass a waiting writer');
  t.false(late.readLock(30), 'a blocking reader queues behind the writer and times out');
  t.is(late.stats().timeouts, 1);
  t.is(peerWord(view, 0, PEER_STAGE), 1, 'the writer is still waiting');
  reader.readUnlock();
  await until(t, 'writer acquired', () => peerWord(view, 0, PEER_STAGE) === 2);
  t.is(peerWord(view, 0, PEER_RESULT), 1);
  t.true(late.describe().writerLocked);
  t.false(late.tryReadLock());
  Atomics.store(view, PEER_BASE + PEER_RELEASE, 1);
  t.deepEqual(await peers, [true]);
  // The abandoned ticket was skipped: the queue is empty and works.
  t.true(late.readLock(5_000));
  t.false(late.isContended());
  late.readUnlock();
  t.deepEqual(late.describe(), IDLE);
});

test.serial('isContended: a reader queued behind a write holder counts', async (t) => {
  const { sab, view } = newLock();
  const w = new RwLock(view, LOCK_BASE);
  t.true(w.writeLock());
  t.false(w.isContended());
  const peers = startPeers(sab, [{ peer: 0, mode: 'read', hold: false }]);
  await until(t, 'reader queued', () => w.isContended());
  t.is(w.describe().queued, 1);
  w.writeUnlock();
  t.deepEqual(await peers, [true]);
  t.false(w.isContended());
  t.deepEqual(w.describe(), IDLE);
});

test.serial('waiters are served in arrival order: reader, writer, reader behind a write holder', async (t) => {
  const { sab, view } = newLock();
  const w = new RwLock(view, LOCK_BASE);
  t.true(w.writeLock());
  const results: Promise<boolean[]>[] = [];
  // Queue them one at a time so their arrival order is known.
  const order: { peer: number; mode: 'read' | 'write' }[] = [
    { peer: 0, mode: 'read' },
    { peer: 1, mode: 'write' },
    { peer: 2, mode: 'read' },
    { peer: 3, mode: 'read' },
  ];
  for (const [i, p] of order.entries()) {
    results.push(startPeers(sab, [{ ...p, hold: false }]));
    await until(t, `peer ${p.peer} queued`, () => w.describe().queued === i + 1);
  }
  w.writeUnlock();
  t.deepEqual((await Promise.all(results)).flat(), [true, true, true, true]);
  const seq = order.map((p) => peerWord(view, p.peer, PEER_ORDER));
  t.log(`acquisition order of peers 0..3: ${seq.join(', ')}`);
  t.true(seq[0]! < seq[1]!, 'the first reader before the writer behind it');
  t.true(seq[1]! < seq[2]! && seq[1]! < seq[3]!, 'the writer before the readers behind it');
  t.deepEqual(w.describe(), IDLE);
});

test.serial('a reader head grants the read lock to the readers queued behind it', async (t) => {
  const { sab, view } = newLock();
  const w = new RwLock(view, LOCK_BASE);
  t.true(w.writeLock());
  const peers = startPeers(
    sab,
    [0, 1, 2].map((peer) => ({ peer, mode: 'read' as const, hold: true })),
  );
  await until(t, 'three readers queued', () => w.describe().queued === 3);
  w.writeUnlock();
  await until(t, 'all three hold the lock', () => [0, 1, 2].every((p) => peerWord(view, p, PEER_STAGE) === 2));
  t.is(w.describe().readers, 3);
  t.false(w.isContended());
  for (const p of [0, 1, 2]) Atomics.store(view, PEER_BASE + 32 * p + PEER_RELEASE, 1);
  t.deepEqual(await peers, [true, true, true]);
  const s = RwLock.sharedStats(view, LOCK_BASE);
  t.is(s.contendedReads, 3);
  t.deepEqual(w.describe(), IDLE);
});

// ---------------------------------------------------------------------------------------------
// ScalableRwLock (per-reader slots)
// ---------------------------------------------------------------------------------------------

function newScalable(maxReaders: number): Int32Array {
  const view = new Int32Array(new SharedArrayBuffer(scalableRwLockInt32s(maxReaders) * 4));
  ScalableRwLock.initialize(view, 0, maxReaders);
  return view;
}

test('scalable: slot readers share, a writer waits for them, slotless readers use the inner lock', (t) => {
  const view = newScalable(4);
  const r0 = new ScalableRwLock(view, 0, 4, { readerSlot: 0, spinLimit: 10 });
  const r1 = new ScalableRwLock(view, 0, 4, { readerSlot: 1, spinLimit: 10 });
  const w = new ScalableRwLock(view, 0, 4, { spinLimit: 10 });
  t.true(r0.readLock());
  t.true(r1.tryReadLock());
  t.is(r0.inner.describe().readers, 0, 'slot readers do not touch the shared word');
  t.false(w.tryWriteLock());
  t.false(w.writeLock(20), 'a writer times out while a slot reader holds');
  t.is(w.stats().timeouts, 1);
  r0.readUnlock();
  r1.readUnlock();
  t.true(w.writeLock(1000));
  t.false(r0.tryReadLock(), 'a slot reader backs out while a writer is in');
  t.false(r0.readLock(10));
  t.false(w.isContended());
  w.writeUnlock();
  t.true(w.readLock(), 'a reader without a slot reads through the inner RwLock');
  t.is(w.inner.describe().readers, 1);
  t.false(r0.isContended());
  w.readUnlock();
  t.true(r0.readLock());
  r0.readUnlock();
  t.like(r0.stats(), { readAcquisitions: 2, timeouts: 1 });
});

test('scalable: slots are claimed once, checked, and misuse throws with codes', (t) => {
  const view = newScalable(2);
  const a = new ScalableRwLock(view, 0, 2, { readerSlot: 0 });
  code(t, () => new ScalableRwLock(view, 0, 2, { readerSlot: 0 }), 'ERR_INVALID_ARG', /already claimed/);
  code(t, () => new ScalableRwLock(view, 0, 2, { readerSlot: 2 }), 'ERR_INVALID_ARG', /readerSlot/);
  code(t, () => new ScalableRwLock(view, 0, 3), 'ERR_INVALID_ARG', /does not fit/);
  code(t, () => new ScalableRwLock(view, 0, 1), 'ERR_INVALID_ARG', /maxReaders 1/);
  code(t, () => scalableRwLockInt32s(0), 'ERR_INVALID_ARG', /maxReaders/);
  code(t, () => a.readUnlock(), 'ERR_LOCK_NOT_HELD');
  code(t, () => a.writeUnlock(), 'ERR_LOCK_NOT_HELD');
  code(t, () => a.writeLock('5' as unknown as number), 'ERR_INVALID_ARG', /timeoutMs/);
  code(t, () => a.readLock(-1), 'ERR_INVALID_ARG', /timeoutMs/);
  t.false(a.isContended(), 'a rejected writeLock left no writer count behind');
  a.readLock();
  code(t, () => a.readLock(), 'ERR_INVALID_ARG', /not recursive/);
  code(t, () => a.release(), 'ERR_LOCK_NOT_HELD');
  a.readUnlock();
  a.release();
  t.notThrows(() => new ScalableRwLock(view, 0, 2, { readerSlot: 0 }), 'a released slot can be claimed again');
});
