/**
 * The text report. First every line dirty_log_perf_test prints, with its exact wording and its
 * `%ld.%.9lds` time format (dirty_log_perf_test's), so output can be diffed against the selftest's; then
 * what the selftest cannot show: vCPU fault latency by phase and kind, mmu_lock waits and holds,
 * what the splitter did, RCU, page statistics, and the invariant checker's verdict.
 */
import { formatHostCosts } from '../mmu/host_costs.js';
import { formatBytes, formatSize } from './options.js';
import { corruptionFound } from './report_model.js';
import type { LatencySummary, PhaseReport, Report, SplitCounters } from './report_model.js';
import type { TimelineReport } from './timeline.js';
import { jsonKeyOf, SPLIT_ROWS } from '../stats/worker_stats.js';
import { holdPreemptionLine } from './hold_preemption.js';

/** The selftest's `%ld.%.9lds`: whole seconds, a dot, nine digits of nanoseconds, then "s". */
export function formatSelftestSeconds(seconds: number): string {
  const ns = Math.max(0, Math.round(seconds * 1e9));
  const whole = Math.floor(ns / 1e9);
  const frac = ns - whole * 1e9;
  return `${whole}.${String(frac).padStart(9, '0')}s`;
}

/** A latency for humans: 812ns, 12.3us, 4.56ms, 1.23s. */
export function formatNs(ns: number): string {
  if (ns < 1_000) return `${Math.round(ns)}ns`;
  if (ns < 1_000_000) return `${(ns / 1e3).toFixed(ns < 10_000 ? 2 : 1)}us`;
  if (ns < 1_000_000_000) return `${(ns / 1e6).toFixed(ns < 10_000_000 ? 2 : 1)}ms`;
  return `${(ns / 1e9).toFixed(2)}s`;
}

