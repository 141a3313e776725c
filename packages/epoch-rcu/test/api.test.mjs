/**
 * The package's public surface from plain JavaScript: initialise / attach / register, nesting,
 * callbacks after a grace period, and the stable error codes. The RCU's full unit and torture
 * tests live with the emulator (native-free-tests/rcu.test.ts, rcu-torture.test.ts).
 */
import test from 'ava';
import { RcuDomain, RcuError, rcuInt32s } from 'epoch-rcu';

function domain(readers) {
  const view = new Int32Array(new SharedArrayBuffer(rcuInt32s(readers) * 4));
  RcuDomain.initialize(view, 0, readers);
  return view;
}

test('a callback queued with callRcu runs after a grace period, on barrier()', (t) => {
  const view = domain(2);
  const r = new RcuDomain(view, 0, 2).registerReader(0);
  let ran = 0;
  r.readLock();
  r.readLock();
  t.true(r.isInReadSide());
  r.callRcu(() => ran++);
  r.readUnlock();
  r.readUnlock();
  t.false(r.isInReadSide());
  t.true(r.synchronize());
  r.barrier();
  t.is(ran, 1);
  t.true(new RcuDomain(view, 0, 2).stats().gracePeriods >= 1);
  r.unregister();
});

test('misuse throws RcuError with a stable code', (t) => {
  const view = domain(2);
  const r = new RcuDomain(view, 0, 2).registerReader(0);
  t.is(t.throws(() => new RcuDomain(view, 0, 2).registerReader(0), { instanceOf: RcuError }).code, 'ERR_RCU_SLOT_IN_USE');
  r.readLock();
  t.is(t.throws(() => r.synchronize(), { instanceOf: RcuError }).code, 'ERR_RCU_IN_READ_SIDE');
  r.readUnlock();
  t.is(t.throws(() => r.readUnlock(), { instanceOf: RcuError }).code, 'ERR_RCU_UNBALANCED');
  t.is(t.throws(() => RcuDomain.initialize(new Int32Array(rcuInt32s(2)), 0, 2), { instanceOf: RcuError }).code, 'ERR_INVALID_ARG');
  r.unregister();
});
