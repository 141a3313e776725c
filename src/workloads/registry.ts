/**
 * The workload registry: every guest workload by its --workload name. Adding a workload is one
 * file exporting a WorkloadDefinition (workload.ts) plus one line in WORKLOADS below.
 */
import { memstress } from './memstress.js';
import type { Workload, WorkloadDefinition, WorkloadParams } from './workload.js';

/** Every workload, in --help order. Register a new one here (one line). */
const WORKLOADS: readonly WorkloadDefinition[] = [memstress];

const byName = new Map<string, WorkloadDefinition>(WORKLOADS.map((w) => [w.name, w]));
if (byName.size !== WORKLOADS.length) throw new Error('workloads: duplicate name');

/** The default workload: dirty_log_perf_test's guest. */
export const DEFAULT_WORKLOAD = memstress.name;

export function workloadNames(): string[] {
  return [...byName.keys()];
}

export function workloadDefinition(name: string): WorkloadDefinition | undefined {
  return byName.get(name);
}

/** A workload instance for one vCPU; throws for an unknown name (options.ts checks names first). */
export function createWorkload(name: string, params: WorkloadParams): Workload {
  const def = byName.get(name);
  if (def === undefined) throw new Error(`unknown workload ${JSON.stringify(name)}; expected one of ${workloadNames().join(', ')}`);
  return def.create(params);
}
