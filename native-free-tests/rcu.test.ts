/**
 * Unit tests for epoch-rcu (packages/epoch-rcu/): layout arithmetic, argument checks, nesting, offline readers,
 * QSBR, callbacks and barrier, and two-worker interleavings sequenced by a phase SAB.
 * No timed assertions: every wait is bounded only so that a bug fails instead of hanging.
 */
import test from 'ava';
import { RcuDomain, RcuError, rcuInt32s, type RcuReaderOptions } from 'epoch-rcu';
import { H_GP_SEQ, HEADER_INT32S, S_STATE, SLOT_INT32S, gpDone, gpSnap, slotIndex } from 'epoch-rcu/layout';
import { runAllConcurrently } from '../src/thread_pool.js';
import { PHASE_INT32S, type PhaseResult, type PhaseTask } from './fixtures/rcu-phases.worker.js';

const phasesWorker = new URL('./fixtures/rcu-phases.worker.js', import.meta.url);

function makeDomain(maxReaders = 4): { view: Int32Array; domain: RcuDomain } {
  const view = new Int32Array(new SharedArrayBuffer(rcuInt32s(maxReaders) * 4));
  RcuDomain.initialize(view, 0, maxReaders);
  return { view, domain: new RcuDomain(view, 0, maxReaders) };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err: unknown) {
    return err instanceof RcuError ? err.code : `not an RcuError: ${String(err)}`;
  }
  return undefined;
}

// ------------------------------------------------------------------ layout

test('layout: header + one 64-byte slot per reader; grace-period sequence arithmetic wraps', (t) => {
  t.is(rcuInt32s(1), HEADER_INT32S + 16);
  t.is(rcuInt32s(32), HEADER_INT32S + 32 * 16);
  t.is(SLOT_INT32S * 4, 64);
  t.is(slotIndex(0, 1) - slotIndex(0, 0), 16);
  // Idle (even) sequence: the next grace period ends at +2. In progress (odd): the one after it.
  t.is(gpSnap(4), 6);
  t.is(gpSnap(5), 8);
  t.true(gpDone(6, 6));
  t.false(gpDone(5, 6));
  // Wrap-safe across the Int32 sign boundary.
  const nearMax = 0x7ffffffe;
  const snap = gpSnap(nearMax);
  t.true(snap < 0); // wrapped
  t.false(gpDone(nearMax, snap));
  t.true(gpDone((nearMax + 2) | 0, snap));
});

// ------------------------------------------------------------------ argument checks