/** Counts with thousands separators: 25,165,824. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function formatRate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k/s`;
  return `${perSecond.toFixed(0)}/s`;
}

/** A table as data: the text report pads it (textTable), the HTML report marks it up (html_report.ts). */
export interface TableData {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

function textTable(t: TableData): string[] {
  return table(t.header, t.rows);
}

/** A plain-text table: right-aligned numeric columns, left-aligned first column. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)];
}

function latencyCells(s: LatencySummary): string[] {
  if (s.count === 0) return [formatCount(0), '-', '-', '-', '-', '-'];
  return [formatCount(s.count), formatNs(s.p50), formatNs(s.p90), formatNs(s.p99), formatNs(s.p999), formatNs(s.max)];
}

const LAT_HEADER = ['count', 'p50', 'p90', 'p99', 'p99.9', 'max'];

/** The dirty_log_perf_test lines, in the selftest's order and wording. */
export function selftestLines(r: Report): string[] {
  const out: string[] = [];
  const n = r.iterations.length;
  out.push(`Test iterations: ${n}`);
  out.push(`guest physical test memory: [0x${r.guest.firstGpa.toString(16)}, 0x${r.guest.endGpa.toString(16)})`);
  out.push(`Random seed: 0x${Number(r.config['seed']).toString(16)}`);
  out.push(`Populate memory time: ${formatSelftestSeconds(r.totals.populateSeconds)}`);
  out.push(`Enabling dirty logging time: ${formatSelftestSeconds(r.totals.enableSeconds)}`);
  out.push('');
  for (const it of r.iterations) {
    out.push(`Iteration ${it.iteration} dirty memory time: ${formatSelftestSeconds(it.dirtyMemorySeconds)}`);
    out.push(`Iteration ${it.iteration} get dirty log time: ${formatSelftestSeconds(it.getDirtyLogSeconds)}`);
    if (it.clearDirtyLogSeconds !== null) {
      out.push(`Iteration ${it.iteration} clear dirty log time: ${formatSelftestSeconds(it.clearDirtyLogSeconds)}`);
    }
  }
  out.push(`Disabling dirty logging time: ${formatSelftestSeconds(r.totals.disableSeconds)}`);
  const get = r.totals.getDirtyLogSeconds;
  out.push(`Get dirty log over ${n} iterations took ${formatSelftestSeconds(get)}. (Avg ${formatSelftestSeconds(get / n)}/iteration)`);
  if (r.totals.clearDirtyLogSeconds !== null) {
    const clear = r.totals.clearDirtyLogSeconds;
    out.push(`Clear dirty log over ${n} iterations took ${formatSelftestSeconds(clear)}. (Avg ${formatSelftestSeconds(clear / n)}/iteration)`);
  }
  return out;
}

function section(title: string): string[] {
  return ['', `== ${title} ==`];
}

export function phaseTableData(r: Report): TableData {
  const rows = r.phases.map((p: PhaseReport) => [
    p.name,
    p.seconds.toFixed(6),
    p.vcpu === null ? '-' : formatCount(p.vcpu.accesses),
    p.vcpu === null ? '-' : formatRate(p.vcpu.accessesPerSecond),
    p.vcpu === null ? '-' : formatCount(p.vcpu.fastFaults),
    p.vcpu === null ? '-' : formatCount(p.vcpu.slowFaults),
    formatCount(p.hugePagesSplit),
    formatCount(p.pagesAfter['4k']),
    formatCount(p.pagesAfter['2m']),
    formatCount(p.pagesAfter['1g']),
  ]);
  return { header: ['phase', 'seconds', 'accesses', 'vCPU rate', 'fast flt', 'slow flt', 'split', 'pages_4k', 'pages_2m', 'pages_1g'], rows };
}

export function faultLatencyTableData(r: Report): TableData {
  const rows: string[][] = [];
  for (const p of r.phases) {
    if (p.vcpu === null) continue;
    const l = p.vcpu.faultLatencyNs;
    if (l.all.count === 0) {
      rows.push([p.name, 'all', ...latencyCells(l.all)]);
      continue;
    }
    rows.push([p.name, 'all', ...latencyCells(l.all)]);
    if (l.fast.count > 0) rows.push(['', 'fast', ...latencyCells(l.fast)]);
    if (l.slow.count > 0) rows.push(['', 'slow', ...latencyCells(l.slow)]);
  }
  return { header: ['phase', 'kind', ...LAT_HEADER], rows };
}

export function lockTableData(r: Report): TableData {
  const m = r.mmuLock;
  const rows = [
    ['read wait', ...latencyCells(m.readWaitNs)],
    ['read hold', ...latencyCells(m.readHoldNs)],
    ['write wait', ...latencyCells(m.writeWaitNs)],
    ['write hold', ...latencyCells(m.writeHoldNs)],
  ];
  return { header: ['mmu_lock', ...LAT_HEADER], rows };
}

function lockByPhaseTable(r: Report): string[] {
  const rows = r.phases
    .filter((p) => p.mmuLock.readWaitNs.count + p.mmuLock.writeWaitNs.count > 0)
    .map((p) => [
      p.name,
      formatCount(p.mmuLock.readWaitNs.count),
      p.mmuLock.readWaitNs.count === 0 ? '-' : formatNs(p.mmuLock.readWaitNs.p99),
      p.mmuLock.readWaitNs.count === 0 ? '-' : formatNs(p.mmuLock.readWaitNs.max),
      formatCount(p.mmuLock.writeWaitNs.count),
      p.mmuLock.writeHoldNs.count === 0 ? '-' : formatNs(p.mmuLock.writeHoldNs.p99),
      p.mmuLock.writeHoldNs.count === 0 ? '-' : formatNs(p.mmuLock.writeHoldNs.max),
    ]);
  return table(['phase', 'reads', 'rd wait p99', 'rd wait max', 'writes', 'wr hold p99', 'wr hold max'], rows);
}

function splitterLines(r: Report): string[] {
  const s = r.split;
  const kv: [string, string][] = [
    [
      'huge pages split',
      `${formatCount(s.hugePagesSplit)} (2M->4K ${formatCount(s.splits2mTo4k)}, 1G->2M ${formatCount(s.splits1gTo2m)}; by the splitter ${formatCount(s.splitterHugePagesSplit)}, on vCPU faults ${formatCount(s.splitByVcpus)})`,
    ],
    [
      'splitter split time',
      `${s.splitterSplitSeconds.toFixed(6)} s in the split walk for ${formatCount(s.sptes4kProduced)} 4K SPTEs ` +
        `(the ops that split took ${s.splitterOpSeconds.toFixed(6)} s)`,
    ],
    ['time per 4K SPTE', s.nsPer4kSpte === null ? '-' : `${s.nsPer4kSpte.toFixed(1)} ns (split walk time / 4K SPTEs produced)`],
    ...opLines(r),
    [
      'splitter mmu_lock held',
      `${s.splitterLockHoldSeconds.toFixed(6)} s (read holds ${formatCount(s.splitterReadHoldNs.count)}, p99 ${formatNs(s.splitterReadHoldNs.p99)}, ` +
        `max ${formatNs(s.splitterReadHoldNs.max)}; write holds ${formatCount(s.splitterWriteHoldNs.count)}, p99 ${formatNs(s.splitterWriteHoldNs.p99)}, ` +
        `max ${formatNs(s.splitterWriteHoldNs.max)})`,
    ],
    ['splitter holds preempted', holdPreemptionLine(s.splitterHoldPreemption, formatNs)],
  ];
  return [...kvLines(kv.slice(0, 1)), ...counterTable(r), ...kvLines(kv.slice(1))];
}

/** Allocation paths and walk counters: every thread, and the splitter alone. */
function counterTable(r: Report): string[] {
  const all = r.split;
  const sp = r.split.splitter;
  // Every split row of the counter table but hugePagesSplit, which has its own line above.
  const rows = SPLIT_ROWS.filter((row) => row.key !== 'hugePagesSplit').map((row) => [row.label, jsonKeyOf(row)] as const);
  const get = (c: SplitCounters, k: string): number => (c as unknown as Record<string, number>)[k] ?? 0;
  return table(
    ['counter', 'all threads', 'splitter'],
    rows.map(([label, k]) => [label, formatCount(get(all, k)), formatCount(get(sp, k))]),
  );
}

/** Where the enable and CLEAR ops spent their time. */
function opLines(r: Report): [string, string][] {
  return r.phases
    .filter((p) => p.splitSeconds !== null && (p.splitSeconds > 0 || (p.wrprotSeconds ?? 0) > 0))
    .map((p) => [
      `  ${p.name}`,
      `${p.seconds.toFixed(6)} s: split walk ${p.splitSeconds!.toFixed(6)} s (${formatCount(p.hugePagesSplit)} huge pages)` +
        `${p.wrprotSeconds !== null && p.wrprotSeconds > 0 ? `, write-protect ${p.wrprotSeconds.toFixed(6)} s` : ''}`,
    ]);
}

function kvLines(kv: readonly (readonly [string, string])[]): string[] {
  const w = Math.max(...kv.map(([k]) => k.length)) + 1;
  return kv.map(([k, v]) => `${`${k}:`.padEnd(w + 1)}${v}`);
}

export function dirtyTableData(r: Report): TableData {
  const rows = r.iterations.map((it) => [
    `${it.iteration}`,
    formatCount(it.pagesWritten),
    formatCount(it.dirtyPages),
    it.expectedDirtyPages === null ? '-' : formatCount(it.expectedDirtyPages),
    it.dirtyPagesOk === null ? 'n/a' : it.dirtyPagesOk ? 'ok' : 'MISMATCH',
  ]);
  return { header: ['iteration', 'pages written', 'dirty pages', 'expected', 'verdict'], rows };
}

function steadyTable(r: Report): string[] {
  if (r.steady === null) return [];
  const rows = r.steady.windows.map((w) => [
    w.phase,
    w.seconds.toFixed(3),
    formatRate(w.accessesPerSecond),
    w.throughputChangePct === null ? '-' : `${w.throughputChangePct >= 0 ? '+' : ''}${w.throughputChangePct.toFixed(1)}%`,
    formatNs(w.faultP99Ns),
    formatNs(w.faultMaxNs),
    formatNs(w.slowFaultP99Ns),
    formatNs(w.readWaitP99Ns),
    formatCount(w.hugePagesSplit),
  ]);
  return [
    ...section('Steady workload: vCPU throughput and fault latency before, during and after splitting'),
    ...table(['window', 'seconds', 'vCPU rate', 'vs before', 'fault p99', 'fault max', 'slow p99', 'rd wait p99', 'split'], rows),
  ];
}

/** Fault count and latency per kind (exec, first-touch, write protection fast/slow, read), per phase. */
function faultKindTable(r: Report): string[] {
  const rows: string[][] = [];
  for (const p of r.phases) {
    const kinds = p.vcpu?.faultKinds;
    if (kinds === undefined) continue;
    let first = true;
    for (const [kind, s] of Object.entries(kinds)) {
      rows.push([first ? p.name : '', kind, ...latencyCells(s)]);
      first = false;
    }
  }
  if (rows.length === 0) return [];
  return [...section('vCPU faults by kind (wp = write protection; slow kinds took mmu_lock)'), ...table(['phase', 'kind', ...LAT_HEADER], rows)];
}

function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? '-' : `${(x * 100).toFixed(2)}%`;
}

