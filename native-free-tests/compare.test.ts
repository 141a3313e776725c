/**
 * compare / sweep / csv as pure functions on synthetic Reports: how many runs a sweep
 * expands to and in what order, what one table row shows, the verdict wording against
 * drop-always, CSV rows and quoting; and that a sweep validates every combination before it runs
 * the first.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './_emulate.js';
import type { LatencySummary, PhaseKind, PhaseReport, Report, SplitCounters } from '../src/emulate/report_model.js';
import { compareRow, formatCompareTables, labelRows, median, medianRow, restartRewalkReads, spreadPct, verdictLines } from '../src/emulate/compare.js';
import type { CompareRow } from '../src/emulate/compare.js';
import { expandSweep, runSweep, sweepItems } from '../src/emulate/sweep.js';
import { compareCsv, CSV_HEADER, csvField, csvLine } from '../src/emulate/csv.js';
import { SPLIT_ALLOC_DESIGN_ORDER } from '../src/mmu/split_alloc_designs.js';

// ---- synthetic reports -------------------------------------------------------------------------

const ZERO_LAT: LatencySummary = { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
function lat(p50: number, p99: number, max: number, count = 100): LatencySummary {
  return { count, p50, p90: p99, p99, p999: max, max, mean: p50 };
}
const ZERO_COUNTERS: SplitCounters = {
  hugePagesSplit: 0,
  tablesAllocated: 0,
  allocFromCache: 0,
  allocNowait: 0,
  allocBlocking: 0,
  allocFailures: 0,
  allocUnderLock: 0,
  leftoverFreed: 0,
  lockDrops: 0,
  restarts: 0,
  spteReads: 0,
  yields: 0,
  splitEnomem: 0,
  spHeaderAllocs: 0,
  reclaims: 0,
  rfcDropTlbFlushes: 0,
};

interface PhaseSpec {
  name: string;
  kind: PhaseKind;
  seconds?: number;
  counters?: Partial<SplitCounters>;
  rate?: number;
  fault?: LatencySummary;
  writeHold?: LatencySummary;
  readHold?: LatencySummary;
  readWait?: LatencySummary;
}

function phase(i: number, s: PhaseSpec): PhaseReport {
  const seconds = s.seconds ?? 1;
  return {
    index: i,
    name: s.name,
    kind: s.kind,
    iteration: null,
    seconds,
    wallSeconds: seconds,
    splitSeconds: s.kind === 'enable' || s.kind === 'clear' ? seconds : null,
    wrprotSeconds: s.kind === 'enable' || s.kind === 'clear' ? 0 : null,
    vcpu:
      s.rate === undefined
        ? null
        : {
            accesses: s.rate * seconds,
            writes: 0,
            accessesPerSecond: s.rate,
            fastFaults: 0,
            slowFaults: 0,
            faultLatencyNs: { all: s.fault ?? ZERO_LAT, fast: s.fault ?? ZERO_LAT, slow: ZERO_LAT },
          },
    mmuLock: { readWaitNs: s.readWait ?? ZERO_LAT, readHoldNs: s.readHold ?? ZERO_LAT, writeWaitNs: ZERO_LAT, writeHoldNs: s.writeHold ?? ZERO_LAT },
    counters: { ...ZERO_COUNTERS, ...s.counters },
    pagesAfter: { '4k': 0, '2m': 0, '1g': 0 },
    hugePagesSplit: s.counters?.hugePagesSplit ?? 0,
    dirtyPages: null,
  };
}

interface ReportSpec {
  design: string;
  levels?: 4 | 5;
  pressure?: string;
  splitSeconds: number;
  /** Huge pages the splitter split in the first CLEAR (2M pages unless n1g). */
  split: number;
  n1g?: number;
  restarts: number;
  lockDrops?: number;
  faultP99?: number;
  splitByVcpus?: number;
}

