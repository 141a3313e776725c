/**
 * `memstress`: dirty_log_perf_test's guest (memstress_guest_code, kvm-eager-split.md §4.3).
 *
 * Each pass visits every 4K page of the vCPU's region once: in order, or with -a in random order
 * with replacement (memstress draws `random % pages`); each access is a write with probability
 * -w percent, otherwise a read. The populate pass writes every page once in order. The random
 * stream is seeded with seed + vCPU index, as memstress seeds each vCPU, and draws the page
 * first, then the write choice, one pass after another.
 */
import { Rng } from '../mmu/rng.js';
import type { PassKind, Workload, WorkloadAccess, WorkloadDefinition, WorkloadParams } from './workload.js';

class Memstress implements Workload {
  readonly #firstGfn: number;
  readonly #npages: number;
  readonly #writePercent: number;
  readonly #randomAccess: boolean;
  readonly #rng: Rng;
  /** Current pass: random order, and percentage of writes. */
  #random = false;
  #wp = 100;

  constructor(p: WorkloadParams) {
    this.#firstGfn = p.region.firstGfn;
    this.#npages = p.region.npages;
    this.#writePercent = p.writePercent;
    this.#randomAccess = p.randomAccess;
    this.#rng = new Rng((p.seed + p.vcpuId) | 0);
  }

  beginPass(pass: PassKind): number {
    const populate = pass === 'populate';
    this.#random = !populate && this.#randomAccess;
    this.#wp = populate ? 100 : this.#writePercent;
    return this.#npages;
  }

  next(i: number, out: WorkloadAccess): void {
    const n = this.#npages;
    const p = this.#random ? this.#rng.nextU32() % n : i;
    const wp = this.#wp;
    out.gfn = this.#firstGfn + p;
    out.kind = wp === 100 || (wp > 0 && this.#rng.nextU32() % 100 < wp) ? 'write' : 'read';
  }
}

export const memstress: WorkloadDefinition = Object.freeze({
  name: 'memstress',
  summary: "dirty_log_perf_test's guest: every page of the vCPU's region per pass, -w % writes, -a random order",
  create: (p: WorkloadParams): Workload => new Memstress(p),
});
