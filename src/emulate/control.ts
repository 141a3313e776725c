/**
 * The emulator's run-control block: a small SharedArrayBuffer through which the main thread
 * drives the vCPU and splitter workers through the dirty_log_perf_test phases, and the workers
 * report completion and progress. It is separate from the VM's buffers (src/layout.ts), which
 * hold the MMU state; nothing here is touched by MMU code.
 *
 * Why shared words and not one task per phase: a piscina task can land on any thread, but a vCPU
 * keeps per-thread state for the whole run (its attached Vm, RCU reader slot, fault cache,
 * histograms), and in --steady and -e modes vCPUs must keep running WHILE the splitter works.
 * So each worker runs one long task, parked in Atomics.wait between phases, exactly like the
 * selftest's vCPU threads spinning on `iteration`.
 *
 *   Int32 index (each group on its own 64-B line; per-worker slots padded to 64 B)
 *   +---------------------------------------------------------------------------------+
 *   | line 0  VCPU_GO, VCPU_MODE, PHASE_ID, PASS_KIND, VCPU_DONE, VCPU_EXITED, READY  |
 *   | line 1  CMD_SEQ, CMD_OP, CMD_PHASE, CMD_DONE                                    |
 *   | line 2  ABORT, HOST_STOP                                                        |
 *   | line 3  BigInt64 [24] PASS_START_NS [25] PASS_END_NS [26] CMD_NS [27] CMD_DIRTY |
 *   |         [28] CMD_START_NS                                                       |
 *   | slot w  per actor, w = Role.controlSlot from the run plan (run_plan.ts):        |
 *   |         [0] PASSES_DONE  [1] PROGRESS  [2] STATE                                |
 *   +---------------------------------------------------------------------------------+
 *
 * Protocols (numbered steps; each Atomics call names its partner):
 *
 * A vCPU pass (populate, or one dirty-memory iteration):
 *  1. main: PHASE_ID, PASS_KIND, VCPU_MODE = MODE_PASS; VCPU_DONE = 0; PASS_START_NS = now.
 *  2. main: Atomics.add(VCPU_GO, 1) + notify; vCPUs parked on VCPU_GO wake (pairs with step 3's wait).
 *  3. vCPU: waits until VCPU_GO > its passes done; runs one pass over its region.
 *  4. vCPU: PASSES_DONE++; `Atomics.add(VCPU_DONE, 1)`; the vCPU that brings it to `vcpus` stores
 *     PASS_END_NS, then publishes it with one more `Atomics.add(VCPU_DONE, 1)` (to `vcpus + 1`) and
 *     notifies VCPU_DONE (pairs with main's waitAsync in step 5). Main must not stop at `vcpus`: it
 *     could then read the previous pass's PASS_END_NS (a negative phase time was seen at 32 vCPUs).
 *  5. main: waitAsync(VCPU_DONE) until it reaches `vcpus + 1`; phase time = PASS_END_NS -
 *     PASS_START_NS, the selftest's "wall time until all vCPUs finish".
 *
 * Free-running vCPUs (-e during disable, and --steady): VCPU_MODE = MODE_FREE then VCPU_GO++;
 * vCPUs run passes back to back, re-reading PHASE_ID every batch so their samples land in the
 * phase they happened in, until VCPU_MODE changes. MODE_STOP ends the vCPU task.
 *
 * A splitter command (an "ioctl"):
 *  1. main: CMD_OP, CMD_PHASE; Atomics.add(CMD_SEQ, 1) + notify (pairs with the splitter's wait).
 *  2. splitter: runs the op, timing it itself (CMD_START_NS, CMD_NS), stores results (CMD_DIRTY),
 *     then Atomics.store(CMD_DONE, seq) + notify (pairs with main's waitAsync on CMD_DONE).
 *
 * The host-events thread (host_events.worker.ts) runs on its own clock for the whole plan; when
 * the steps are done, main stores HOST_STOP = 1 + notify (pairs with the thread's Atomics.wait
 * between events); the thread finishes the event in hand (an invalidation's start and end
 * together) and exits, setting its STATE to EXITED + notify (pairs with main's waitAsync).
 *
 * ABORT: set by the main thread (Ctrl-C, watchdog, a failed worker); every wait loop in the
 * workers re-checks it at least every WAIT_SLICE_MS, so a worker never sleeps through a stop.
 */

