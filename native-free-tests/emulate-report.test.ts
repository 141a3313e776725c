// The emulate report from synthetic run data: the selftest's lines and %.9fs format, the
// per-phase deltas, the dirty-log oracle, the split accounting, and the JSON schema's required keys.
import test from 'ava';
import { resolveRunConfig } from '../src/emulate/config.js';
import { OP_CHECK, OP_CLEAR, OP_ENABLE, OP_GET } from '../src/emulate/control.js';
import type { SplitterResult, TimingData, VcpuResult } from '../src/emulate/messages.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { formatReport, formatSelftestSeconds, selftestLines } from '../src/emulate/report.js';
import { buildReport } from '../src/emulate/report_build.js';
import type { PhaseRecord } from '../src/emulate/report_build.js';
import { missingRequiredKeys, REQUIRED_KEYS, reportToJson } from '../src/emulate/report_json.js';
import { Histogram } from '../src/stats/histogram.js';

test("times print as the selftest's %ld.%.9lds", (t) => {
  t.is(formatSelftestSeconds(1.546904175), '1.546904175s');
  t.is(formatSelftestSeconds(0.001683739), '0.001683739s');
  t.is(formatSelftestSeconds(0), '0.000000000s');
  t.is(formatSelftestSeconds(12), '12.000000000s');
  t.is(formatSelftestSeconds(2.9999999999), '3.000000000s');
});

function hist(values: number[]): Histogram {
  const h = new Histogram();
  for (const v of values) h.record(v);
  return h;
}

function timing(parts: Record<string, number[]>): TimingData {
  const out: Record<string, ReturnType<Histogram['toData']>> = {};
  for (const [k, v] of Object.entries(parts)) out[k] = hist(v).toData();
  return out;
}

