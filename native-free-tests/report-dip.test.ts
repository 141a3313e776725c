/**
 * Steady-state reporting that shows a dip (report_build.ts, report.ts): per-kind fault counts and
 * latency from the vCPUs' `fault:KIND` histograms, the vCPUs' mmu_lock wait share and on-CPU share
 * per phase, the timeline's dip in the text report; and the metric extraction the reproduce rows
 * read from such a report (reproduce_metric.ts), including "not runnable" when a field is absent.
 * Synthetic input: no threads, no clocks.
 */
import test from 'ava';
import { point } from './_timeline_point.js';
import { resolveRunConfig } from '../src/emulate/config.js';
import { OP_CHECK, OP_CLEAR, OP_ENABLE, OP_GET } from '../src/emulate/control.js';
import type { SplitterResult, TimingData, VcpuResult } from '../src/emulate/messages.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { formatReport } from '../src/emulate/report.js';
import { compareRow, verdictLines } from '../src/emulate/compare.js';
import { buildReport } from '../src/emulate/report_build.js';
import type { PhaseRecord } from '../src/emulate/report_build.js';
import { reportToJson } from '../src/emulate/report_json.js';
import { extractMetric, phaseMatches } from '../src/emulate/reproduce_metric.js';
import { buildTimeline } from '../src/emulate/timeline.js';
import type { TimelinePoint } from '../src/emulate/timeline.js';
import { Histogram } from '../src/stats/histogram.js';
import { PRESSURE_PROFILES } from '../src/mmu/allocator.js';
import { enableDirtyLogging } from '../src/mmu/dirty_log.js';
import { createAccessResult, guestAccess } from '../src/mmu/guest_access.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import { pagesPerHpage } from '../src/mmu/spte.js';
import { attachVm, createVm, layoutMemslots } from '../src/vm.js';
import type { Vm } from '../src/vm.js';

function timing(parts: Record<string, number[]>): TimingData {
  const out: Record<string, ReturnType<Histogram['toData']>> = {};
  for (const [k, v] of Object.entries(parts)) {
    const h = new Histogram();
    for (const x of v) h.record(x);
    out[k] = h.toData();
  }
  return out;
}

const NAMES = ['populate', 'steady before', 'enable', 'iteration 1 dirty', 'iteration 1 get', 'iteration 1 clear', 'disable'];
const KINDS: PhaseRecord['kind'][] = ['populate', 'steady', 'enable', 'dirty', 'get', 'clear', 'disable'];

/** A 2-vCPU steady run: vCPUs wait 50 ms for mmu_lock (of 2 x 0.5 s) in the CLEAR and are on a CPU 40 % of it. */
function synthetic(opts: { cpu: boolean; timeline: boolean }): ReturnType<typeof buildReport> {
  const c = parseCommandLine(['-v', '2', '-b', '4M', '-i', '2', '--steady']);
  if (c.kind !== 'run') throw new Error('run');
  const cfg = resolveRunConfig(resolveOptions(c.raw), null, 2 ** 40);
  const zero = { hugePagesSplit: 0, tablesAllocated: 0 };
  const phases: PhaseRecord[] = NAMES.map((name, i) => ({
    name,
    kind: KINDS[i]!,
    iteration: name.startsWith('iteration') ? 1 : null,
    seconds: 0.5,
    wallSeconds: 0.5,
    // The per-kind fault counters (cumulative snapshots): the CLEAR's faults, as the samples below time them.
    stats: i >= 5 ? { ...zero, faultExec: 2, faultWpFast: 4, faultFirstTouch: 2 } : zero,
    splitterStats: zero,
    pages: { pages4k: 0, pages2m: 4, pages1g: 0 },
    dirtyPages: null,
  }));
  const vcpu = (id: number): VcpuResult => ({
    type: 'vcpu-result',
    vcpuId: id,
    samples: [
      { phase: 1, accesses: 1000, writes: 0, pagesWritten: 0, passes: 1, timing: timing({}), ...(opts.cpu ? { cpuNs: 0.5e9 } : {}) },
      {
        phase: 5,
        accesses: 400,
        writes: 0,
        pagesWritten: 0,
        passes: 0,
        timing: timing({ readWait: [25e6], faultSlow: [25e6, 2000], 'fault:exec': [25e6], 'fault:wp-fast': [300, 400], 'fault:first-touch': [2000] }),
        ...(opts.cpu ? { cpuNs: 0.2e9 } : {}),
      },
    ],
  });
  const splitter: SplitterResult = {
    type: 'splitter-result',
    samples: [
      { phase: 2, op: OP_ENABLE, ns: 1e6, dirtyPages: null, splitMs: 0, wrprotMs: 0, timing: timing({}) },
      { phase: 4, op: OP_GET, ns: 1e6, dirtyPages: 0, splitMs: null, wrprotMs: null, timing: timing({}) },
      { phase: 5, op: OP_CLEAR, ns: 5e8, dirtyPages: null, splitMs: 400, wrprotMs: 0, timing: timing({ writeHold: [4e8] }) },
      { phase: 7, op: OP_CHECK, ns: 1e6, dirtyPages: null, splitMs: null, wrprotMs: null, timing: timing({}) },
    ],
    invariants: { ok: true, violationCount: 0, violations: [], seconds: 0.01 },
  };
  // Timeline: 1M/s in "steady before", 0.3M/s for 200 ms of the CLEAR.
  const pts: TimelinePoint[] = [];
  let acc = 0;
  for (let i = 0; i <= 300; i++) {
    const phase = i <= 100 ? 1 : i <= 150 ? 3 : 5;
    const rate = phase === 5 && i >= 200 && i < 220 ? 3e5 : 1e6;
    if (i > 0) acc += rate * 0.01;
    pts.push(point(i * 10, phase, acc));
  }
  return buildReport({
    config: cfg,
    startedAt: '2025-01-01T00:00:00.000Z',
    wallSeconds: 3.5,
    phases,
    baseline: { stats: zero, splitterStats: zero, pages: { pages4k: 0, pages2m: 4, pages1g: 0 } },
    vcpuResults: [vcpu(0), vcpu(1)],
    splitter,
    finalStats: zero,
    rcu: { gracePeriods: 0, callbacksQueued: 0, callbacksRun: 0 },
    pool: { capacity: 100 },
    pages: { pages4k: 0, pages2m: 0, pages1g: 0 },
    poolTables: 100,
    host: { cores: 2, nodeVersion: 'v20', platform: 'linux', arch: 'x64', cpuModel: 'test', totalMemoryBytes: 1, vcpusPerCore: 1 },
    ...(opts.timeline ? { timeline: buildTimeline({ points: pts, events: [], stride: 1 }, NAMES) } : {}),
  });
}