/** Who writes / who reads each field is in the comment beside it. */
export const CTL_VCPU_GO = 0; // main writes (Atomics.add), vCPUs wait on it
export const CTL_VCPU_MODE = 1; // main writes, vCPUs read: MODE_*
export const CTL_PHASE_ID = 2; // main writes, all workers read: index into the run's phase list
export const CTL_PASS_KIND = 3; // main writes, vCPUs read: PASS_*
export const CTL_VCPU_DONE = 4; // vCPUs Atomics.add, main waits: vCPUs done with the current pass
export const CTL_VCPU_EXITED = 5; // vCPUs Atomics.add when their task ends; the splitter waits on it
export const CTL_READY = 6; // every actor Atomics.add once attached; main waits for all of the plan's roles
export const CTL_CMD_SEQ = 16; // main Atomics.add, splitter waits: the latest command number
export const CTL_CMD_OP = 17; // main writes before CMD_SEQ: OP_*
export const CTL_CMD_PHASE = 18; // main writes before CMD_SEQ: the phase the op's samples belong to
export const CTL_CMD_DONE = 19; // splitter Atomics.store + notify: the last command finished
export const CTL_ABORT = 32; // main writes 1 to stop everything; every worker loop reads it
export const CTL_HOST_STOP = 33; // main writes 1 + notify when the plan's steps are done; the host-events thread waits on it

/** BigInt64 indices on line 3 (BigInt64 index k covers Int32 2k and 2k+1: line 3 = Int32 48..63). */
export const CTL64_PASS_START_NS = 24; // main writes before VCPU_GO
export const CTL64_PASS_END_NS = 25; // the last vCPU to finish writes before notifying VCPU_DONE
export const CTL64_CMD_NS = 26; // splitter: duration of the last op
export const CTL64_CMD_DIRTY = 27; // splitter: dirty pages the last GET returned
export const CTL64_CMD_START_NS = 28; // splitter: when the last op started (for the progress line)

/** Per-worker slots start at Int32 64 (after line 3), 16 Int32s (64 B) each. */
const CTL_SLOTS_BASE = 64;
const CTL_SLOT_INT32S = 16;
export const SLOT_PASSES_DONE = 0; // the worker writes; main and watchdog read
export const SLOT_PROGRESS = 1; // the worker bumps it every batch of work; the watchdog reads it
export const SLOT_STATE = 2; // the worker writes WSTATE_*; the watchdog prints it

export const MODE_PASS = 0;
export const MODE_FREE = 1;
export const MODE_STOP = 2;

export const PASS_POPULATE = 0; // every page written once, sequentially (memstress iteration 0)
export const PASS_DIRTY = 1; // -w and -a apply

export const OP_ENABLE = 1;
export const OP_GET = 2;
export const OP_CLEAR = 3;
export const OP_DISABLE = 4;
export const OP_CHECK = 5; // run the invariant checker (all vCPUs have exited)
export const OP_STOP = 6; // end the splitter task

export const OP_NAMES: Readonly<Record<number, string>> = {
  [OP_ENABLE]: 'enable dirty logging',
  [OP_GET]: 'GET_DIRTY_LOG',
  [OP_CLEAR]: 'CLEAR_DIRTY_LOG',
  [OP_DISABLE]: 'disable dirty logging',
  [OP_CHECK]: 'invariant check',
  [OP_STOP]: 'stop',
};

/** Worker states, for the watchdog's dump (0, the slot's initial value, is 'starting'). */
export const WSTATE_PARKED = 1;
export const WSTATE_RUNNING = 2;
export const WSTATE_EXITED = 3;
export const WSTATE_NAMES = ['starting', 'parked', 'running', 'exited'] as const;