function report(s: ReportSpec): Report {
  const lazy = (s.splitByVcpus ?? 0) > 0;
  const fault = s.faultP99 === undefined ? ZERO_LAT : lat(1000, s.faultP99, s.faultP99 * 3);
  const phases = [
    phase(0, { name: 'populate', kind: 'populate', rate: 1e6 }),
    phase(1, { name: 'steady before', kind: 'steady', rate: 1e6 }),
    phase(2, { name: 'enable', kind: 'enable', seconds: 0.001, rate: 1e6 }),
    // vCPU write faults split here (lazy): the fault latency of the split phase is theirs.
    phase(3, { name: 'iteration 1 dirty', kind: 'dirty', rate: 1e6, counters: { hugePagesSplit: s.splitByVcpus ?? 0 }, ...(lazy ? { fault } : {}) }),
    phase(4, { name: 'iteration 1 get', kind: 'get', rate: 1e6 }),
    phase(5, {
      name: 'iteration 1 clear',
      kind: 'clear',
      seconds: s.splitSeconds,
      rate: 8e5,
      ...(lazy ? {} : { fault }),
      writeHold: lat(50_000, 2_000_000, 9_000_000, 10),
      readWait: lat(500, 40_000, 3_000_000),
      counters: { hugePagesSplit: s.split - (s.splitByVcpus ?? 0), restarts: s.restarts, lockDrops: s.lockDrops ?? 0, yields: 2 },
    }),
    phase(6, { name: 'disable', kind: 'disable', counters: { leftoverFreed: 3 } }),
  ];
  const n1g = s.n1g ?? 0;
  return {
    config: { splitAlloc: s.design, levels: s.levels ?? 4, pressure: s.pressure ?? 'none', vcpus: 2, backing: 'anonymous_thp', seed: 1 },
    phases,
    iterations: [
      {
        iteration: 1,
        dirtyMemorySeconds: 1,
        getDirtyLogSeconds: 0.001,
        clearDirtyLogSeconds: s.splitSeconds,
        dirtyPages: 0,
        pagesWritten: 0,
        expectedDirtyPages: null,
        dirtyPagesOk: null,
      },
    ],
    totals: { populateSeconds: 1, enableSeconds: 0.001, disableSeconds: 0.01, getDirtyLogSeconds: 0.001, clearDirtyLogSeconds: s.splitSeconds, wallSeconds: 5 },
    split: {
      ...ZERO_COUNTERS,
      hugePagesSplit: s.split,
      allocFailures: 1,
      leftoverFreed: 3,
      splitEnomem: 0,
      splits2mTo4k: s.split - n1g,
      splits1gTo2m: n1g,
      splitterHugePagesSplit: s.split - (s.splitByVcpus ?? 0),
      splitterSplitSeconds: s.splitSeconds,
      splitByVcpus: s.splitByVcpus ?? 0,
    },
    invariants: { ok: true, violationCount: 0, violations: [], seconds: 0, poisonReads: 0, xlateErrors: 0 },
    dirtyLog: { ok: true, lostDirty: 0 },
  } as unknown as Report;
}

// ---- sweeps ------------------------------------------------------------------------------------

test('a sweep expands to the product of its lists, the design varying fastest', (t) => {
  const runs = expandSweep({ 'split-alloc': 'drop-always,cache', 'cache-capacity': '1,8,40', levels: '4,5', seed: '3' });
  t.is(runs.length, 2 * 3 * 2);
  t.deepEqual(
    runs.slice(0, 3).map((r) => r.swept),
    [
      { levels: '4', 'cache-capacity': '1', 'split-alloc': 'drop-always' },
      { levels: '4', 'cache-capacity': '1', 'split-alloc': 'cache' },
      { levels: '4', 'cache-capacity': '8', 'split-alloc': 'drop-always' },
    ],
  );
  t.is(runs[11]!.raw['levels'], '5');
  t.is(runs[11]!.raw['seed'], '3', 'unswept options pass through');
  t.is(new Set(runs.map((r) => JSON.stringify(r.swept))).size, 12, 'every combination once');
});

test('--compare sweeps every design (drop-always first) unless --split-alloc names some', (t) => {
  const all = expandSweep({ vcpus: '32' }, { compareDesigns: SPLIT_ALLOC_DESIGN_ORDER });
  t.deepEqual(
    all.map((r) => r.raw['split-alloc']),
    [...SPLIT_ALLOC_DESIGN_ORDER],
  );
  t.deepEqual(all[0]!.swept, { 'split-alloc': 'drop-always' }, 'a single-valued vcpus is not a swept column');
  const some = expandSweep({ 'split-alloc': 'cache,drop-always', vcpus: '2,4' }, { compareDesigns: SPLIT_ALLOC_DESIGN_ORDER });
  t.is(some.length, 4);
  t.deepEqual(
    some.map((r) => r.raw['split-alloc']),
    ['cache', 'drop-always', 'cache', 'drop-always'],
  );
});

