/**
 * The splitter thread: the userspace side of dirty_log_perf_test (the "ioctls"). It enables
 * dirty logging (eager page splitting under mmu_lock for read when INITIALLY_SET is off), runs
 * GET_DIRTY_LOG and CLEAR_DIRTY_LOG (which, with manual-protect, splits under mmu_lock for write),
 * disables dirty logging (recovering huge pages), and finally runs the invariant checker.
 *
 * The main thread never touches mmu_lock: it posts one command at a time through the control
 * block (control.ts, "A splitter command") and waits asynchronously. The splitter times each op
 * itself, so the figures exclude the thread hand-off, like the selftest's clock_gettime around
 * the ioctl.
 */
import { attachVm } from '../src/vm.js';
import { openTraceRing, takeTraceRing, TK, traceRing } from '../src/stats/trace_ring.js';
import { warmUpJit } from '../src/emulate/jit_warmup.js';
import type { Vm } from '../src/vm.js';
import {
  Control,
  CTL64_CMD_DIRTY,
  CTL64_CMD_NS,
  CTL64_CMD_START_NS,
  CTL_ABORT,
  CTL_CMD_DONE,
  CTL_CMD_OP,
  CTL_CMD_PHASE,
  CTL_CMD_SEQ,
  CTL_READY,
  nowNs,
  OP_CHECK,
  OP_CLEAR,
  OP_DISABLE,
  OP_ENABLE,
  OP_GET,
  OP_STOP,
  SLOT_PROGRESS,
  SLOT_STATE,
  WAIT_SLICE_MS,
  WSTATE_EXITED,
  WSTATE_PARKED,
  WSTATE_RUNNING,
} from '../src/emulate/control.js';
import { EmulatorError, workerError } from '../src/errors.js';
import { WS } from '../src/stats/worker_stats.js';
import type { ClearCallFigures, InvariantVerdict, SplitterOpSample, SplitterResult, SplitterTask, TimingData } from '../src/emulate/messages.js';
import { checkAll, clearCall, disableAll, enableAll, getAll, newDirtyBitmaps } from '../src/emulate/mmu_ops.js';
import type { DirtyLogMode, OpBreakdown } from '../src/emulate/mmu_ops.js';
import { setRunnable } from '../src/mmu/mmu_resched.js';
import { HoldCpuRecorder } from '../src/mmu/hold_cpu.js';

export default function splitterMain(task: SplitterTask): SplitterResult {
  const ctl = new Control(task.control);
  try {
    // Compile the split, write-protect and harvest paths before reporting ready (jit_warmup.ts says why).
    if (task.jitWarmup !== null) warmUpJit(task.vm.config, task.jitWarmup, 'splitter');
    const vm = attachVm(task.vm, task.workerId);
    openTraceRing(task.trace); // after the JIT warm-up: its scratch VM is not traced
    vm.mmuLock.enableHoldCpu(); // on-CPU vs wall time of the splitter's holds (hold_cpu.ts)
    return runSplitter(task, vm, ctl);
  } catch (err) {
    throw workerError('splitter', err);
  } finally {
    Atomics.store(ctl.i32, ctl.slot(task.controlSlot, SLOT_STATE), WSTATE_EXITED);
  }
}

