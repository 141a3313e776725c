/**
 * `exec`: execute_perf_test's guest (kvm-faults-and-dirty-tracking.md §3): populate by writing
 * every page of the vCPU's region once, in order; then every pass executes from every page, in
 * order (kind 'exec', an instruction fetch per 4K page). With NX huge pages the populate pass maps
 * the region with non-executable huge pages, so the first execute pass takes one execute fault per
 * huge page (split on fault, 6.2+) or one per 4K page (zap on fault, before 6.2: every other page
 * of the zapped region faults in again on its own): the comparison the test was written for.
 */
import type { PassKind, Workload, WorkloadAccess, WorkloadDefinition, WorkloadParams } from './workload.js';

class ExecGuest implements Workload {
  readonly #firstGfn: number;
  readonly #npages: number;
  #populate = true;

  constructor(p: WorkloadParams) {
    this.#firstGfn = p.region.firstGfn;
    this.#npages = p.region.npages;
  }

  beginPass(pass: PassKind): number {
    this.#populate = pass === 'populate';
    return this.#npages;
  }

  next(i: number, out: WorkloadAccess): void {
    out.gfn = this.#firstGfn + i;
    out.kind = this.#populate ? 'write' : 'exec';
  }
}

export const exec: WorkloadDefinition = Object.freeze({
  name: 'exec',
  summary: "execute_perf_test's guest: populate by writing every page, then execute from every page each pass",
  create: (p: WorkloadParams): Workload => new ExecGuest(p),
});