test('--pressure lists: names split on commas, a custom spec is one item, ";" separates specs', (t) => {
  t.deepEqual(sweepItems('pressure', 'none,heavy'), ['none', 'heavy']);
  t.deepEqual(sweepItems('pressure', 'heavy,watermark=0.1'), ['heavy,watermark=0.1']);
  t.deepEqual(sweepItems('pressure', 'heavy; heavy,watermark=0.1'), ['heavy', 'heavy,watermark=0.1']);
  const e = t.throws(() => sweepItems('vcpus', '2,,4'));
  t.is((e as { code?: string }).code, 'ERR_INVALID_OPTION');
  t.regex(e!.message, /^--vcpus: /);
});

test('runSweep resolves every combination before running the first', async (t) => {
  const runs = expandSweep({ vcpus: '1,2,bad' });
  let ran = 0;
  const driver = {
    resolve: (raw: Readonly<Record<string, string | boolean | undefined>>): number => {
      const v = Number(raw['vcpus']);
      if (!Number.isInteger(v)) throw new Error(`--vcpus: bad ${String(raw['vcpus'])}`);
      return v;
    },
    run: async (): Promise<Report> => {
      ran++;
      return report({ design: 'drop-always', splitSeconds: 1, split: 1, restarts: 1 });
    },
  };
  await t.throwsAsync(runSweep(runs, driver), { message: /--vcpus/ });
  t.is(ran, 0, 'nothing ran');
  const ok = await runSweep(expandSweep({ vcpus: '1,2' }), driver);
  t.deepEqual(
    ok.map((r) => r.config),
    [1, 2],
  );
  t.is(ran, 2);
});

// ---- rows, tables, verdicts --------------------------------------------------------------------

test('compareRow: split-phase times, counts over the splitter ops, extra reads from the re-walk depth', (t) => {
  const r = compareRow(report({ design: 'drop-always', splitSeconds: 0.5, split: 64, restarts: 64, lockDrops: 64, faultP99: 10_000 }));
  t.is(r.splitPhase, 'iteration 1 clear');
  t.is(r.firstClearSeconds, 0.5);
  t.is(r.splitterSeconds, 0.5);
  t.is(r.lockDrops, 64);
  t.is(r.restarts, 64);
  t.is(r.yields, 2);
  t.is(r.holdMode, 'write');
  t.is(r.holdMaxNs, 9_000_000);
  t.is(r.faultBefore, null, 'no faults before splitting');
  t.is(r.faultDuring?.p99, 10_000);
  t.true(Math.abs(r.throughputChangePct! + 20) < 1e-9, 'rate 8e5 during vs 1e6 before');
  t.is(restartRewalkReads(4, 2), 5);
  t.is(restartRewalkReads(5, 2), 7);
  t.is(r.extraReadsPerSplit, 5, '4 levels, 2M splits: one restart per split re-reads 5 SPTEs');
  t.is(compareRow(report({ design: 'drop-always', levels: 5, splitSeconds: 1, split: 64, restarts: 64 })).extraReadsPerSplit, 7);
  // 1G pages: 1 split at level 3 (3 reads) per 512 at level 2 (5 reads).
  const g = compareRow(report({ design: 'drop-always', splitSeconds: 1, split: 513, n1g: 1, restarts: 513 }));
  t.is(g.extraReadsPerSplit, (512 * 5 + 3) / 513);
  t.is(compareRow(report({ design: 'nowait-retry', splitSeconds: 1, split: 64, restarts: 0 })).extraReadsPerSplit, 0);
});

test("compareRow: a poison read, a translation error or a lost dirty page makes the run's invariants VIOLATED", (t) => {
  const clean = report({ design: 'drop-always', splitSeconds: 0.5, split: 64, restarts: 64 });
  t.true(compareRow(clean).invariantsOk, 'control: the clean report passes');
  t.false(compareRow({ ...clean, invariants: { ...clean.invariants, poisonReads: 1 } }).invariantsOk);
  t.false(compareRow({ ...clean, invariants: { ...clean.invariants, xlateErrors: 2 } }).invariantsOk);
  t.false(compareRow({ ...clean, dirtyLog: { ok: false, lostDirty: 1 } }).invariantsOk);
});

function rowsOf(specs: ReportSpec[], swept: (s: ReportSpec) => Record<string, string> = () => ({})): CompareRow[] {
  const sw = specs.map((s) => ({ 'split-alloc': s.design, ...swept(s) }));
  const labels = labelRows(sw);
  return specs.map((s, i) => compareRow(report(s), sw[i]!, labels[i]!));
}

