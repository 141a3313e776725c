/**
 * The host-events thread: the host's mm acting on the guest's page tables while the guest runs
 * (kvm-faults-and-dirty-tracking.md §4). From the start of the run until the main thread posts
 * HOST_STOP (control.ts), it draws events from one Poisson process per event kind (rates from
 * --host-events, host_events.ts; seeded from --seed) and runs each:
 *
 *   invalidate  invalidate_range_start over a random backing page (mmu_lock for WRITE, zap, TLB
 *               flush), the mm's work on the page (CPU time), invalidate_range_end (WRITE);
 *   age         clear_young over a random range (WRITE through 6.14, RCU only from 6.15).
 *
 * Between events it sleeps offline (RCU) and not runnable (need_resched), so it costs the run
 * nothing but its events. Its lock holds are recorded like every thread's (mmu_lock statistics).
 *
 * The event table, `hostEvents` below, is the one place an event kind is defined. The NX huge
 * page recovery worker (kvm-nx-lpage-recovery) joins it as one more entry calling
 * `recoverNxHugePagesYieldSafe` (nx_huge_pages.ts), with the task's period, lock mode (write
 * through 6.17, read from 6.18) and dirty-logged-slot rule (6.2+), all set from --kernel; until
 * that function exists the entry is absent, not stubbed.
 */
import { recoverNxHugePagesYieldSafe } from '../src/mmu/nx_huge_pages.js';
import { attachVm } from '../src/vm.js';
import { HOST_EVENT_KINDS, openTraceRing, takeTraceRing, TK, traceRing } from '../src/stats/trace_ring.js';
import type { Vm } from '../src/vm.js';
import {
  Control,
  CTL_ABORT,
  CTL_HOST_STOP,
  CTL_READY,
  SLOT_PROGRESS,
  SLOT_STATE,
  WAIT_SLICE_MS,
  WSTATE_EXITED,
  WSTATE_PARKED,
  WSTATE_RUNNING,
} from '../src/emulate/control.js';
import { EmulatorError, workerError } from '../src/errors.js';
import type { HostEventsResult, HostEventsTask, TimingData } from '../src/emulate/messages.js';
import { ageGfnRange, invalidateRangeEnd, invalidateRangeStart } from '../src/mmu/mmu_notifier.js';
import { spendNs } from '../src/mmu/host_costs.js';
import { setRunnable } from '../src/mmu/mmu_resched.js';
import { Rng } from '../src/mmu/rng.js';

/** What one event did, for the result. */
interface Tally {
  invalidations: number;
  agings: number;
  staleLeaves: number;
}

/** One kind of host event: its rate and what it does. */
interface HostEvent {
  readonly kind: (typeof HOST_EVENT_KINDS)[number];
  readonly perSec: number;
  readonly run: (vm: Vm, rng: Rng, tally: Tally) => void;
}

/** A random range of `pages` 4K pages, aligned to `align` pages, inside guest memory. */
function randomRange(task: HostEventsTask, rng: Rng, pages: number, align: number): [number, number] {
  const units = Math.max(1, Math.floor(task.totalPages / align));
  const start = task.firstGfn + Math.floor(rng.nextFloat() * units) * align;
  return [start, Math.min(start + pages, task.firstGfn + task.totalPages)];
}

/** The event table (one entry per kind; an entry with perSec 0 never fires). */
/** NX huge pages on in this VM: the recovery worker has something to recover. */
function nxHugePagesOn(task: HostEventsTask): boolean {
  return task.vm.config.nxHugePages === true;
}

