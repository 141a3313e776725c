/**
 * A worker's stat slot in the control SAB: WORKER_STAT_FIELDS Float64 counters, indexed by the
 * table in worker_stats.ts (`WS.*`). The owning worker writes it with plain stores; the main
 * thread reads every slot (sumStats). worker_stats.ts says why those reads are safe.
 *
 * Below the MMU: src/mmu (allocator, caches, mmu_lock) counts into a WorkerStats without
 * knowing the VM that created it.
 */
import { invalidArg } from '../errors.js';
import { WORKER_STAT_FIELDS } from '../layout.js';
import type { ControlLayout } from '../layout.js';
import { STAT_ROWS, WORKER_STAT_NAMES } from './worker_stats.js';

// Load-time checks of the table against the slot (TypeScript has no static_assert).
if (STAT_ROWS.length > WORKER_STAT_FIELDS) {
  throw new Error(`worker stats: ${STAT_ROWS.length} counters in worker_stats.ts but ${WORKER_STAT_FIELDS} Float64 fields per slot (layout.ts)`);
}
if (new Set(WORKER_STAT_NAMES).size !== WORKER_STAT_NAMES.length) throw new Error('worker stats: duplicate counter key in worker_stats.ts');

/** This worker's stat slot. Single writer (the owning worker): plain loads and stores. */
export class WorkerStats {
  readonly workerId: number;
  readonly #f: Float64Array;

  constructor(control: SharedArrayBuffer, layout: ControlLayout, workerId: number) {
    if (!Number.isInteger(workerId) || workerId < 0 || workerId >= layout.workers) {
      throw invalidArg('WorkerStats', `workerId ${workerId} must be in [0, ${layout.workers})`);
    }
    this.workerId = workerId;
    this.#f = new Float64Array(control, layout.workerStatsBase * 4 + workerId * WORKER_STAT_FIELDS * 8, WORKER_STAT_FIELDS);
  }

  add(field: number, n: number): void {
    this.#f[field]! += n;
  }

  get(field: number): number {
    return this.#f[field]!;
  }

  /** Zero every field (between phases; only the owner may call it). */
  reset(): void {
    this.#f.fill(0);
  }

  /** Named copy of the slot. */
  snapshot(): Record<string, number> {
    return statsRecord(this.#f);
  }
}

/** Counters by name, from a slot-shaped array. */
function statsRecord(f: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  WORKER_STAT_NAMES.forEach((name, i) => {
    out[name] = f[i]!;
  });
  return out;
}

/** Totals over every worker's stat slot, by name. */
export function sumStatSlots(control: SharedArrayBuffer, layout: ControlLayout): Record<string, number> {
  const all = new Float64Array(control, layout.workerStatsBase * 4, layout.workers * WORKER_STAT_FIELDS);
  const sum = new Float64Array(WORKER_STAT_FIELDS);
  for (let w = 0; w < layout.workers; w++) {
    for (let f = 0; f < WORKER_STAT_FIELDS; f++) sum[f]! += all[w * WORKER_STAT_FIELDS + f]!;
  }
  return statsRecord(sum);
}

/** Zero every worker's slot (between runs, with every worker quiescent). */
export function resetStatSlots(control: SharedArrayBuffer, layout: ControlLayout): void {
  new Float64Array(control, layout.workerStatsBase * 4, layout.workers * WORKER_STAT_FIELDS).fill(0);
}
