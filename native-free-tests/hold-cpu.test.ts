/**
 * Lock-holder preemption (src/mmu/hold_cpu.ts): a hold whose thread was off the CPU for most of
 * it is flagged preempted, a hold that ran is not, short holds are not classified, and the
 * schedstat reads stay off the fast path. The control is the sleeping hold: a detector that never
 * flags would fail it.
 */
import test from 'ava';
import { attachVm, createVm } from '../src/vm.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { HOLD_CLASSIFY_MIN_NS } from '../src/mmu/hold_cpu.js';
import { summarizeHoldPreemption } from '../src/emulate/hold_preemption.js';
import type { SplitterOpSample } from '../src/emulate/messages.js';

function vm() {
  return attachVm(
    createVm({ levels: 4, memslots: [{ baseGfn: 2 ** 20, npages: 512 }], backingLevel: 1, workers: 1, pressure: PRESSURE_PROFILES.none, seed: 1 }),
    0,
  );
}

const sleepWord = new Int32Array(new SharedArrayBuffer(4));

test('a hold spent asleep is flagged preempted; a hold spent running is not; the figures without it drop it', (t) => {
  const v = vm();
  if (v.mmuLock.enableHoldCpu() === null) {
    t.pass('no /proc/thread-self/schedstat here');
    return;
  }
  // CONTROL: off the CPU for 20 ms inside the hold (what a descheduled holder looks like). Longer
  // than two scheduler ticks: schedstat's runtime of a running thread lags by up to a tick
  // (hold_cpu.ts), so a shorter sleep could read as half on a CPU.
  v.mmuLock.writeLock();
  Atomics.wait(sleepWord, 0, 0, 20);
  v.mmuLock.writeUnlock();
  const slept = v.mmuLock.takeHoldCpu()!;
  t.is(slept.classified, 1);
  t.is(slept.preempted, 1);
  t.true(slept.preemptedWallNs >= 20e6);
  t.is(slept.writeHoldNotPreempted.count, 0);
  // A running hold of 10 ms (busy; more than two ticks, as above): on a loaded host it may itself
  // be preempted, so allow retries.
  let ran = false;
  for (let i = 0; i < 10 && !ran; i++) {
    v.mmuLock.writeLock();
    const end = performance.now() + 10;
    while (performance.now() < end) {
      // busy
    }
    v.mmuLock.writeUnlock();
    const d = v.mmuLock.takeHoldCpu()!;
    t.is(d.classified, 1);
    ran = d.preempted === 0 && d.writeHoldNotPreempted.count === 1;
  }
  t.true(ran, 'a hold that ran was not flagged (10 tries)');
  const samples = [{ phase: 1, op: 2, ns: 0, dirtyPages: null, splitMs: null, wrprotMs: null, timing: {}, holdCpu: slept }] as SplitterOpSample[];
  const s = summarizeHoldPreemption(samples)!;
  t.is(s.preempted, 1);
  t.is(s.writeHoldNotPreemptedNs.count, 0);
});

test('short holds are not classified and cost no schedstat read each', (t) => {
  const v = vm();
  if (v.mmuLock.enableHoldCpu() === null) {
    t.pass('no /proc/thread-self/schedstat here');
    return;
  }
  v.mmuLock.takeHoldCpu();
  const holds = 20_000;
  for (let i = 0; i < holds; i++) {
    v.mmuLock.readLock();
    v.mmuLock.readUnlock();
  }
  const d = v.mmuLock.takeHoldCpu()!;
  t.log(`${holds} holds, ${d.cpuReads} schedstat reads; classify from ${HOLD_CLASSIFY_MIN_NS} ns`);
  t.true(d.cpuReads < holds / 10, 'reads are rate-limited, not one per hold');
  t.is(d.readHoldNotPreempted.count + d.preempted, holds);
});
