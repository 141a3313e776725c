/**
 * A vCPU thread: a guest workload (src/workloads/, --workload, memstress by default) on the
 * emulated TDP MMU.
 *
 * One long task per run (control.ts says why). Between passes the thread parks on VCPU_GO with
 * its RCU reader offline (an idle vCPU must never hold up a grace period). A pass is the
 * workload's sequence of accesses (memstress: every 4K page of the vCPU's region, -w percent
 * writes, -a random order; populate writes every page once in order). Each access is the
 * hardware walk plus fault handling (guestAccess): a TLB hit, a PML-logged write, a lockless
 * fast fault, or a slow fault under mmu_lock for read. A pass is guest code between a VM entry
 * and an exit: it starts with vcpuRunBegin and ends with vcpuRunEnd (which flushes the PML
 * buffer), and answers GET_DIRTY_LOG's kick at every batch boundary (vcpuPollKick).
 *
 * Per phase (the control block's PHASE_ID, re-read every batch) the vCPU keeps accesses, writes,
 * distinct pages written (the dirty log's oracle), fault latencies by kind and its mmu_lock
 * timings, and returns them all when the run ends.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Histogram } from '../src/stats/histogram.js';
import type { FaultKind } from '../src/mmu/guest_access.js';
import { attachVm } from '../src/vm.js';
import { openTraceRing, takeTraceRing } from '../src/stats/trace_ring.js';
import { warmUpJit } from '../src/emulate/jit_warmup.js';
import type { Vm } from '../src/vm.js';
import { createWorkload } from '../src/workloads/registry.js';
import { createWorkloadAccess } from '../src/workloads/workload.js';
import type { Workload } from '../src/workloads/workload.js';
import {
  Control,
  CTL64_PASS_END_NS,
  CTL_ABORT,
  CTL_PASS_KIND,
  CTL_PHASE_ID,
  CTL_READY,
  CTL_VCPU_DONE,
  CTL_VCPU_EXITED,
  CTL_VCPU_GO,
  CTL_VCPU_MODE,
  MODE_FREE,
  MODE_STOP,
  nowNs,
  PASS_DIRTY,
  PASS_POPULATE,
  SLOT_PASSES_DONE,
  SLOT_PROGRESS,
  SLOT_STATE,
  VCPU_BATCH,
  WAIT_SLICE_MS,
  WSTATE_EXITED,
  WSTATE_PARKED,
  WSTATE_RUNNING,
} from '../src/emulate/control.js';
import { EmulatorError } from '../src/errors.js';
import { workerError } from '../src/emulate/messages.js';
import { FAULT_KIND_PREFIX } from '../src/emulate/messages.js';
import type { TimingData, VcpuPhaseSample, VcpuResult, VcpuTask } from '../src/emulate/messages.js';
import { newAccessResult, vcpuAccess, vcpuPollKick, vcpuRunBegin, vcpuRunEnd } from '../src/emulate/mmu_ops.js';
import { setRunnable } from '../src/mmu/mmu_resched.js';

/** Accesses between progress bumps and PHASE_ID/ABORT checks (a power of two: masked below). */
const BATCH = VCPU_BATCH;

/** Per-phase accumulator. */
class PhaseAcc {
  readonly phase: number;
  accesses = 0;
  writes = 0;
  pagesWritten = 0;
  passes = 0;
  readonly faultFast = new Histogram();
  readonly faultSlow = new Histogram();
  /** Fault latency by the kind guestAccess names (out.faultKind), for the per-kind report. */
  readonly byKind = new Map<FaultKind, Histogram>();
  /** This thread's on-CPU ns when the phase began (null where the OS gives no thread CPU time). */
  readonly cpuNs0: number | null;

  constructor(phase: number, cpuNs0: number | null) {
    this.phase = phase;
    this.cpuNs0 = cpuNs0;
  }

