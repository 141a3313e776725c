/**
 * The workload registry: every guest workload by its --workload name. Adding a workload is one
 * file exporting a WorkloadDefinition (workload.ts) plus one line in WORKLOADS below.
 *
 * A workload spec is `NAME` or `NAME:key=value,key=value`; parseWorkloadSpec checks the name and
 * every key against the definition's knobs (ranges included), so options.ts can refuse a bad spec
 * with one line before any work starts, and createWorkload parses the same string in each vCPU.
 */
import { exec } from './exec.js';
import { memstress } from './memstress.js';
import { oltp } from './oltp.js';
import type { Workload, WorkloadDefinition, WorkloadParams } from './workload.js';

/** Every workload, in --help order. Register a new one here (one line). */
const WORKLOADS: readonly WorkloadDefinition[] = [memstress, oltp, exec];

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

export interface WorkloadSpec {
  readonly name: string;
  readonly knobs: Readonly<Record<string, number>>;
}

/** A bad spec: the message is one line, meant to follow the option's name. */
export class WorkloadSpecError extends Error {}

/** Parse `NAME[:key=value,...]`; throws WorkloadSpecError naming the bad part. */
export function parseWorkloadSpec(raw: string): WorkloadSpec {
  const s = raw.trim();
  const colon = s.indexOf(':');
  const name = colon < 0 ? s : s.slice(0, colon);
  const def = byName.get(name);
  if (def === undefined) throw new WorkloadSpecError(`unknown workload ${JSON.stringify(name)}; expected one of ${workloadNames().join(', ')}`);
  const knobs: Record<string, number> = {};
  if (colon < 0) return { name, knobs };
  const known = def.knobs ?? [];
  const keys = known.map((k) => k.key).join(', ') || 'none';
  for (const part of s.slice(colon + 1).split(',')) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    const knob = known.find((k) => k.key === key);
    if (knob === undefined) throw new WorkloadSpecError(`workload ${name} has no knob ${JSON.stringify(key)} (knobs: ${keys})`);
    if (eq < 0) throw new WorkloadSpecError(`workload ${name}: knob ${key} needs a value (${key}=N)`);
    if (Object.hasOwn(knobs, key)) throw new WorkloadSpecError(`workload ${name}: knob ${key} given twice`);
    const text = part.slice(eq + 1).trim();
    const v = Number(text);
    if (text === '' || !Number.isFinite(v) || (knob.integer && !Number.isInteger(v)) || v < knob.min || v > knob.max) {
      throw new WorkloadSpecError(
        `workload ${name}: ${key}=${JSON.stringify(text)} must be ${knob.integer ? 'an integer' : 'a number'} in [${knob.min}, ${knob.max}]`,
      );
    }
    knobs[key] = v;
  }
  const why = def.checkKnobs?.(knobs);
  if (why !== undefined) throw new WorkloadSpecError(`workload ${name}: ${why}`);
  return { name, knobs };
}

/** A workload instance for one vCPU from a spec (`NAME[:key=value,...]`); throws for a bad spec (options.ts checks first). */
export function createWorkload(spec: string, params: WorkloadParams): Workload {
  const { name, knobs } = parseWorkloadSpec(spec);
  const def = byName.get(name)!;
  return def.create({ ...params, knobs: { ...params.knobs, ...knobs } });
}