function runSplitter(task: SplitterTask, vm: Vm, ctl: Control): SplitterResult {
  const i32 = ctl.i32;
  const stateIdx = ctl.slot(task.controlSlot, SLOT_STATE);
  const progressIdx = ctl.slot(task.controlSlot, SLOT_PROGRESS);
  const mode: DirtyLogMode = { manualProtect: task.manualProtect, eagerSplit: task.eagerSplit, splitAlloc: task.splitAlloc, split: task.split };
  // GET_DIRTY_LOG's user buffers, one per memslot (the selftest's bitmaps[i]).
  const bitmaps = newDirtyBitmaps(vm);
  const samples: SplitterOpSample[] = [];
  let invariants: InvariantVerdict | null = null;
  Atomics.add(i32, CTL_READY, 1);
  Atomics.notify(i32, CTL_READY); // pairs with the main thread's waitAsync on READY
  let seqSeen = 0;
  let gets = 0;
  // The splitter's own schedstat reader for CLEAR_DIRTY_LOG CPU time (null off Linux).
  const cpuClock = HoldCpuRecorder.open();
  for (;;) {
    // Park until the next command; RCU offline meanwhile (pairs with the main thread's add + notify).
    Atomics.store(i32, stateIdx, WSTATE_PARKED);
    setRunnable(vm, false); // need_resched() counts runnable threads (mmu_resched.ts)
    vm.rcu.offline();
    while (Atomics.load(i32, CTL_CMD_SEQ) === seqSeen) {
      if (Atomics.load(i32, CTL_ABORT) !== 0) throw new EmulatorError('ERR_ABORTED', 'run aborted');
      Atomics.wait(i32, CTL_CMD_SEQ, seqSeen, WAIT_SLICE_MS);
    }
    vm.rcu.online();
    setRunnable(vm, true);
    Atomics.store(i32, stateIdx, WSTATE_RUNNING);
    seqSeen = Atomics.load(i32, CTL_CMD_SEQ);
    const op = Atomics.load(i32, CTL_CMD_OP);
    const phase = Atomics.load(i32, CTL_CMD_PHASE);
    if (op === OP_STOP) {
      Atomics.store(i32, CTL_CMD_DONE, seqSeen);
      Atomics.notify(i32, CTL_CMD_DONE);
      break;
    }
    const t0 = nowNs();
    Atomics.store(ctl.i64, CTL64_CMD_START_NS, t0);
    const traceT0 = traceRing === null ? 0 : performance.now();
    let dirty: number | null = null;
    let breakdown: OpBreakdown | null = null;
    let clear: ClearCallFigures | undefined;
    switch (op) {
      case OP_ENABLE:
        maybeInjectFault(task, vm);
        breakdown = enableAll(vm, mode);
        break;
      case OP_GET:
        maybeTamperDirtyLog(task, vm, ++gets);
        dirty = getAll(vm, mode, bitmaps);
        break;
      case OP_CLEAR:
        ({ breakdown, clear } = clearPass(task, vm, ctl, mode, bitmaps, cpuClock));
        break;
      case OP_DISABLE:
        disableAll(vm);
        break;
      case OP_CHECK:
        // Every vCPU has exited: finish deferred frees first so the pool accounting is final.
        vm.rcu.barrier();
        invariants = checkAll(vm);
        break;
      default:
        throw new EmulatorError('ERR_INVALID_ARG', `splitter: unknown command ${op}`);
    }
    const ns = Number(nowNs() - t0);
    if (traceRing !== null) traceRing.span(TK.ioctl, traceT0, performance.now(), op);
    // RCU callbacks run after the op, outside its time (softirq work in the kernel).
    vm.rcu.pollCallbacks();
    samples.push({
      phase,
      op,
      ns,
      dirtyPages: dirty,
      splitMs: breakdown?.splitMs ?? null,
      wrprotMs: breakdown?.wrprotMs ?? null,
      timing: vm.takeTiming() as unknown as TimingData,
      holdCpu: vm.mmuLock.takeHoldCpu(),
      ...(clear === undefined ? {} : { clear }),
    });
    Atomics.store(ctl.i64, CTL64_CMD_NS, BigInt(ns));
    Atomics.store(ctl.i64, CTL64_CMD_DIRTY, BigInt(dirty ?? 0));
    Atomics.add(i32, progressIdx, 1);
    // Publish results before DONE: the main thread reads them after its waitAsync sees DONE.
    Atomics.store(i32, CTL_CMD_DONE, seqSeen);
    Atomics.notify(i32, CTL_CMD_DONE);
  }
  setRunnable(vm, false);
  cpuClock?.close();
  vm.rcu.unregister();
  return { type: 'splitter-result', samples, invariants, ...takeTraceRing() };
}

/**
 * One CLEAR pass as a migration issues it: every memslot in calls of -k pages (the whole slot by
 * default), each call its own ioctl, with a -l pause between consecutive calls (not after the
 * last), during which the splitter is parked (RCU offline, not runnable) so vCPUs run. Per call:
 * wall time; over the calls: the splitter's on-CPU time (schedstat), the April 2024 table's
 * "CLEAR_DIRTY_LOG CPU" (pauses excluded).
 */
