/**
 * `memstress`: dirty_log_perf_test's guest (memstress_guest_code, kvm-eager-split.md §4.3).
 *
 * Each pass visits every 4K page of the vCPU's region once: in order, or with -a in random order
 * with replacement (memstress draws `random % pages`); each access is a write with probability
 * -w percent, otherwise a read. The populate pass writes every page once in order. The random
 * stream is seeded with seed + vCPU index, as memstress seeds each vCPU, and draws the page
 * first, then the write choice, one pass after another.
 *
 * Knobs (`--workload memstress:write=PCT,random=0|1`): `write` and `random` mean what -w and -a
 * mean; a knob given in the spec overrides the flag (the spec is the more specific of the two),
 * and a knob left out keeps the flag's value, so `-w 30` alone still works.
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
    this.#writePercent = p.knobs?.['write'] ?? p.writePercent;
    this.#randomAccess = p.knobs?.['random'] === undefined ? p.randomAccess : p.knobs['random'] === 1;
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
  knobs: [
    { key: 'write', help: 'percentage of accesses that are writes (overrides -w)', min: 0, max: 100, integer: true, shownDefault: '-w' },
    { key: 'random', help: '1 = random page order (overrides -a), 0 = in order', min: 0, max: 1, integer: true, shownDefault: '-a' },
  ],
  create: (p: WorkloadParams): Workload => new Memstress(p),
});