/**
 * Where the vCPUs' time went per phase: waiting for mmu_lock (its share of vCPUs x the phase's
 * window) and on a CPU (schedstat). On a host with fewer cores than threads the on-CPU share is
 * what the splitter and the other vCPUs took by sharing cores; the lock-wait share is the lock's own part.
 */
function vcpuTimeTable(r: Report): string[] {
  const rows: string[][] = [];
  for (const p of r.phases) {
    const v = p.vcpu;
    if (v === null || v.lockWaitSeconds === undefined) continue;
    rows.push([
      p.name,
      (v.vcpuSeconds ?? 0).toFixed(3),
      (v.lockWaitSeconds ?? 0).toFixed(6),
      pct(v.lockWaitShare),
      v.cpuSeconds == null ? '-' : v.cpuSeconds.toFixed(3),
      pct(v.onCpuShare),
    ]);
  }
  if (rows.length === 0) return [];
  return [
    ...section('vCPU time by phase: waiting for mmu_lock, and on a CPU (vCPU s = vCPUs x window)'),
    ...table(['phase', 'vCPU s', 'lock wait s', 'wait share', 'on-CPU s', 'on-CPU share'], rows),
  ];
}

/** The timeline's summary: the deepest throughput dip of each phase in which vCPUs ran, and how long it lasted. */
function dipTable(r: Report): string[] {
  const t = r.timeline;
  if (t === undefined) return [];
  const head = `${formatCount(t.rows.length)} samples, every ${t.sampleMs * t.stride} ms; a dip is throughput below ${100 - t.dipThresholdPct}% of the baseline`;
  if (t.dips.length === 0) return [...section('Timeline'), head, 'no phase with running vCPUs was sampled'];
  const d0 = t.dips[0]!;
  return [
    ...section('Timeline: vCPU throughput dips by phase'),
    `${head}; baseline ${formatRate(d0.baselinePerSecond)} (${d0.baselineFrom})`,
    ...textTable(dipTableData(t)),
  ];
}