/** A 2-vCPU, 2-iteration manual-protect run over 8 MiB of THP: 4 huge pages split in CLEAR 1. */
function synthetic(): ReturnType<typeof buildReport> {
  const c = parseCommandLine(['-v', '2', '-b', '4M', '-i', '2']);
  if (c.kind !== 'run') throw new Error('run');
  const cfg = resolveRunConfig(resolveOptions(c.raw), null, 2 ** 40);
  const pages = cfg.totalPages; // 2048
  const zero = { hugePagesSplit: 0, tablesAllocated: 0, spteReads: 0, lockDrops: 0 };
  const rec = (
    name: string,
    kind: PhaseRecord['kind'],
    iteration: number | null,
    seconds: number,
    stats: Record<string, number>,
    splitter: Record<string, number>,
    p: [number, number, number],
    dirty: number | null = null,
  ): PhaseRecord => ({
    name,
    kind,
    iteration,
    seconds,
    wallSeconds: seconds,
    stats,
    splitterStats: splitter,
    pages: { pages4k: p[0], pages2m: p[1], pages1g: p[2] },
    dirtyPages: dirty,
  });
  const afterSplit = { hugePagesSplit: 4, tablesAllocated: 8, spteReads: 100, lockDrops: 4 };
  // Fault counts come from the worker counters (latencies are sampled): 4 first-touch faults in
  // populate, 2048 wp-fast ones in iteration 2 (cumulative snapshots, as the engine records them).
  const faultsSeen = { faultFirstTouch: 4 };
  const wpFastSeen = { faultWpFast: 2048 };
  const phases: PhaseRecord[] = [
    rec('populate', 'populate', null, 0.5, { ...zero, tablesAllocated: 4, ...faultsSeen }, zero, [0, 4, 0]),
    rec('enable', 'enable', null, 0.001, { ...zero, tablesAllocated: 4, ...faultsSeen }, zero, [0, 4, 0]),
    rec('iteration 1 dirty', 'dirty', 1, 0.25, { ...zero, tablesAllocated: 4, ...faultsSeen }, zero, [0, 4, 0]),
    rec('iteration 1 get', 'get', 1, 0.002, { ...zero, tablesAllocated: 4, ...faultsSeen }, zero, [0, 4, 0], pages),
    rec('iteration 1 clear', 'clear', 1, 0.004, { ...afterSplit, tablesAllocated: 8, ...faultsSeen }, afterSplit, [pages, 0, 0]),
    rec('iteration 2 dirty', 'dirty', 2, 0.125, { ...afterSplit, tablesAllocated: 8, ...faultsSeen, ...wpFastSeen }, afterSplit, [pages, 0, 0]),
    rec('iteration 2 get', 'get', 2, 0.003, { ...afterSplit, tablesAllocated: 8, ...faultsSeen, ...wpFastSeen }, afterSplit, [pages, 0, 0], pages),
    rec('iteration 2 clear', 'clear', 2, 0.001, { ...afterSplit, tablesAllocated: 8, ...faultsSeen, ...wpFastSeen }, afterSplit, [pages, 0, 0]),
    rec('disable', 'disable', null, 0.0005, { ...afterSplit, tablesAllocated: 8, ...faultsSeen, ...wpFastSeen }, afterSplit, [pages, 0, 0]),
  ];
  const vcpu = (id: number): VcpuResult => ({
    type: 'vcpu-result',
    vcpuId: id,
    samples: [
      { phase: 0, accesses: 1024, writes: 1024, pagesWritten: 1024, passes: 1, timing: timing({ faultSlow: [5000, 7000] }) },
      { phase: 2, accesses: 1024, writes: 1024, pagesWritten: 1024, passes: 1, timing: timing({}) },
      { phase: 5, accesses: 1024, writes: 1024, pagesWritten: 1024, passes: 1, timing: timing({ faultFast: Array(1024).fill(300) }) },
    ],
  });
  const splitter: SplitterResult = {
    type: 'splitter-result',
    samples: [
      { phase: 1, op: OP_ENABLE, ns: 1e6, dirtyPages: null, splitMs: 0, wrprotMs: 0, timing: timing({}) },
      { phase: 3, op: OP_GET, ns: 2e6, dirtyPages: pages, splitMs: null, wrprotMs: null, timing: timing({}) },
      { phase: 4, op: OP_CLEAR, ns: 4e6, dirtyPages: null, splitMs: 3, wrprotMs: 0, timing: timing({ writeWait: [100], writeHold: [4e6] }) },
      { phase: 8, op: OP_CHECK, ns: 1e6, dirtyPages: null, splitMs: null, wrprotMs: null, timing: timing({ writeHold: [9e9] }) },
    ],
    invariants: { ok: true, violationCount: 0, violations: [], seconds: 0.01 },
  };
  return buildReport({
    config: cfg,
    startedAt: '2025-01-01T00:00:00.000Z',
    wallSeconds: 1.5,
    phases,
    baseline: { stats: zero, splitterStats: zero, pages: { pages4k: 0, pages2m: 0, pages1g: 0 } },
    vcpuResults: [vcpu(0), vcpu(1)],
    splitter,
    finalStats: { ...afterSplit, tablesAllocated: 8 },
    rcu: { gracePeriods: 3, callbacksQueued: 2, callbacksRun: 2 },
    pool: { capacity: 100 },
    pages: { pages4k: pages, pages2m: 0, pages1g: 0 },
    poolTables: 100,
    host: { cores: 2, nodeVersion: 'v20', platform: 'linux', arch: 'x64', cpuModel: 'test', totalMemoryBytes: 1, vcpusPerCore: 1 },
  });
}

test('the selftest lines, in order, with their wording', (t) => {
  const r = synthetic();
  const lines = selftestLines(r);
  t.deepEqual(lines.slice(3), [
    'Populate memory time: 0.500000000s',
    'Enabling dirty logging time: 0.001000000s',
    '',
    'Iteration 1 dirty memory time: 0.250000000s',
    'Iteration 1 get dirty log time: 0.002000000s',
    'Iteration 1 clear dirty log time: 0.004000000s',
    'Iteration 2 dirty memory time: 0.125000000s',
    'Iteration 2 get dirty log time: 0.003000000s',
    'Iteration 2 clear dirty log time: 0.001000000s',
    'Disabling dirty logging time: 0.000500000s',
    'Get dirty log over 2 iterations took 0.005000000s. (Avg 0.002500000s/iteration)',
    'Clear dirty log over 2 iterations took 0.005000000s. (Avg 0.002500000s/iteration)',
  ]);
  t.is(lines[0], 'Test iterations: 2');
  t.is(lines[1], 'guest physical test memory: [0x100000000, 0x100800000)');
});

