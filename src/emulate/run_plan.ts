/**
 * The run plan: what one emulation run is, as data. The configuration produces
 *   - the roles: every actor thread (each vCPU, the splitter), each with its Vm worker id (its RCU
 *     reader slot and stat slot; 0 is the main thread) and its slot in the run-control block
 *     (control.ts). All actor numbering comes from here: no other file adds 1 or 2 to a vCPU
 *     count. A new actor (a host-events thread, say) is one more role kind in `planRoles`, plus
 *     its worker file and task in engine.ts;
 *   - the steps: today's dirty_log_perf_test flow, with the phase names the report uses
 *       populate                          vCPUs write every page once (faults map at the backing size)
 *       enable                            splitter: enable dirty logging (eager split under the read
 *                                         lock unless manual-protect + initially-set defers it to CLEAR)
 *       iteration k dirty / get / clear   for k = 1..N: vCPUs dirty their regions, then the splitter
 *                                         runs GET_DIRTY_LOG and, with manual-protect, CLEAR_DIRTY_LOG
 *       disable                           splitter: disable dirty logging (-e: vCPUs keep running)
 *     Steady mode adds an untimed warm-up and "steady before", "steady after" and "steady after
 *     disable" windows, and keeps the vCPUs running through every phase.
 * The engine (engine.ts) only executes a plan. Pure: unit-tested without threads.
 */
import type { EmulateOptions } from './options.js';
import type { PhaseKind } from './report_model.js';
import { hostEventsActive } from './host_events.js';
import type { HostEventsProfile } from './host_events.js';

/** An actor thread's kind; each kind runs one worker file (engine.ts). */
export type RoleKind = 'vcpu' | 'splitter' | 'host-events';

export interface Role {
  readonly kind: RoleKind;
  /** For dumps and errors: "vCPU 3", "splitter". */
  readonly name: string;
  /** attachVm(shared, workerId): its RCU reader slot and stat slot. 0 is the main thread. */
  readonly workerId: number;
  /** Its per-worker slot in the run-control block (control.ts: PASSES_DONE, PROGRESS, STATE). */
  readonly controlSlot: number;
  /** vCPU index (its memstress region); null for other roles. */
  readonly vcpuId: number | null;
}

export interface RunRoles {
  /** Every actor, in control-slot order. */
  readonly roles: readonly Role[];
  readonly vcpus: readonly Role[];
  readonly splitter: Role;
  /** The host-events thread (MMU notifiers, aging: host_events.worker.ts); null when its profile is none. */
  readonly hostEvents: Role | null;
  /** Vm workers to size the VM for: the main thread plus every actor. */
  readonly vmWorkers: number;
}

/** The main thread's Vm worker id (it attaches to read counters and page stats). */
export const MAIN_WORKER_ID = 0;

/** The actors of a run with `vcpus` vCPUs: vCPUs first (slots 0..vcpus-1), then the splitter, then the host-events thread if any. */
export function planRoles(vcpus: number, opts: { readonly hostEvents?: boolean } = {}): RunRoles {
  if (!Number.isInteger(vcpus) || vcpus < 1) throw new RangeError(`run plan: vcpus must be a positive integer (got ${vcpus})`);
  const roles: Role[] = [];
  const add = (kind: RoleKind, name: string, vcpuId: number | null): Role => {
    const slot = roles.length;
    const r: Role = Object.freeze({ kind, name, workerId: MAIN_WORKER_ID + 1 + slot, controlSlot: slot, vcpuId });
    roles.push(r);
    return r;
  };
  const v = Array.from({ length: vcpus }, (_, i) => add('vcpu', `vCPU ${i}`, i));
  const splitter = add('splitter', 'splitter', null);
  const hostEvents = opts.hostEvents === true ? add('host-events', 'host events', null) : null;
  return Object.freeze({ roles: Object.freeze(roles), vcpus: Object.freeze(v), splitter, hostEvents, vmWorkers: roles.length + 1 });
}

/** A splitter command (an "ioctl"); the engine maps it to control.ts's OP_*. */
export type SplitterOp = 'enable' | 'get' | 'clear' | 'disable';

/** One step of the flow. Every step but 'free-run' is a phase of the report, named `name`. */
export type Step =
  /** vCPUs make one synchronous pass over their regions (control.ts "A vCPU pass"). */
  | { readonly type: 'pass'; readonly name: string; readonly kind: PhaseKind; readonly iteration: number | null; readonly pass: 'populate' | 'dirty' }
  /** The splitter runs one op while vCPUs stay parked (or free-run, in steady and -e). */
  | { readonly type: 'op'; readonly name: string; readonly kind: PhaseKind; readonly iteration: number | null; readonly op: SplitterOp }
  /** Steady: start free-running vCPUs and wait, untimed, until their access rate settles. */
  | { readonly type: 'warm-up'; readonly name: string }
  /** Steady: the vCPUs free-run for --steady-seconds. */
  | { readonly type: 'window'; readonly name: string }
  /** Steady: free-running vCPUs until each finishes one more pass of its region. */
  | { readonly type: 'steady-dirty'; readonly name: string; readonly iteration: number }
  /** -e: vCPUs start free-running (their samples filed under the next step's phase); wait until all run. */
  | { readonly type: 'free-run' };

export interface RunPlan extends RunRoles {
  readonly steps: readonly Step[];
  readonly iterations: number;
}

/** The options the flow depends on. */
export type PlanOptions = Pick<EmulateOptions, 'vcpus' | 'iterations' | 'steady' | 'manualProtect' | 'vcpusRunDuringDisable'> & {
  /** The host-events actor joins the plan when its profile has any event. */
  readonly hostEvents?: HostEventsProfile;
};

export function planRun(o: PlanOptions): RunPlan {
  const steps: Step[] = [{ type: 'pass', name: 'populate', kind: 'populate', iteration: null, pass: 'populate' }];
  if (o.steady) steps.push({ type: 'warm-up', name: 'steady warm-up' }, { type: 'window', name: 'steady before' });
  steps.push({ type: 'op', name: 'enable', kind: 'enable', iteration: null, op: 'enable' });
  for (let k = 1; k <= o.iterations; k++) {
    const dirty = `iteration ${k} dirty`;
    steps.push(o.steady ? { type: 'steady-dirty', name: dirty, iteration: k } : { type: 'pass', name: dirty, kind: 'dirty', iteration: k, pass: 'dirty' });
    steps.push({ type: 'op', name: `iteration ${k} get`, kind: 'get', iteration: k, op: 'get' });
    if (o.manualProtect) steps.push({ type: 'op', name: `iteration ${k} clear`, kind: 'clear', iteration: k, op: 'clear' });
  }
  if (o.steady) steps.push({ type: 'window', name: 'steady after' });
  else if (o.vcpusRunDuringDisable) steps.push({ type: 'free-run' });
  steps.push({ type: 'op', name: 'disable', kind: 'disable', iteration: null, op: 'disable' });
  if (o.steady) steps.push({ type: 'window', name: 'steady after disable' });
  const hostEvents = o.hostEvents !== undefined && hostEventsActive(o.hostEvents);
  return Object.freeze({ ...planRoles(o.vcpus, { hostEvents }), steps: Object.freeze(steps), iterations: o.iterations });
}