/** One row per phase dip (timeline.ts phaseDips). */
export function dipTableData(t: TimelineReport): TableData {
  const rows = t.dips.map((d) => [
    d.name,
    formatRate(d.meanPerSecond),
    formatRate(d.minPerSecond),
    `${d.depthPct.toFixed(1)}%`,
    `${d.belowMs.toFixed(0)} ms`,
    `${d.longestBelowMs.toFixed(0)} ms`,
    String(d.maxLockWaiters),
    `${d.maxLockWaitingMs.toFixed(0)} ms`,
  ]);
  return { header: ['phase', 'mean rate', 'min rate', 'dip depth', 'below', 'longest', 'max lock waiters', 'longest queue'], rows };
}

/** The whole text report. */
export function formatReport(r: Report): string {
  const c = r.config;
  const out: string[] = [...selftestLines(r)];
  out.push(...section('Run'));
  out.push(
    ...kvLines([
      [
        'guest',
        `${c['vcpus']} vCPUs x ${formatSize(Number(c['memoryPerVcpuBytes']))} = ${formatBytes(r.guest.memoryBytes)} ` +
          `(${formatCount(r.guest.pages4k)} 4K pages), ${c['backing']} (${formatSize(r.guest.backingPageBytes)} pages), ` +
          `${r.guest.memslots.length} memslot(s), ${c['levels']}-level TDP`,
      ],
      [
        'dirty logging',
        `${c['manualProtect'] === true ? 'manual-protect + initially-set (split in CLEAR, mmu_lock for write)' : 'no manual-protect (-g: split at enable, mmu_lock for read)'}; ` +
          `eager split ${c['eagerSplit'] === true ? 'on' : 'off'}, design ${c['splitAlloc']}, pressure ${c['pressure']}` +
          (r.dirtyTracking === undefined
            ? ''
            : `; tracking ${r.dirtyTracking.mode} (PML writes ${formatCount(r.dirtyTracking.pmlWrites)}, PML-full exits ${formatCount(r.dirtyTracking.pmlFullExits)})`),
      ],
      ...(r.kernel === undefined
        ? []
        : [
            [
              'kernel',
              `Linux ${r.kernel.version} modelled${r.kernel.anachronisms.length > 0 ? ` (anachronisms: ${r.kernel.anachronisms.join('; ')})` : ''}`,
            ] as [string, string],
          ]),
      ...(r.clearCalls === undefined || r.clearCalls.length === 0
        ? []
        : [
            [
              'CLEAR calls',
              r.clearCalls
                .map(
                  (c) =>
                    `${c.phase}: ${c.calls} call(s), total ${c.totalSeconds.toFixed(6)} s, max ${c.maxCallSeconds.toFixed(6)} s, ${c.pauses} pause(s), CPU ${c.cpuSeconds === null ? '-' : `${c.cpuSeconds.toFixed(6)} s`}`,
                )
                .join('; '),
            ] as [string, string],
          ]),
      ...(r.hostEvents === undefined || r.hostEvents === null
        ? []
        : [
            [
              'host events',
              `${r.hostEvents.invalidations} invalidation(s), ${r.hostEvents.agings} aging call(s), ${formatCount(r.hostEvents.zappedLeaves)} leaves zapped, ${formatCount(r.hostEvents.agedLeaves)} aged, ${formatCount(r.hostEvents.notifierRetries)} fault retries, ${r.hostEvents.staleLeaves} stale leaves`,
            ] as [string, string],
          ]),
      ...(r.hostCosts === undefined
        ? []
        : [
            [
              'host costs',
              `${formatHostCosts(r.hostCosts)}; spent ${r.hostCosts.spentSeconds.toFixed(3)} s, ${formatCount(r.hostCosts.tlbFlushes)} TLB flushes ` +
                `(${r.hostCosts.calibration})`,
            ] as [string, string],
          ]),
      [
        'workload',
        `${String(c['workload'] ?? 'memstress')}: ${c['writePercent']}% writes, ${c['randomAccess'] === true ? 'random' : 'sequential'} access` +
          `${c['vcpusRunDuringDisable'] === true ? ', vCPUs run during disable (-e)' : ''}${c['steady'] === true ? ', steady mode' : ''}`,
      ],
      ['host', `${r.host.cores} cores, Node ${r.host.nodeVersion}, ${r.host.vcpusPerCore.toFixed(1)} vCPUs per core, ${r.host.cpuModel}`],
      ['page-table pool', `${formatCount(r.guest.poolTables)} tables, ${formatBytes(r.guest.footprintBytes)} reserved`],
      ['wall time', `${r.totals.wallSeconds.toFixed(3)} s`],
    ]),
  );
  out.push(...section('Phases (vCPU rate = guest accesses per second, all vCPUs; pages_* after the phase)'));
  out.push(...textTable(phaseTableData(r)));
  out.push(...section('vCPU fault latency by phase and kind (fast = lockless, slow = mmu_lock for read)'));
  out.push(...textTable(faultLatencyTableData(r)));
  out.push(...steadyTable(r));
  out.push(...faultKindTable(r));
  out.push(...vcpuTimeTable(r));
  out.push(...dipTable(r));
  out.push(...section('mmu_lock (all threads, whole run)'));
  out.push(...textTable(lockTableData(r)));
  out.push(`contended acquisitions: ${formatCount(r.mmuLock.contendedReads)} reads, ${formatCount(r.mmuLock.contendedWrites)} writes`);
  out.push(...lockByPhaseTable(r).map((l) => l));
  out.push(...section('Splitting'));
  out.push(...splitterLines(r));
  out.push(...section('Dirty log (GET_DIRTY_LOG against the pages the vCPUs wrote)'));
  out.push(...textTable(dirtyTableData(r)));
  out.push(...section('RCU, pool, pages'));
  out.push(
    ...kvLines([
      [
        'RCU',
        `${formatCount(r.rcu.gracePeriods)} grace periods, ${formatCount(r.rcu.deferredFrees)} deferred frees run (${formatCount(r.rcu.callbacksQueued)} queued)`,
      ],
      [
        'pool',
        Object.entries(r.pool)
          .map(([k, v]) => `${k} ${formatCount(v)}`)
          .join(', '),
      ],
      ['pages (final)', `4k ${formatCount(r.pages['4k'])}, 2m ${formatCount(r.pages['2m'])}, 1g ${formatCount(r.pages['1g'])}`],
    ]),
  );
  out.push(...section('Invariants'));
  const inv = r.invariants;
  const corrupt = corruptionFound(r);
  const verdict = !inv.ok
    ? `VIOLATED (${formatCount(inv.violationCount)} violations${corrupt.length > 0 ? `; also ${corrupt.join(', ')}` : ''})`
    : corrupt.length > 0
      ? `VIOLATED (${corrupt.join(', ')})`
      : 'OK';
  const dirtyVerdict = r.dirtyLog.ok === null ? 'not checked (steady mode)' : r.dirtyLog.ok ? 'every iteration matches' : 'MISMATCH';
  out.push(
    `invariant checker: ${verdict} in ${inv.seconds.toFixed(3)} s; ` +
      `poison reads ${formatCount(inv.poisonReads)}, translation errors ${formatCount(inv.xlateErrors)}, lost dirty ${formatCount(r.dirtyLog.lostDirty)}; dirty log: ${dirtyVerdict}`,
  );
  for (const v of inv.violations.slice(0, 10)) out.push(`  ${v}`);
  return out.join('\n');
}