test('initialize/attach/registerReader check their arguments and name the primitive', (t) => {
  const sab = new SharedArrayBuffer(rcuInt32s(2) * 4 + 64);
  const ok = new Int32Array(sab);
  const bad = (fn: () => unknown, re: RegExp): void => {
    const err = t.throws(fn);
    t.is((err as RcuError).code, 'ERR_INVALID_ARG');
    t.regex(err?.message ?? '', re);
  };
  bad(() => RcuDomain.initialize(new Uint32Array(sab) as unknown as Int32Array, 0, 2), /RcuDomain.initialize: view must be an Int32Array/);
  bad(() => RcuDomain.initialize(new Int32Array(rcuInt32s(2)), 0, 2), /SharedArrayBuffer/);
  bad(() => RcuDomain.initialize(ok, -16, 2), /base must be a non-negative integer/);
  bad(() => RcuDomain.initialize(ok, 1.5, 2), /base must be a non-negative integer/);
  bad(() => RcuDomain.initialize(ok, 0, 0), /maxReaders must be an integer in 1\.\./);
  bad(() => RcuDomain.initialize(ok, 32, 2), /needs Int32 \[32, 96\)/);
  bad(() => RcuDomain.initialize(ok, 4, 2), /64-byte aligned/);
  bad(() => RcuDomain.initialize(new Int32Array(sab, 4), 0, 1), /64-byte aligned/);
  bad(() => new RcuDomain(ok, 0, 2), /RcuDomain: no RCU domain at base 0/);
  RcuDomain.initialize(ok, 16, 2); // aligned: 16 Int32 = 64 bytes
  bad(() => new RcuDomain(ok, 16, 1), /maxReaders 1 does not match the domain's 2/);
  const d = new RcuDomain(ok, 16, 2);
  bad(() => d.registerReader(2), /RcuDomain.registerReader: slot must be an integer in 0\.\.1, got 2/);
  bad(() => d.registerReader(-1), /slot must be/);
  bad(() => d.registerReader(0, { mode: 'memb' } as unknown as RcuReaderOptions), /options.mode must be 'epoch' or 'qsbr'/);
  bad(() => d.registerReader(0, { spinLimit: -1 }), /options.spinLimit/);
  t.false(d.isRegistered(0), 'a failed registration gives the slot back');
  const r = d.registerReader(0);
  t.is(
    codeOf(() => d.registerReader(0)),
    'ERR_RCU_SLOT_IN_USE',
  );
  bad(() => r.callRcu(42 as unknown as () => void), /RcuReader.callRcu: fn must be a function/);
  bad(() => r.synchronize(-1), /RcuReader.synchronize: timeoutMs must be a non-negative number/);
  r.unregister();
  t.false(d.isRegistered(0));
  t.is(
    codeOf(() => r.readLock()),
    'ERR_RCU_OFFLINE',
  );
  t.is(
    codeOf(() => r.synchronize()),
    'ERR_RCU_OFFLINE',
  );
  const again = d.registerReader(0); // the slot is reusable
  again.unregister();
});

// ------------------------------------------------------------------ read side

test('readLock nests; misuse inside or outside a section throws with a code', (t) => {
  const { domain } = makeDomain();
  const r = domain.registerReader(0, { debug: true });
  t.false(r.isInReadSide());
  t.is(
    codeOf(() => r.assertInReadSide()),
    'ERR_LOCK_NOT_HELD',
  );
  r.readLock();
  r.readLock();
  r.readLock();
  r.assertInReadSide();
  r.readUnlock();
  r.readUnlock();
  t.true(r.isInReadSide(), 'still inside after 2 of 3 unlocks');
  t.is(
    codeOf(() => r.synchronize()),
    'ERR_RCU_IN_READ_SIDE',
  );
  t.is(
    codeOf(() => r.barrier()),
    'ERR_RCU_IN_READ_SIDE',
  );
  t.is(
    codeOf(() => r.quiescentState()),
    'ERR_RCU_IN_READ_SIDE',
  );
  t.is(
    codeOf(() => r.offline()),
    'ERR_RCU_IN_READ_SIDE',
  );
  t.is(
    codeOf(() => r.unregister()),
    'ERR_RCU_IN_READ_SIDE',
  );
  r.readUnlock();
  t.false(r.isInReadSide());
  t.is(
    codeOf(() => r.readUnlock()),
    'ERR_RCU_UNBALANCED',
  );
  r.offline();
  t.is(
    codeOf(() => r.readLock()),
    'ERR_RCU_OFFLINE',
  );
  t.false(r.isInReadSide(), 'a failed readLock leaves no section open');
  r.online();
  r.readLock();
  r.readUnlock();
  r.unregister();
});

test('assertInReadSide is a no-op unless debug; RCU_DEBUG=1 turns it on; QSBR online counts as read side', (t) => {
  const { domain } = makeDomain();
  const quiet = domain.registerReader(0, { debug: false });
  t.notThrows(() => quiet.assertInReadSide());
  const prev = process.env['RCU_DEBUG'];
  process.env['RCU_DEBUG'] = '1';
  try {
    const loud = domain.registerReader(1);
    t.true(loud.debug);
    t.is(
      codeOf(() => loud.assertInReadSide()),
      'ERR_LOCK_NOT_HELD',
    );
    const q = domain.registerReader(2, { mode: 'qsbr' });
    t.notThrows(() => q.assertInReadSide(), 'an online QSBR reader is always in a read-side section');
    q.offline();
    t.is(
      codeOf(() => q.assertInReadSide()),
      'ERR_LOCK_NOT_HELD',
    );
  } finally {
    if (prev === undefined) delete process.env['RCU_DEBUG'];
    else process.env['RCU_DEBUG'] = prev;
  }
});

test('synchronize waits for a reader inside a section (same thread, bounded tries)', (t) => {
  const { domain } = makeDomain();
  const writer = domain.registerReader(0, { spinLimit: 10 });
  const reader = domain.registerReader(1);
  t.true(writer.synchronize(1000), 'no reader in a section: completes');
  const gp0 = domain.stats().gracePeriods;
  reader.readLock();
  t.false(writer.synchronize(5), 'a reader inside its section blocks the grace period');
  t.is(domain.stats().gracePeriods, gp0, 'a timed-out grace period is not counted');
  t.false(writer.synchronize(0));
  reader.readUnlock();
  t.true(writer.synchronize(1000));
  t.is(domain.stats().gracePeriods, gp0 + 1);
  // A section that starts after the grace period's scan is never waited for: the next section
  // is a new id, so a grace period with the reader idle between sections completes.
  reader.readLock();
  reader.readUnlock();
  t.true(writer.synchronize(1000));
});

test('offline readers never delay a grace period; an online QSBR reader does until it reports', (t) => {
  const { domain } = makeDomain();
  const writer = domain.registerReader(0, { spinLimit: 10 });
  const q = domain.registerReader(1, { mode: 'qsbr' });
  const e = domain.registerReader(2);
  t.false(writer.synchronize(5), 'online QSBR reader that has not reported since the GP began');
  // Reporting BEFORE the grace period begins does not help: QSBR needs a report after it starts.
  q.quiescentState();
  t.false(writer.synchronize(5));
  q.offline();
  e.offline();
  t.true(writer.synchronize(1000), 'offline readers are ignored');
  q.online();
  t.false(writer.synchronize(5), 'back online: protected again');
  q.offline();
  t.true(writer.synchronize(1000));
  q.online();
  // An online QSBR reader's own synchronize() is a quiescent state for itself (liburcu qsbr).
  writer.offline();
  t.true(q.synchronize(1000));
  t.true(q.isInReadSide(), 'and it is online again afterwards');
  q.unregister();
  e.unregister();
  writer.unregister();
});

// ------------------------------------------------------------------ callbacks

test('callRcu runs only after a full grace period, on this thread, in order; barrier runs everything', (t) => {
  const { domain } = makeDomain();
  const w = domain.registerReader(0, { spinLimit: 10 });
  const r = domain.registerReader(1);
  const ran: number[] = [];
  w.callRcu(() => ran.push(1));
  w.defer(() => ran.push(2));
  t.is(w.pendingCallbacks(), 2);
  t.is(w.pollCallbacks(), 0, 'no grace period yet');
  r.readLock();
  t.false(w.synchronize(5));
  t.is(w.pollCallbacks(), 0, 'still none: the grace period timed out');
  t.deepEqual(ran, []);
  r.readUnlock();
  t.true(w.synchronize(1000));
  t.deepEqual(ran, [1, 2], 'synchronize runs ripe callbacks, FIFO');
  // A callback queued while a reader is inside needs a grace period that starts later.
  r.readLock();
  w.callRcu(() => {
    ran.push(3);
    w.callRcu(() => ran.push(4)); // chained: needs another grace period
  });
  t.false(w.synchronize(5));
  r.readUnlock();
  // Another reader's grace period ripens our callbacks too; they run when WE poll.
  const other = domain.registerReader(2);
  t.true(other.synchronize(1000));
  t.deepEqual(ran, [1, 2], 'callbacks never run on another thread');
  t.is(w.pollCallbacks(), 1);
  t.deepEqual(ran, [1, 2, 3]);
  w.barrier();
  t.deepEqual(ran, [1, 2, 3, 4], 'barrier waits for chained callbacks too');
  t.is(w.pendingCallbacks(), 0);
  const s = domain.stats();
  t.is(s.callbacksQueued, 4);
  t.is(s.callbacksRun, 4);
  other.unregister();
  r.unregister();
  w.unregister();
});

test('a callback that throws is consumed and counted; unregister drains the queue', (t) => {
  const { domain } = makeDomain();
  const w = domain.registerReader(0);
  let ran = 0;
  w.callRcu(() => {
    throw new Error('boom');
  });
  w.callRcu(() => ran++);
  t.throws(() => w.synchronize(), { message: 'boom' });
  t.is(w.pendingCallbacks(), 1);
  w.unregister();
  t.is(ran, 1);
  t.deepEqual([domain.stats().callbacksQueued, domain.stats().callbacksRun], [2, 2]);
});

test('an epoch reader with a full callback queue runs a grace period itself (defer_rcu)', (t) => {
  const { domain } = makeDomain();
  const w = domain.registerReader(0, { maxPendingCallbacks: 4 });
  let ran = 0;
  for (let i = 0; i < 3; i++) w.callRcu(() => ran++);
  t.is(ran, 0);
  w.callRcu(() => ran++);
  t.is(ran, 4);
  // Inside a section it cannot: the queue just grows.
  w.readLock();
  for (let i = 0; i < 5; i++) w.callRcu(() => ran++);
  w.readUnlock();
  t.is(ran, 4);
  w.barrier();
  t.is(ran, 9);
});

test('QSBR quiescentState runs ripe callbacks; sequences survive Int32 wrap-around', (t) => {
  const { view, domain } = makeDomain();
  // Start the grace-period sequence and a reader's state word just below the wrap.
  Atomics.store(view, H_GP_SEQ, 0x7ffffffc);
  Atomics.store(view, slotIndex(0, 1) + S_STATE, 0x7ffffff8);
  const w = domain.registerReader(0, { spinLimit: 10 });
  const q = domain.registerReader(1, { mode: 'qsbr' });
  let ran = 0;
  q.callRcu(() => ran++);
  for (let i = 0; i < 4; i++) {
    q.offline();
    t.true(w.synchronize(1000));
    q.online();
    t.false(w.synchronize(2), 'online and not reported: blocks, even across the wrap');
  }
  t.true(domain.gpSeq() < 0, 'the sequence wrapped');
  t.is(ran, 0, 'QSBR callbacks run from quiescentState/poll on their own thread');
  q.quiescentState();
  t.is(ran, 1);
  t.is(domain.stats().gracePeriods, domain.gpSeq() >>> 1);
});

// ------------------------------------------------------------------ two workers, phase-sequenced

function phaseRun(scenario: PhaseTask['scenario'], unsafe = false): Promise<PhaseResult[]> {
  const maxReaders = 2;
  const rcuSab = new SharedArrayBuffer(rcuInt32s(maxReaders) * 4);
  RcuDomain.initialize(new Int32Array(rcuSab), 0, maxReaders);
  const phaseSab = new SharedArrayBuffer(PHASE_INT32S * 4);
  const common = { scenario, rcuSab, phaseSab, maxReaders, unsafe };
  const tasks: PhaseTask[] = [
    { role: 'reader', ...common },
    { role: 'syncer', ...common },
  ];
  return runAllConcurrently<PhaseResult>(phasesWorker, tasks, { timeoutMs: 30_000 });
}

test('two workers: synchronize waits for a reader parked inside its section, then returns after its exit', async (t) => {
  const [, syncer] = await phaseRun('section');
  t.false(syncer!.earlyTry, 'bounded synchronize while the reader is inside: must time out');
  t.true(syncer!.ok);
  t.true(syncer!.exitedBeforeReturn, 'synchronize returned only after the reader left its section');
  t.true((syncer!.parks ?? 0) > 0, 'the 30 ms try went through the park path');
});

test('two workers: a QSBR grace period completes only after the reader reports (quiescentState or offline)', async (t) => {
  for (const scenario of ['qsbr', 'qsbr-offline'] as const) {
    const [reader, syncer] = await phaseRun(scenario);
    t.false(reader!.doneBeforeReport, `${scenario}: synchronize returned before the reader reported`);
    t.true(reader!.doneAfterReport, scenario);
    t.true(syncer!.ok, scenario);
    t.true(syncer!.exitedBeforeReturn, scenario);
  }
});

test('control: the same two-worker checks catch an RCU whose synchronize() returns at once', async (t) => {
  const [, syncer] = await phaseRun('section', true);
  t.true(syncer!.earlyTry, 'broken synchronize "succeeds" while a reader is inside');
  const [reader] = await phaseRun('qsbr', true);
  t.true(reader!.doneBeforeReport, 'broken synchronize returns before the QSBR reader reports');
});