test('per-phase deltas, the dirty-log oracle and the split accounting follow the input', (t) => {
  const r = synthetic();
  t.is(r.phases.length, 9);
  t.is(r.phases[4]!.counters.hugePagesSplit, 4);
  t.is(r.phases[4]!.counters.tablesAllocated, 4);
  t.is(r.phases[0]!.counters.tablesAllocated, 4);
  t.is(r.phases[1]!.vcpu, null);
  t.is(r.phases[0]!.vcpu!.accesses, 2048);
  t.is(r.phases[0]!.vcpu!.slowFaults, 4);
  t.is(r.phases[5]!.vcpu!.fastFaults, 2048);
  t.is(r.phases[5]!.vcpu!.accessesPerSecond, 2048 / 0.125);
  // Iteration 1 with initially-set reports every page; iteration 2 reports what was written.
  t.is(r.iterations[0]!.expectedDirtyPages, 2048);
  t.is(r.iterations[1]!.expectedDirtyPages, 2048);
  t.true(r.iterations.every((it) => it.dirtyPagesOk === true));
  t.true(r.dirtyLog.ok);
  t.is(r.split.hugePagesSplit, 4);
  t.is(r.split.splits2mTo4k, 4);
  t.is(r.split.splits1gTo2m, 0);
  t.is(r.split.sptes4kProduced, 2048);
  t.is(r.split.splitterOpSeconds, 0.004);
  t.is(r.split.splitterSplitSeconds, 0.003, 'the split walk time inside the CLEAR');
  t.is(r.split.nsPer4kSpte, 0.003e9 / 2048);
  t.is(r.phases[4]!.splitSeconds, 0.003);
  t.is(r.phases[3]!.splitSeconds, null);
  // The invariant check's hold is not the workload's.
  t.is(r.split.splitterWriteHoldNs.count, 1);
  t.is(r.mmuLock.writeHoldNs.max, 4e6);
  t.is(r.vcpu.faultLatencyNs['iteration 2 dirty']!.count, 2048);
  t.deepEqual(Object.keys(r.vcpu.faultLatencyNs), ['populate', 'iteration 1 dirty', 'iteration 2 dirty']);
});

test('the text report has every section', (t) => {
  const text = formatReport(synthetic());
  for (const s of ['== Phases', '== vCPU fault latency', '== mmu_lock', '== Splitting', '== Dirty log', '== RCU, pool, pages', '== Invariants']) {
    t.true(text.includes(s), s);
  }
  t.regex(text, /time per 4K SPTE:\s+1464\.8 ns/);
  t.regex(text, /iteration 1 clear:\s+0\.004000 s: split walk 0\.003000 s \(4 huge pages\)/);
  t.regex(text, /invariant checker: OK/);
  t.regex(text, /2 cores, Node v20, 1\.0 vCPUs per core/);
});

test('JSON has every required key; a missing one is caught', (t) => {
  const r = synthetic();
  const json = JSON.parse(reportToJson(r)) as Record<string, unknown>;
  t.deepEqual(missingRequiredKeys(json), []);
  t.is(json['schemaVersion'], 2);
  t.true(REQUIRED_KEYS.length > 30);
  const broken = JSON.parse(JSON.stringify(json)) as { split: Record<string, unknown>; phases: Record<string, unknown>[] };
  delete broken.split['lockDrops'];
  delete broken.phases[2]!['seconds'];
  t.deepEqual(missingRequiredKeys(broken), ['phases.2.seconds', 'split.lockDrops']);
});
