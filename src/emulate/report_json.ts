/**
 * `--json FILE`: the Report as JSON (schema: report.schema.json, JSON Schema draft 2020-12, whose
 * `$id` carries `schemaVersion`; the same in prose: REPORT_SCHEMA.md).
 *
 * The Report is already plain data; this module puts `$schema` (the schema's `$id`) first, checks
 * that every REQUIRED key of the schema is present before writing (a self-check that keeps the
 * doc and the code in step), and validates the output path before the run starts so that a typo
 * costs nothing.
 */
import { REPORT_SCHEMA_VERSION } from './report_model.js';
import type { Report } from './report_model.js';

/** The `$id` of report.schema.json: the report's `$schema` names the schema of its version. */
export const REPORT_SCHEMA_ID = `urn:kvm-eager-split-emu:emulate-report:${REPORT_SCHEMA_VERSION}`;

/** Dotted paths every report must have (the REQUIRED keys of REPORT_SCHEMA.md). `*` = every element or key. */
export const REQUIRED_KEYS: readonly string[] = [
  'schemaVersion',
  'config',
  'host',
  'host.cores',
  'host.nodeVersion',
  'host.vcpusPerCore',
  'phases.*.name',
  'phases.*.seconds',
  'iterations.*.dirtyMemorySeconds',
  'iterations.*.getDirtyLogSeconds',
  'iterations.*.clearDirtyLogSeconds',
  'vcpu.faultLatencyNs.*.p50',
  'vcpu.faultLatencyNs.*.p99',
  'vcpu.faultLatencyNs.*.max',
  'vcpu.faultLatencyNs.*.count',
  ...['readWaitNs', 'writeWaitNs', 'writeHoldNs'].flatMap((k) => ['p50', 'p99', 'max'].map((p) => `mmuLock.${k}.${p}`)),
  ...['hugePagesSplit', 'tablesAllocated', 'lockDrops', 'restarts', 'spteReads', 'yields', 'allocFailures'].map((k) => `split.${k}`),
  'rcu.gracePeriods',
  'rcu.deferredFrees',
  'pages.4k',
  'pages.2m',
  'pages.1g',
  'invariants.ok',
  'invariants.violations',
];

/** Missing required paths in `obj` (empty = valid). */
export function missingRequiredKeys(obj: unknown): string[] {
  const missing: string[] = [];
  const walk = (v: unknown, parts: readonly string[], path: string): void => {
    if (parts.length === 0) {
      if (v === undefined) missing.push(path);
      return;
    }
    const [head, ...rest] = parts as [string, ...string[]];
    if (v === null || typeof v !== 'object') {
      missing.push(path === '' ? head : `${path}.${head}`);
      return;
    }
    if (head === '*') {
      const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
      for (const [k, x] of entries) walk(x, rest, `${path}.${k}`);
      return;
    }
    walk((v as Record<string, unknown>)[head], rest, path === '' ? head : `${path}.${head}`);
  };
  for (const key of REQUIRED_KEYS) walk(obj, key.split('.'), '');
  if ((obj as { schemaVersion?: unknown } | null)?.schemaVersion !== REPORT_SCHEMA_VERSION) missing.push('schemaVersion (wrong value)');
  return missing;
}

export function reportToJson(r: Report): string {
  const missing = missingRequiredKeys(r);
  if (missing.length > 0) throw new Error(`report JSON is missing required keys: ${missing.join(', ')}`);
  return `${JSON.stringify({ $schema: REPORT_SCHEMA_ID, ...r }, null, 2)}\n`;
}
