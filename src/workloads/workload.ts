/**
 * Guest workloads: what each vCPU's guest code does, as a registered strategy (like the split
 * allocation designs). The vCPU thread (workers/vcpu.worker.ts) owns everything around it (the
 * pass protocol, the dirty-log oracle, timing); a workload only says, access by access, which gfn
 * it touches and how ('read', 'write' or 'exec').
 *
 * Hot-loop contract: the vCPU calls `beginPass` once per pass, then `next(i, out)` for
 * i = 0 .. n-1, and `next` fills the vCPU's one reusable `out` object. One workload instance per
 * vCPU thread, so the call site stays monomorphic, and nothing is allocated per access.
 *
 * Adding a workload: one file exporting a WorkloadDefinition, plus one line in WORKLOADS (registry.ts).
 * Knobs: `--workload NAME:key=value,...`; the definition lists the keys it accepts (`knobs`), the
 * registry parses and range-checks them, and the instance reads `params.knobs`.
 */
import type { AccessKind } from '../mmu/access_kind.js';

/** The vCPU pass kinds (control.ts PASS_*): populate touches every page once; dirty is the workload's pass. */
export type PassKind = 'populate' | 'dirty';

/** One access, filled by Workload.next into the vCPU's reusable object. */
export interface WorkloadAccess {
  gfn: number;
  kind: AccessKind;
}

export function createWorkloadAccess(): WorkloadAccess {
  return { gfn: 0, kind: 'read' };
}

/** What a workload instance is built from: the vCPU and its region plus the selftest's knobs. */
export interface WorkloadParams {
  readonly vcpuId: number;
  /** The vCPU's own region: `npages` 4K pages from `firstGfn` (memstress partitions memory). */
  readonly region: { readonly firstGfn: number; readonly npages: number };
  /** -w: percentage of accesses that are writes. */
  readonly writePercent: number;
  /** -a: random page order. */
  readonly randomAccess: boolean;
  /** -r: the run's seed (each workload derives its per-vCPU stream from it). */
  readonly seed: number;
  /**
   * The knobs given after the name (`--workload NAME:key=value,...`), parsed and range-checked
   * against the definition's `knobs` (registry.ts); a knob left out is absent here.
   */
  readonly knobs?: Readonly<Record<string, number>>;
}

/** One key=value knob a workload accepts: a number in [min, max] (an integer if `integer`). */
export interface WorkloadKnob {
  readonly key: string;
  readonly help: string;
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
  /** The default, shown in --help (the workload applies it; memstress's defaults come from -w / -a). */
  readonly shownDefault: string;
}

export interface Workload {
  /** Start a pass of `pass` kind; returns the accesses it makes. */
  beginPass(pass: PassKind): number;
  /** Access `i` of the current pass, into `out`. */
  next(i: number, out: WorkloadAccess): void;
}

export interface WorkloadDefinition {
  /** The --workload name. */
  readonly name: string;
  /** One line for --help and reports. */
  readonly summary: string;
  /** The key=value knobs it accepts (none when absent). */
  readonly knobs?: readonly WorkloadKnob[];
  /** Cross-knob check of a parsed spec's knobs: a one-line reason, or undefined when they fit. */
  readonly checkKnobs?: (knobs: Readonly<Record<string, number>>) => string | undefined;
  create(params: WorkloadParams): Workload;
}