test('per-kind faults, the lock-wait share and the on-CPU share of a phase follow the vCPU samples', (t) => {
  const r = synthetic({ cpu: true, timeline: true });
  const clear = r.phases.find((p) => p.name === 'iteration 1 clear')!.vcpu!;
  t.deepEqual(Object.keys(clear.faultKinds!), ['exec', 'first-touch', 'wp-fast']);
  t.is(clear.faultKinds!['exec']!.count, 2, 'one per vCPU');
  t.is(clear.faultKinds!['wp-fast']!.count, 4);
  t.is(clear.vcpuSeconds, 1);
  t.true(Math.abs(clear.lockWaitSeconds! - 0.05) < 0.002, `${clear.lockWaitSeconds}`);
  t.true(Math.abs(clear.lockWaitShare! - 0.05) < 0.002);
  t.true(Math.abs(clear.cpuSeconds! - 0.4) < 1e-9);
  t.true(Math.abs(clear.onCpuShare! - 0.4) < 1e-9);
  // Control: the undisturbed window waits for nothing.
  const before = r.phases.find((p) => p.name === 'steady before')!.vcpu!;
  t.is(before.lockWaitSeconds, 0);
  t.is(before.onCpuShare, 1);
  t.deepEqual(before.faultKinds, {});
});

test('without schedstat the on-CPU share is unknown, not zero', (t) => {
  const clear = synthetic({ cpu: false, timeline: false }).phases.find((p) => p.name === 'iteration 1 clear')!.vcpu!;
  t.is(clear.cpuSeconds, null);
  t.is(clear.onCpuShare, null);
});

test('the text report shows the faults by kind, the vCPU time table and the dip; the JSON carries the timeline', (t) => {
  const r = synthetic({ cpu: true, timeline: true });
  const text = formatReport(r);
  t.regex(text, /== vCPU faults by kind/);
  t.regex(text, /iteration 1 clear\s+exec\s+2 /);
  t.regex(text, /== vCPU time by phase/);
  t.regex(text, /iteration 1 clear\s+1\.000\s+0\.0\d+\s+5\.\d\d%\s+0\.400\s+40\.00%/);
  t.regex(text, /== Timeline: vCPU throughput dips by phase ==/);
  t.regex(text, /iteration 1 clear .* 70\.0%\s+200 ms\s+200 ms/);
  const json = JSON.parse(reportToJson(r)) as { timeline: { dips: { name: string; depthPct: number }[] } };
  t.is(Math.round(json.timeline.dips.find((d) => d.name === 'iteration 1 clear')!.depthPct), 70);
  // No timeline, no section (and no crash).
  t.notRegex(formatReport(synthetic({ cpu: true, timeline: false })), /Timeline/);
});