/** Accesses a vCPU makes between bumps of its PROGRESS word (and PHASE_ID/ABORT checks). */
export const VCPU_BATCH = 256;

/** Workers re-check ABORT at least this often while parked. */
export const WAIT_SLICE_MS = 100;

function controlInt32s(workers: number): number {
  return CTL_SLOTS_BASE + workers * CTL_SLOT_INT32S;
}

/** The control block as plain data (structured-clonable into every task). */
export interface ControlShared {
  readonly sab: SharedArrayBuffer;
  /** vCPU workers: VCPU_DONE counts up to this. */
  readonly vcpus: number;
  /** Per-actor slots (the run plan's roles; each role's controlSlot is below this). */
  readonly slots: number;
}

export function createControl(vcpus: number, slots: number): ControlShared {
  return { sab: new SharedArrayBuffer(controlInt32s(slots) * 4), vcpus, slots };
}

/** Views over the control block, for either side. */
export class Control {
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  readonly vcpus: number;
  readonly slots: number;

  constructor(shared: ControlShared) {
    this.i32 = new Int32Array(shared.sab);
    this.i64 = new BigInt64Array(shared.sab);
    this.vcpus = shared.vcpus;
    this.slots = shared.slots;
    if (this.i32.length < controlInt32s(shared.slots)) {
      throw new RangeError(`control: buffer of ${this.i32.length} Int32s is too small for ${shared.slots} actor slots`);
    }
  }

  /** Int32 index of field `f` of actor slot `w` (a Role's controlSlot). */
  slot(w: number, f: number): number {
    return CTL_SLOTS_BASE + w * CTL_SLOT_INT32S + f;
  }

  aborted(): boolean {
    return Atomics.load(this.i32, CTL_ABORT) !== 0;
  }

  /** Sum of every worker's progress counter: the watchdog's heartbeat. */
  totalProgress(): number {
    let sum = 0;
    for (let w = 0; w < this.slots; w++) sum += Atomics.load(this.i32, this.slot(w, SLOT_PROGRESS));
    return sum;
  }
}

/**
 * Atomics.waitAsync (V8, Node >= 16; missing from TypeScript's es2023 lib): a wait that does not
 * block the event loop. Resolves 'ok' on notify, 'not-equal' at once, 'timed-out' after timeoutMs.
 */
export function waitAsync(view: Int32Array, index: number, value: number, timeoutMs: number): Promise<'ok' | 'not-equal' | 'timed-out'> {
  const wa = (
    Atomics as unknown as {
      waitAsync(v: Int32Array, i: number, x: number, t: number): { async: boolean; value: 'ok' | 'not-equal' | 'timed-out' | Promise<'ok' | 'timed-out'> };
    }
  ).waitAsync(view, index, value, timeoutMs);
  return wa.async ? (wa.value as Promise<'ok' | 'timed-out'>) : Promise.resolve(wa.value as 'not-equal' | 'timed-out');
}

/** A monotonic, process-wide clock in ns (CLOCK_MONOTONIC: the same in every thread). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

// Load-time layout checks: lines do not overlap and BigInt64 fields sit past the Int32 lines.
(() => {
  const int32Fields = [CTL_VCPU_GO, CTL_VCPU_MODE, CTL_PHASE_ID, CTL_PASS_KIND, CTL_VCPU_DONE, CTL_VCPU_EXITED, CTL_READY];
  if (Math.max(...int32Fields) >= 16) throw new Error('control: line 0 overflow');
  if (CTL_CMD_DONE >= 32 || CTL_ABORT >= 48 || CTL_HOST_STOP >= 48) throw new Error('control: line 1/2 overflow');
  const first64 = CTL64_PASS_START_NS * 2;
  const last64 = CTL64_CMD_START_NS * 2 + 1;
  if (first64 < 48 || last64 >= CTL_SLOTS_BASE) throw new Error('control: BigInt64 fields overlap');
  if (SLOT_STATE >= CTL_SLOT_INT32S) throw new Error('control: slot overflow');
})();