test('verdicts against drop-always: longer/shorter wording, fault p99 change, lazy, missing baseline', (t) => {
  const rows = rowsOf([
    { design: 'drop-always', splitSeconds: 0.1, split: 64, restarts: 64, faultP99: 10_000 },
    { design: 'cache', splitSeconds: 0.11, split: 64, restarts: 2, faultP99: 12_000 },
    { design: 'nowait-retry', splitSeconds: 0.08, split: 64, restarts: 0, faultP99: 9_000 },
    { design: 'lazy', splitSeconds: 0, split: 64, restarts: 0, splitByVcpus: 64, faultP99: 50_000 },
  ]);
  const v = verdictLines(rows);
  t.is(v.length, 4);
  t.is(v[0], 'drop-always: baseline (the design Linux ships since 6.11)');
  t.is(v[1], 'cache: split took 10.0 % longer than drop-always (0.1100 s vs 0.1000 s); vCPU fault p99 changed by +20.0% (12.0us vs 10.0us)');
  t.is(v[2], 'nowait-retry: split took 20.0 % shorter than drop-always (0.0800 s vs 0.1000 s); vCPU fault p99 changed by -10.0% (9.00us vs 10.0us)');
  t.is(v[3], 'lazy: no eager split (vCPU faults split 64 huge pages); vCPU fault p99 changed by +400.0% (50.0us vs 10.0us)');
  const alone = verdictLines(rowsOf([{ design: 'cache', splitSeconds: 1, split: 1, restarts: 1 }]));
  t.is(alone[0], 'cache: no drop-always run with the same configuration to compare against');
});

test('verdicts compare within the same values of the other swept options', (t) => {
  const specs: ReportSpec[] = [
    { design: 'drop-always', levels: 4, splitSeconds: 0.1, split: 8, restarts: 8 },
    { design: 'cache', levels: 4, splitSeconds: 0.2, split: 8, restarts: 1 },
    { design: 'drop-always', levels: 5, splitSeconds: 0.4, split: 8, restarts: 8 },
    { design: 'cache', levels: 5, splitSeconds: 0.2, split: 8, restarts: 1 },
  ];
  const rows = rowsOf(specs, (s) => ({ levels: String(s.levels) }));
  t.deepEqual(
    rows.map((r) => r.label),
    ['drop-always L=4', 'cache L=4', 'drop-always L=5', 'cache L=5'],
  );
  const v = verdictLines(rows);
  t.regex(v[1]!, /^cache L=4: split took 100\.0 % longer than drop-always/);
  t.regex(v[3]!, /^cache L=5: split took 50\.0 % shorter than drop-always/);
});

test('the compare tables have one row per run, with the measured cells', (t) => {
  const rows = rowsOf([
    { design: 'drop-always', splitSeconds: 0.1, split: 64, restarts: 64, lockDrops: 64, faultP99: 10_000 },
    { design: 'cache', splitSeconds: 0.11, split: 64, restarts: 2, lockDrops: 2, faultP99: 12_000 },
  ]);
  const lines = formatCompareTables(rows);
  const t1 = lines.slice(1, lines.indexOf(''));
  const t2 = lines.slice(lines.indexOf('') + 2);
  t.is(t1.length, 2 + rows.length, 'header, rule, one row per run');
  t.is(t2.length, 2 + rows.length);
  t.regex(t1[2]!, /^drop-always\s+0\.0010\s+0\.1000\s+0\.1000\s+iteration 1 clear\s+-\s+1\.00us\/10\.0us\/30\.0us\s+-20\.0%\s+-\s+-$/);
  t.regex(t2[3]!, /^cache\s+2\.00ms \(w\)\s+9\.00ms\s+40\.0us\s+2\s+2\s+2\s+0\.16\s+0\s+1\s+3\s+64\/0\s+0\s+ok$/);
});

// ---- CSV ---------------------------------------------------------------------------------------