test('reproduce metrics: share over matched phases, dip, span; a field the report lacks is not runnable', (t) => {
  const r = JSON.parse(reportToJson(synthetic({ cpu: true, timeline: true })));
  const m = (phase: string, field: Parameters<typeof extractMetric>[1]['field']) => extractMetric(r, { phase, field, label: '' });
  const share = m('iteration 1 clear*', 'lockWaitShare');
  t.is(share.kind, 'ok');
  if (share.kind === 'ok') t.true(Math.abs(share.value - 0.05) < 0.002);
  const dip = m('iteration 1 clear', 'dipPct');
  t.true(dip.kind === 'ok' && Math.round(dip.value) === 70);
  const span = m('', 'spanSeconds');
  t.true(span.kind === 'ok' && Math.abs(span.value - 2.5) < 1e-9, JSON.stringify(span));
  const seconds = m('kind:clear', 'seconds');
  t.true(seconds.kind === 'ok' && seconds.value === 0.5);
  // CLEAR_DIRTY_LOG CPU comes from clearCalls[] (one entry per CLEAR pass); a report without it is not runnable.
  const withCalls = { ...r, clearCalls: [{ phase: 'iteration 1 clear', calls: 2, cpuSeconds: 0.25 }] };
  const cpu = extractMetric(withCalls, { phase: 'kind:clear', field: 'cpuSeconds', label: '' });
  t.true(cpu.kind === 'ok' && cpu.value === 0.25, JSON.stringify(cpu));
  const { clearCalls: _absent, ...noCalls } = r as Record<string, unknown>;
  t.is(extractMetric(noCalls, { phase: 'kind:clear', field: 'cpuSeconds', label: '' }).kind, 'not-runnable');
  t.is(m('iteration 9 clear', 'seconds').kind, 'failed');
  // A report from before these fields: the share is not runnable, not a failure.
  const old = JSON.parse(JSON.stringify(r)) as { phases: { vcpu: Record<string, unknown> | null }[] };
  for (const p of old.phases) if (p.vcpu !== null) delete p.vcpu['lockWaitSeconds'];
  t.is(extractMetric(old, { phase: 'iteration 1 clear', field: 'lockWaitShare', label: '' }).kind, 'not-runnable');
  t.true(phaseMatches('iteration 1 clear*', 'iteration 1 clear 3/8', 'clear'));
  t.false(phaseMatches('iteration 1 clear', 'iteration 1 clear 3/8', 'clear'));
  t.true(phaseMatches('kind:clear', 'anything', 'clear'));
});

// ---- the fault kind guestAccess names (out.faultKind), which the per-kind histograms file under ----

function wrprotVm(): Vm {
  const M = pagesPerHpage(2);
  return attachVm(
    createVm({ levels: 4, memslots: layoutMemslots(2 * M, 1), backingLevel: 2, workers: 2, pressure: PRESSURE_PROFILES.none, seed: 1, dirtyTrack: 'wrprot' }),
    0,
  );
}

test('guestAccess names the fault: first-touch, none on a hit, wp-fast when the fast path fixes it, wp-slow when it cannot', (t) => {
  const out = createAccessResult();
  const vm = wrprotVm();
  const g = vm.config.memslots[0]!.baseGfn;
  guestAccess(vm, g, 'write', out);
  t.is(out.faultKind, 'first-touch');
  t.is(out.outcome, 'slow');
  guestAccess(vm, g, 'write', out);
  t.is(out.faultKind, 'none');
  t.is(out.outcome, 'hit');
  guestAccess(vm, g + 1, 'read', out);
  t.is(out.faultKind, 'none', 'the huge leaf maps the neighbour too');
  // Eager split with write protection: the 4K leaves are write-protected, MMU-writable: a fast fault.
  enableDirtyLogging(vm, 0, { eagerSplit: true, initiallySet: false, design: dropAlways });
  guestAccess(vm, g + 5, 'write', out);
  t.is(out.faultKind, 'wp-fast');
  t.is(out.outcome, 'fast');
  // Control: no eager split, the huge leaf is write-protected; the fast path gives up on it.
  const vm2 = wrprotVm();
  const g2 = vm2.config.memslots[0]!.baseGfn;
  guestAccess(vm2, g2, 'write', out);
  enableDirtyLogging(vm2, 0, { eagerSplit: false, initiallySet: false, design: dropAlways });
  guestAccess(vm2, g2 + 5, 'write', out);
  t.is(out.faultKind, 'wp-slow');
  t.is(out.outcome, 'slow');
});

test("compare verdicts name the vCPUs' lock-wait share and dip when both runs measured them, and stay silent otherwise", (t) => {
  const base = compareRow(synthetic({ cpu: true, timeline: true }));
  const mk = (design: string, share: number | null, dip: number | null) => ({
    ...base,
    label: design,
    design,
    swept: { 'split-alloc': design },
    splitBySplitter: 4,
    splitterSeconds: 0.1,
    lockWaitSharePct: share,
    dipPct: dip,
  });
  const v = verdictLines([mk('drop-always', 0.2, 2), mk('nowait-retry', 4.1, 35)]);
  t.regex(v[1]!, /vCPUs waited for mmu_lock 4\.10 % of their time in the split phase vs 0\.20 % \(deepest dip 35\.0 % vs 2\.0 %\)$/);
  // Control: a baseline that did not measure it gives no such clause.
  t.notRegex(verdictLines([mk('drop-always', null, null), mk('nowait-retry', 4.1, 35)])[1]!, /waited for mmu_lock/);
});