  recordKind(kind: FaultKind, ns: number): void {
    let h = this.byKind.get(kind);
    if (h === undefined) {
      h = new Histogram();
      this.byKind.set(kind, h);
    }
    h.record(ns);
  }
}

/**
 * This thread's time on a CPU (Linux /proc/thread-self/schedstat, first field, ns), read at phase
 * boundaries only (about 2.6 us a read): with more vCPUs than cores the vCPUs share cores with
 * the splitter, and the report must tell that share apart from time lost waiting for mmu_lock.
 * The descriptor names the thread that opened it, so each vCPU opens its own.
 */
class ThreadCpuClock {
  readonly #fd: number | null;
  readonly #buf = Buffer.alloc(64);

  constructor() {
    let fd: number | null = null;
    try {
      fd = openSync('/proc/thread-self/schedstat', 'r');
    } catch {
      fd = null; // not Linux, or no schedstat: the report says the share is unknown
    }
    this.#fd = fd;
  }

  nowNs(): number | null {
    if (this.#fd === null) return null;
    const n = readSync(this.#fd, this.#buf, 0, this.#buf.length, 0);
    const v = Number(this.#buf.toString('latin1', 0, n).split(' ')[0]);
    return Number.isFinite(v) ? v : null;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
  }
}

export default function vcpuMain(task: VcpuTask): VcpuResult {
  const label = `vCPU ${task.vcpuId}`;
  let vm: Vm | undefined;
  const ctl = new Control(task.control);
  try {
    // Compile the paths this vCPU will time before it reports ready (jit_warmup.ts says why).
    if (task.jitWarmup !== null) warmUpJit(task.vm.config, task.jitWarmup, 'vcpu');
    vm = attachVm(task.vm, task.workerId);
    openTraceRing(task.trace); // after the JIT warm-up: its scratch VM is not traced
    return new VcpuThread(task, vm, ctl).run();
  } catch (err) {
    // The task rejects: TaskPool fails the whole run at once with this error (messages.ts says
    // why the code travels in the message).
    throw workerError(label, err);
  } finally {
    // Out of guest code for good (a failed pass must not leave GET waiting for a kick answer).
    if (vm !== undefined) vcpuRunEnd(vm);
    if (vm !== undefined) setRunnable(vm, false);
    Atomics.store(ctl.i32, ctl.slot(task.controlSlot, SLOT_STATE), WSTATE_EXITED);
  }
}

class VcpuThread {
  readonly #task: VcpuTask;
  readonly #vm: Vm;
  readonly #ctl: Control;
  readonly #i32: Int32Array;
  readonly #workload: Workload;
  /** Bit p set = page p of the region was written in the current phase. */
  readonly #written: Uint32Array;
  readonly #samples: VcpuPhaseSample[] = [];
  #acc: PhaseAcc;
  #dirtyPasses = 0;
  readonly #cpu = new ThreadCpuClock();

  constructor(task: VcpuTask, vm: Vm, ctl: Control) {
    this.#task = task;
    this.#vm = vm;
    this.#ctl = ctl;
    this.#i32 = ctl.i32;
    this.#workload = createWorkload(task.workload, {
      vcpuId: task.vcpuId,
      region: task.region,
      writePercent: task.writePercent,
      randomAccess: task.randomAccess,
      seed: task.seed,
    });
    this.#written = new Uint32Array(Math.ceil(task.region.npages / 32));
    this.#acc = new PhaseAcc(Atomics.load(this.#i32, CTL_PHASE_ID), this.#cpu.nowNs());
  }

  run(): VcpuResult {
    const i32 = this.#i32;
    const ctl = this.#ctl;
    Atomics.add(i32, CTL_READY, 1);
    Atomics.notify(i32, CTL_READY); // pairs with the main thread's waitAsync on READY
    let goSeen = 0;
    for (;;) {
      goSeen = this.#park(goSeen);
      const mode = Atomics.load(i32, CTL_VCPU_MODE);
      if (mode === MODE_STOP) break;
      this.#notePhase();
      const kind = Atomics.load(i32, CTL_PASS_KIND);
      if (mode === MODE_FREE) {
        // Run passes back to back until the main thread changes the mode (bumping GO).
        while (Atomics.load(i32, CTL_VCPU_GO) === goSeen && !ctl.aborted()) {
          if (this.#pass(kind, goSeen)) this.#passDone();
        }
        continue;
      }
      this.#pass(kind, -1);
      this.#passDone();
      // Step 4 of the pass protocol (control.ts): the last vCPU stamps the end time, then publishes
      // it by a further add; main waits for vcpus + 1, so it never reads a stale end time.
      if (Atomics.add(i32, CTL_VCPU_DONE, 1) + 1 === ctl.vcpus) {
        Atomics.store(ctl.i64, CTL64_PASS_END_NS, nowNs());
        Atomics.add(i32, CTL_VCPU_DONE, 1); // pairs with main's Atomics.load of VCPU_DONE, then of PASS_END_NS
        Atomics.notify(i32, CTL_VCPU_DONE); // pairs with the main thread's waitAsync on VCPU_DONE
      }
    }
    this.#closePhase();
    this.#cpu.close();
    this.#vm.rcu.unregister();
    Atomics.add(i32, CTL_VCPU_EXITED, 1);
    Atomics.notify(i32, CTL_VCPU_EXITED); // pairs with the main thread's waitAsync
    return { type: 'vcpu-result', vcpuId: this.#task.vcpuId, samples: this.#samples, ...takeTraceRing() };
  }

  /** Park until VCPU_GO moves past `seen`; RCU offline meanwhile. Returns the new GO value. */
  #park(seen: number): number {
    const i32 = this.#i32;
    const stateIdx = this.#ctl.slot(this.#task.controlSlot, SLOT_STATE);
    Atomics.store(i32, stateIdx, WSTATE_PARKED);
    setRunnable(this.#vm, false); // need_resched() counts runnable threads (mmu_resched.ts)
    this.#vm.rcu.offline();
    for (;;) {
      if (Atomics.load(i32, CTL_ABORT) !== 0) throw new EmulatorError('ERR_ABORTED', 'run aborted');
      const go = Atomics.load(i32, CTL_VCPU_GO);
      if (go !== seen) {
        setRunnable(this.#vm, true);
        this.#vm.rcu.online();
        Atomics.store(i32, stateIdx, WSTATE_RUNNING);
        return go;
      }
      Atomics.wait(i32, CTL_VCPU_GO, seen, WAIT_SLICE_MS); // pairs with the main thread's add + notify
    }
  }

  #passDone(): void {
    this.#acc.passes++;
    Atomics.add(this.#i32, this.#ctl.slot(this.#task.controlSlot, SLOT_PASSES_DONE), 1);
  }

  /** If PHASE_ID moved, file the current accumulator under its phase and start a new one. */
  #notePhase(): void {
    const phase = Atomics.load(this.#i32, CTL_PHASE_ID);
    if (phase === this.#acc.phase) return;
    this.#closePhase();
    this.#acc = new PhaseAcc(phase, this.#cpu.nowNs());
  }

  #closePhase(): void {
    const a = this.#acc;
    const timing: Record<string, unknown> = { ...this.#vm.takeTiming() };
    // Our own fault histograms are authoritative for the vCPU's view (kind by guestAccess).
    timing['faultFast'] = a.faultFast.toData();
    timing['faultSlow'] = a.faultSlow.toData();
    for (const [kind, h] of a.byKind) timing[`${FAULT_KIND_PREFIX}${kind}`] = h.toData();
    const cpuNow = a.cpuNs0 === null ? null : this.#cpu.nowNs();
    if (a.accesses > 0 || a.passes > 0) {
      this.#samples.push({
        cpuNs: cpuNow === null || a.cpuNs0 === null ? null : cpuNow - a.cpuNs0,
        phase: a.phase,
        accesses: a.accesses,
        writes: a.writes,
        pagesWritten: a.pagesWritten,
        passes: a.passes,
        timing: timing as TimingData,
      });
    }
    this.#written.fill(0);
  }

  /**
   * One pass over the region. `stopIfGoChanges` >= 0 (free-running mode) ends the pass early at
   * a batch boundary when VCPU_GO moves. Returns true if the pass completed.
   */
  #pass(kind: number, stopIfGoChanges: number): boolean {
    const vm = this.#vm;
    vcpuRunBegin(vm);
    try {
      return this.#runPass(kind, stopIfGoChanges);
    } finally {
      vcpuRunEnd(vm);
    }
  }

  #runPass(kind: number, stopIfGoChanges: number): boolean {
    const vm = this.#vm;
    const i32 = this.#i32;
    const ctl = this.#ctl;
    const { firstGfn, npages } = this.#task.region;
    const workload = this.#workload;
    const written = this.#written;
    const progressIdx = ctl.slot(this.#task.controlSlot, SLOT_PROGRESS);
    const out = newAccessResult();
    const access = createWorkloadAccess();
    if (kind === PASS_DIRTY) this.#maybeInjectFault();
    const n = workload.beginPass(kind === PASS_POPULATE ? 'populate' : 'dirty');
    let acc = this.#acc;
    for (let i = 0; i < n; i++) {
      workload.next(i, access);
      const gfn = access.gfn;
      const accessKind = access.kind;
      vcpuAccess(vm, gfn, accessKind, out);
      acc.accesses++;
      // Fault latencies are sampled (guest_access.ts FAULT_TIMING_SAMPLE): record timed faults only.
      if (out.timed) {
        if (out.outcome === 'fast') acc.faultFast.record(out.faultNs);
        else if (out.outcome === 'slow') acc.faultSlow.record(out.faultNs);
        if (out.outcome !== 'hit') acc.recordKind(out.faultKind, out.faultNs);
      }
      if (accessKind === 'write') {
        acc.writes++;
        // The dirty log's oracle covers the vCPU's own region (a write elsewhere is not checked).
        const p = gfn - firstGfn;
        if (p >= 0 && p < npages) {
          const w = p >>> 5;
          const bit = 1 << (p & 31);
          if ((written[w]! & bit) === 0) {
            written[w] = written[w]! | bit;
            acc.pagesWritten++;
          }
        }
      }
      if ((i & (BATCH - 1)) === BATCH - 1) {
        Atomics.add(i32, progressIdx, 1);
        vcpuPollKick(vm);
        if (Atomics.load(i32, CTL_ABORT) !== 0) throw new EmulatorError('ERR_ABORTED', 'run aborted');
        if (Atomics.load(i32, CTL_PHASE_ID) !== acc.phase) {
          this.#notePhase();
          acc = this.#acc;
        }
        if (stopIfGoChanges >= 0 && Atomics.load(i32, CTL_VCPU_GO) !== stopIfGoChanges) return false;
      }
    }
    Atomics.add(i32, progressIdx, 1);
    return true;
  }

  /** EMULATE_FAULT_INJECT (tests only): fail vCPU 0 on its first dirty pass. */
  #maybeInjectFault(): void {
    this.#dirtyPasses++;
    const f = this.#task.faultInject;
    if (f === null || this.#task.vcpuId !== 0 || this.#dirtyPasses !== 1) return;
    if (f === 'vcpu-throw') throw new Error('injected failure (EMULATE_FAULT_INJECT=vcpu-throw)');
    if (f === 'vcpu-exit') process.exit(7);
    if (f === 'vcpu-hang') {
      // Park forever on a private word: no progress, so the watchdog must fire.
      const never = new Int32Array(new SharedArrayBuffer(4));
      for (;;) Atomics.wait(never, 0, 0, 1000);
    }
  }
}