function clearPass(
  task: SplitterTask,
  vm: Vm,
  ctl: Control,
  mode: DirtyLogMode,
  bitmaps: readonly Int32Array[],
  cpuClock: HoldCpuRecorder | null,
): { breakdown: OpBreakdown; clear: ClearCallFigures } {
  const breakdown: OpBreakdown = { splitMs: 0, wrprotMs: 0 };
  const chunk = task.clearChunkPages ?? 0;
  const delayMs = task.clearDelayMs ?? 0;
  const lock = task.clearLock ?? 'whole';
  let calls = 0;
  let totalNs = 0;
  let maxNs = 0;
  let pauses = 0;
  let cpuNs = 0;
  for (let slot = 0; slot < vm.config.memslots.length; slot++) {
    const npages = vm.config.memslots[slot]!.npages;
    const step = chunk > 0 ? chunk : Math.ceil(npages / 64) * 64;
    for (let first = 0; first < npages; first += step) {
      if (calls > 0 && delayMs > 0) {
        pause(vm, ctl, delayMs);
        pauses++;
      }
      const c0 = cpuClock?.readCpuNs() ?? 0;
      const t0 = nowNs();
      const r = clearCall(vm, mode, bitmaps, slot, first, Math.min(step, npages - first), lock);
      const ns = Number(nowNs() - t0);
      cpuNs += (cpuClock?.readCpuNs() ?? 0) - c0;
      breakdown.splitMs += r.splitMs;
      calls++;
      totalNs += ns;
      maxNs = Math.max(maxNs, ns);
    }
  }
  return { breakdown, clear: { calls, totalNs, maxNs, pauses, cpuNs: cpuClock === null ? null : cpuNs } };
}

/** -l: sleep between CLEAR calls, parked like between commands, and still stoppable. */
function pause(vm: Vm, ctl: Control, ms: number): void {
  setRunnable(vm, false);
  vm.rcu.offline();
  const end = performance.now() + ms;
  const never = new Int32Array(new SharedArrayBuffer(4));
  for (let left = ms; left > 0; left = end - performance.now()) {
    if (ctl.aborted()) throw new EmulatorError('ERR_ABORTED', 'run aborted');
    Atomics.wait(never, 0, 0, Math.min(left, WAIT_SLICE_MS));
  }
  vm.rcu.online();
  setRunnable(vm, true);
}

/**
 * EMULATE_FAULT_INJECT (tests only): fail while enabling dirty logging, or feed one of the
 * corruption channels the way the MMU code would on a real bug (guest_access.ts and
 * tdp_mmu_fault.ts count poison reads and translation errors the same way).
 */
function maybeInjectFault(task: SplitterTask, vm: Vm): void {
  if (task.faultInject === 'poison-read') vm.stats.add(WS.poisonReads, 1);
  if (task.faultInject === 'xlate-error') vm.stats.add(WS.xlateErrors, 1);
  if (task.faultInject === 'splitter-throw') throw new Error('injected failure (EMULATE_FAULT_INJECT=splitter-throw)');
  // A thread that dies without an error (a crash): process.exit in a worker ends only that thread.
  if (task.faultInject === 'splitter-exit') process.exit(7);
  if (task.faultInject === 'splitter-hang') {
    const never = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(never, 0, 0, 1000);
  }
}

/**
 * EMULATE_FAULT_INJECT (tests only), before GET_DIRTY_LOG number `get`:
 *   lost-dirty      a write's dirty mark vanishes before the first GET sees it: page 0 of memslot 0,
 *                   which every iteration-1 oracle expects dirty (written, or initially set);
 *   spurious-dirty  a page nobody wrote is marked before the second GET: page 0 of memslot 0, which
 *                   no vCPU writes in iteration 2 when run with -w 0 (the oracle then expects 0
 *                   pages): a harvest with more pages than written, which lostDirty does not count.
 */
function maybeTamperDirtyLog(task: SplitterTask, vm: Vm, get: number): void {
  if (task.faultInject === 'lost-dirty' && get === 1) Atomics.and(vm.dirtyBitmap(0), 0, ~1);
  if (task.faultInject === 'spurious-dirty' && get === 2) Atomics.or(vm.dirtyBitmap(0), 0, 1);
}