test('CSV: a header and one row per run; fields with commas or quotes are quoted', (t) => {
  t.is(csvField('heavy,watermark=0.1'), '"heavy,watermark=0.1"');
  t.is(csvField('say "hi"'), '"say ""hi"""');
  t.is(csvField(null), '');
  t.is(csvField(Number.NaN), '');
  t.is(csvLine(['a', 1, true, null]), 'a,1,true,');
  const specs: ReportSpec[] = [
    { design: 'drop-always', pressure: 'heavy,watermark=0.1', splitSeconds: 0.1, split: 64, restarts: 64, faultP99: 10_000 },
    { design: 'cache', pressure: 'heavy,watermark=0.1', splitSeconds: 0.11, split: 64, restarts: 2 },
  ];
  const rows = rowsOf(specs);
  const text = compareCsv(specs.map((s, i) => ({ report: report(s), row: rows[i]! })));
  const lines = text.split('\r\n');
  t.is(lines.at(-1), '', 'ends with CRLF');
  t.is(lines.length - 1, 1 + specs.length);
  t.is(lines[0], CSV_HEADER.join(','));
  t.true(lines[1]!.startsWith('1,drop-always,1,drop-always,2,,anonymous_thp,4,"heavy,watermark=0.1",'), lines[1]);
  const col = (name: string, line: number): string => {
    // No quoted field contains a comma after the pressure column in these rows: split the tail.
    const head = lines[0]!.split(',');
    const cells = lines[line]!.replace('"heavy,watermark=0.1"', 'P').split(',');
    return cells[head.indexOf(name)]!;
  };
  t.is(col('split_s', 2), '0.11');
  t.is(col('restarts', 2), '2');
  t.is(col('fault_during_p99_ns', 1), '10000');
  t.is(col('fault_during_p99_ns', 2), '');
  t.is(col('invariants_ok', 1), 'true');
});

// ---- end to end ----------------------------------------------------------------------------------

test('end to end: a small sweep prints one table row and one verdict per run and writes one CSV row each', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'compare-test-'));
  try {
    const csv = join(dir, 'runs.csv');
    const r = await runCli(['-v', '1', '-b', '8M', '--split-alloc', 'drop-always,cache', '--levels', '4,5', '--csv', csv, '-q'], { timeoutMs: 60_000 });
    t.is(r.code, 0, r.stderr);
    const labels = ['drop-always L=4', 'cache L=4', 'drop-always L=5', 'cache L=5'];
    for (const l of labels) {
      const rows = r.stdout.split('\n').filter((line) => line.startsWith(`${l} `));
      t.is(rows.length, 2, `${l}: one row in each table`);
      t.is(r.stdout.split('\n').filter((line) => line.startsWith(`${l}: `)).length, 1, `${l}: one verdict`);
    }
    t.regex(r.stdout, /^cache L=5: split took [\d.]+ % (longer|shorter) than drop-always/m);
    const lines = readFileSync(csv, 'utf8').trimEnd().split('\r\n');
    t.is(lines.length, 1 + labels.length);
    t.deepEqual(
      lines.slice(1).map((l) => l.split(',')[1]),
      labels,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('end to end: bad sweep items and conflicting options exit 2 with one line naming the option', async (t) => {
  for (const [args, option] of [
    [['--split-alloc', 'drop-always,bogus'], '--split-alloc'],
    [['--cache-capacity', '8,0'], '--cache-capacity'],
    [['--chunk-size', '4M'], '--chunk-size'],
    [['--split-alloc', 'lazy', '--eager-split', 'on'], '--split-alloc'],
    [['--compare', '--json', 'x.json'], '--json'],
  ] as const) {
    const r = await runCli([...args, '-b', '8M', '-q'], { timeoutMs: 30_000 });
    t.is(r.code, 2, args.join(' '));
    const lines = r.stderr.trim().split('\n');
    t.is(lines.length, 1, r.stderr);
    t.true(lines[0]!.startsWith(`emulate: ${option}: `), lines[0]);
    t.is(r.stdout, '', 'nothing ran');
  }
});

test('--repeat: medianRow takes medians field by field and the verdict reports the run-to-run spread', (t) => {
  const drop = [0.1, 0.12, 0.11].map((s, i) => ({ design: 'drop-always', splitSeconds: s, split: 64, restarts: 64, faultP99: [10_000, 11_000, 30_000][i]! }));
  const cache = [0.2, 0.22, 0.21].map((s) => ({ design: 'cache', splitSeconds: s, split: 64, restarts: 2, faultP99: 10_000 }));
  const dRows = rowsOf(drop);
  const m = medianRow(dRows);
  t.is(m.runs, 3);
  t.is(m.splitterSeconds, 0.11);
  t.is(m.faultDuring?.p99, 11_000, 'median, not mean, of the p99s');
  t.is(Math.round(m.splitSpreadPct!), Math.round(((0.12 - 0.1) / 0.11) * 100));
  t.is(median([3, 1, 2, 10]), 2.5);
  t.is(spreadPct([5]), null);
  const v = verdictLines([m, medianRow(rowsOf(cache))]);
  t.is(
    v[1],
    'cache: split took 90.9 % longer than drop-always (0.2100 s vs 0.1100 s; spread 10 % and 18 %); vCPU fault p99 changed by -9.1% (10.0us vs 11.0us; spread 0 % and 182 %) [medians of 3 runs]',
  );
});
