/**
 * The number a reproduce row reads from one run's JSON report (reproduce_rows.ts MetricRef).
 * Pure and defensive: the report is parsed JSON of any schema version, so every field is checked
 * before use. A field the report does not have yet (an option or measurement not built on this
 * branch) is "not runnable", not a failure: the row says what is missing.
 */
import type { MetricRef } from './reproduce_rows.js';

export type MetricValue =
  | { readonly kind: 'ok'; readonly value: number }
  /** The report lacks what the metric needs (a field added by a later change). */
  | { readonly kind: 'not-runnable'; readonly message: string }
  /** The report has the fields but not this phase or a sane value: a failed run. */
  | { readonly kind: 'failed'; readonly message: string };

interface PhaseLike {
  readonly name: string;
  readonly kind: unknown;
  readonly raw: Readonly<Record<string, unknown>>;
}

function num(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

function obj(x: unknown): Readonly<Record<string, unknown>> | null {
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : null;
}

function phasesOf(report: unknown): PhaseLike[] | null {
  const ps = obj(report)?.['phases'];
  if (!Array.isArray(ps)) return null;
  const out: PhaseLike[] = [];
  for (const p of ps) {
    const o = obj(p);
    if (o !== null && typeof o['name'] === 'string') out.push({ name: o['name'], kind: o['kind'], raw: o });
  }
  return out;
}

/** Does `name` (of kind `kind`) match the metric's phase selector? */
export function phaseMatches(selector: string, name: string, kind: unknown): boolean {
  if (selector.startsWith('kind:')) return kind === selector.slice('kind:'.length);
  if (selector.endsWith('*')) return name.startsWith(selector.slice(0, -1));
  return name === selector;
}

const notRunnable = (message: string): MetricValue => ({ kind: 'not-runnable', message });
const failed = (message: string): MetricValue => ({ kind: 'failed', message });
const ok = (value: number): MetricValue => ({ kind: 'ok', value });

/** Sum one numeric field of the matched phases (of `phase.raw` or of `phase.raw.vcpu`). */
function sumField(matched: readonly PhaseLike[], field: string, inVcpu: boolean, what: string): MetricValue {
  let sum = 0;
  for (const p of matched) {
    const src = inVcpu ? obj(p.raw['vcpu']) : p.raw;
    if (src === null) return failed(`phase ${JSON.stringify(p.name)}: no vCPU ran`);
    if (!(field in src)) return notRunnable(`the report has no ${what} (phases[].${inVcpu ? 'vcpu.' : ''}${field}): not built on this branch yet`);
    const v = num(src[field]);
    if (v === null) return failed(`phase ${JSON.stringify(p.name)} has no ${what}`);
    sum += v;
  }
  return ok(sum);
}

export function extractMetric(report: unknown, metric: MetricRef): MetricValue {
  const phases = phasesOf(report);
  if (phases === null) return failed('the JSON report has no phases[]');
  if (metric.field === 'spanSeconds') {
    const from = phases.findIndex((p) => p.kind === 'enable');
    const to = phases.findIndex((p) => p.kind === 'disable');
    if (from < 0 || to < from) return failed('the report has no enable ... disable span');
    return sumField(phases.slice(from, to + 1), 'wallSeconds', false, 'phase wall time');
  }
  const matched = phases.filter((p) => phaseMatches(metric.phase, p.name, p.kind));
  if (matched.length === 0) return failed(`the report has no phase ${JSON.stringify(metric.phase)}`);
  switch (metric.field) {
    case 'seconds':
      return sumField(matched, 'seconds', false, 'seconds');
    case 'splitSeconds':
      return sumField(matched, 'splitSeconds', false, 'split walk seconds');
    case 'cpuSeconds': {
      // CLEAR_DIRTY_LOG CPU: the splitter's on-CPU time inside the matched passes' CLEAR calls
      // (report clearCalls[], one entry per CLEAR pass, by phase name).
      const calls = obj(report)?.['clearCalls'];
      if (!Array.isArray(calls)) return notRunnable('the report has no clearCalls[] (splitter CPU seconds in CLEAR): not built on this branch yet');
      const names = new Set(matched.map((p) => p.name));
      let sum = 0;
      let seen = 0;
      for (const c of calls) {
        const o = obj(c);
        if (o === null || typeof o['phase'] !== 'string' || !names.has(o['phase'])) continue;
        const v = num(o['cpuSeconds']);
        if (v === null) return notRunnable('the OS gives no per-thread CPU time (clearCalls[].cpuSeconds is null)');
        sum += v;
        seen++;
      }
      return seen === 0 ? failed(`no CLEAR call in ${JSON.stringify(metric.phase)}`) : ok(sum);
    }
    case 'lockWaitShare':
    case 'onCpuShare': {
      const part = sumField(
        matched,
        metric.field === 'lockWaitShare' ? 'lockWaitSeconds' : 'cpuSeconds',
        true,
        metric.field === 'lockWaitShare' ? 'vCPU lock wait' : 'vCPU on-CPU time',
      );
      if (part.kind !== 'ok') return part;
      const whole = sumField(matched, 'vcpuSeconds', true, 'vCPU time');
      if (whole.kind !== 'ok') return whole;
      return whole.value > 0 ? ok(part.value / whole.value) : failed('no vCPU time in the matched phases');
    }
    case 'dipPct': {
      const t = obj(obj(report)?.['timeline']);
      const dips = t?.['dips'];
      if (!Array.isArray(dips)) return notRunnable('the report has no timeline.dips');
      const names = new Set(matched.map((p) => p.name));
      let deepest: number | null = null;
      for (const d of dips) {
        const o = obj(d);
        const depth = num(o?.['depthPct']);
        if (o !== null && typeof o['name'] === 'string' && names.has(o['name']) && depth !== null) deepest = Math.max(deepest ?? 0, depth);
      }
      return deepest === null ? failed(`no timeline sample with running vCPUs in ${JSON.stringify(metric.phase)}`) : ok(deepest);
    }
  }
}