function hostEvents(task: HostEventsTask): HostEvent[] {
  return [
    {
      kind: 'invalidate',
      perSec: task.invalidatePerSec,
      run: (vm, rng, tally) => {
        // Whole backing pages: the mm acts on a folio, and a huge leaf never straddles the range.
        const [start, end] = randomRange(task, rng, task.invalidatePages * task.backingPages, task.backingPages);
        invalidateRangeStart(vm, start, end);
        spendNs(task.invalidateUs * 1000); // the mm's work on the page (copy, unmap), on this CPU
        tally.staleLeaves += invalidateRangeEnd(vm, start, end);
        tally.invalidations++;
      },
    },
    {
      kind: 'age',
      perSec: task.agePerSec,
      run: (vm, rng, tally) => {
        const [start, end] = randomRange(task, rng, task.agePages, Math.min(task.agePages, 512));
        ageGfnRange(vm, start, end, { lock: task.agingLock });
        tally.agings++;
      },
    },
    {
      // kvm-nx-lpage-recovery: one batch per period (every 60 s by default, so only long runs
      // see it); counted in the worker stats (nxRecoveryZaps). Only with NX huge pages on.
      kind: 'nx-recovery',
      perSec: nxHugePagesOn(task) ? 1000 / task.nxRecoveryPeriodMs : 0,
      run: (vm) => {
        recoverNxHugePagesYieldSafe(vm, { lockMode: task.nxRecoveryLock, skipDirtyLogged: task.nxRecoverySkipsDirtyLogged });
      },
    },
  ];
}

export default function hostEventsMain(task: HostEventsTask): HostEventsResult {
  const ctl = new Control(task.control);
  const stateIdx = ctl.slot(task.controlSlot, SLOT_STATE);
  try {
    const vm = attachVm(task.vm, task.workerId);
    openTraceRing(task.trace);
    return runHostEvents(task, vm, ctl);
  } catch (err) {
    throw workerError('host events', err);
  } finally {
    Atomics.store(ctl.i32, stateIdx, WSTATE_EXITED);
    Atomics.notify(ctl.i32, stateIdx); // pairs with the main thread's waitAsync on this slot
  }
}

function runHostEvents(task: HostEventsTask, vm: Vm, ctl: Control): HostEventsResult {
  const i32 = ctl.i32;
  const stateIdx = ctl.slot(task.controlSlot, SLOT_STATE);
  const progressIdx = ctl.slot(task.controlSlot, SLOT_PROGRESS);
  const events = hostEvents(task).filter((e) => e.perSec > 0);
  const total = events.reduce((s, e) => s + e.perSec, 0);
  const rng = new Rng(task.seed + task.workerId);
  const tally: Tally = { invalidations: 0, agings: 0, staleLeaves: 0 };
  vm.rcu.offline();
  Atomics.add(i32, CTL_READY, 1);
  Atomics.notify(i32, CTL_READY); // pairs with the main thread's waitAsync on READY
  let next = performance.now();
  for (;;) {
    Atomics.store(i32, stateIdx, WSTATE_PARKED);
    // Exponential gaps: a Poisson process of rate `total`; an empty table only waits for STOP.
    next += total > 0 ? (-Math.log(rng.nextFloatNonZero()) / total) * 1000 : Number.POSITIVE_INFINITY;
    for (;;) {
      if (Atomics.load(i32, CTL_ABORT) !== 0) throw new EmulatorError('ERR_ABORTED', 'run aborted');
      if (Atomics.load(i32, CTL_HOST_STOP) !== 0) return finish(vm, tally);
      const wait = next - performance.now();
      if (wait <= 0) break;
      Atomics.wait(i32, CTL_HOST_STOP, 0, Math.min(wait, WAIT_SLICE_MS)); // pairs with main's store + notify
    }
    // Which kind: each with probability perSec / total (superposed Poisson processes).
    let pick = rng.nextFloat() * total;
    let ev = events[events.length - 1]!;
    for (const e of events) {
      if (pick < e.perSec) {
        ev = e;
        break;
      }
      pick -= e.perSec;
    }
    Atomics.store(i32, stateIdx, WSTATE_RUNNING);
    setRunnable(vm, true);
    vm.rcu.online();
    const traceT0 = traceRing === null ? 0 : performance.now();
    ev.run(vm, rng, tally);
    if (traceRing !== null) traceRing.span(TK.hostEvent, traceT0, performance.now(), HOST_EVENT_KINDS.indexOf(ev.kind));
    vm.rcu.offline();
    setRunnable(vm, false);
    Atomics.add(i32, progressIdx, 1);
    // A late thread does not burst to catch up: the next gap starts now.
    next = Math.max(next, performance.now());
  }
}

function finish(vm: Vm, tally: Tally): HostEventsResult {
  vm.rcu.online(); // unregister from the online state, as the splitter does
  vm.rcu.unregister();
  return { type: 'host-events-result', ...tally, timing: vm.takeTiming() as unknown as TimingData, ...takeTraceRing() };
}
